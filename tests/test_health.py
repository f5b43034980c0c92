"""Health policy: checks grade a snapshot, hysteresis steadies the status, actions follow it."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from pydantic import ValidationError

import runtime.health
import runtime.health_checks
import runtime.health_config
from runtime.errors import ConfigError
from runtime.health import (
    Action,
    ActionKind,
    Check,
    CheckStatus,
    HealthConfig,
    HealthInputs,
    HealthMonitor,
    HealthReport,
    HealthStatus,
    PoolLoad,
    assess,
    worst,
)
from runtime.testing import FakeClock

MB = 1000**2
GIB = 1024**3
CONFIG = HealthConfig()

GOOD = HealthInputs(
    breakers={"anthropic": "closed", "gemini": "closed", "openai": "closed"},
    provider_calls={"anthropic": (10, 0), "gemini": (4, 1), "openai": (0, 0)},
    queued=0,
    running=1,
    max_running=4,
    restarts={"root": 0, "root/providers": 1},
    optimizer_running=True,
    store_writable=True,
    free_disk_bytes=20 * GIB,
    rss_bytes=300 * MB,
    agent_in_flight=3,
    pools={"anthropic": PoolLoad(busy=1, size=4)},
)
"""A snapshot where every check passes."""


def snapshot(**changes: Any) -> HealthInputs:
    return replace(GOOD, **changes)


def check_named(name: str, inputs: HealthInputs, config: HealthConfig = CONFIG) -> Check:
    (found,) = [check for check in assess(inputs, config) if check.name == name]
    return found


def monitor(config: HealthConfig = CONFIG) -> tuple[HealthMonitor, FakeClock]:
    clock = FakeClock()
    return HealthMonitor(config, clock), clock


def feed(
    health: HealthMonitor, clock: FakeClock, inputs: HealthInputs, times: int = 1
) -> list[HealthReport]:
    """Evaluate ``inputs`` ``times`` times, one interval apart."""
    reports = []
    for _ in range(times):
        clock.advance(CONFIG.interval_s)
        reports.append(health.evaluate(inputs))
    return reports


def kinds(report: HealthReport) -> list[ActionKind]:
    return [action.kind for action in report.actions]


def only(report: HealthReport, kind: ActionKind) -> Action:
    (action,) = [action for action in report.actions if action.kind == kind]
    return action


# -- checks -------------------------------------------------------------------


def test_a_healthy_snapshot_passes_every_check_and_needs_no_action() -> None:
    """Every check of a good snapshot is ok, so the status is healthy and no action is taken."""
    checks = assess(GOOD, CONFIG)
    assert {check.status for check in checks} == {CheckStatus.OK}
    assert worst(checks) == HealthStatus.HEALTHY
    health, clock = monitor()
    (report,) = feed(health, clock, GOOD)
    assert (report.status, report.raw_status, report.actions, report.issues) == (
        HealthStatus.HEALTHY,
        HealthStatus.HEALTHY,
        (),
        (),
    )


@pytest.mark.parametrize(
    ("changes", "name", "status"),
    [
        ({"breakers": {"anthropic": "closed"}}, "breaker:anthropic", "ok"),
        ({"breakers": {"anthropic": "half_open"}}, "breaker:anthropic", "ok"),
        ({"breakers": {"anthropic": "open"}}, "breaker:anthropic", "degraded"),
        ({"provider_calls": {"openai": (10, 5)}}, "error_rate:openai", "ok"),
        ({"provider_calls": {"openai": (10, 6)}}, "error_rate:openai", "degraded"),
        ({"provider_calls": {"openai": (1, 1)}}, "error_rate:openai", "degraded"),
        ({"queued": 8, "max_running": 10}, "queue", "ok"),
        ({"queued": 9, "max_running": 10}, "queue", "degraded"),
        ({"queued": 29, "max_running": 10}, "queue", "degraded"),
        ({"queued": 30, "max_running": 10}, "queue", "critical"),
        ({"queued": 0, "max_running": 0}, "queue", "ok"),
        ({"queued": 1, "max_running": 0}, "queue", "critical"),
        ({"restarts": {"root/jobs": 4}}, "restarts:root/jobs", "ok"),
        ({"restarts": {"root/jobs": 5}}, "restarts:root/jobs", "degraded"),
        ({"optimizer_running": True}, "optimizer", "ok"),
        ({"optimizer_running": False}, "optimizer", "degraded"),
        ({"store_writable": True}, "store", "ok"),
        ({"store_writable": False}, "store", "critical"),
        ({"free_disk_bytes": 500 * MB}, "disk", "ok"),
        ({"free_disk_bytes": 500 * MB - 1}, "disk", "degraded"),
        ({"free_disk_bytes": 100 * MB}, "disk", "degraded"),
        ({"free_disk_bytes": 100 * MB - 1}, "disk", "critical"),
        ({"rss_bytes": int(0.8 * 2 * GIB)}, "rss", "ok"),
        ({"rss_bytes": int(0.8 * 2 * GIB) + 1}, "rss", "degraded"),
        ({"rss_bytes": 2 * GIB}, "rss", "degraded"),
        ({"rss_bytes": 2 * GIB + 1}, "rss", "critical"),
        ({"agent_in_flight": 500}, "agent", "ok"),
        ({"agent_in_flight": 501}, "agent", "degraded"),
        ({"pools": {"p": PoolLoad(busy=4, size=4, idle_for_s=119.9)}}, "pool:p", "ok"),
        ({"pools": {"p": PoolLoad(busy=4, size=4, idle_for_s=120)}}, "pool:p", "degraded"),
        ({"pools": {"p": PoolLoad(busy=3, size=4, idle_for_s=999)}}, "pool:p", "ok"),
        ({"pools": {"p": PoolLoad(busy=0, size=0, idle_for_s=999)}}, "pool:p", "ok"),
    ],
)
def test_each_check_grades_its_value_against_the_default_thresholds(
    changes: dict[str, Any], name: str, status: str
) -> None:
    """Each check is ok up to its threshold and degraded or critical beyond it."""
    assert check_named(name, snapshot(**changes)).status == status


def test_a_provider_without_calls_in_the_window_has_no_error_rate_check() -> None:
    """Zero calls say nothing about a provider's error rate, so no check is made."""
    names = {check.name for check in assess(GOOD, CONFIG)}
    assert {"error_rate:anthropic", "error_rate:gemini"} <= names
    assert "error_rate:openai" not in names


