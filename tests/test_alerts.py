"""Alerts: selectors pick series, rules hold before firing, sinks hear each move once, safely."""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import structlog

import runtime.alerts
from runtime import alert_rules, alert_selectors, alert_sinks, alert_states
from runtime.alerts import (
    ALERT_MOVES,
    AlertConfig,
    AlertEngine,
    AlertState,
    AlertTransition,
    Selector,
    aggregate,
    compare,
    load_alerts,
    next_state,
    rates,
    transition,
)
from runtime.errors import ConfigError, IllegalTransition
from runtime.redaction import REDACTED, forget_secrets, remember_secrets
from runtime.testing import FakeClock
from runtime.testing.fake_http import FakeHTTPServer, RecordedRequest, Reply

WAIT_S = 5.0

SNAPSHOT: Mapping[str, float] = {
    'elx_provider_errors_total{kind="overloaded",provider="anthropic"}': 3.0,
    'elx_provider_errors_total{kind="timeout",provider="anthropic"}': 2.0,
    'elx_provider_errors_total{kind="timeout",provider="gemini"}': 7.0,
    'elx_breaker_state{provider="anthropic"}': 2.0,
    'elx_breaker_state{provider="gemini"}': 0.0,
    "elx_jobs_running": 4.0,
    "elx_jobs_running_peak": 99.0,
    'elx_step_duration_seconds_bucket{le="0.5",provider="mock",type="claude"}': 5.0,
    'elx_step_duration_seconds_bucket{le="+Inf",provider="mock",type="claude"}': 8.0,
    'elx_step_duration_seconds_sum{provider="mock",type="claude"}': 2.5,
}


class Recorder:
    """A sink that remembers what it was given."""

    def __init__(self) -> None:
        self.received: list[AlertTransition] = []
        self._lock = threading.Lock()

    def deliver(self, alert: AlertTransition) -> None:
        with self._lock:
            self.received.append(alert)

    @property
    def states(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(a.name, a.state.value) for a in self.received]


class Failing:
    def deliver(self, alert: AlertTransition) -> None:
        raise RuntimeError("the pager is on fire")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def quiet_logs() -> Iterator[None]:
    """The default log sink writes from its own thread; keep that out of the test output."""
    with structlog.testing.capture_logs():
        yield


@pytest.fixture
def engines() -> Iterator[list[AlertEngine]]:
    """Engines a test makes; all are closed after it, and no delivery thread outlives them."""
    made: list[AlertEngine] = []
    yield made
    for engine in made:
        assert engine.close(WAIT_S)
    assert not [t for t in threading.enumerate() if t.name == "elx-alert-delivery"]


@pytest.fixture
def secrets() -> Iterator[None]:
    yield
    forget_secrets()


def rule(**overrides: Any) -> dict[str, Any]:
    return {"name": "hot", "expr": "elx_jobs_running", "threshold": 5, **overrides}


def make(
    engines: list[AlertEngine],
    clock: FakeClock,
    rules: list[dict[str, Any]],
    sinks: Mapping[str, Any] | None = None,
    specs: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> AlertEngine:
    config = load_alerts({"rules": rules, "sinks": dict(specs or {})})
    engine = AlertEngine(config, clock, sinks, **kwargs)
    engines.append(engine)
    return engine


def moves(transitions: list[AlertTransition]) -> list[tuple[str, str, str]]:
    return [(t.name, t.previous.value, t.state.value) for t in transitions]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- selectors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "selected"),
    [
        ("elx_jobs_running", {"elx_jobs_running"}),
        (
            "elx_provider_errors_total",
            {
                'elx_provider_errors_total{kind="overloaded",provider="anthropic"}',
                'elx_provider_errors_total{kind="timeout",provider="anthropic"}',
                'elx_provider_errors_total{kind="timeout",provider="gemini"}',
            },
        ),
        (
            'elx_provider_errors_total{provider="anthropic"}',
            {
                'elx_provider_errors_total{kind="overloaded",provider="anthropic"}',
                'elx_provider_errors_total{kind="timeout",provider="anthropic"}',
            },
        ),
        (
            'elx_provider_errors_total{ kind = "timeout" , provider="gemini", }',
            {'elx_provider_errors_total{kind="timeout",provider="gemini"}'},
        ),
        (
            'elx_provider_errors_total{provider!="anthropic"}',
            {'elx_provider_errors_total{kind="timeout",provider="gemini"}'},
        ),
        (
            'elx_provider_errors_total{kind=~"over.*"}',
            {'elx_provider_errors_total{kind="overloaded",provider="anthropic"}'},
        ),
        (
            'elx_provider_errors_total{kind!~"over.*",provider="anthropic"}',
            {'elx_provider_errors_total{kind="timeout",provider="anthropic"}'},
        ),
        (
            'elx_step_duration_seconds_bucket{le="+Inf"}',
            {'elx_step_duration_seconds_bucket{le="+Inf",provider="mock",type="claude"}'},
        ),
        ('elx_breaker_state{provider="openai"}', set()),
        ('elx_jobs_running{provider=""}', {"elx_jobs_running"}),
        ("elx_jobs", set()),
        (
            "elx_breaker_state{}",
            {'elx_breaker_state{provider="anthropic"}', 'elx_breaker_state{provider="gemini"}'},
        ),
    ],
)
def test_a_selector_picks_series_by_exact_name_and_every_label_matcher(
    expr: str, selected: set[str]
) -> None:
    """Labels a selector does not mention may be anything; a missing label reads as ""."""
    assert set(Selector.parse(expr).select(SNAPSHOT)) == selected


