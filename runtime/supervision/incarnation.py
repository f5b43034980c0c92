"""One life of a child: its Pykka thread, how that life ended, and the fence around it.

Pykka 4.5 has no links or monitors, and several ways to die. How each one is
caught here (read from ``pykka/_actor.py``):

- exception in a ``tell`` handler: Pykka calls ``_handle_failure`` then
  ``on_failure``; our ``on_failure`` records the crash.
- exception in ``on_start`` or ``on_stop``: Pykka only logs and stops; our
  wrappers of those hooks record the crash first.
- exception while answering an ``ask``: Pykka returns it to the caller and
  carries on; if the spec lists it in ``crash_on``, ``_handle_receive`` marks
  the actor stopped so the loop ends after the reply (a crash).
- a ``BaseException`` (SystemExit, KeyboardInterrupt, ...) in a handler: Pykka
  would call ``ActorRegistry.stop_all()`` and take every actor in the process
  down. ``_handle_receive`` and the hook wrappers turn it into an ordinary
  exception first, so only this child dies (a crash). Anything that still
  escapes Pykka's loop is caught around ``_actor_loop``.
- the actor stops itself: a clean stop nobody asked for, reason ``normal``.

The thread's last act (``finish``) decides the exit, fails every call still
waiting on this incarnation with ``ChildNotRunning`` and notifies the
supervisor. ``abandon`` does the same at once for a child that would not stop
in time; replies it sends later land on settled futures and are dropped.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from collections.abc import Callable, Mapping
from enum import StrEnum
from types import TracebackType
from typing import Any, cast

import pykka

from runtime.clock import Clock
from runtime.errors import ChildNotRunning, StartIgnored
from runtime.supervision.exit import Exit, ExitReason
from runtime.supervision.snapshot import StatusReporter, WorkerStatus

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class FencedFuture(pykka.ThreadingFuture[Any]):
    """A Pykka future that drops a second answer instead of raising in the actor's thread."""

    def __init__(self) -> None:
        super().__init__()
        self.settled = False
        self.on_settle: Callable[[FencedFuture], None] | None = None

    def set(self, value: Any | None = None) -> None:
        try:
            super().set(value)
        except queue.Full:
            return
        self._settle()

    def set_exception(self, exc_info: Any = None) -> None:
        if exc_info is None:
            exc_info = sys.exc_info()
        try:
            super().set_exception(exc_info)
        except queue.Full:
            return
        self._settle()

    def fail(self, error: BaseException) -> None:
        self.set_exception((type(error), error, None))

    def _settle(self) -> None:
        self.settled = True
        hook = self.on_settle
        if hook is not None:
            hook(self)


class StartOutcome(StrEnum):
    STARTED = "started"
    FAILED = "failed"
    IGNORED = "ignored"
    TIMED_OUT = "timed_out"