def test_there_is_one_check_per_provider_supervisor_and_pool() -> None:
    """Breakers, error rates, restart counts and pools each get a check per entry."""
    names = [check.name for check in assess(GOOD, CONFIG)]
    assert names == [
        "breaker:anthropic",
        "breaker:gemini",
        "breaker:openai",
        "error_rate:anthropic",
        "error_rate:gemini",
        "queue",
        "restarts:root",
        "restarts:root/providers",
        "optimizer",
        "store",
        "disk",
        "rss",
        "agent",
        "pool:anthropic",
    ]


def test_configured_thresholds_replace_the_defaults() -> None:
    """A check reads its threshold from the config, not from a constant."""
    strict = HealthConfig.from_mapping(
        {"thresholds": {"agent_max_in_flight": 10, "restarts_per_window": 2}}
    )
    assert check_named("agent", snapshot(agent_in_flight=11), strict).status == "degraded"
    assert check_named("agent", snapshot(agent_in_flight=11)).status == "ok"
    restarts = snapshot(restarts={"root/providers": 2})
    assert check_named("restarts:root/providers", restarts, strict).status == "degraded"
    assert check_named("restarts:root/providers", restarts).status == "ok"


def test_a_failing_check_says_what_it_saw_and_what_the_limit_is() -> None:
    """Value, threshold and message tell an operator what is wrong without reading code."""
    rate = check_named("error_rate:openai", snapshot(provider_calls={"openai": (10, 7)}))
    assert (rate.value, rate.threshold) == (0.7, "<= 50%")
    assert rate.message == "openai failed 7 of 10 calls (70%) in the last 60 s, over the 50% limit."
    disk = check_named("disk", snapshot(free_disk_bytes=50 * MB))
    assert disk.value == 50 * MB
    assert disk.message == "50 MB of disk is free, under 100 MB: free some space now."
    rss = check_named("rss", snapshot(rss_bytes=3 * GIB))
    assert rss.threshold == "<= 80% of 2 GiB degraded; <= 2 GiB critical"
    assert "over the limit" in rss.message
    queue = check_named("queue", snapshot(queued=2, max_running=0))
    assert queue.value == "no capacity"


