"""Starting and stopping one child, and the supervisor's records of its children.

A start spawns a fresh ``Incarnation`` and waits for its ``on_start`` (up to the
spec's ``start_timeout_s``, after which it is abandoned); a start that raises
``StartIgnored`` leaves the child stopped and ignored. A stop follows the
child's ``shutdown``: ``brutal_kill`` abandons at once, seconds wait that long
and then abandon (unregistered and fenced, reported as ``killed``), ``infinity``
waits. A child that stays down tells its exit watchers; temporary children (and
every finished child of a dynamic supervisor) are dropped from the records.

The records are read under a lock so introspection works from any thread.
"""

from __future__ import annotations

import contextlib
import threading
from abc import abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import pykka
import structlog

from runtime.errors import ChildControlError, StartFailed, StartIgnored
from runtime.supervision.backend import Placement
from runtime.supervision.child import Child
from runtime.supervision.child_spec import (
    ChildKind,
    ChildSpec,
    Restart,
    ShutdownMode,
    SupervisorFlags,
)
from runtime.supervision.context import SupervisionContext
from runtime.supervision.exit import Exit, ExitReason
from runtime.supervision.handle import ChildHandle
from runtime.supervision.incarnation import Incarnation, StartOutcome
from runtime.supervision.messages import ChildExited
from runtime.supervision.states import ChildState, SupervisorState

log = structlog.get_logger("runtime.supervision")


