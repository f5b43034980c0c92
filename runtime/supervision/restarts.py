"""Restarts: what a supervisor does when one of its children exits.

``should_restart`` (restart type by exit reason) decides. A restart is recorded
in the sliding window first; past ``intensity`` in ``period_s`` the supervisor
logs ``max_restart_intensity_reached``, stops all children in reverse and exits
with reason ``shutdown`` carrying ``RestartIntensityExceeded`` (escalation). The
strategy picks the group: the child alone (one_for_one), every child
(one_for_all) or the child and those started after it (rest_for_one); running
bystanders stop in reverse, temporary bystanders are dropped, then the group
starts in order. A start that fails marks the child ``restarting`` and queues a
``Retry`` to the supervisor itself; each retry counts toward intensity. With
``backoff`` a restart waits on the context's timer instead of happening inline.
A significant child that stays down may shut the supervisor down
(``auto_shutdown``).
"""

from __future__ import annotations

import contextlib
from typing import Any

import pykka

from runtime.errors import RestartIntensityExceeded
from runtime.supervision.child import Child
from runtime.supervision.child_lifecycle import ChildLifecycle, log
from runtime.supervision.child_spec import AutoShutdown, Restart, Strategy
from runtime.supervision.exit import Exit, ExitReason
from runtime.supervision.incarnation import Incarnation
from runtime.supervision.messages import ChildExited, Retry
from runtime.supervision.restart_policy import (
    RestartWindow,
    attempt_after_run,
    backoff_delay,
    should_restart,
)
from runtime.supervision.states import SUPERVISOR_MOVES, ChildState, SupervisorState, transition


class Restarter(ChildLifecycle):
    """The restart half of ``Supervisor``, which sets ``_window``."""

    _window: RestartWindow

    def _on_child_exited(self, message: ChildExited) -> None:
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

    def _on_retry(self, message: Retry) -> None:
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
        message = Retry(child.id, counted)
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

    def _move_self(self, target: SupervisorState) -> None:
        self._state = transition(f"supervisor {self.path}", self._state, target, SUPERVISOR_MOVES)

    def _tell_self(self, message: Any) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(message)