def test_a_selector_prints_back_as_the_canonical_expression() -> None:
    """Whitespace goes, quotes and order stay: what `elx health` shows is what matches."""
    selector = Selector.parse(' elx_x { a = "1" , b=~"t.*" } ')
    assert str(selector) == 'elx_x{a="1",b=~"t.*"}'
    assert str(Selector.parse("elx_jobs_running")) == "elx_jobs_running"


def test_a_selector_value_may_hold_escaped_quotes() -> None:
    """Backslash escapes in a matcher value are read the way Prometheus writes them."""
    selector = Selector.parse(r'elx_x{reason="said \"no\""}')
    assert selector.matchers[0].value == 'said "no"'


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("", "does not start with a metric name"),
        ("9lives", "does not start with a metric name"),
        ("elx_x{provider=anthropic}", "expected a label matcher"),
        ('elx_x{provider="a"', "expected ',' or '}'"),
        ('elx_x{provider="a"} extra', "unexpected"),
        ('elx_x{kind=~"("}', "is not a regex"),
    ],
)
def test_a_malformed_selector_is_refused_with_what_was_expected(expr: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        Selector.parse(expr)


@pytest.mark.parametrize(("how", "expected"), [("max", 7.0), ("sum", 12.0), ("min", 2.0)])
def test_several_matching_series_combine_by_the_rules_aggregate(
    how: str, expected: float, clock: FakeClock, engines: list[AlertEngine]
) -> None:
    engine = make(
        engines,
        clock,
        [rule(expr="elx_provider_errors_total", aggregate=how, op=">=", threshold=expected)],
    )
    assert moves(engine.evaluate(SNAPSHOT)) == [("hot", "inactive", "firing")]
    assert engine.active()[0].value == expected


def test_aggregating_nothing_gives_no_value() -> None:
    assert aggregate([], "max") is None
    assert aggregate([], "sum") is None


def test_a_rule_with_no_matching_series_does_not_hold_whatever_its_op(
    clock: FakeClock, engines: list[AlertEngine]
) -> None:
    """No data is not zero: `< 1` on a missing metric must not fire."""
    engine = make(engines, clock, [rule(expr="elx_missing", op="<", threshold=1)])
    assert engine.evaluate(SNAPSHOT) == []
    assert engine.active() == []


def test_nan_samples_are_ignored() -> None:
    assert Selector.parse("elx_x").select({"elx_x": float("nan")}) == {}


# -- comparisons --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "value", "threshold", "holds"),
    [
        (">", 5.0, 4.0, True),
        (">", 4.0, 4.0, False),
        (">=", 4.0, 4.0, True),
        (">=", 3.9, 4.0, False),
        ("<", 3.0, 4.0, True),
        ("<", 4.0, 4.0, False),
        ("<=", 4.0, 4.0, True),
        ("<=", 4.1, 4.0, False),
        ("==", 2.0, 2.0, True),
        ("==", 1.0, 2.0, False),
        ("!=", 1.0, 2.0, True),
        ("!=", 2.0, 2.0, False),
    ],
)
def test_every_operator_compares_value_to_threshold(
    op: Any,
    value: float,
    threshold: float,
    holds: bool,
    clock: FakeClock,
    engines: list[AlertEngine],
) -> None:
    assert compare(op, value, threshold) is holds
    engine = make(engines, clock, [rule(op=op, threshold=threshold)])
    fired = moves(engine.evaluate({"elx_jobs_running": value}))
    assert fired == ([("hot", "inactive", "firing")] if holds else [])