def test_the_worst_check_decides_the_raw_status() -> None:
    """One critical check makes the evaluation critical; degraded ones only degrade it."""
    health, clock = monitor()
    (degraded,) = feed(health, clock, snapshot(optimizer_running=False, agent_in_flight=900))
    assert degraded.raw_status == HealthStatus.DEGRADED
    assert len(degraded.issues) == 2
    (critical,) = feed(health, clock, snapshot(optimizer_running=False, rss_bytes=3 * GIB))
    assert critical.raw_status == HealthStatus.CRITICAL
    assert worst(()) == HealthStatus.HEALTHY


def test_a_snapshot_with_an_unknown_breaker_state_is_refused() -> None:
    """Breaker states are closed, half_open or open; anything else is a bug in the gatherer."""
    with pytest.raises(ValueError, match="'broken' of anthropic"):
        snapshot(breakers={"anthropic": "broken"})
    with pytest.raises(ValueError, match="openai: 3 errors in 2 calls"):
        snapshot(provider_calls={"openai": (2, 3)})


# -- hysteresis ---------------------------------------------------------------


def test_one_bad_evaluation_does_not_degrade_but_two_in_a_row_do() -> None:
    """The status gets worse only after degrade_after consecutive bad evaluations."""
    health, clock = monitor()
    start = clock.now()
    (first,) = feed(health, clock, snapshot(optimizer_running=False))
    assert (first.status, first.raw_status, first.changed) == ("healthy", "degraded", False)
    assert first.since == start
    (second,) = feed(health, clock, snapshot(optimizer_running=False))
    assert (second.status, second.changed, second.since) == ("degraded", True, clock.now())
    (third,) = feed(health, clock, snapshot(optimizer_running=False))
    assert (third.status, third.changed, third.since) == ("degraded", False, second.since)


def test_recovery_needs_three_good_evaluations_in_a_row() -> None:
    """The status gets better only after recover_after consecutive good evaluations."""
    health, clock = monitor()
    feed(health, clock, snapshot(agent_in_flight=600), times=2)
    first, second, third = feed(health, clock, GOOD, times=3)
    assert [r.status for r in (first, second, third)] == ["degraded", "degraded", "healthy"]
    assert [r.raw_status for r in (first, second, third)] == ["healthy"] * 3
    assert (third.changed, third.since) == (True, clock.now())


def test_a_flapping_input_does_not_flap_the_status() -> None:
    """Alternating good and bad snapshots never make a streak, so the status holds."""
    health, clock = monitor()
    bad = snapshot(breakers={"anthropic": "open"})
    for _ in range(5):
        reports = feed(health, clock, bad) + feed(health, clock, GOOD)
        assert [r.status for r in reports] == ["healthy", "healthy"]
        assert not any(r.changed for r in reports)
    feed(health, clock, bad, times=2)
    for _ in range(5):
        reports = feed(health, clock, GOOD, times=2) + feed(health, clock, bad)
        assert [r.status for r in reports] == ["degraded"] * 3


def test_critical_needs_two_critical_evaluations_and_a_mixed_pair_only_degrades() -> None:
    """A critical disk is reported after two evaluations; critical then degraded is degraded."""
    health, clock = monitor()
    full_disk = snapshot(free_disk_bytes=10 * MB)
    low_disk = snapshot(free_disk_bytes=200 * MB)
    reports = feed(health, clock, full_disk) + feed(health, clock, low_disk)
    assert [r.status for r in reports] == ["healthy", "degraded"]
    reports = feed(health, clock, full_disk, times=2)
    assert [r.status for r in reports] == ["degraded", "critical"]


def test_critical_recovers_through_degraded_or_straight_to_healthy() -> None:
    """Three evaluations at most degraded step down to degraded; three healthy ones to healthy."""
    health, clock = monitor()
    full_disk = snapshot(free_disk_bytes=10 * MB)
    feed(health, clock, full_disk, times=2)
    reports = feed(health, clock, snapshot(free_disk_bytes=200 * MB), times=3)
    assert [r.status for r in reports] == ["critical", "critical", "degraded"]

    health, clock = monitor()
    feed(health, clock, full_disk, times=2)
    reports = feed(health, clock, GOOD, times=3)
    assert [r.status for r in reports] == ["critical", "critical", "healthy"]


