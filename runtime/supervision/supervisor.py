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

The class is built in layers: ``child_lifecycle`` starts and stops one child
and keeps the records, ``restarts`` handles exits, restarts and escalation,
``messages`` holds what the actor receives; this module adds the actor's
lifecycle, control calls and introspection.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from types import TracebackType
from typing import Any, ClassVar

import pykka

from runtime.errors import StartFailed
from runtime.supervision.backend import THREAD, Placement
from runtime.supervision.child import Child, ExitWatcher
from runtime.supervision.child_lifecycle import log
from runtime.supervision.child_spec import (
    AutoShutdown,
    ChildKind,
    ChildSpec,
    SupervisorFlags,
    SupervisorSpec,
    resolve_actor,
)
from runtime.supervision.context import SupervisionContext
from runtime.supervision.exit import Exit, ExitReason
from runtime.supervision.handle import ChildHandle
from runtime.supervision.messages import (
    ChildExited,
    DeleteChild,
    RestartChild,
    Retry,
    StartChild,
    Sync,
    TerminateChild,
)
from runtime.supervision.restart_policy import RestartWindow
from runtime.supervision.restarts import Restarter
from runtime.supervision.snapshot import (
    ChildCounts,
    ChildInfo,
    Presence,
    TreeNode,
)
from runtime.supervision.states import ChildState, SupervisorState

__all__ = [
    "DeleteChild",
    "RestartChild",
    "StartChild",
    "Supervisor",
    "Sync",
    "TerminateChild",
    "log",
]


class Supervisor(Restarter):
    """A static supervisor (see the module docstring). Spawned through an ``Incarnation``."""

    kind: ClassVar[ChildKind] = ChildKind.SUPERVISOR

    def __init__(
        self,
        spec: SupervisorFlags,
        path: str,
        context: SupervisionContext,
        placement: Placement = THREAD,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.path = path
        self.placement = placement
        self._ctx = context
        self._lock = threading.RLock()
        self._children: dict[str, Child] = {}
        self._window = RestartWindow(spec.intensity, spec.period_s)
        self._state = SupervisorState.STARTING
        self._started_at = context.clock.now()

    # -- lifecycle --------------------------------------------------------------

    def on_start(self) -> None:
        if self.placement.ray is not None:  # workers go to Ray: join the cluster now, so a
            from runtime.supervision.ray_backend import connect  # bad address fails the boot

            connect(self.placement.ray)
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
            case ChildExited():
                self._on_child_exited(message)
            case Retry():
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
        status = incarnation.status() if running and incarnation else None
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

    def _start_target(self, child: Child) -> tuple[type[pykka.ThreadingActor], dict[str, Any]]:
        spec = child.spec
        if spec.supervisor is not None:
            return Supervisor, {
                "spec": spec.supervisor,
                "path": child.path,
                "context": self._ctx,
                "placement": self.placement.below(spec),
            }
        if spec.dynamic_supervisor is not None:
            from runtime.supervision.dynamic_supervisor import DynamicSupervisor

            return DynamicSupervisor, {
                "spec": spec.dynamic_supervisor,
                "path": child.path,
                "context": self._ctx,
                "placement": self.placement.below(spec),
            }
        assert spec.actor is not None
        return resolve_actor(spec.actor), dict(spec.args)

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