def test_the_default_operator_is_greater_than() -> None:
    assert load_alerts({"rules": [rule()]}).rules[0].op == ">"


# -- the state machine --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "holds", "held_s", "for_s", "target"),
    [
        (AlertState.INACTIVE, False, 0, 10, AlertState.INACTIVE),
        (AlertState.INACTIVE, True, 0, 10, AlertState.PENDING),
        (AlertState.INACTIVE, True, 0, 0, AlertState.FIRING),
        (AlertState.PENDING, True, 9.9, 10, AlertState.PENDING),
        (AlertState.PENDING, True, 10, 10, AlertState.FIRING),
        (AlertState.PENDING, False, 30, 10, AlertState.INACTIVE),
        (AlertState.FIRING, True, 0, 10, AlertState.FIRING),
        (AlertState.FIRING, False, 0, 10, AlertState.RESOLVED),
        (AlertState.RESOLVED, True, 0, 10, AlertState.PENDING),
        (AlertState.RESOLVED, False, 0, 10, AlertState.INACTIVE),
    ],
)
def test_next_state_follows_the_decision_table(
    state: AlertState, holds: bool, held_s: float, for_s: float, target: AlertState
) -> None:
    assert next_state(state, holds, held_s, for_s) is target


def test_an_illegal_move_names_the_alert_its_state_and_the_allowed_ones() -> None:
    with pytest.raises(IllegalTransition, match="alert hot cannot move from firing to pending"):
        transition("hot", AlertState.FIRING, AlertState.PENDING)
    assert transition("hot", AlertState.FIRING, AlertState.RESOLVED) is AlertState.RESOLVED
    assert set(ALERT_MOVES) == set(AlertState)


def test_a_rule_fires_only_after_its_condition_has_held_for_for_s(
    clock: FakeClock, engines: list[AlertEngine]
) -> None:
    recorder = Recorder()
    engine = make(engines, clock, [rule(for_s=30)], sinks={"log": recorder})
    hot = {"elx_jobs_running": 9.0}
    assert moves(engine.evaluate(hot)) == [("hot", "inactive", "pending")]
    clock.advance(29)
    assert engine.evaluate(hot) == []
    [pending] = engine.active()
    assert (pending.state, pending.held_s, pending.fired_at) == (AlertState.PENDING, 29, None)
    clock.advance(1)
    assert moves(engine.evaluate(hot)) == [("hot", "pending", "firing")]
    [firing] = engine.active()
    assert (firing.state, firing.since, firing.fired_at) == (AlertState.FIRING, 1000, 1030)
    assert engine.flush(WAIT_S)
    assert recorder.states == [("hot", "firing")]


def test_a_dip_while_pending_resets_the_wait_without_notifying(
    clock: FakeClock, engines: list[AlertEngine]
) -> None:
    recorder = Recorder()
    engine = make(engines, clock, [rule(for_s=30)], sinks={"log": recorder})
    engine.evaluate({"elx_jobs_running": 9.0})
    clock.advance(20)
    assert moves(engine.evaluate({"elx_jobs_running": 1.0})) == [("hot", "pending", "inactive")]
    clock.advance(1)
    assert moves(engine.evaluate({"elx_jobs_running": 9.0})) == [("hot", "inactive", "pending")]
    clock.advance(29)
    assert engine.evaluate({"elx_jobs_running": 9.0}) == []  # 29 s since the dip, not 50
    clock.advance(1)
    assert moves(engine.evaluate({"elx_jobs_running": 9.0})) == [("hot", "pending", "firing")]
    assert engine.flush(WAIT_S)
    assert recorder.states == [("hot", "firing")]


