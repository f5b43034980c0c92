"""Health policy: turn a snapshot of the daemon into a status, checks and actions.

The health actor gathers a ``HealthInputs`` every ``interval_s`` and asks
``HealthMonitor.evaluate`` what it means. Everything here is pure apart from
the injected ``Clock`` (for ``since``) and the monitor's own counters, so
tests drive it with a ``FakeClock`` and hand-made snapshots.

Checks (one evaluation, see ``assess``)::

    check                 degraded                               critical
    breaker:<provider>    breaker open                           -
    error_rate:<provider> errors/calls > provider_error_rate     -
                          (only when the provider had calls)
    queue                 queued/max_running >= queue_saturation >= queue_saturation_critical
    restarts:<path>       restarts >= restarts_per_window        -
    optimizer             not running                            -
    store                 -                                      not writable (immediate)
    disk                  free < min_free_disk_bytes             free < critical_free_disk_bytes
    rss                   rss > rss_degraded_ratio * limit       rss > rss_limit_bytes
    agent                 in flight > agent_max_in_flight        -
    pool:<name>           every worker busy and no call          -
                          finished for pool_stuck_s

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

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from runtime.clock import Clock
from runtime.errors import ConfigError
from runtime.providers.breaker import BreakerState

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

MB = 1000**2
GIB = 1024**3


class CheckStatus(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    CRITICAL = "critical"


class HealthStatus(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    CRITICAL = "critical"


_RANK: Mapping[HealthStatus, int] = {
    HealthStatus.HEALTHY: 0,
    HealthStatus.DEGRADED: 1,
    HealthStatus.CRITICAL: 2,
}

_OF_CHECK: Mapping[CheckStatus, HealthStatus] = {
    CheckStatus.OK: HealthStatus.HEALTHY,
    CheckStatus.DEGRADED: HealthStatus.DEGRADED,
    CheckStatus.CRITICAL: HealthStatus.CRITICAL,
}


class ActionKind(StrEnum):
    USE_BACKUPS = "use_backups"
    STATIC_PROMPTS = "static_prompts"
    BYPASS_AGENT = "bypass_agent"
    RESTART_POOL = "restart_pool"
    EMERGENCY_MODE = "emergency_mode"


# -- configuration ------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Thresholds(_Frozen):
    provider_error_rate: float = Field(default=0.5, gt=0, le=1)
    queue_saturation: float = Field(default=0.9, gt=0)
    queue_saturation_critical: float = Field(default=3.0, gt=0)
    restarts_per_window: int = Field(default=5, ge=1)
    min_free_disk_bytes: int = Field(default=500 * MB, ge=0)
    critical_free_disk_bytes: int = Field(default=100 * MB, ge=0)
    rss_limit_bytes: int = Field(default=2 * GIB, gt=0)
    rss_degraded_ratio: float = Field(default=0.8, gt=0, le=1)
    agent_max_in_flight: int = Field(default=500, ge=1)
    pool_stuck_s: float = Field(default=120.0, gt=0)

    @model_validator(mode="after")
    def _critical_beyond_degraded(self) -> Self:
        if self.queue_saturation_critical <= self.queue_saturation:
            raise ValueError(
                f"queue_saturation_critical ({self.queue_saturation_critical}) must be above "
                f"queue_saturation ({self.queue_saturation})"
            )
        if self.critical_free_disk_bytes > self.min_free_disk_bytes:
            raise ValueError(
                f"critical_free_disk_bytes ({self.critical_free_disk_bytes}) must not be above "
                f"min_free_disk_bytes ({self.min_free_disk_bytes})"
            )
        return self


class Hysteresis(_Frozen):
    degrade_after: int = Field(default=2, ge=1)
    """Consecutive evaluations at least that bad before the status gets worse."""
    recover_after: int = Field(default=3, ge=1)
    """Consecutive evaluations at least that good before the status gets better."""


DEFAULT_BACKUPS: Mapping[str, tuple[str, ...]] = {
    "anthropic": ("gemini", "openai"),
    "gemini": ("anthropic", "openai"),
    "openai": ("anthropic", "gemini"),
}


class HealthConfig(_Frozen):
    interval_s: float = Field(default=5.0, gt=0)
    window_s: float = Field(default=60.0, gt=0)
    """The window the daemon counts provider calls and supervisor restarts over."""
    thresholds: Thresholds = Thresholds()
    hysteresis: Hysteresis = Hysteresis()
    backups: Mapping[str, tuple[str, ...]] = Field(default_factory=lambda: dict(DEFAULT_BACKUPS))

    @model_validator(mode="after")
    def _backups_are_others(self) -> Self:
        for provider, backups in self.backups.items():
            if provider in backups:
                raise ValueError(f"backups.{provider}: a provider cannot be its own backup")
            if len(set(backups)) != len(backups):
                raise ValueError(f"backups.{provider}: a backup is listed twice")
        return self

    @property
    def retry_after_s(self) -> float:
        """How long clients are told to wait in emergency mode: two intervals, at least 5 s."""
        return max(5.0, 2 * self.interval_s)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any] | None, *, source: str = "health"
    ) -> HealthConfig:
        """Parse the ``health`` section of the config; a problem names its field."""
        try:
            return cls.model_validate(dict(data or {}))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join([source, *(str(p) for p in error['loc'])])}: {error['msg']}"
                for error in exc.errors()
            )
            raise ConfigError(f"invalid health config: {problems}") from None


# -- inputs -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PoolLoad:
    busy: int
    size: int
    idle_for_s: float = 0.0
    """Seconds since the pool last finished a call; 0 when it is not saturated."""

    @property
    def saturated(self) -> bool:
        return self.size > 0 and self.busy >= self.size


@dataclass(frozen=True, slots=True)
class HealthInputs:
    """One snapshot of the daemon, gathered by the health actor."""

    breakers: Mapping[str, str]
    """Provider → breaker state (``closed``, ``half_open`` or ``open``)."""
    provider_calls: Mapping[str, tuple[int, int]]
    """Provider → (calls, errors) within the window."""
    queued: int
    running: int
    max_running: int
    restarts: Mapping[str, int]
    """Supervisor path → restarts within the window."""
    optimizer_running: bool
    store_writable: bool
    free_disk_bytes: int
    rss_bytes: int
    agent_in_flight: int
    pools: Mapping[str, PoolLoad]

    def __post_init__(self) -> None:
        states = {state.value for state in BreakerState}
        for provider, state in self.breakers.items():
            if state not in states:
                raise ValueError(
                    f"breaker state {state!r} of {provider} is not one of "
                    f"{', '.join(sorted(states))}"
                )
        for provider, (calls, errors) in self.provider_calls.items():
            if not 0 <= errors <= calls:
                raise ValueError(f"{provider}: {errors} errors in {calls} calls is impossible")


# -- checks -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    value: str | float
    threshold: str
    status: CheckStatus
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "threshold": self.threshold,
            "status": self.status.value,
            "message": self.message,
        }


def _size(n: float) -> str:
    if n >= GIB and n % GIB == 0:
        return f"{int(n // GIB)} GiB"
    if n >= GIB:
        return f"{n / GIB:.2f} GiB"
    return f"{n / MB:.0f} MB"


def _unavailability(provider: str, inputs: HealthInputs, limit: float) -> str | None:
    """Why ``provider`` is unavailable (breaker open, error rate over ``limit``), or None."""
    calls, errors = inputs.provider_calls.get(provider, (0, 0))
    causes = []
    if inputs.breakers.get(provider) == BreakerState.OPEN:
        causes.append("its circuit breaker is open")
    if calls > 0 and errors / calls > limit:
        causes.append(f"it failed {errors} of {calls} calls ({errors / calls:.0%})")
    return " and ".join(causes) or None


def _grade(*, degraded: bool, critical: bool = False) -> CheckStatus:
    if critical:
        return CheckStatus.CRITICAL
    return CheckStatus.DEGRADED if degraded else CheckStatus.OK


def _provider_checks(inputs: HealthInputs, config: HealthConfig) -> Iterable[Check]:
    limit = config.thresholds.provider_error_rate
    for provider, state in sorted(inputs.breakers.items()):
        is_open = state == BreakerState.OPEN
        message = f"The circuit breaker for {provider} is {state.replace('_', '-')}" + (
            ": its calls are refused until a probe succeeds." if is_open else "."
        )
        yield Check(f"breaker:{provider}", state, "not open", _grade(degraded=is_open), message)
    for provider, (calls, errors) in sorted(inputs.provider_calls.items()):
        if calls == 0:
            continue
        rate = errors / calls
        over = rate > limit
        message = (
            f"{provider} failed {errors} of {calls} calls ({rate:.0%}) in the last "
            f"{config.window_s:g} s" + (f", over the {limit:.0%} limit." if over else ".")
        )
        yield Check(
            f"error_rate:{provider}",
            round(rate, 4),
            f"<= {limit:.0%}",
            _grade(degraded=over),
            message,
        )


def _queue_check(inputs: HealthInputs, config: HealthConfig) -> Check:
    t = config.thresholds
    if inputs.max_running > 0:
        ratio = inputs.queued / inputs.max_running
    else:
        ratio = 0.0 if inputs.queued == 0 else math.inf
    status = _grade(
        degraded=ratio >= t.queue_saturation, critical=ratio >= t.queue_saturation_critical
    )
    tail = {
        CheckStatus.OK: ".",
        CheckStatus.DEGRADED: ": the queue is saturated.",
        CheckStatus.CRITICAL: ": the queue is far beyond capacity.",
    }[status]
    return Check(
        "queue",
        round(ratio, 4) if math.isfinite(ratio) else "no capacity",
        f"< {t.queue_saturation:g} degraded; < {t.queue_saturation_critical:g} critical",
        status,
        f"{inputs.queued} jobs are queued for {inputs.max_running} run slots "
        f"({inputs.running} running){tail}",
    )


def _restart_checks(inputs: HealthInputs, config: HealthConfig) -> Iterable[Check]:
    limit, window = config.thresholds.restarts_per_window, config.window_s
    for path, count in sorted(inputs.restarts.items()):
        bad = count >= limit
        message = f"Supervisor {path} restarted children {count} times in the last {window:g} s" + (
            f", at or over the limit of {limit}: a child is crash-looping." if bad else "."
        )
        yield Check(
            f"restarts:{path}", count, f"< {limit} in {window:g} s", _grade(degraded=bad), message
        )


def _optimizer_check(inputs: HealthInputs) -> Check:
    up = inputs.optimizer_running
    return Check(
        "optimizer",
        "running" if up else "down",
        "running",
        _grade(degraded=not up),
        "The optimizer is running."
        if up
        else "The optimizer is down: pipelines fall back to their static prompts.",
    )


def _store_check(inputs: HealthInputs) -> Check:
    ok = inputs.store_writable
    return Check(
        "store",
        "writable" if ok else "not writable",
        "writable",
        _grade(degraded=False, critical=not ok),
        "The store is writable."
        if ok
        else "The store is not writable: job state cannot be saved; check the disk and "
        "the state directory's permissions.",
    )


def _disk_check(inputs: HealthInputs, config: HealthConfig) -> Check:
    low, very_low = (
        config.thresholds.min_free_disk_bytes,
        config.thresholds.critical_free_disk_bytes,
    )
    free = inputs.free_disk_bytes
    status = _grade(degraded=free < low, critical=free < very_low)
    tail = {
        CheckStatus.OK: ".",
        CheckStatus.DEGRADED: f", under {_size(low)}: free some space soon.",
        CheckStatus.CRITICAL: f", under {_size(very_low)}: free some space now.",
    }[status]
    return Check(
        "disk",
        free,
        f">= {_size(low)} free degraded; >= {_size(very_low)} free critical",
        status,
        f"{_size(free)} of disk is free{tail}",
    )


def _rss_check(inputs: HealthInputs, config: HealthConfig) -> Check:
    t = config.thresholds
    rss, limit = inputs.rss_bytes, t.rss_limit_bytes
    status = _grade(degraded=rss > t.rss_degraded_ratio * limit, critical=rss > limit)
    tail = {
        CheckStatus.OK: ".",
        CheckStatus.DEGRADED: ": close to the limit.",
        CheckStatus.CRITICAL: ": over the limit.",
    }[status]
    return Check(
        "rss",
        rss,
        f"<= {t.rss_degraded_ratio:.0%} of {_size(limit)} degraded; <= {_size(limit)} critical",
        status,
        f"The daemon uses {_size(rss)} of memory ({rss / limit:.0%} of its {_size(limit)} "
        f"limit){tail}",
    )


def _agent_check(inputs: HealthInputs, config: HealthConfig) -> Check:
    limit, n = config.thresholds.agent_max_in_flight, inputs.agent_in_flight
    return Check(
        "agent",
        n,
        f"<= {limit} in flight",
        _grade(degraded=n > limit),
        f"The agent has {n} requests in flight"
        + (f", over its limit of {limit}." if n > limit else "."),
    )


def _pool_stuck(load: PoolLoad, config: HealthConfig) -> bool:
    return load.saturated and load.idle_for_s >= config.thresholds.pool_stuck_s


def _pool_checks(inputs: HealthInputs, config: HealthConfig) -> Iterable[Check]:
    threshold = f"a call finishes within {config.thresholds.pool_stuck_s:g} s of a full pool"
    for name, load in sorted(inputs.pools.items()):
        stuck = _pool_stuck(load, config)
        message = (
            f"Pool {name} is stuck: all {load.size} workers are busy and no call has "
            f"finished for {load.idle_for_s:.0f} s."
            if stuck
            else f"Pool {name} has {load.busy} of {load.size} workers busy."
        )
        yield Check(
            f"pool:{name}", round(load.idle_for_s, 3), threshold, _grade(degraded=stuck), message
        )


def assess(inputs: HealthInputs, config: HealthConfig) -> tuple[Check, ...]:
    """Every check for one snapshot, in a stable order; no hysteresis."""
    return (
        *_provider_checks(inputs, config),
        _queue_check(inputs, config),
        *_restart_checks(inputs, config),
        _optimizer_check(inputs),
        _store_check(inputs),
        _disk_check(inputs, config),
        _rss_check(inputs, config),
        _agent_check(inputs, config),
        *_pool_checks(inputs, config),
    )


def worst(checks: Iterable[Check]) -> HealthStatus:
    """The status the worst of ``checks`` calls for (healthy when there are none)."""
    return max(
        (_OF_CHECK[check.status] for check in checks),
        key=_RANK.__getitem__,
        default=HealthStatus.HEALTHY,
    )


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
        self._degraded.update(_RANK[raw] >= _RANK[HealthStatus.DEGRADED], hysteresis)
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
            cause = _unavailability(provider, inputs, config.thresholds.provider_error_rate)
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
            if _pool_stuck(load, config)
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
