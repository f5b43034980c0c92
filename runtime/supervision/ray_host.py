"""The worker side of the Ray backend: one child's actor inside a Ray actor process.

``RayHost`` is made a Ray actor (async, so long calls never block one another)
by ``runtime.supervision.ray_backend``. Inside it the child's Pykka actor runs
exactly as on the thread backend, in a thread-backend ``Incarnation``: the same
crash rules, the same ``on_start``/``on_stop``. The host only carries messages:

- ``tell``/``ask``/``stop`` from the daemon, in the order sent;
- ``poll``: the daemon's one long-poll per child. It answers when the actor
  calls home (``call_home``), when its life ended (and how), or after
  ``timeout``; each answer carries the actor's status for `elx tree`.

``call_home(kind, payload)`` is how an actor placed on Ray reaches the daemon,
which stays the single owner of the store and the providers (checkpoints,
LLM calls, events): it blocks the actor's thread until the daemon replies.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import os
import pickle
import threading
from typing import Any, cast

from runtime.clock import SYSTEM_CLOCK
from runtime.errors import ChildNotRunning
from runtime.supervision.child_spec import resolve_actor
from runtime.supervision.exit import Exit
from runtime.supervision.incarnation import Incarnation
from runtime.supervision.snapshot import WorkerStatus

_HOST: RayHost | None = None
_HOST_LOCK = threading.Lock()


def call_home(kind: str, payload: Any = None) -> Any:
    """Ask the daemon that placed this actor; its answer, or its error raised here."""
    with _HOST_LOCK:
        host = _HOST
    if host is None:
        raise ChildNotRunning("this actor does not run on the Ray backend", child="?")
    return host.call(kind, payload)


def notify_home(kind: str, payload: Any = None) -> None:
    """Tell the daemon without waiting (events); delivered in order with ``call_home``."""
    with _HOST_LOCK:
        host = _HOST
    if host is None:
        raise ChildNotRunning("this actor does not run on the Ray backend", child="?")
    host.notify(kind, payload)


def on_ray() -> bool:
    """Whether this process hosts an actor placed by the Ray backend."""
    with _HOST_LOCK:
        return _HOST is not None


class RayHost:
    """One child's life in a Ray worker process (one host per Ray actor)."""

    def __init__(
        self,
        target: Any,
        kwargs: dict[str, Any],
        path: str,
        generation: int,
        crash_on: tuple[type[BaseException], ...],
    ) -> None:
        global _HOST
        self.target = target
        self.kwargs = kwargs
        self.path = path
        self.generation = generation
        self.crash_on = crash_on
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._outbox: list[tuple[int, str, Any]] = []
        self._replies: dict[int, concurrent.futures.Future[Any]] = {}
        self._exit: dict[str, Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self.incarnation: Incarnation | None = None
        with _HOST_LOCK:
            _HOST = self

    # -- life -------------------------------------------------------------------------

    async def start(self, timeout: float) -> dict[str, Any]:
        """Construct and start the actor; where it runs, or why it did not start."""
        import ray

        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        incarnation = Incarnation(
            path=self.path,
            generation=self.generation,
            crash_on=self.crash_on,
            clock=SYSTEM_CLOCK,
            on_exit=self._ended,
        )
        self.incarnation = incarnation
        where = {
            "node": ray.get_runtime_context().get_node_id(),
            "ip": cast(Any, ray.util).get_node_ip_address(),
            "pid": os.getpid(),
        }
        try:
            target = resolve_actor(self.target)
            incarnation.spawn(target, self.kwargs)
        except BaseException as exc:  # the constructor failed: a failed start
            return {"outcome": "failed", "error": _portable(exc), **where}
        outcome = await self._loop.run_in_executor(None, incarnation.wait_started, timeout)
        error = incarnation.start_error
        return {"outcome": outcome.value, "error": _portable(error), **where}

    def _ended(self, incarnation: Incarnation, exit_: Exit) -> None:
        """From the actor's thread: its life ended; the next poll reports how."""
        with self._lock:
            self._exit = {
                "reason": exit_.reason.value,
                "error": _portable(exit_.error),
                "requested": exit_.requested,
            }
        self._signal()

    # -- the daemon's calls, in the order it sent them -----------------------------------

    async def tell(self, message: Any) -> None:
        assert self.incarnation is not None
        self.incarnation.tell(message)

    async def ask(self, message: Any) -> Any:
        assert self.incarnation is not None and self._loop is not None
        future = self.incarnation.ask(message)
        return await self._loop.run_in_executor(None, future.get)

    async def stop(self) -> None:
        if self.incarnation is not None:
            self.incarnation.request_stop()

    async def poll(
        self, timeout: float, replies: list[tuple[int, bool, Any]] | None = None
    ) -> dict[str, Any]:
        """Deliver the daemon's ``replies`` to earlier calls home, then wait for new calls,
        the end of the actor's life, or ``timeout``."""
        assert self._wake is not None
        for call_id, ok, value in replies or ():
            await self.reply(call_id, ok, value)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()
        with self._lock:
            calls, self._outbox = self._outbox, []
            ended = self._exit
        return {"calls": calls, "exit": ended, "status": self._status()}

    async def reply(self, call_id: int, ok: bool, value: Any) -> None:
        with self._lock:
            future = self._replies.pop(call_id, None)
        if future is None:
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def _status(self) -> WorkerStatus | None:
        incarnation = self.incarnation
        try:
            return incarnation.status() if incarnation is not None else None
        except Exception:  # a status is best effort; the tree shows none
            return None

    # -- the actor's calls home ---------------------------------------------------------

    def call(self, kind: str, payload: Any) -> Any:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            call_id = next(self._ids)
            self._replies[call_id] = future
            self._outbox.append((call_id, kind, payload))
        self._signal()
        return future.result()

    def notify(self, kind: str, payload: Any) -> None:
        """Queue without waking the poll: it goes with the next call home (or the poll's
        timeout), in order, so an event costs no round trip of its own."""
        with self._lock:
            self._outbox.append((0, kind, payload))  # call id 0: no reply expected

    def _signal(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the process is ending
                loop.call_soon_threadsafe(wake.set)


def _portable(error: BaseException | None) -> BaseException | None:
    """``error`` if it survives pickling, else a RuntimeError that names it."""
    if error is None:
        return None
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error