def test_firing_then_resolving_notifies_every_sink_exactly_once_each(
    clock: FakeClock, engines: list[AlertEngine]
) -> None:
    """Staying firing or staying quiet sends nothing; only the two edges are news."""
    first, second = Recorder(), Recorder()
    engine = make(
        engines,
        clock,
        [rule(sinks=["log", "other"])],
        sinks={"log": first, "other": second},
        specs={"other": {"type": "log"}},
    )
    for value in (9.0, 9.5, 12.0):
        engine.evaluate({"elx_jobs_running": value})
        clock.advance(10)
    [resolved] = engine.evaluate({"elx_jobs_running": 1.0})
    assert (resolved.previous, resolved.state, resolved.value) == (
        AlertState.FIRING,
        AlertState.RESOLVED,
        1.0,
    )
    assert engine.evaluate({"elx_jobs_running": 1.0}) == []
    assert engine.active() == []
    assert engine.flush(WAIT_S)
    for sink in (first, second):
        assert sink.states == [("hot", "firing"), ("hot", "resolved")]
    assert engine.deliveries.delivered == 4


def test_an_alert_whose_series_vanish_resolves(
    clock: FakeClock, engines: list[AlertEngine]
) -> None:
    engine = make(engines, clock, [rule()])
    engine.evaluate({"elx_jobs_running": 9.0})
    [resolved] = engine.evaluate({})
    assert resolved.state is AlertState.RESOLVED
    assert resolved.value is None
    assert resolved.to_json()["value"] is None


def test_a_resolved_alert_can_fire_again(clock: FakeClock, engines: list[AlertEngine]) -> None:
    engine = make(engines, clock, [rule()])
    states = [[t.state.value for t in engine.evaluate({"elx_jobs_running": v})] for v in (9, 0, 9)]
    assert states == [["firing"], ["resolved"], ["firing"]]


def test_records_serialise_for_the_socket(clock: FakeClock, engines: list[AlertEngine]) -> None:
    engine = make(
        engines,
        clock,
        [rule(for_s=5, severity="critical", summary="{value:.0f} jobs > {threshold:.0f}")],
    )
    [move] = engine.evaluate({"elx_jobs_running": 9.0})
    assert move.to_json() == {
        "name": "hot",
        "state": "pending",
        "previous": "inactive",
        "at": 1000.0,
        "value": 9.0,
        "threshold": 5.0,
        "severity": "critical",
        "summary": "9 jobs > 5",
        "expr": "elx_jobs_running",
    }
    clock.advance(2)
    [alert] = engine.active()
    assert json.loads(json.dumps(alert.to_json())) == {
        "name": "hot",
        "state": "pending",
        "since": 1000.0,
        "held_s": 2.0,
        "value": 9.0,
        "threshold": 5.0,
        "severity": "critical",
        "summary": "9 jobs > 5",
        "fired_at": None,
    }
    assert engine.deliveries.to_json() == {"delivered": 0, "failed": 0, "dropped": 0}


# -- rates --------------------------------------------------------------------------------


def test_rates_are_per_second_increases_with_resets_and_new_series_counted_from_zero() -> None:
    assert rates({"a": 30.0, "b": 5.0, "c": 4.0}, {"a": 10.0, "b": 50.0}, 10.0) == {
        "a": 2.0,
        "b": 0.5,
        "c": 0.4,
    }
    assert rates({"a": 30.0}, {"a": 10.0}, 0.0) == {}


def test_a_rate_rule_compares_the_increase_per_second_since_the_last_evaluation(
    clock: FakeClock, engines: list[AlertEngine]
) -> None:
    engine = make(
        engines,
        clock,
        [
            rule(
                name="errors",
                expr="elx_provider_errors_total",
                rate=True,
                aggregate="sum",
                threshold=1,
            )
        ],
    )
    overloaded = 'elx_provider_errors_total{kind="overloaded",provider="anthropic"}'
    timeouts = 'elx_provider_errors_total{kind="timeout",provider="anthropic"}'
    assert engine.evaluate({overloaded: 1000.0}) == []  # a baseline, however big
    clock.advance(10)
    assert engine.evaluate({overloaded: 1005.0}) == []  # 0.5 per second
    clock.advance(10)
    [fired] = engine.evaluate({overloaded: 1010.0, timeouts: 10.0})  # 0.5 + 1.0 (new series)
    assert (fired.state, fired.value) == (AlertState.FIRING, 1.5)
    assert engine.evaluate({overloaded: 1010.0, timeouts: 10.0}) == []  # no time passed
    clock.advance(10)
    [resolved] = engine.evaluate({overloaded: 1010.0, timeouts: 10.0})
    assert (resolved.state, resolved.value) == (AlertState.RESOLVED, 0.0)


