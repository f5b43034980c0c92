"""Health policy: turn a snapshot of the daemon into a status, checks and actions.

The health actor gathers a ``HealthInputs`` every ``interval_s`` and asks
``HealthMonitor.evaluate`` what it means. Everything here is pure apart from
the injected ``Clock`` (for ``since``) and the monitor's own counters, so
tests drive it with a ``FakeClock`` and hand-made snapshots.

The policy is split by noun, and every public name is re-exported here:

- ``runtime.health_config``: ``HealthConfig``, ``Thresholds``, ``Hysteresis``;
- ``runtime.health_checks``: the snapshot (``HealthInputs``, ``PoolLoad``) and
  the pure checks (``assess``, ``worst``), with the table of what each grades;
- this module: the monitor, its hysteresis latches, actions and report.

The worst check is the evaluation's ``raw_status``. The reported status has
hysteresis so it does not flap::

    healthy ──(degrade_after evaluations in a row at least degraded)──► degraded
    any ──(degrade_after evaluations in a row critical)──► critical
    any ──(the store is not writable: at once)──► critical
    critical ──(recover_after evaluations in a row at most degraded)──► degraded
    worse ──(recover_after evaluations in a row healthy)──► healthy

Actions follow the same hysteresis, each condition on its own latch: it comes
into force after ``degrade_after`` bad evaluations in a row and ends by itself
after ``recover_after`` good ones. ``use_backups`` (a provider is unavailable:
breaker open or error rate over the limit; it names the configured backups
that are not unavailable themselves), ``static_prompts`` (the optimizer is
down), ``bypass_agent`` (the agent has too much in flight) and
``emergency_mode`` (the reported status is critical) are modes: they are in
``actions`` for as long as they hold. ``restart_pool`` is a request: it is in
``actions`` once, in the evaluation that confirms a stuck pool, and is not
asked again until that pool's latch has recovered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from runtime.clock import Clock
from runtime.health_checks import (
    STATUS_RANK,
    Check,
    CheckStatus,
    HealthInputs,
    HealthStatus,
    PoolLoad,
    assess,
    pool_stuck,
    unavailability,
    worst,
)
from runtime.health_config import HealthConfig, Hysteresis, Thresholds

__all__ = [
    "Action",
    "ActionKind",
    "Check",
    "CheckStatus",
    "HealthConfig",
    "HealthInputs",
    "HealthMonitor",
    "HealthReport",
    "HealthStatus",
    "Hysteresis",
    "PoolLoad",
    "Thresholds",
    "assess",
    "worst",
]


class ActionKind(StrEnum):
    USE_BACKUPS = "use_backups"
    STATIC_PROMPTS = "static_prompts"
    BYPASS_AGENT = "bypass_agent"
    RESTART_POOL = "restart_pool"
    EMERGENCY_MODE = "emergency_mode"


# -- actions and the report ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    target: str | None
    reason: str
    backups: tuple[str, ...] = ()
    """For ``use_backups``: the providers the target's calls go to, in order."""
    retry_after_s: float | None = None
    """For ``emergency_mode``: what clients are told to wait."""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "target": self.target,
            "reason": self.reason,
            "backups": list(self.backups),
            "retry_after_s": self.retry_after_s,
        }


@dataclass(frozen=True, slots=True)
class HealthReport:
    status: HealthStatus
    """The reported status, after hysteresis."""
    raw_status: HealthStatus
    """What this evaluation alone saw."""
    checks: tuple[Check, ...]
    actions: tuple[Action, ...]
    """The actions in force now."""
    issues: tuple[str, ...]
    """The messages of the checks that are not ok."""
    since: float
    """Clock time the current status began."""
    changed: bool
    """The status changed in this evaluation."""

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "raw_status": self.raw_status.value,
            "since": self.since,
            "changed": self.changed,
            "issues": list(self.issues),
            "checks": [check.to_json() for check in self.checks],
            "actions": [action.to_json() for action in self.actions],
        }


@dataclass(slots=True)
class _Latch:
    """A condition that holds after ``degrade_after`` bad evaluations in a row.

    It ends after ``recover_after`` good ones in a row.
    """

    active: bool = False
    streak: int = 0
    """Consecutive evaluations that disagree with ``active``."""
    cause: str = ""
    """Why it last looked bad."""

    def update(self, bad: bool, hysteresis: Hysteresis) -> bool:
        """Feed one evaluation; return whether the latch flipped."""
        if bad == self.active:
            self.streak = 0
            return False
        self.streak += 1
        needed = hysteresis.degrade_after if bad else hysteresis.recover_after
        if self.streak < needed:
            return False
        self.active, self.streak = bad, 0
        return True

    def force(self) -> None:
        self.active, self.streak = True, 0

    @property
    def idle(self) -> bool:
        return not self.active and self.streak == 0


def _feed(
    latches: dict[str, _Latch],
    bad: Mapping[str, str],
    hysteresis: Hysteresis,
) -> set[str]:
    """Update one latch per key (``bad`` maps a key to its cause); return the keys switched on."""
    switched_on = set()
    for key in sorted(set(latches) | set(bad)):
        latch = latches.setdefault(key, _Latch())
        cause = bad.get(key)
        if cause is not None:
            latch.cause = cause
        if latch.update(cause is not None, hysteresis) and latch.active:
            switched_on.add(key)
        if latch.idle:
            del latches[key]
    return switched_on