def test_a_store_that_cannot_be_written_is_critical_at_once() -> None:
    """The store check skips the degrade_after wait: losing job state cannot wait."""
    health, clock = monitor()
    (report,) = feed(health, clock, snapshot(store_writable=False))
    assert (report.status, report.changed, report.since) == ("critical", True, clock.now())
    assert ActionKind.EMERGENCY_MODE in kinds(report)
    reports = feed(health, clock, GOOD, times=3)
    assert [r.status for r in reports] == ["critical", "critical", "healthy"]


def test_hysteresis_counts_come_from_the_config() -> None:
    """degrade_after 1 reacts at once; recover_after 1 clears at once."""
    config = HealthConfig.from_mapping({"hysteresis": {"degrade_after": 1, "recover_after": 1}})
    health, clock = monitor(config)
    reports = feed(health, clock, snapshot(optimizer_running=False)) + feed(health, clock, GOOD)
    assert [r.status for r in reports] == ["degraded", "healthy"]
    assert kinds(reports[0]) == [ActionKind.STATIC_PROMPTS]
    assert reports[1].actions == ()


def test_snapshot_returns_the_last_report() -> None:
    """The monitor keeps its last report for the CLI to render."""
    health, clock = monitor()
    assert health.snapshot() is None
    (report,) = feed(health, clock, GOOD)
    assert health.snapshot() is report


# -- actions ------------------------------------------------------------------


def test_an_open_breaker_routes_the_provider_to_its_backups_until_it_recovers() -> None:
    """use_backups names the configured backups, comes after two evaluations, ends after three."""
    health, clock = monitor()
    down = snapshot(breakers={"anthropic": "open", "gemini": "closed", "openai": "closed"})
    first, second = feed(health, clock, down, times=2)
    assert first.actions == ()
    action = only(second, ActionKind.USE_BACKUPS)
    assert (action.target, action.backups) == ("anthropic", ("gemini", "openai"))
    assert action.reason == (
        "anthropic is unavailable (its circuit breaker is open): its calls go to gemini, openai."
    )
    recovering = feed(health, clock, GOOD, times=3)
    assert [kinds(r) for r in recovering] == [[ActionKind.USE_BACKUPS]] * 2 + [[]]
    assert "recovering" in recovering[0].actions[0].reason


def test_a_high_error_rate_makes_a_provider_unavailable_too() -> None:
    """Failing more than provider_error_rate of its calls routes a provider to backups."""
    health, clock = monitor()
    (_, report) = feed(health, clock, snapshot(provider_calls={"openai": (10, 8)}), times=2)
    action = only(report, ActionKind.USE_BACKUPS)
    assert (action.target, action.backups) == ("openai", ("anthropic", "gemini"))
    assert "failed 8 of 10 calls (80%)" in action.reason


def test_backups_that_are_unavailable_themselves_are_skipped() -> None:
    """A provider is never routed to a backup whose breaker is open or whose calls fail."""
    health, clock = monitor()
    two_down = snapshot(
        breakers={"anthropic": "open", "gemini": "closed", "openai": "closed"},
        provider_calls={"gemini": (10, 9)},
    )
    (_, report) = feed(health, clock, two_down, times=2)
    routes = {a.target: a.backups for a in report.actions if a.kind == ActionKind.USE_BACKUPS}
    assert routes == {"anthropic": ("openai",), "gemini": ("openai",)}
    assert "(gemini unavailable too)" in only_target(report, "anthropic").reason


def test_a_provider_whose_backups_are_all_down_says_no_backup_is_available() -> None:
    """With every backup unavailable the action stays, with no backups and a reason saying so."""
    health, clock = monitor()
    all_down = snapshot(breakers={"anthropic": "open", "gemini": "open", "openai": "open"})
    (_, report) = feed(health, clock, all_down, times=2)
    action = only_target(report, "anthropic")
    assert action.backups == ()
    assert "no backup is available" in action.reason


def only_target(report: HealthReport, target: str) -> Action:
    (action,) = [action for action in report.actions if action.target == target]
    return action


def test_a_down_optimizer_switches_pipelines_to_static_prompts_until_it_is_back() -> None:
    """static_prompts is in force while the optimizer is down and ends once it is steady again."""
    health, clock = monitor()
    reports = feed(health, clock, snapshot(optimizer_running=False), times=2)
    assert kinds(reports[0]) == []
    action = only(reports[1], ActionKind.STATIC_PROMPTS)
    assert action.target is None and "optimizer is down" in action.reason
    reports = feed(health, clock, GOOD, times=3)
    assert [kinds(r) for r in reports] == [[ActionKind.STATIC_PROMPTS]] * 2 + [[]]