def test_a_counter_reset_does_not_read_as_a_negative_rate(
    clock: FakeClock, engines: list[AlertEngine]
) -> None:
    engine = make(engines, clock, [rule(expr="elx_c_total", rate=True, op=">=", threshold=2)])
    engine.evaluate({"elx_c_total": 500.0})
    clock.advance(5)
    [fired] = engine.evaluate({"elx_c_total": 10.0})  # restarted daemon: 10 new in 5 s
    assert fired.value == 2.0


# -- sinks --------------------------------------------------------------------------------


def test_the_log_sink_logs_firing_by_severity_and_resolution_as_info(
    clock: FakeClock, engines: list[AlertEngine]
) -> None:
    engine = make(
        engines,
        clock,
        [
            rule(name="warm", summary="warm: {value}"),
            rule(name="burning", threshold=8, severity="critical"),
        ],
    )
    with structlog.testing.capture_logs() as logs:
        engine.evaluate({"elx_jobs_running": 9.0})
        engine.evaluate({"elx_jobs_running": 0.0})
        assert engine.flush(WAIT_S)
    seen = [(e["event"], e["log_level"], e["name"]) for e in logs]
    assert sorted(seen) == sorted(
        [
            ("alert_firing", "warning", "warm"),
            ("alert_firing", "error", "burning"),
            ("alert_resolved", "info", "warm"),
            ("alert_resolved", "info", "burning"),
        ]
    )
    warm = next(e for e in logs if e["name"] == "warm" and e["event"] == "alert_firing")
    assert (warm["summary"], warm["value"], warm["threshold"]) == ("warm: 9.0", 9.0, 5.0)


HOOK = """\
import json, os, sys
record = {k: v for k, v in os.environ.items() if k.startswith("ELX_ALERT_")}
record["argv"] = sys.argv[2:]
record["leaked"] = "ANTHROPIC_API_KEY" in os.environ
with open(sys.argv[1], "a") as f:
    f.write(json.dumps(record) + "\\n")
"""


def hook(tmp_path: Path) -> tuple[Path, Path]:
    script = tmp_path / "hook.py"
    script.write_text(HOOK)
    return script, tmp_path / "calls.jsonl"


def test_the_command_sink_runs_argv_without_a_shell_with_the_alert_in_its_environment(
    tmp_path: Path,
    clock: FakeClock,
    engines: list[AlertEngine],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Shell syntax arrives as plain text, and the daemon's API keys stay with the daemon."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "not-for-hooks-0000")
    script, calls = hook(tmp_path)
    engine = make(
        engines,
        clock,
        [rule(severity="critical", summary="{value} jobs (limit {threshold})", sinks=["page"])],
        specs={
            "page": {
                "type": "command",
                "argv": [sys.executable, str(script), str(calls), "$(id); echo hi"],
                "timeout_s": 30,
            }
        },
    )
    engine.evaluate({"elx_jobs_running": 9.0})
    engine.evaluate({"elx_jobs_running": 2.0})
    assert engine.flush(WAIT_S * 4)
    records = [json.loads(line) for line in calls.read_text().splitlines()]
    assert records == [
        {
            "ELX_ALERT_NAME": "hot",
            "ELX_ALERT_STATE": state,
            "ELX_ALERT_VALUE": value,
            "ELX_ALERT_THRESHOLD": "5.0",
            "ELX_ALERT_SEVERITY": "critical",
            "ELX_ALERT_SUMMARY": f"{value} jobs (limit 5.0)",
            "argv": ["$(id); echo hi"],
            "leaked": False,
        }
        for state, value in (("firing", "9.0"), ("resolved", "2.0"))
    ]
    assert engine.deliveries.delivered == 2


def test_the_webhook_sink_posts_the_alert_as_json_to_a_loopback_server(
    clock: FakeClock, engines: list[AlertEngine]
) -> None:
    with FakeHTTPServer(name="hook") as server:
        server.route("POST", "/alerts", lambda request, srv: Reply.json(200, {"ok": True}))
        engine = make(
            engines,
            clock,
            [rule(summary="{value} running", sinks=["hook"])],
            specs={"hook": {"type": "webhook", "url": server.url("/alerts"), "timeout_s": 5}},
        )
        engine.evaluate({"elx_jobs_running": 9.0})
        engine.evaluate({"elx_jobs_running": 0.0})
        assert engine.flush(WAIT_S)
        assert server.wait_requests(2, WAIT_S)
        first, second = server.requests
    assert first.header("content-type") == "application/json"
    assert first.json() == {
        "name": "hot",
        "state": "firing",
        "previous": "inactive",
        "at": 1000.0,
        "value": 9.0,
        "threshold": 5.0,
        "severity": "warning",
        "summary": "9.0 running",
        "expr": "elx_jobs_running",
    }
    assert (second.json()["state"], second.json()["value"]) == ("resolved", 0.0)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/alerts",
        "http://localhost/alerts",
        "http://[::1]:9000/alerts",
        "https://127.0.0.2/alerts",
    ],
)
def test_a_loopback_webhook_is_accepted(url: str) -> None:
    config = load_alerts({"sinks": {"hook": {"type": "webhook", "url": url}}})
    assert "hook" in config.sink_names