class Incarnation:
    """The n-th life of the child at ``path``; created by its supervisor, ended by ``finish``."""

    def __init__(
        self,
        *,
        path: str,
        generation: int,
        crash_on: tuple[type[BaseException], ...],
        clock: Clock,
        on_exit: Callable[[Incarnation, Exit], None],
    ) -> None:
        self.path = path
        self.generation = generation
        self.crash_on = crash_on
        self.clock = clock
        self.started_at = clock.now()
        self.actor: pykka.ThreadingActor | None = None
        self.ref: pykka.ActorRef[Any] | None = None
        self.exit: Exit | None = None
        self.start_error: BaseException | None = None
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self._pending: set[FencedFuture] = set()
        self._fenced = False
        self._abandoned = False
        self._stop_requested = False
        self._crash: BaseException | None = None
        self._declared: Exit | None = None
        self._start_ok = False
        self._started = threading.Event()
        self._exited = threading.Event()

    def __repr__(self) -> str:
        return f"<Incarnation {self.path}#{self.generation}>"

    # -- starting ---------------------------------------------------------

    def spawn(self, actor_class: type[pykka.ThreadingActor], kwargs: Mapping[str, Any]) -> None:
        """Construct the actor here, then run it on a daemon thread. ``__init__`` errors raise."""
        actor = supervised_class(actor_class)(**kwargs)
        actor._elx_incarnation = self
        self.actor = actor
        self.ref = actor.actor_ref
        pykka.ActorRegistry.register(actor.actor_ref)
        actor._start_actor_loop()

    def wait_started(self, timeout: float) -> StartOutcome:
        if not self._started.wait(timeout):
            return StartOutcome.TIMED_OUT
        if self._start_ok:
            return StartOutcome.STARTED
        if isinstance(self.start_error, StartIgnored):
            return StartOutcome.IGNORED
        return StartOutcome.FAILED

    def _start_succeeded(self) -> None:
        self._start_ok = True
        self.started_at = self.clock.now()
        self._started.set()

    # -- calls ------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return not self._fenced and self._start_ok

    def ask(self, message: Any) -> FencedFuture:
        """Queue ``message``; the future fails with ChildNotRunning if this life ends first."""
        if self.ref is None:
            future = FencedFuture()
            future.fail(self._not_running("has not started"))
            return future
        future = cast(FencedFuture, self.ref.ask(message, block=False))
        if self._track(future) and future.settled:
            self._discard(future)
        return future

    def _track(self, future: FencedFuture) -> bool:
        """Fence ``future`` with this life (it fails when the life ends); False, and failed
        at once, if the life has already ended."""
        future.on_settle = self._discard
        with self._lock:
            fenced = self._fenced
            if not fenced:
                self._pending.add(future)
        if fenced:
            future.fail(self._not_running("stopped before the call reached it"))
        return not fenced

    def tell(self, message: Any) -> None:
        if self.ref is None or self._fenced:
            raise self._not_running("is not running")
        try:
            self.ref.tell(message)
        except pykka.ActorDeadError:
            raise self._not_running("stopped before the message reached it") from None

    def status(self) -> WorkerStatus | None:
        """What the worker says it is doing, for the tree (cheap; any thread)."""
        actor = self.actor
        return actor.supervision_status() if isinstance(actor, StatusReporter) else None

    def pending_calls(self) -> int:
        with self._lock:
            return len(self._pending)

    def mailbox_depth(self) -> int:
        if self.ref is None:
            return 0
        qsize = getattr(self.ref.actor_inbox, "qsize", None)
        return int(qsize()) if callable(qsize) else 0

    def _discard(self, future: FencedFuture) -> None:
        with self._lock:
            self._pending.discard(future)

    def _not_running(self, what: str) -> ChildNotRunning:
        return ChildNotRunning(
            f"{self.path} (incarnation {self.generation}) {what}; retry through its handle "
            "once the supervisor has restarted it",
            child=self.path,
        )

    # -- ending -----------------------------------------------------------

    def record_crash(self, error: BaseException) -> None:
        with self._lock:
            if self._crash is None:
                self._crash = error

    def declare_exit(self, exit_: Exit) -> None:
        """A supervisor child states its own exit (escalation, auto_shutdown) before stopping."""
        with self._lock:
            self._declared = exit_

    def request_stop(self) -> None:
        """Ask the actor to stop after the messages already queued; never blocks."""
        with self._lock:
            self._stop_requested = True
        if self.ref is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                self.ref.stop(block=False)

    def wait_exited(self, timeout: float | None) -> bool:
        return self._exited.wait(timeout)

    @property
    def exited(self) -> bool:
        return self._exited.is_set()

    def abandon(self) -> Exit:
        """Give up on a child that would not stop: unregister, fence, report ``killed``."""
        with self._lock:
            if self._exited.is_set() and self.exit is not None:
                return self.exit
            self._abandoned = True
            self._stop_requested = True
            self.exit = Exit(ExitReason.KILLED, requested=True)
            pending = self._fence_locked()
        self._fail(pending, "was abandoned (killed) by its supervisor")
        if self.ref is not None:
            pykka.ActorRegistry.unregister(self.ref)
            with contextlib.suppress(pykka.ActorDeadError):
                self.ref.stop(block=False)
        return self.exit

    def finish(self) -> None:
        """Run last on the actor's thread: settle the exit, fence, notify the supervisor."""
        with self._lock:
            if self._crash is not None:
                exit_ = Exit(ExitReason.CRASH, self._crash, requested=self._stop_requested)
            elif self._declared is not None:
                exit_ = self._declared
            elif self._stop_requested:
                exit_ = Exit(ExitReason.SHUTDOWN, requested=True)
            else:
                exit_ = Exit(ExitReason.NORMAL)
            notify = not self._abandoned and self._start_ok
            if not self._abandoned:
                self.exit = exit_
            pending = self._fence_locked()
        self._fail(pending, "stopped before answering")
        if not self._started.is_set():
            self.start_error = (
                self.start_error
                or self._crash
                or ChildNotRunning(f"{self.path} stopped before on_start returned", child=self.path)
            )
            self._started.set()
        self._exited.set()
        if notify:
            self._on_exit(self, exit_)

    def _fence_locked(self) -> list[FencedFuture]:
        self._fenced = True
        pending = list(self._pending)
        self._pending.clear()
        return pending

    def _fail(self, pending: list[FencedFuture], what: str) -> None:
        for future in pending:
            future.fail(self._not_running(what))


