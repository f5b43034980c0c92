"""Health checks: grade one snapshot of the daemon, with no memory between snapshots.

The health actor gathers a ``HealthInputs`` every ``interval_s``; ``assess`` turns
it into one ``Check`` per concern, in a stable order. Everything here is pure, so
tests drive it with hand-made snapshots. The limits come from ``Thresholds``
(``runtime.health_config``).

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

The worst check (``worst``) is the evaluation's ``raw_status``; ``HealthMonitor``
(``runtime.health``) steadies it with hysteresis.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from runtime.health_config import GIB, MB, HealthConfig
from runtime.providers.breaker import BreakerState

__all__ = [
    "STATUS_RANK",
    "Check",
    "CheckStatus",
    "HealthInputs",
    "HealthStatus",
    "PoolLoad",
    "assess",
    "pool_stuck",
    "unavailability",
    "worst",
]


class CheckStatus(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    CRITICAL = "critical"


class HealthStatus(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    CRITICAL = "critical"


STATUS_RANK: Mapping[HealthStatus, int] = {
    HealthStatus.HEALTHY: 0,
    HealthStatus.DEGRADED: 1,
    HealthStatus.CRITICAL: 2,
}

_OF_CHECK: Mapping[CheckStatus, HealthStatus] = {
    CheckStatus.OK: HealthStatus.HEALTHY,
    CheckStatus.DEGRADED: HealthStatus.DEGRADED,
    CheckStatus.CRITICAL: HealthStatus.CRITICAL,
}


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


def unavailability(provider: str, inputs: HealthInputs, limit: float) -> str | None:
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


def pool_stuck(load: PoolLoad, config: HealthConfig) -> bool:
    """Every worker of the pool is busy and none has finished a call for ``pool_stuck_s``."""
    return load.saturated and load.idle_for_s >= config.thresholds.pool_stuck_s


def _pool_checks(inputs: HealthInputs, config: HealthConfig) -> Iterable[Check]:
    threshold = f"a call finishes within {config.thresholds.pool_stuck_s:g} s of a full pool"
    for name, load in sorted(inputs.pools.items()):
        stuck = pool_stuck(load, config)
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
        key=STATUS_RANK.__getitem__,
        default=HealthStatus.HEALTHY,
    )