@pytest.mark.parametrize(
    "url", ["https://hooks.example.com/alerts", "http://10.0.0.5/a", "http://[fe80::1]/a"]
)
def test_a_remote_webhook_is_refused_at_load_unless_allowed(url: str) -> None:
    spec = {"type": "webhook", "url": url}
    with pytest.raises(ConfigError, match=r"alerts\.sinks\.pager\.url: webhook sink 'pager'"):
        load_alerts({"sinks": {"pager": spec}})
    allowed = load_alerts({"sinks": {"pager": {**spec, "allow_remote": True}}})
    assert "pager" in allowed.sink_names


def test_a_failing_sink_is_logged_and_stops_neither_other_sinks_nor_later_evaluations(
    clock: FakeClock, engines: list[AlertEngine]
) -> None:
    recorder = Recorder()
    with FakeHTTPServer(name="broken") as server:
        server.route("POST", "/alerts", lambda request, srv: Reply.json(500, {"error": "down"}))
        engine = make(
            engines,
            clock,
            [rule(sinks=["exits", "http500", "nobody", "raises", "log"])],
            sinks={"log": recorder, "raises": Failing()},
            specs={
                "exits": {
                    "type": "command",
                    "argv": [
                        sys.executable,
                        "-c",
                        "import sys; print('no', file=sys.stderr); sys.exit(1)",
                    ],
                },
                "http500": {"type": "webhook", "url": server.url("/alerts")},
                "nobody": {"type": "webhook", "url": f"http://127.0.0.1:{free_port()}/a"},
                "raises": {"type": "log"},
            },
        )
        with structlog.testing.capture_logs() as logs:
            assert [t.state for t in engine.evaluate({"elx_jobs_running": 9.0})] == ["firing"]
            assert engine.flush(WAIT_S * 4)
            assert [t.state for t in engine.evaluate({"elx_jobs_running": 0.0})] == ["resolved"]
            assert engine.flush(WAIT_S * 4)
    assert recorder.states == [("hot", "firing"), ("hot", "resolved")]
    failures = [
        (e["sink"], e["state"], e["error"]) for e in logs if e["event"] == "alert_delivery_failed"
    ]
    assert [(sink, state) for sink, state, _ in failures] == [
        (sink, state)
        for state in ("firing", "resolved")
        for sink in ("exits", "http500", "nobody", "raises")
    ]
    errors = {sink: error for sink, _, error in failures}
    assert "exited with status 1: no" in errors["exits"]
    assert "HTTP 500" in errors["http500"]
    assert "cannot reach the webhook" in errors["nobody"]
    assert errors["raises"] == "the pager is on fire"
    assert engine.deliveries.to_json() == {"delivered": 2, "failed": 8, "dropped": 0}


