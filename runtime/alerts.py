"""Alert rules over the metrics snapshot: a small state machine per rule, sinks off the hot path.

A rule compares one number drawn from the flat metrics snapshot
(``Telemetry.series()``: ``name{label="v",...}`` → value) with a threshold.
Its ``expr`` is a series selector: a metric name, optionally with label
matchers (``=``, ``!=``, ``=~``, ``!~``; regexes match the whole value)::

    elx_breaker_state{provider="anthropic"}   one provider's breaker
    elx_provider_errors_total                  every series of that metric, any labels
    elx_provider_errors_total{kind=~"overloaded|timeout"}

The matching series are combined by ``aggregate`` (max, sum or min). With
``rate: true`` each series is first turned into its per-second increase since
the previous evaluation (a counter that went down was reset: its increase is
its new value; a series that appeared since then is counted from 0). The first
evaluation of a rate rule only records a baseline. No matching series, or no
rate yet, means the condition does not hold.

Each rule moves through::

    inactive ──(holds, for_s > 0)──► pending
    inactive ──(holds, for_s == 0)──► firing               notify: firing
    pending ──(stops holding)──► inactive                  silent
    pending ──(has held for for_s)──► firing               notify: firing
    firing ──(stops holding)──► resolved ──► inactive      notify: resolved

Moves happen only when ``evaluate`` is called; ``ALERT_MOVES`` is the table
and ``transition`` the one function that checks it. ``evaluate`` returns the
moves an operator sees (every one but the bookkeeping resolved → inactive).

Notifications go to named sinks (``log``, ``command``, ``webhook``) through a
bounded queue served by one background thread, so a slow or failing sink
never blocks evaluation: a full queue drops the notification, and drops and
failures are counted and logged. Summaries pass through ``redact`` before they
leave the process, and a command sink sees only a few basic variables of the
daemon's environment (``pass_env`` adds more), never its API keys.

The alerts are split by noun, and every public name is re-exported here:

- ``runtime.alert_selectors``: ``Selector`` and ``LabelMatcher``;
- ``runtime.alert_rules``: the configuration (``AlertRule``, ``AlertConfig``,
  the sink specs, ``load_alerts``) and the pure ``compare``, ``aggregate``
  and ``rates``;
- ``runtime.alert_states``: ``AlertState``, ``ALERT_MOVES``, ``transition``,
  ``next_state`` and the ``AlertTransition`` and ``Alert`` records;
- ``runtime.alert_sinks``: the sinks, ``build_sink`` and the delivery queue;
- this module: the ``AlertEngine``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from runtime.alert_rules import (
    LOOPBACK_NAMES,
    OPERATORS,
    SINK_TYPES,
    SUMMARY_FIELDS,
    Aggregate,
    AlertConfig,
    AlertRule,
    CommandSinkSpec,
    LogSinkSpec,
    Op,
    Severity,
    SinkSpec,
    WebhookSinkSpec,
    aggregate,
    compare,
    load_alerts,
    rates,
)
from runtime.alert_selectors import LabelMatcher, MatchOp, Selector
from runtime.alert_sinks import (
    BASE_COMMAND_ENV,
    AlertSink,
    CommandSink,
    Delivery,
    DeliveryCounts,
    Dispatcher,
    LogSink,
    WebhookSink,
    build_sink,
)
from runtime.alert_states import (
    ALERT_MOVES,
    Alert,
    AlertState,
    AlertTransition,
    next_state,
    transition,
)
from runtime.clock import Clock
from runtime.errors import ConfigError

__all__ = [
    "ALERT_MOVES",
    "BASE_COMMAND_ENV",
    "DEFAULT_CAPACITY",
    "LOOPBACK_NAMES",
    "OPERATORS",
    "SINK_TYPES",
    "SUMMARY_FIELDS",
    "Aggregate",
    "Alert",
    "AlertConfig",
    "AlertEngine",
    "AlertRule",
    "AlertSink",
    "AlertState",
    "AlertTransition",
    "CommandSink",
    "CommandSinkSpec",
    "DeliveryCounts",
    "LabelMatcher",
    "LogSink",
    "LogSinkSpec",
    "MatchOp",
    "Op",
    "Selector",
    "Severity",
    "SinkSpec",
    "WebhookSink",
    "WebhookSinkSpec",
    "aggregate",
    "build_sink",
    "compare",
    "load_alerts",
    "next_state",
    "rates",
    "transition",
]

DEFAULT_CAPACITY = 100


# -- the engine ---------------------------------------------------------------------------


@dataclass(slots=True)
class _RuleState:
    state: AlertState = AlertState.INACTIVE
    since: float = 0.0
    fired_at: float | None = None
    value: float | None = None
    baseline: dict[str, float] | None = None
    baseline_at: float = 0.0


class AlertEngine:
    """Evaluates rules against metrics snapshots and notifies sinks of firing and resolution.

    ``sinks`` replaces, by name, the sinks built from the config (tests pass
    recording sinks this way). Thread-safe; the daemon calls ``evaluate`` on
    its own schedule.
    """

    def __init__(
        self,
        config: AlertConfig,
        clock: Clock,
        sinks: Mapping[str, AlertSink] | None = None,
        *,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        if capacity < 1:
            raise ConfigError(f"an alert delivery queue needs room for one; got {capacity}")
        self.config = config
        self._clock = clock
        built: dict[str, AlertSink] = {"log": LogSink()}
        built.update({name: build_sink(spec) for name, spec in config.sinks.items()})
        built.update(sinks or {})
        self._sinks = built
        self._rules = {rule.name: rule for rule in config.rules}
        self._states = {rule.name: _RuleState() for rule in config.rules}
        self._lock = threading.Lock()
        self._dispatcher = Dispatcher(capacity)

    def evaluate(self, snapshot: Mapping[str, float]) -> list[AlertTransition]:
        """Advance every rule on ``snapshot``; return the moves made and queue notifications."""
        with self._lock:
            now = self._clock.now()
            moves = [m for rule in self.config.rules for m in self._advance(rule, snapshot, now)]
        for move in moves:
            if move.notifies:
                for sink_name in self._rules[move.name].sinks:
                    self._dispatcher.submit(Delivery(sink_name, self._sinks[sink_name], move))
        return moves

    def _advance(
        self, rule: AlertRule, snapshot: Mapping[str, float], now: float
    ) -> list[AlertTransition]:
        state = self._states[rule.name]
        value = self._measure(rule, state, snapshot, now)
        holds = value is not None and compare(rule.op, value, rule.threshold)
        held_s = now - state.since if state.state is AlertState.PENDING else 0.0
        target = next_state(state.state, holds, held_s, rule.for_s)
        previous = state.state
        state.value = value
        if target is previous:
            return []
        state.state = transition(rule.name, previous, target)
        if previous is AlertState.INACTIVE:
            state.since = now
        if target is AlertState.FIRING:
            state.fired_at = now
        move = AlertTransition(
            name=rule.name,
            previous=previous,
            state=target,
            at=now,
            value=value,
            threshold=rule.threshold,
            severity=rule.severity,
            summary=rule.render(value),
            expr=rule.expr,
        )
        if target is AlertState.RESOLVED:
            state.state = transition(rule.name, target, AlertState.INACTIVE)
        if state.state is AlertState.INACTIVE:
            state.fired_at = None
        return [move]

    @staticmethod
    def _measure(
        rule: AlertRule, state: _RuleState, snapshot: Mapping[str, float], now: float
    ) -> float | None:
        selected = rule.selector.select(snapshot)
        if not rule.rate:
            return aggregate(list(selected.values()), rule.aggregate)
        baseline, baseline_at = state.baseline, state.baseline_at
        if baseline is not None and now <= baseline_at:
            return state.value  # no time has passed: nothing new to say
        state.baseline, state.baseline_at = selected, now
        if baseline is None:
            return None
        return aggregate(
            list(rates(selected, baseline, now - baseline_at).values()), rule.aggregate
        )

    def active(self) -> list[Alert]:
        """Pending and firing alerts, in rule order."""
        with self._lock:
            now = self._clock.now()
            return [
                Alert(
                    name=rule.name,
                    state=s.state,
                    since=s.since,
                    held_s=now - s.since,
                    value=s.value,
                    threshold=rule.threshold,
                    severity=rule.severity,
                    summary=rule.render(s.value),
                    fired_at=s.fired_at,
                )
                for rule in self.config.rules
                if (s := self._states[rule.name]).state in (AlertState.PENDING, AlertState.FIRING)
            ]

    @property
    def deliveries(self) -> DeliveryCounts:
        """Notifications delivered, failed and dropped so far."""
        return self._dispatcher.counts

    def flush(self, timeout: float) -> bool:
        """Wait until every queued notification was delivered or failed; False on timeout."""
        return self._dispatcher.flush(timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Deliver what is queued (within ``timeout``) and stop; later notifications drop."""
        return self._dispatcher.close(timeout)

    def __enter__(self) -> AlertEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
