"""Stable handles: one per child, valid across restarts.

A handle routes each call to the child's current incarnation. While the child
is down a call fails at once with ``ChildNotRunning``; a call already queued
when the incarnation dies fails the moment it dies (the incarnation's fence),
so no caller ever waits on a dead actor.
"""

from __future__ import annotations

import threading
from typing import Any, TypeVar

import pykka
from pykka.messages import ProxyCall

from runtime.errors import CallTimeout, ChildNotRunning
from runtime.supervision.incarnation import FencedFuture, Incarnation

DEFAULT_CALL_TIMEOUT_S = 5.0


class Reply:
    """A pending answer from a child; ``get`` maps Pykka's errors onto ours."""

    __slots__ = ("_future", "child")

    def __init__(self, child: str, future: FencedFuture) -> None:
        self.child = child
        self._future = future

    def done(self) -> bool:
        return self._future.settled

    def get(self, timeout: float = DEFAULT_CALL_TIMEOUT_S) -> Any:
        try:
            return self._future.get(timeout=timeout)
        except pykka.ActorDeadError:
            raise ChildNotRunning(
                f"{self.child} stopped before answering; retry through its handle "
                "once the supervisor has restarted it",
                child=self.child,
            ) from None
        except pykka.Timeout:
            raise CallTimeout(
                f"{self.child} did not answer within {timeout:g} s; it is running but busy "
                "or stuck (see its mailbox depth in the tree)",
                child=self.child,
                timeout_s=timeout,
            ) from None


class ChildHandle:
    """Calls reach whichever incarnation of the child at ``path`` is current."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._changed = threading.Condition()
        self._incarnation: Incarnation | None = None
        self._last: Incarnation | None = None
        self._generation = 0
        self._why = "has not started yet"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path} generation={self._generation}>"

    @property
    def generation(self) -> int:
        """How many incarnations this handle has been bound to so far."""
        return self._generation

    def is_running(self) -> bool:
        incarnation = self._incarnation
        return incarnation is not None and incarnation.alive

    def ask_async(self, message: Any) -> Reply:
        incarnation = self._incarnation
        if incarnation is None:
            future = FencedFuture()
            future.fail(self._not_running())
            return Reply(self.path, future)
        return Reply(self.path, incarnation.ask(message))

    def ask(self, message: Any, *, timeout: float = DEFAULT_CALL_TIMEOUT_S) -> Any:
        return self.ask_async(message).get(timeout)

    def call_async(self, method: str, /, *args: Any, **kwargs: Any) -> Reply:
        """Call ``method`` on the actor (Pykka's proxy call, without building a proxy)."""
        return self.ask_async(ProxyCall(attr_path=(method,), args=args, kwargs=kwargs))

    def call(
        self, method: str, /, *args: Any, timeout: float = DEFAULT_CALL_TIMEOUT_S, **kwargs: Any
    ) -> Any:
        return self.call_async(method, *args, **kwargs).get(timeout)

    def tell(self, message: Any) -> None:
        incarnation = self._incarnation
        if incarnation is None:
            raise self._not_running()
        incarnation.tell(message)

    def wait_running(self, timeout: float, *, after_generation: int = 0) -> bool:
        """Block until an incarnation newer than ``after_generation`` is running."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._generation > after_generation and self.is_running(), timeout
            )

    def wait_exited(self, generation: int, timeout: float) -> bool:
        """Block until incarnation number ``generation`` (see ``generation``) has ended."""
        with self._changed:
            if self._generation > generation:
                return True
            last = self._last
        return last is None or last.wait_exited(timeout)

    def _bind(self, incarnation: Incarnation) -> None:
        with self._changed:
            self._incarnation = incarnation
            self._last = incarnation
            self._generation += 1
            self._changed.notify_all()

    def _unbind(self, why: str) -> None:
        with self._changed:
            self._incarnation = None
            self._why = why
            self._changed.notify_all()

    def _current(self) -> Incarnation | None:
        return self._incarnation

    def _not_running(self) -> ChildNotRunning:
        return ChildNotRunning(
            f"{self.path} {self._why}; retry once its supervisor has restarted it, "
            "or check `which_children`",
            child=self.path,
        )


H = TypeVar("H", bound=ChildHandle)


class HandleBook:
    """One handle per path for a whole tree, so a handle to a grandchild stays valid when
    its supervisor is restarted (the new supervisor binds the same handle)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handles: dict[str, ChildHandle] = {}
        self._below: dict[str, set[str]] = {}  # parent path -> child paths with handles

    def get_or_create(self, path: str, kind: type[H]) -> H:
        with self._lock:
            handle = self._handles.get(path)
            if not isinstance(handle, kind):
                handle = kind(path)
                self._handles[path] = handle
                self._below.setdefault(path.rpartition("/")[0], set()).add(path)
            return handle

    def forget(self, path: str, *, subtree: bool) -> None:
        """Drop ``path`` (and, for a supervisor, everything below it): its spec left the tree."""
        with self._lock:
            self._handles.pop(path, None)
            siblings = self._below.get(path.rpartition("/")[0])
            if siblings is not None:
                siblings.discard(path)
            if subtree:
                pending = [path]
                while pending:  # only this subtree's paths: cheap with thousands of jobs
                    for child in self._below.pop(pending.pop(), ()):
                        self._handles.pop(child, None)
                        pending.append(child)

    def __len__(self) -> int:
        with self._lock:
            return len(self._handles)