def test_a_command_that_outlives_its_timeout_is_killed_and_counted_as_failed(
    clock: FakeClock, engines: list[AlertEngine]
) -> None:
    engine = make(
        engines,
        clock,
        [rule(sinks=["slow"])],
        specs={
            "slow": {
                "type": "command",
                "argv": [sys.executable, "-c", "import threading; threading.Event().wait(60)"],
                "timeout_s": 0.2,
            }
        },
    )
    with structlog.testing.capture_logs() as logs:
        engine.evaluate({"elx_jobs_running": 9.0})
        assert engine.flush(WAIT_S * 4)
    [failed] = [e for e in logs if e["event"] == "alert_delivery_failed"]
    assert "did not finish within 0.2 s" in failed["error"]


def test_a_full_delivery_queue_drops_and_counts_without_blocking_evaluation(
    clock: FakeClock, engines: list[AlertEngine]
) -> None:
    started, release = threading.Event(), threading.Event()

    class Stuck:
        def deliver(self, alert: AlertTransition) -> None:
            started.set()
            assert release.wait(WAIT_S)

    engine = make(
        engines,
        clock,
        [rule(name="a"), rule(name="b", threshold=50), rule(name="c", threshold=50)],
        sinks={"log": Stuck()},
        capacity=1,
    )
    with structlog.testing.capture_logs() as logs:
        assert moves(engine.evaluate({"elx_jobs_running": 9.0})) == [("a", "inactive", "firing")]
        assert started.wait(WAIT_S)  # "a" is being delivered; the queue is empty again
        fired = engine.evaluate({"elx_jobs_running": 99.0})  # "b" is queued, "c" has no room
        assert [t.name for t in fired] == ["b", "c"]
        release.set()
        assert engine.flush(WAIT_S)
    assert engine.deliveries.to_json() == {"delivered": 2, "failed": 0, "dropped": 1}
    dropped = [(e["alert"], e["sink"]) for e in logs if e["event"] == "alert_delivery_dropped"]
    assert dropped == [("c", "log")]


def test_secrets_in_summaries_are_redacted_before_they_leave(
    tmp_path: Path, clock: FakeClock, engines: list[AlertEngine], secrets: None
) -> None:
    """A key of any shape that the daemon knows of, or one shaped like a key, never goes out."""
    remember_secrets({"PAGER_TOKEN": "hunter2-hunter2"})
    summary = "call with hunter2-hunter2 or sk-abcdefghijklmnopqrstuvwxyz: {value}"
    script, calls = hook(tmp_path)
    with FakeHTTPServer(name="hook") as server:
        server.route("POST", "/a", lambda request, srv: Reply.json(200, {}))
        engine = make(
            engines,
            clock,
            [rule(summary=summary, sinks=["log", "cmd", "web"])],
            specs={
                "cmd": {"type": "command", "argv": [sys.executable, str(script), str(calls)]},
                "web": {"type": "webhook", "url": server.url("/a")},
            },
        )
        with structlog.testing.capture_logs() as logs:
            [move] = engine.evaluate({"elx_jobs_running": 9.0})
            assert engine.flush(WAIT_S * 4)
        assert server.wait_requests(1, WAIT_S)
        request: RecordedRequest = server.requests[0]
    expected = f"call with {REDACTED} or {REDACTED}: 9.0"
    assert move.summary == expected
    assert engine.active()[0].summary == expected
    assert request.json()["summary"] == expected
    assert json.loads(calls.read_text())["ELX_ALERT_SUMMARY"] == expected
    [logged] = [e for e in logs if e["event"] == "alert_firing"]
    assert logged["summary"] == expected
    assert b"hunter2" not in request.body


# -- configuration ------------------------------------------------------------------------