def test_an_overloaded_agent_is_bypassed_until_its_load_falls() -> None:
    """bypass_agent says how many requests were in flight against the limit, and ends itself."""
    health, clock = monitor()
    (_, report) = feed(health, clock, snapshot(agent_in_flight=742), times=2)
    action = only(report, ActionKind.BYPASS_AGENT)
    assert "742 requests in flight, over its limit of 500" in action.reason
    reports = feed(health, clock, snapshot(agent_in_flight=500), times=3)
    assert kinds(reports[-1]) == []


def test_a_stuck_pool_is_restarted_once_per_episode() -> None:
    """restart_pool is asked once when a pool is confirmed stuck, and again only after recovery."""
    health, clock = monitor()
    stuck = snapshot(pools={"gemini": PoolLoad(busy=4, size=4, idle_for_s=130)})
    reports = feed(health, clock, stuck, times=6)
    assert [kinds(r) for r in reports] == [[], [ActionKind.RESTART_POOL], [], [], [], []]
    action = only(reports[1], ActionKind.RESTART_POOL)
    assert action.target == "gemini"
    assert action.reason == (
        "Pool gemini is stuck (all 4 workers busy and no call finished for 130 s): "
        "restart its workers."
    )
    feed(health, clock, stuck)
    reports = feed(health, clock, GOOD, times=2) + feed(health, clock, stuck, times=2)
    assert not any(ActionKind.RESTART_POOL in kinds(r) for r in reports)  # recovery was too short

    feed(health, clock, GOOD, times=3)
    reports = feed(health, clock, stuck, times=2)
    assert [kinds(r) for r in reports] == [[], [ActionKind.RESTART_POOL]]


def test_critical_health_enters_emergency_mode_with_a_retry_after() -> None:
    """emergency_mode holds while the status is critical and tells clients when to retry."""
    health, clock = monitor()
    reports = feed(health, clock, snapshot(rss_bytes=3 * GIB), times=2)
    assert kinds(reports[0]) == []
    action = only(reports[1], ActionKind.EMERGENCY_MODE)
    assert action.retry_after_s == 10.0
    assert action.reason == (
        "Health is critical (critical checks: rss): new work is refused; clients retry after 10 s."
    )
    reports = feed(health, clock, GOOD, times=3)
    assert [kinds(r) for r in reports] == [[ActionKind.EMERGENCY_MODE]] * 2 + [[]]
    assert "still recovering" in reports[0].actions[0].reason


@pytest.mark.parametrize(
    ("interval_s", "retry_after_s"), [(1, 5.0), (2.5, 5.0), (5, 10.0), (30, 60.0)]
)
def test_the_emergency_retry_after_is_two_intervals_and_at_least_five_seconds(
    interval_s: float, retry_after_s: float
) -> None:
    """retry_after_s is twice interval_s, never under 5 s."""
    assert HealthConfig(interval_s=interval_s).retry_after_s == retry_after_s


def test_actions_end_on_their_own_latch_while_others_stay_in_force() -> None:
    """A recovered provider stops using backups even while the optimizer is still down."""
    health, clock = monitor()
    both = snapshot(optimizer_running=False, breakers={"openai": "open"})
    (_, report) = feed(health, clock, both, times=2)
    assert kinds(report) == [ActionKind.USE_BACKUPS, ActionKind.STATIC_PROMPTS]
    reports = feed(health, clock, snapshot(optimizer_running=False), times=3)
    assert kinds(reports[-1]) == [ActionKind.STATIC_PROMPTS]
    assert reports[-1].status == HealthStatus.DEGRADED


# -- config -------------------------------------------------------------------


def test_the_default_config_holds_the_documented_defaults() -> None:
    """Defaults: 5 s interval, 60 s window, 2 bad to degrade, 3 good to recover, backups."""
    config = HealthConfig.from_mapping(None)
    t = config.thresholds
    assert (config.interval_s, config.window_s) == (5.0, 60.0)
    assert (t.provider_error_rate, t.queue_saturation, t.queue_saturation_critical) == (
        0.5,
        0.9,
        3.0,
    )
    assert (t.restarts_per_window, t.agent_max_in_flight, t.pool_stuck_s) == (5, 500, 120.0)
    assert (t.min_free_disk_bytes, t.critical_free_disk_bytes) == (500 * MB, 100 * MB)
    assert (t.rss_limit_bytes, t.rss_degraded_ratio) == (2 * GIB, 0.8)
    assert (config.hysteresis.degrade_after, config.hysteresis.recover_after) == (2, 3)
    assert dict(config.backups) == {
        "anthropic": ("gemini", "openai"),
        "gemini": ("anthropic", "openai"),
        "openai": ("anthropic", "gemini"),
    }