class ChildLifecycle(pykka.ThreadingActor):
    """The child mechanics of ``Supervisor``, which sets these attributes and picks targets."""

    drops_finished_children: ClassVar[bool] = False
    spec: SupervisorFlags
    path: str
    placement: Placement
    _ctx: SupervisionContext
    _lock: threading.RLock
    _children: dict[str, Child]
    _state: SupervisorState

    # -- starting and stopping one child --------------------------------------------

    def _start(self, child: Child, *, failed: ChildState) -> BaseException | None:
        """Start ``child`` and wait for its ``on_start``; on failure move it to ``failed``."""
        child.move(ChildState.STARTING)
        child.generation += 1
        incarnation = self.placement.incarnation(
            child.spec,
            path=child.path,
            generation=child.generation,
            clock=self._ctx.clock,
            on_exit=self._exit_notifier(child.id),
        )
        error: BaseException | None = None
        try:
            actor_class, kwargs = self._start_target(child)
            incarnation.spawn(actor_class, kwargs)
        except StartIgnored:
            outcome = StartOutcome.IGNORED
        except BaseException as exc:  # the child's constructor; SystemExit included
            outcome, error = StartOutcome.FAILED, exc
        else:
            outcome = incarnation.wait_started(child.spec.start_timeout_s)
            error = incarnation.start_error
            if outcome is StartOutcome.TIMED_OUT:
                incarnation.abandon()
                error = StartFailed(
                    f"{child.path} did not finish on_start within "
                    f"{child.spec.start_timeout_s:g} s and was abandoned",
                    child=child.path,
                    cause=None,
                )
        if outcome is StartOutcome.STARTED:
            child.incarnation = incarnation
            child.ignored = False
            child.handle._bind(incarnation)
            child.move(ChildState.RUNNING)
            log.info(
                "child_started", supervisor=self.path, child=child.id, generation=child.generation
            )
            return None
        if outcome is StartOutcome.IGNORED:
            child.ignored = True
            child.move(ChildState.STOPPED)
            log.info("child_start_ignored", supervisor=self.path, child=child.id)
            return None
        child.move(failed)
        log.warning("child_start_failed", supervisor=self.path, child=child.id, error=repr(error))
        return error or RuntimeError(f"{child.path} failed to start")

    @abstractmethod  # pykka's actors are ABCs already; the Supervisor says how
    def _start_target(self, child: Child) -> tuple[type[pykka.ThreadingActor], dict[str, Any]]:
        """The actor class and keyword arguments that start ``child``."""

    def _terminate(self, child: Child) -> Exit | None:
        """Stop a running child within its shutdown policy; cancel a pending restart."""
        if child.state is ChildState.RESTARTING:
            if child.pending is not None:
                child.pending.cancel()
                child.pending = None
            child.move(ChildState.STOPPED)
            return None
        incarnation = child.incarnation
        if child.state is not ChildState.RUNNING or incarnation is None:
            return None
        child.move(ChildState.STOPPING)
        exit_ = self._stop_incarnation(child, incarnation)
        self._mark_stopped(child, exit_, "was stopped by its supervisor")
        return exit_

    def _stop_incarnation(self, child: Child, incarnation: Incarnation) -> Exit:
        child.incarnation = None
        child.handle._unbind("is being stopped by its supervisor")
        shutdown = child.spec.shutdown
        if shutdown is ShutdownMode.BRUTAL_KILL:
            return incarnation.abandon()
        incarnation.request_stop()
        timeout = None if shutdown is ShutdownMode.INFINITY else float(shutdown)
        if incarnation.wait_exited(timeout) and incarnation.exit is not None:
            return incarnation.exit
        log.warning("child_abandoned", supervisor=self.path, child=child.id, shutdown_s=timeout)
        return incarnation.abandon()

    def _mark_stopped(self, child: Child, exit_: Exit, why: str) -> None:
        child.incarnation = None
        child.handle._unbind(why)
        child.last_exit = exit_
        child.move(ChildState.STOPPED)
        log.info(
            "child_exited",
            supervisor=self.path,
            child=child.id,
            reason=exit_.reason.value,
            error=repr(exit_.error) if exit_.error else None,
            requested=exit_.requested,
        )

    def _shutdown_children(self) -> None:
        for child in reversed(self._records()):
            exit_ = self._terminate(child)
            self._finished(child, exit_ or Exit(ExitReason.SHUTDOWN, requested=True))

    def _finished(self, child: Child, exit_: Exit, *, terminated: bool = False) -> None:
        """The child stays down: tell its watchers, drop the spec if it goes."""
        watchers, child.watchers = child.watchers, []
        for watcher in watchers:
            try:
                watcher(exit_)
            except Exception:
                log.exception("exit_watcher_failed", supervisor=self.path, child=child.id)
        temporary = child.spec.restart is Restart.TEMPORARY
        if (temporary or self.drops_finished_children) and child.id in self._children:
            self._remove(child)
        elif terminated and child.ignored:
            child.ignored = False

    # -- records --------------------------------------------------------------------

    def _records(self) -> list[Child]:
        with self._lock:
            return list(self._children.values())

    def _find(self, child_id: str) -> Child:
        with self._lock:
            child = self._children.get(child_id)
        if child is None:
            raise self._refused("not_found", child_id, "is not a child of this supervisor")
        return child

    def _add(self, spec: ChildSpec) -> Child:
        path = f"{self.path}/{spec.id}"
        handle: ChildHandle
        if spec.kind is ChildKind.WORKER:
            handle = self._ctx.handles.get_or_create(path, ChildHandle)
        else:
            from runtime.supervision.supervisor_handle import SupervisorHandle

            handle = self._ctx.handles.get_or_create(path, SupervisorHandle)
        child = Child(spec=spec, path=path, handle=handle)
        with self._lock:
            self._children[spec.id] = child
        return child

    def _remove(self, child: Child) -> None:
        with self._lock:
            self._children.pop(child.id, None)
        child.handle._unbind("was removed from its supervisor")
        self._ctx.handles.forget(child.path, subtree=child.is_supervisor)

    def _exit_notifier(self, child_id: str) -> Callable[[Incarnation, Exit], None]:
        ref = self.actor_ref

        def notify(incarnation: Incarnation, exit_: Exit) -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(ChildExited(child_id, incarnation, exit_))

        return notify

    def _refused(self, code: str, child_id: str, what: str) -> ChildControlError:
        return ChildControlError(
            f"{self.path}/{child_id} {what} ({code})",
            code=code,
            supervisor=self.path,
            child=child_id,
        )