def test_a_full_config_loads_into_frozen_typed_specs() -> None:
    config = load_alerts(
        {
            "sinks": {
                "page": {"type": "command", "argv": ["/usr/local/bin/page"], "timeout_s": 3},
                "hook": {"type": "webhook", "url": "http://127.0.0.1:9000/alerts"},
            },
            "rules": [
                {
                    "name": "anthropic_breaker_open",
                    "expr": 'elx_breaker_state{provider="anthropic"}',
                    "op": ">=",
                    "threshold": 2,
                    "for_s": 30,
                    "severity": "critical",
                    "summary": "anthropic breaker open ({value})",
                    "sinks": ["log", "page", "hook"],
                },
                {"name": "q", "expr": "elx_job_queue_depth", "threshold": 50},
            ],
        }
    )
    first, second = config.rules
    assert (first.op, first.for_s, first.aggregate, first.rate) == (">=", 30.0, "max", False)
    assert first.selector == Selector.parse('elx_breaker_state{provider="anthropic"}')
    assert (second.op, second.for_s, second.severity, second.sinks) == (">", 0, "warning", ("log",))
    assert config.sink_names == {"log", "page", "hook"}
    with pytest.raises(Exception, match="frozen"):
        first.threshold = 3  # type: ignore[misc]
    assert load_alerts(None) == AlertConfig()


@pytest.mark.parametrize(
    ("section", "says"),
    [
        ({"rules": [rule(op="=>")]}, "alerts.rules.0.op: Input should be '>', '>='"),
        ({"rules": [rule(for_s=-1)]}, "alerts.rules.0.for_s: Input should be greater than"),
        ({"rules": [rule(treshold=3)]}, "alerts.rules.0.treshold: Extra inputs are not permitted"),
        ({"rules": [{"name": "x", "expr": "elx_a"}]}, "alerts.rules.0.threshold: Field required"),
        ({"rules": [rule(threshold="nan")]}, "alerts.rules.0.threshold:"),
        ({"rules": [rule(expr="elx_a{b=c}")]}, "alerts.rules.0.expr: 'elx_a{b=c}': expected"),
        ({"rules": [rule(aggregate="avg")]}, "alerts.rules.0.aggregate: Input should be"),
        ({"rules": [rule(severity="page")]}, "alerts.rules.0.severity: Input should be"),
        (
            {"rules": [rule(summary="{value} on {provider}")]},
            "alerts.rules.0.summary: unknown placeholder {provider}",
        ),
        ({"rules": [rule(summary="{value:d}")]}, "alerts.rules.0.summary: cannot be rendered"),
        ({"rules": [rule(), rule()]}, "alerts.rules.1.name: a second rule is named 'hot'"),
        (
            {"rules": [rule(sinks=["log", "pager"])]},
            "alerts.rules.0.sinks.1: rule 'hot' names sink 'pager', which is not defined; "
            "defined sinks: log",
        ),
        ({"sinks": {"page": {"type": "command"}}}, "alerts.sinks.page.argv: Field required"),
        ({"sinks": {"page": {"type": "command", "argv": []}}}, "alerts.sinks.page.argv:"),
        ({"sinks": {"page": {"argv": ["x"]}}}, "alerts.sinks.page: a sink needs a type"),
        ({"sinks": {"page": {"type": "sms"}}}, "alerts.sinks.page: Input tag 'sms'"),
        ({"sinks": {"w": {"type": "webhook", "url": "ftp://127.0.0.1/x"}}}, "alerts.sinks.w.url:"),
        ({"sinks": {"log": {"type": "command", "argv": ["x"]}}}, "alerts.sinks.log.type:"),
        ({"rules": [rule()], "route": 1}, "alerts.route: Extra inputs are not permitted"),
    ],
)
def test_config_errors_name_the_field(section: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_alerts(section)
    assert says in str(caught.value)


def test_config_errors_start_with_the_given_source() -> None:
    with pytest.raises(ConfigError, match=r"^supervision\.yaml:alerts\.rules\.0\.op: "):
        load_alerts({"rules": [rule(op="~")]}, source="supervision.yaml:alerts")
    with pytest.raises(ConfigError, match="alerts: expected a mapping"):
        load_alerts(["not", "a", "mapping"])  # type: ignore[arg-type]


# -- the module layout --------------------------------------------------------


def test_runtime_alerts_re_exports_the_public_names_of_its_parts() -> None:
    """Selectors, rules, states and sinks have their own modules; ``runtime.alerts`` serves them."""
    engine_internals = {"Delivery", "Dispatcher"}
    for part in (alert_selectors, alert_rules, alert_states, alert_sinks):
        for name in set(part.__all__) - engine_internals:
            assert name in runtime.alerts.__all__
            assert getattr(runtime.alerts, name) is getattr(part, name)