def test_a_partial_mapping_overrides_only_what_it_names() -> None:
    """Nested sections merge with their defaults; lists of backups become tuples."""
    config = HealthConfig.from_mapping(
        {"interval_s": 2, "thresholds": {"pool_stuck_s": 30}, "backups": {"anthropic": ["openai"]}}
    )
    assert (config.interval_s, config.thresholds.pool_stuck_s) == (2.0, 30.0)
    assert config.thresholds.agent_max_in_flight == 500
    assert dict(config.backups) == {"anthropic": ("openai",)}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"interval_s": 0}, "health.interval_s"),
        ({"interval_s": "soon"}, "health.interval_s"),
        ({"intervals": 5}, "health.intervals"),
        ({"thresholds": {"provider_error_rate": 1.5}}, "health.thresholds.provider_error_rate"),
        ({"thresholds": {"disk_bytes": 1}}, "health.thresholds.disk_bytes"),
        ({"hysteresis": {"degrade_after": 0}}, "health.hysteresis.degrade_after"),
        ({"hysteresis": {"recover_after": "x"}}, "health.hysteresis.recover_after"),
        ({"backups": {"anthropic": "gemini"}}, "health.backups.anthropic"),
        ({"backups": {"anthropic": ["anthropic"]}}, "backups.anthropic"),
        ({"thresholds": {"queue_saturation_critical": 0.5}}, "queue_saturation_critical"),
        ({"thresholds": {"critical_free_disk_bytes": 600 * MB}}, "critical_free_disk_bytes"),
    ],
)
def test_a_bad_config_raises_a_config_error_naming_the_field(
    data: dict[str, Any], field: str
) -> None:
    """Every problem names the field it is about, from the health section down."""
    with pytest.raises(ConfigError, match="invalid health config") as caught:
        HealthConfig.from_mapping(data)
    assert field in str(caught.value)


def test_the_config_is_frozen() -> None:
    """A parsed config cannot be changed behind the monitor's back."""
    with pytest.raises(ValidationError):
        CONFIG.interval_s = 1  # type: ignore[misc]


# -- the report on the socket -------------------------------------------------


def test_to_json_has_every_check_and_every_action_in_force() -> None:
    """The socket form lists each check with value, threshold and status, and each action."""
    health, clock = monitor()
    bad = snapshot(breakers={"anthropic": "open"}, store_writable=False)
    (_, report) = feed(health, clock, bad, times=2)
    data = json.loads(json.dumps(report.to_json()))
    assert (data["status"], data["raw_status"], data["since"]) == ("critical", "critical", 1005.0)
    assert [c["name"] for c in data["checks"]] == [c.name for c in report.checks]
    for wire, check in zip(data["checks"], report.checks, strict=True):
        assert wire == {
            "name": check.name,
            "value": check.value,
            "threshold": check.threshold,
            "status": check.status.value,
            "message": check.message,
        }
    assert {(a["kind"], a["target"]) for a in data["actions"]} == {
        ("use_backups", "anthropic"),
        ("emergency_mode", None),
    }
    assert all(a["reason"] for a in data["actions"])
    backups = next(a for a in data["actions"] if a["kind"] == "use_backups")
    assert backups["backups"] == ["gemini", "openai"]
    assert data["issues"] == list(report.issues) and len(report.issues) == 2


# -- the module layout --------------------------------------------------------


def test_runtime_health_re_exports_the_public_names_of_its_parts() -> None:
    """Config and checks live in their own modules; ``runtime.health`` still serves them all."""
    assert list(runtime.health.__all__) == sorted(runtime.health.__all__)
    for part in (runtime.health_config, runtime.health_checks):
        for name in set(part.__all__) & set(runtime.health.__all__):
            assert getattr(runtime.health, name) is getattr(part, name)
    assert {"HealthConfig", "Thresholds", "Hysteresis"} <= set(runtime.health_config.__all__)
    assert {"HealthInputs", "assess", "worst"} <= set(runtime.health_checks.__all__)