class HealthMonitor:
    """Evaluates snapshots with hysteresis and says which actions are in force."""

    def __init__(self, config: HealthConfig, clock: Clock) -> None:
        self.config = config
        self._clock = clock
        self._status = HealthStatus.HEALTHY
        self._since = clock.now()
        self._degraded = _Latch()
        self._critical = _Latch()
        self._providers: dict[str, _Latch] = {}
        self._pools: dict[str, _Latch] = {}
        self._optimizer = _Latch()
        self._agent = _Latch()
        self._last: HealthReport | None = None

    def snapshot(self) -> HealthReport | None:
        """The last report, or None before the first evaluation."""
        return self._last

    def evaluate(self, inputs: HealthInputs) -> HealthReport:
        checks = assess(inputs, self.config)
        raw = worst(checks)
        previous = self._status
        self._status = self._next_status(raw, store_down=not inputs.store_writable)
        changed = self._status != previous
        if changed:
            self._since = self._clock.now()
        report = HealthReport(
            status=self._status,
            raw_status=raw,
            checks=checks,
            actions=self._actions(inputs, checks),
            issues=tuple(check.message for check in checks if check.status != CheckStatus.OK),
            since=self._since,
            changed=changed,
        )
        self._last = report
        return report

    def _next_status(self, raw: HealthStatus, *, store_down: bool) -> HealthStatus:
        hysteresis = self.config.hysteresis
        self._degraded.update(STATUS_RANK[raw] >= STATUS_RANK[HealthStatus.DEGRADED], hysteresis)
        self._critical.update(raw == HealthStatus.CRITICAL, hysteresis)
        if store_down:
            self._degraded.force()
            self._critical.force()
        if self._critical.active:
            return HealthStatus.CRITICAL
        if self._degraded.active:
            return HealthStatus.DEGRADED
        return HealthStatus.HEALTHY

    def _actions(self, inputs: HealthInputs, checks: tuple[Check, ...]) -> tuple[Action, ...]:
        config, hysteresis = self.config, self.config.hysteresis
        actions: list[Action] = []

        down: dict[str, str] = {}
        for provider in sorted(set(inputs.breakers) | set(inputs.provider_calls)):
            cause = unavailability(provider, inputs, config.thresholds.provider_error_rate)
            if cause is not None:
                down[provider] = cause
        _feed(self._providers, down, hysteresis)
        unavailable = set(down) | {p for p, latch in self._providers.items() if latch.active}
        for provider, latch in sorted(self._providers.items()):
            if latch.active:
                actions.append(
                    self._use_backups(provider, latch, unavailable, now_down=provider in down)
                )

        self._optimizer.update(not inputs.optimizer_running, hysteresis)
        if self._optimizer.active:
            actions.append(
                Action(
                    ActionKind.STATIC_PROMPTS,
                    None,
                    "The optimizer is down: pipelines use their static prompts until it is back.",
                )
            )

        limit = config.thresholds.agent_max_in_flight
        if inputs.agent_in_flight > limit:
            self._agent.cause = f"{inputs.agent_in_flight} requests in flight"
        self._agent.update(inputs.agent_in_flight > limit, hysteresis)
        if self._agent.active:
            actions.append(
                Action(
                    ActionKind.BYPASS_AGENT,
                    None,
                    f"The agent had {self._agent.cause}, over its limit of {limit}: "
                    "requests go straight to their pipelines.",
                )
            )

        stuck = {
            name: f"all {load.size} workers busy and no call finished for {load.idle_for_s:.0f} s"
            for name, load in inputs.pools.items()
            if pool_stuck(load, config)
        }
        for name in sorted(_feed(self._pools, stuck, hysteresis)):
            actions.append(
                Action(
                    ActionKind.RESTART_POOL,
                    name,
                    f"Pool {name} is stuck ({self._pools[name].cause}): restart its workers.",
                )
            )

        if self._status == HealthStatus.CRITICAL:
            actions.append(self._emergency(checks))
        return tuple(actions)

    def _use_backups(
        self, provider: str, latch: _Latch, unavailable: set[str], *, now_down: bool
    ) -> Action:
        configured = self.config.backups.get(provider, ())
        backups = tuple(b for b in configured if b not in unavailable)
        skipped = [b for b in configured if b in unavailable]
        route = f"its calls go to {', '.join(backups)}" if backups else "no backup is available"
        if skipped:
            route += f" ({', '.join(skipped)} unavailable too)"
        return Action(
            ActionKind.USE_BACKUPS,
            provider,
            f"{provider} {'is' if now_down else 'was'} unavailable ({latch.cause}"
            f"{'' if now_down else '; it is recovering'}): {route}.",
            backups=backups,
        )

    def _emergency(self, checks: tuple[Check, ...]) -> Action:
        retry = self.config.retry_after_s
        critical = [check.name for check in checks if check.status == CheckStatus.CRITICAL]
        why = f"critical checks: {', '.join(critical)}" if critical else "still recovering"
        return Action(
            ActionKind.EMERGENCY_MODE,
            None,
            f"Health is critical ({why}): new work is refused; clients retry after {retry:g} s.",
            retry_after_s=retry,
        )
