"""The supervisor: OTP's ``supervisor`` state machine as a Pykka actor.

Children start in spec order; each start waits for the child's ``on_start``.
A start failure during boot stops the children already started, in reverse,
and fails this supervisor's own start with ``StartFailed`` naming the child.

When a child exits, ``should_restart`` (restart type by exit reason) decides.
A restart is recorded in the sliding window first; past ``intensity`` in
``period_s`` the supervisor logs ``max_restart_intensity_reached``, stops all
children in reverse and exits with reason ``shutdown`` carrying
``RestartIntensityExceeded`` (its parent sees a child exit: escalation). The
strategy picks the group: the child alone (one_for_one), every child
(one_for_all) or the child and those started after it (rest_for_one);
running bystanders stop in reverse, temporary bystanders are dropped, then
the group starts in order. A start that fails marks the child ``restarting``
and queues a retry as a message to this actor, so it keeps answering calls
and can be stopped; each retry counts toward intensity. With ``backoff`` a
restart waits on the context's timer instead of happening inline.

Control calls (``start_child`` ...) arrive as messages and raise
``ChildControlError`` with OTP's codes. Introspection (``which_children``,
``tree`` ...) reads the records under a lock from the caller's thread, so a
supervisor busy starting a slow child can still be inspected.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, ClassVar

import pykka
import structlog

from runtime.errors import ChildControlError, RestartIntensityExceeded, StartFailed, StartIgnored
from runtime.supervision.child import Child, ExitWatcher
from runtime.supervision.child_spec import (
    AutoShutdown,
    ChildKind,
    ChildSpec,
    Restart,
    ShutdownMode,
    Strategy,
    SupervisorFlags,
    SupervisorSpec,
    resolve_actor,
)
from runtime.supervision.context import SupervisionContext
from runtime.supervision.exit import Exit, ExitReason
from runtime.supervision.handle import ChildHandle
from runtime.supervision.incarnation import Incarnation, StartOutcome
from runtime.supervision.restart_policy import (
    RestartWindow,
    attempt_after_run,
    backoff_delay,
    should_restart,
)
from runtime.supervision.snapshot import (
    ChildCounts,
    ChildInfo,
    Presence,
    StatusReporter,
    TreeNode,
)
from runtime.supervision.states import SUPERVISOR_MOVES, ChildState, SupervisorState, transition

log = structlog.get_logger("runtime.supervision")


@dataclass(frozen=True, slots=True)
class _ChildExited:
    child_id: str
    incarnation: Incarnation
    exit: Exit


@dataclass(frozen=True, slots=True)
class _Retry:
    child_id: str
    counted: bool


@dataclass(frozen=True, slots=True)
class Sync:
    """A no-op: answering it proves every message queued before it was handled."""


@dataclass(frozen=True, slots=True)
class StartChild:
    spec: ChildSpec
    on_exit: ExitWatcher | None = None


@dataclass(frozen=True, slots=True)
class RestartChild:
    child_id: str


@dataclass(frozen=True, slots=True)
class TerminateChild:
    child_id: str


@dataclass(frozen=True, slots=True)
class DeleteChild:
    child_id: str


class Supervisor(pykka.ThreadingActor):
    """A static supervisor (see the module docstring). Spawned through an ``Incarnation``."""

    drops_finished_children: ClassVar[bool] = False
    kind: ClassVar[ChildKind] = ChildKind.SUPERVISOR

    def __init__(self, spec: SupervisorFlags, path: str, context: SupervisionContext) -> None:
        super().__init__()
        self.spec = spec
        self.path = path
        self._ctx = context
        self._lock = threading.RLock()
        self._children: dict[str, Child] = {}
        self._window = RestartWindow(spec.intensity, spec.period_s)
        self._state = SupervisorState.STARTING
        self._started_at = context.clock.now()

    # -- lifecycle --------------------------------------------------------------

    def on_start(self) -> None:
        initial = self.spec.children if isinstance(self.spec, SupervisorSpec) else ()
        for spec in initial:
            self._add(spec)
        started: list[Child] = []
        for child in self._records():
            error = self._start(child, failed=ChildState.STOPPED)
            if error is not None:
                for done in reversed(started):
                    self._terminate(done)
                self._move_self(SupervisorState.SHUTTING_DOWN)
                self._move_self(SupervisorState.STOPPED)
                raise self._start_failed(child, error, stopped=len(started))
            if child.state is ChildState.RUNNING:
                started.append(child)
        self._move_self(SupervisorState.RUNNING)
        log.info("supervisor_started", supervisor=self.path, children=len(started))

    def on_stop(self) -> None:
        if self._state is SupervisorState.RUNNING:
            self._move_self(SupervisorState.SHUTTING_DOWN)
            self._shutdown_children()
        if self._state is SupervisorState.SHUTTING_DOWN:
            self._move_self(SupervisorState.STOPPED)
        log.info("supervisor_stopped", supervisor=self.path)

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Pykka skips on_stop after a crash; children must not outlive their supervisor.
        log.error("supervisor_crashed", supervisor=self.path, error=repr(exception_value))
        if self._state in (SupervisorState.STARTING, SupervisorState.RUNNING):
            self._move_self(SupervisorState.SHUTTING_DOWN)
        self._shutdown_children()

    def on_receive(self, message: Any) -> Any:
        match message:
            case _ChildExited():
                self._on_child_exited(message)
            case _Retry():
                self._on_retry(message)
            case StartChild():
                return self._start_child(message.spec, message.on_exit)
            case RestartChild():
                return self._restart_child(message.child_id)
            case TerminateChild():
                self._terminate_child(message.child_id)
            case DeleteChild():
                self._delete_child(message.child_id)
            case Sync():
                pass
            case _:
                return super().on_receive(message)
        return None

    # -- introspection (any thread) ------------------------------------------------

    @property
    def state(self) -> SupervisorState:
        return self._state

    def which_children(self) -> list[ChildInfo]:
        rows = []
        for child in self._records():
            running = child.state is ChildState.RUNNING
            presence: Presence = "running" if running else "undefined"
            if child.state is ChildState.RESTARTING:
                presence = "restarting"
            handle = child.handle if running else None
            rows.append(ChildInfo(child.id, handle, presence, child.spec.kind, child.state))
        return rows

    def count_children(self) -> ChildCounts:
        records = self._records()
        supervisors = sum(1 for child in records if child.is_supervisor)
        active = sum(1 for child in records if child.state is ChildState.RUNNING)
        return ChildCounts(len(records), active, supervisors, len(records) - supervisors)

    def get_childspec(self, child_id: str) -> ChildSpec:
        return self._find(child_id).spec

    def child_handle(self, child_id: str) -> ChildHandle:
        return self._find(child_id).handle

    def tree(self) -> TreeNode:
        now = self._ctx.clock.now()
        max_children = getattr(self.spec, "max_children", None)
        return TreeNode(
            path=self.path,
            id=self.path.rsplit("/", 1)[-1],
            kind=self.kind,
            state=self._state.value,
            restart=None,
            restart_count=0,
            uptime_s=now - self._started_at,
            mailbox_depth=_depth(self.actor_ref),
            strategy=self.spec.strategy,
            restarts_in_window=self._window.count(now),
            intensity=self.spec.intensity,
            period_s=self.spec.period_s,
            max_children=max_children,
            children=tuple(self._node(child, now) for child in self._records()),
        )

    def _node(self, child: Child, now: float) -> TreeNode:
        incarnation = child.incarnation
        running = child.state is ChildState.RUNNING and incarnation is not None
        uptime = now - incarnation.started_at if running and incarnation else None
        last_exit = child.last_exit.describe() if child.last_exit else None
        actor = incarnation.actor if running and incarnation else None
        if isinstance(actor, Supervisor):
            inner = actor.tree()
            return replace(
                inner,
                id=child.id,
                state=child.state.value,
                restart=child.spec.restart,
                restart_count=child.restart_count,
                uptime_s=uptime,
                last_exit=last_exit,
            )
        flags = child.spec.supervisor or child.spec.dynamic_supervisor
        status = actor.supervision_status() if isinstance(actor, StatusReporter) else None
        return TreeNode(
            path=child.path,
            id=child.id,
            kind=child.spec.kind,
            state=child.state.value,
            restart=child.spec.restart,
            restart_count=child.restart_count,
            uptime_s=uptime,
            mailbox_depth=incarnation.mailbox_depth() if running and incarnation else None,
            last_exit=last_exit,
            strategy=flags.strategy if flags else None,
            intensity=flags.intensity if flags else None,
            period_s=flags.period_s if flags else None,
            restarts_in_window=0 if flags else None,
            job=status.job if status else None,
            step=status.step if status else None,
            detail=status.detail if status else (),
        )

    # -- exits and restarts -----------------------------------------------------

    def _on_child_exited(self, message: _ChildExited) -> None:
        child = self._children.get(message.child_id)
        if (
            self._state is not SupervisorState.RUNNING
            or child is None
            or child.incarnation is not message.incarnation
        ):
            return
        exit_ = message.exit
        self._mark_stopped(child, exit_, f"exited ({exit_.describe()})")
        if not should_restart(child.spec.restart, exit_.reason):
            self._finished(child, exit_)
            if child.spec.significant and not exit_.requested:
                self._check_auto_shutdown()
            return
        now = self._ctx.clock.now()
        if not self._count_restart(child, now):
            return
        ran_for = now - message.incarnation.started_at
        backoff = self.spec.backoff
        child.backoff_attempts = attempt_after_run(backoff, child.backoff_attempts, ran_for)
        self._prepare_group(child)
        self._schedule_attempt(child, counted=False)

    def _on_retry(self, message: _Retry) -> None:
        child = self._children.get(message.child_id)
        if (
            self._state is not SupervisorState.RUNNING
            or child is None
            or child.state is not ChildState.RESTARTING
        ):
            return
        child.pending = None
        if message.counted and not self._count_restart(child, self._ctx.clock.now()):
            return
        self._attempt(child)

    def _count_restart(self, child: Child, now: float) -> bool:
        self._window, allowed = self._window.record(now)
        if not allowed:
            self._escalate(child)
        return allowed

    def _schedule_attempt(self, child: Child, *, counted: bool) -> None:
        backoff = self.spec.backoff
        delay = backoff_delay(backoff, child.backoff_attempts, self._ctx.uniform())
        if backoff is not None:
            child.backoff_attempts += 1
        if delay <= 0 and not counted:
            self._attempt(child)
            return
        message = _Retry(child.id, counted)
        if delay <= 0:
            self._tell_self(message)
            return
        log.info("child_restart_scheduled", supervisor=self.path, child=child.id, delay_s=delay)
        child.pending = self._ctx.timer.call_later(delay, lambda: self._tell_self(message))

    def _prepare_group(self, trigger: Child) -> list[Child]:
        """Stop the trigger's running bystanders in reverse; mark the group ``restarting``."""
        order = self._records()
        strategy = self.spec.strategy
        if strategy is Strategy.ONE_FOR_ONE:
            affected: list[Child] = []
        elif strategy is Strategy.ONE_FOR_ALL:
            affected = [child for child in order if child is not trigger]
        else:
            affected = order[order.index(trigger) + 1 :]
        for child in reversed(affected):
            self._terminate(child)
            if child.spec.restart is Restart.TEMPORARY:
                self._remove(child)
        group = [c for c in order if c is trigger or (c in affected and c.id in self._children)]
        for child in group:
            if child.state is ChildState.STOPPED:
                child.move(ChildState.RESTARTING)
        return group

    def _attempt(self, trigger: Child) -> None:
        group = self._prepare_group(trigger)
        started: list[Child] = []
        for child in group:
            if child.state is not ChildState.RESTARTING:
                continue
            error = self._start(child, failed=ChildState.RESTARTING)
            if error is None:
                if not child.ignored:
                    child.restart_count += 1
                    log.info(
                        "child_restarted",
                        supervisor=self.path,
                        child=child.id,
                        restart_count=child.restart_count,
                    )
                started.append(child)
                continue
            log.warning(
                "child_restart_failed", supervisor=self.path, child=child.id, error=repr(error)
            )
            if self.spec.strategy is Strategy.ONE_FOR_ALL:
                for done in reversed(started):
                    self._terminate(done)
                    done.move(ChildState.RESTARTING)
            self._schedule_attempt(child, counted=True)
            return

    def _escalate(self, child: Child) -> None:
        spec = self.spec
        log.error(
            "max_restart_intensity_reached",
            supervisor=self.path,
            child=child.id,
            intensity=spec.intensity,
            period_s=spec.period_s,
        )
        error = RestartIntensityExceeded(
            f"{self.path} needed more than {spec.intensity} restart(s) in {spec.period_s:g} s "
            f"(last: {child.id}); it stopped its children and exited with reason shutdown. "
            "Fix the crashing child or raise intensity/period_s.",
            supervisor=self.path,
        )
        self._exit_self(Exit(ExitReason.SHUTDOWN, error))
        log.error("supervisor_escalated", supervisor=self.path, child=child.id)

    def _check_auto_shutdown(self) -> None:
        mode = self.spec.auto_shutdown
        if mode is AutoShutdown.NEVER:
            return
        if mode is AutoShutdown.ALL_SIGNIFICANT and any(
            child.spec.significant and child.state is not ChildState.STOPPED
            for child in self._records()
        ):
            return
        log.info("supervisor_auto_shutdown", supervisor=self.path, mode=mode.value)
        self._exit_self(Exit(ExitReason.SHUTDOWN))

    def _exit_self(self, exit_: Exit) -> None:
        self._move_self(SupervisorState.SHUTTING_DOWN)
        self._shutdown_children()
        incarnation = getattr(self, "_elx_incarnation", None)
        if isinstance(incarnation, Incarnation):
            incarnation.declare_exit(exit_)
        self.stop()

    # -- control calls ------------------------------------------------------------

    def _start_child(self, spec: ChildSpec, on_exit: ExitWatcher | None) -> ChildHandle:
        self._require_running(spec.id)
        existing = self._children.get(spec.id)
        if existing is not None:
            running = existing.state is ChildState.RUNNING
            code = "already_started" if running else "already_present"
            raise self._refused(
                code,
                spec.id,
                "a child with this id is already "
                + ("running" if running else "present; use restart_child or delete_child first"),
            )
        self._check_can_add(spec)
        child = self._add(spec)
        if on_exit is not None:
            child.watchers.append(on_exit)
        error = self._start(child, failed=ChildState.STOPPED)
        if error is not None:
            self._remove(child)
            raise self._start_failed(child, error, stopped=0)
        return child.handle

    def _check_can_add(self, spec: ChildSpec) -> None:
        if spec.significant and self.spec.auto_shutdown is AutoShutdown.NEVER:
            raise self._refused(
                "invalid_spec",
                spec.id,
                "is significant but this supervisor's auto_shutdown is never",
            )

    def _restart_child(self, child_id: str) -> ChildHandle:
        self._require_running(child_id)
        child = self._find(child_id)
        self._refuse_if_live(child)
        error = self._start(child, failed=ChildState.STOPPED)
        if error is not None:
            raise self._start_failed(child, error, stopped=0)
        return child.handle

    def _terminate_child(self, child_id: str) -> None:
        self._require_running(child_id)
        child = self._find(child_id)
        exit_ = self._terminate(child) or Exit(ExitReason.SHUTDOWN, requested=True)
        self._finished(child, exit_, terminated=True)

    def _delete_child(self, child_id: str) -> None:
        self._require_running(child_id)
        child = self._find(child_id)
        self._refuse_if_live(child)
        self._remove(child)

    def _refuse_if_live(self, child: Child) -> None:
        if child.state is ChildState.RESTARTING:
            raise self._refused("restarting", child.id, "is restarting; terminate it first")
        if child.state is not ChildState.STOPPED:
            raise self._refused("running", child.id, "is running; terminate it first")

    def _require_running(self, child_id: str) -> None:
        if self._state is not SupervisorState.RUNNING:
            raise self._refused("shutting_down", child_id, f"cannot be changed: {self._state}")

    def _refused(self, code: str, child_id: str, what: str) -> ChildControlError:
        return ChildControlError(
            f"{self.path}/{child_id} {what} ({code})",
            code=code,
            supervisor=self.path,
            child=child_id,
        )

    # -- starting and stopping one child --------------------------------------------

    def _start(self, child: Child, *, failed: ChildState) -> BaseException | None:
        """Start ``child`` and wait for its ``on_start``; on failure move it to ``failed``."""
        child.move(ChildState.STARTING)
        child.generation += 1
        incarnation = Incarnation(
            path=child.path,
            generation=child.generation,
            crash_on=child.spec.crash_on_types(),
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

    def _start_target(self, child: Child) -> tuple[type[pykka.ThreadingActor], dict[str, Any]]:
        spec = child.spec
        if spec.supervisor is not None:
            return Supervisor, {"spec": spec.supervisor, "path": child.path, "context": self._ctx}
        if spec.dynamic_supervisor is not None:
            from runtime.supervision.dynamic_supervisor import DynamicSupervisor

            flags = spec.dynamic_supervisor
            return DynamicSupervisor, {"spec": flags, "path": child.path, "context": self._ctx}
        assert spec.actor is not None
        return resolve_actor(spec.actor), dict(spec.args)

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

    def _move_self(self, target: SupervisorState) -> None:
        self._state = transition(f"supervisor {self.path}", self._state, target, SUPERVISOR_MOVES)

    def _exit_notifier(self, child_id: str) -> Callable[[Incarnation, Exit], None]:
        ref = self.actor_ref

        def notify(incarnation: Incarnation, exit_: Exit) -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(_ChildExited(child_id, incarnation, exit_))

        return notify

    def _tell_self(self, message: Any) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(message)

    def _start_failed(self, child: Child, error: BaseException, *, stopped: int) -> StartFailed:
        if isinstance(error, StartFailed):
            return StartFailed(error.message, child=error.child, cause=error.cause)
        return StartFailed(
            f"{child.path} failed to start: {error!r}; {self.path} stopped the {stopped} "
            "children it had started, in reverse order",
            child=child.path,
            cause=error,
        )


def _depth(ref: pykka.ActorRef[Any]) -> int:
    qsize = getattr(ref.actor_inbox, "qsize", None)
    return int(qsize()) if callable(qsize) else 0