class _Supervised(pykka.ThreadingActor):
    """Mixed in before a child's own class; see the module docstring for why each hook."""

    use_daemon_thread = True
    _elx_incarnation: Incarnation

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return FencedFuture()

    def _actor_loop(self) -> None:
        incarnation = self._elx_incarnation
        try:
            super()._actor_loop()
        except BaseException as exc:
            incarnation.record_crash(exc)
            pykka.ActorRegistry.unregister(self.actor_ref)
            self.actor_stopped.set()
            self._actor_loop_teardown()
        finally:
            incarnation.finish()

    def on_start(self) -> None:
        incarnation = self._elx_incarnation
        try:
            super().on_start()
        except StartIgnored as exc:
            incarnation.start_error = exc
            pykka.ActorRegistry.unregister(self.actor_ref)
            self.actor_stopped.set()
            return
        except BaseException as exc:
            incarnation.record_crash(exc)
            raise _as_exception(exc, incarnation, "on_start") from exc
        if not self.actor_stopped.is_set():
            incarnation._start_succeeded()

    def on_stop(self) -> None:
        try:
            super().on_stop()
        except BaseException as exc:
            self._elx_incarnation.record_crash(exc)
            raise _as_exception(exc, self._elx_incarnation, "on_stop") from exc

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        error = exception_value or (exception_type() if exception_type else RuntimeError())
        self._elx_incarnation.record_crash(error)
        try:
            super().on_failure(exception_type, exception_value, traceback)
        except BaseException as exc:
            raise _as_exception(exc, self._elx_incarnation, "on_failure") from exc

    def _handle_receive(self, message: Any) -> Any:
        incarnation = self._elx_incarnation
        if isinstance(message, CrashCommand):
            # An operator's `kill`: crash exactly as an exception in a tell would.
            raise OperatorCrash(f"{incarnation.path} crashed on command ({message.reason})")
        try:
            return super()._handle_receive(message)
        except Exception as exc:
            if isinstance(exc, incarnation.crash_on):
                self._crash_now(exc)
            raise
        except BaseException as exc:
            self._crash_now(exc)
            raise _as_exception(exc, incarnation, "a message handler") from exc

    def _crash_now(self, error: BaseException) -> None:
        self._elx_incarnation.record_crash(error)
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()


class CrashCommand:
    """A message that makes any supervised child crash (``SupervisorHandle.kill_child``)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class OperatorCrash(RuntimeError):
    """The exception a child dies of when an operator kills it."""


def _as_exception(exc: BaseException, incarnation: Incarnation, where: str) -> Exception:
    if isinstance(exc, Exception):
        return exc
    return ChildNotRunning(
        f"{incarnation.path} crashed with {exc!r} in {where}", child=incarnation.path
    )


_classes: dict[type[pykka.ThreadingActor], type[_Supervised]] = {}
_classes_lock = threading.Lock()


def supervised_class(actor_class: type[pykka.ThreadingActor]) -> type[_Supervised]:
    """The child's class with the supervision hooks mixed in (cached, same name)."""
    with _classes_lock:
        cls = _classes.get(actor_class)
        if cls is None:
            namespace = {
                "__module__": actor_class.__module__,
                "__qualname__": actor_class.__qualname__,
            }
            cls = cast(
                type[_Supervised], type(actor_class.__name__, (_Supervised, actor_class), namespace)
            )
            _classes[actor_class] = cls
        return cls
