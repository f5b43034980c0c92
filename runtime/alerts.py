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
"""

from __future__ import annotations

import ipaddress
import json
import math
import operator
import os
import re
import string
import subprocess
import threading
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property, lru_cache
from typing import Annotated, Any, Literal, Protocol, Self
from urllib.parse import urlsplit

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from runtime.clock import Clock
from runtime.errors import ConfigError, IllegalTransition
from runtime.redaction import redact

__all__ = [
    "ALERT_MOVES",
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
    "Selector",
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

log = structlog.get_logger("elexirion.alerts")

Op = Literal[">", ">=", "<", "<=", "==", "!="]
Aggregate = Literal["max", "sum", "min"]
Severity = Literal["warning", "critical"]

OPERATORS: Mapping[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
LOOPBACK_NAMES = frozenset({"localhost"})
BASE_COMMAND_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SYSTEMROOT")
SUMMARY_FIELDS = frozenset({"value", "threshold", "name"})
DEFAULT_CAPACITY = 100
_ERROR_TAIL_CHARS = 500


# -- selectors ----------------------------------------------------------------------------


class MatchOp(StrEnum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


@dataclass(frozen=True, slots=True)
class LabelMatcher:
    """One ``label op "value"``; a label a series lacks has the value ``""``."""

    label: str
    op: MatchOp
    value: str
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.op is MatchOp.EQUAL:
            return actual == self.value
        if self.op is MatchOp.NOT_EQUAL:
            return actual != self.value
        assert self.pattern is not None
        found = self.pattern.fullmatch(actual) is not None
        return found if self.op is MatchOp.REGEX else not found

    def __str__(self) -> str:
        return f"{self.label}{self.op.value}{json.dumps(self.value)}"


_METRIC = re.compile(r"\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*")
_PAIR = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*')
_ESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True, slots=True)
class Selector:
    """A metric name and label matchers; it selects every series that satisfies them all."""

    metric: str
    matchers: tuple[LabelMatcher, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Selector:
        metric, pairs = _parse_series(text)
        matchers = []
        for label, op, value in pairs:
            pattern = None
            if op in (MatchOp.REGEX, MatchOp.NOT_REGEX):
                try:
                    pattern = re.compile(value)
                except re.error as exc:
                    raise ValueError(f"{label}{op}: {value!r} is not a regex: {exc}") from None
            matchers.append(LabelMatcher(label, MatchOp(op), value, pattern))
        return cls(metric, tuple(matchers))

    def matches(self, series: str) -> bool:
        parsed = _series_key(series)
        if parsed is None or parsed[0] != self.metric:
            return False
        labels = parsed[1]
        return all(m.matches(labels) for m in self.matchers)

    def select(self, snapshot: Mapping[str, float]) -> dict[str, float]:
        """The matching series and their values; NaN samples say nothing and are left out."""
        return {k: v for k, v in snapshot.items() if not math.isnan(v) and self.matches(k)}

    def __str__(self) -> str:
        inner = ",".join(str(m) for m in self.matchers)
        return f"{self.metric}{{{inner}}}" if inner else self.metric


def _parse_series(text: str) -> tuple[str, list[tuple[str, str, str]]]:
    """``name{a="x",b!="y"}`` → ``("name", [("a", "=", "x"), ("b", "!=", "y")])``."""
    head = _METRIC.match(text)
    if head is None:
        raise ValueError(f"{text!r} does not start with a metric name like elx_jobs_running")
    pos = head.end()
    pairs: list[tuple[str, str, str]] = []
    if pos < len(text) and text[pos] == "{":
        pos += 1
        while True:
            close = re.compile(r"\s*\}\s*").match(text, pos)
            if close is not None:
                pos = close.end()
                break
            pair = _PAIR.match(text, pos)
            if pair is None:
                raise ValueError(
                    f'{text!r}: expected a label matcher like provider="anthropic" '
                    f"or a closing }} at column {pos + 1}"
                )
            label, op, raw = pair.groups()
            pairs.append((label, op, _ESCAPE.sub(lambda m: _unescape(m.group(1)), raw)))
            pos = pair.end()
            if pos < len(text) and text[pos] == ",":
                pos += 1
            elif not (pos < len(text) and text[pos] == "}"):
                raise ValueError(f"{text!r}: expected ',' or '}}' at column {pos + 1}")
    if pos != len(text):
        raise ValueError(f"{text!r}: unexpected {text[pos:]!r} at column {pos + 1}")
    return head.group(1), pairs


def _unescape(char: str) -> str:
    return "\n" if char == "n" else char


@lru_cache(maxsize=4096)
def _series_key(series: str) -> tuple[str, Mapping[str, str]] | None:
    """A snapshot key's name and labels; None for a key that is not a series name."""
    try:
        metric, pairs = _parse_series(series)
    except ValueError:
        return None
    return metric, {label: value for label, _, value in pairs}


# -- pure policy --------------------------------------------------------------------------


def compare(op: Op, value: float, threshold: float) -> bool:
    return OPERATORS[op](value, threshold)


def aggregate(values: Sequence[float], how: Aggregate) -> float | None:
    """Combine the selected series into one number; None when nothing was selected."""
    if not values:
        return None
    if how == "sum":
        return math.fsum(values)
    return max(values) if how == "max" else min(values)


def rates(
    current: Mapping[str, float], previous: Mapping[str, float], elapsed_s: float
) -> dict[str, float]:
    """Per-second increase of each counter in ``current`` over ``elapsed_s``.

    A counter lower than before was reset, so its whole value is new; a series
    absent before is counted from 0 (telemetry creates labelled series on
    their first increment).
    """
    if elapsed_s <= 0:
        return {}
    out = {}
    for series, value in current.items():
        before = previous.get(series, 0.0)
        increase = value - before if value >= before else value
        out[series] = increase / elapsed_s
    return out


class AlertState(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


ALERT_MOVES: Mapping[AlertState, frozenset[AlertState]] = {
    AlertState.INACTIVE: frozenset({AlertState.PENDING, AlertState.FIRING}),
    AlertState.PENDING: frozenset({AlertState.INACTIVE, AlertState.FIRING}),
    AlertState.FIRING: frozenset({AlertState.RESOLVED}),
    AlertState.RESOLVED: frozenset({AlertState.INACTIVE}),
}


def transition(subject: str, current: AlertState, target: AlertState) -> AlertState:
    """Return ``target`` if ``ALERT_MOVES`` allows ``current`` → ``target``; raise otherwise."""
    allowed = ALERT_MOVES[current]
    if target not in allowed:
        moves = ", ".join(sorted(state.value for state in allowed)) or "none"
        raise IllegalTransition(
            f"alert {subject} cannot move from {current.value} to {target.value}; "
            f"allowed from {current.value}: {moves}",
            subject=subject,
            state=current.value,
            target=target.value,
        )
    return target


def next_state(state: AlertState, holds: bool, held_s: float, for_s: float) -> AlertState:
    """Where a rule goes given whether its condition holds and for how long it has held."""
    if state in (AlertState.INACTIVE, AlertState.RESOLVED):
        if not holds:
            return AlertState.INACTIVE
        return AlertState.FIRING if for_s == 0 else AlertState.PENDING
    if state is AlertState.PENDING:
        if not holds:
            return AlertState.INACTIVE
        return AlertState.FIRING if held_s >= for_s else AlertState.PENDING
    return AlertState.FIRING if holds else AlertState.RESOLVED


# -- configuration ------------------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _FieldProblem(ValueError):
    """A cross-field problem that knows which field it is about."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(f"{'.'.join(str(p) for p in loc)}: {message}")
        self.loc = loc
        self.message = message


class LogSinkSpec(_Frozen):
    type: Literal["log"] = "log"


class CommandSinkSpec(_Frozen):
    """Run ``argv`` (no shell) with the alert in ``ELX_ALERT_*`` environment variables."""

    type: Literal["command"]
    argv: tuple[str, ...] = Field(min_length=1)
    timeout_s: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    pass_env: tuple[str, ...] = ()
    """Daemon environment variables the command may see besides ``BASE_COMMAND_ENV``."""

    @field_validator("argv")
    @classmethod
    def _program_named(cls, argv: tuple[str, ...]) -> tuple[str, ...]:
        if not argv[0].strip():
            raise ValueError("argv[0] must name the program to run")
        return argv


class WebhookSinkSpec(_Frozen):
    """POST the alert as JSON to ``url``; only to this machine unless ``allow_remote``."""

    type: Literal["webhook"]
    url: str
    timeout_s: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    allow_remote: bool = False

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL with a host")
        return url

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def is_loopback(self) -> bool:
        if self.host in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


SinkSpec = Annotated[LogSinkSpec | CommandSinkSpec | WebhookSinkSpec, Field(discriminator="type")]
SINK_TYPES = ("log", "command", "webhook")


class AlertRule(_Frozen):
    name: str = Field(min_length=1)
    expr: str
    op: Op = ">"
    threshold: float = Field(allow_inf_nan=False)
    for_s: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    aggregate: Aggregate = "max"
    rate: bool = False
    severity: Severity = "warning"
    summary: str = ""
    """Text for people; ``{value}``, ``{threshold}`` and ``{name}`` are filled in."""
    sinks: tuple[str, ...] = ("log",)

    @field_validator("expr")
    @classmethod
    def _selector(cls, expr: str) -> str:
        Selector.parse(expr)
        return expr

    @field_validator("summary")
    @classmethod
    def _placeholders(cls, summary: str) -> str:
        for _, name, _, _ in string.Formatter().parse(summary):
            if name is not None and name not in SUMMARY_FIELDS:
                allowed = ", ".join(f"{{{f}}}" for f in sorted(SUMMARY_FIELDS))
                raise ValueError(f"unknown placeholder {{{name}}}; use {allowed} (or {{{{ }}}})")
        try:
            summary.format(value=1.0, threshold=1.0, name="rule")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"cannot be rendered: {exc}") from None
        return summary

    @cached_property
    def selector(self) -> Selector:
        return Selector.parse(self.expr)

    def render(self, value: float | None) -> str:
        """The summary (or a default one) with the numbers in, secrets redacted."""
        shown = math.nan if value is None else value
        if self.summary:
            text = self.summary.format(value=shown, threshold=self.threshold, name=self.name)
        else:
            text = f"{self.name}: {self.expr} = {shown} ({self.op} {self.threshold})"
        return str(redact(text))


class AlertConfig(_Frozen):
    rules: tuple[AlertRule, ...] = ()
    sinks: Mapping[str, SinkSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        spec = self.sinks.get("log")
        if spec is not None and not isinstance(spec, LogSinkSpec):
            raise _FieldProblem(("sinks", "log", "type"), "the sink named 'log' must be type log")
        for name, sink in self.sinks.items():
            if isinstance(sink, WebhookSinkSpec) and not (sink.allow_remote or sink.is_loopback):
                raise _FieldProblem(
                    ("sinks", name, "url"),
                    f"webhook sink '{name}' would send alerts to {sink.host}, which is not this "
                    "machine (127.0.0.1, ::1, localhost); set allow_remote: true to allow it",
                )
        seen: set[str] = set()
        for index, rule in enumerate(self.rules):
            if rule.name in seen:
                raise _FieldProblem(
                    ("rules", index, "name"), f"a second rule is named '{rule.name}'"
                )
            seen.add(rule.name)
            for position, sink_name in enumerate(rule.sinks):
                if sink_name not in self.sink_names:
                    defined = ", ".join(sorted(self.sink_names))
                    raise _FieldProblem(
                        ("rules", index, "sinks", position),
                        f"rule '{rule.name}' names sink '{sink_name}', which is not defined; "
                        f"defined sinks: {defined}",
                    )
        return self

    @property
    def sink_names(self) -> frozenset[str]:
        return frozenset({"log", *self.sinks})


def load_alerts(mapping: Mapping[str, Any] | None, *, source: str = "alerts") -> AlertConfig:
    """Validate an ``alerts`` section; problems name the field (``alerts.rules.0.op: ...``)."""
    if mapping is None:
        return AlertConfig()
    if not isinstance(mapping, Mapping):
        raise ConfigError(
            f"{source}: expected a mapping with 'rules' and 'sinks', got {type(mapping).__name__}"
        )
    try:
        return AlertConfig.model_validate(dict(mapping))
    except ValidationError as exc:
        problems = "; ".join(_describe(error, source) for error in exc.errors())
        raise ConfigError(f"{problems}; fix the alerts configuration and reload") from None


def _describe(error: Any, source: str) -> str:
    loc: tuple[str | int, ...] = tuple(error["loc"])
    message: str = error["msg"]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, _FieldProblem):
        loc, message = cause.loc, cause.message
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    if len(loc) >= 3 and loc[0] == "sinks" and loc[2] in SINK_TYPES:
        loc = loc[:2] + loc[3:]  # the union's tag says nothing the type field does not
    if error["type"] == "union_tag_not_found":
        message = f"a sink needs a type: one of {', '.join(SINK_TYPES)}"
    return ".".join(str(part) for part in (source, *loc)) + f": {message}"


# -- records ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertTransition:
    """One move of one rule, as ``evaluate`` reports it and sinks receive it."""

    name: str
    previous: AlertState
    state: AlertState
    at: float
    value: float | None
    threshold: float
    severity: Severity
    summary: str
    expr: str

    @property
    def notifies(self) -> bool:
        return self.state in (AlertState.FIRING, AlertState.RESOLVED)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state.value,
            "previous": self.previous.value,
            "at": self.at,
            "value": _json_number(self.value),
            "threshold": self.threshold,
            "severity": self.severity,
            "summary": self.summary,
            "expr": self.expr,
        }

    def environment(self) -> dict[str, str]:
        """The ``ELX_ALERT_*`` variables a command sink sees."""
        return {
            "ELX_ALERT_NAME": self.name,
            "ELX_ALERT_STATE": self.state.value,
            "ELX_ALERT_VALUE": "" if self.value is None else repr(self.value),
            "ELX_ALERT_THRESHOLD": repr(self.threshold),
            "ELX_ALERT_SEVERITY": self.severity,
            "ELX_ALERT_SUMMARY": self.summary,
        }


@dataclass(frozen=True, slots=True)
class Alert:
    """A pending or firing alert: ``since`` the condition started holding, ``held_s`` so far."""

    name: str
    state: AlertState
    since: float
    held_s: float
    value: float | None
    threshold: float
    severity: Severity
    summary: str
    fired_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state.value,
            "since": self.since,
            "held_s": self.held_s,
            "value": _json_number(self.value),
            "threshold": self.threshold,
            "severity": self.severity,
            "summary": self.summary,
            "fired_at": self.fired_at,
        }


@dataclass(frozen=True, slots=True)
class DeliveryCounts:
    delivered: int = 0
    failed: int = 0
    dropped: int = 0

    def to_json(self) -> dict[str, int]:
        return {"delivered": self.delivered, "failed": self.failed, "dropped": self.dropped}


def _json_number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


# -- sinks --------------------------------------------------------------------------------


class AlertSink(Protocol):
    def deliver(self, alert: AlertTransition) -> None:
        """Send one notification; raise to report a failure (it is counted and logged)."""
        ...


class LogSink:
    """Firing alerts as warnings or errors (by severity), resolutions as info."""

    def deliver(self, alert: AlertTransition) -> None:
        fields = redact(alert.to_json())
        event = f"alert_{alert.state.value}"
        if alert.state is AlertState.RESOLVED:
            log.info(event, **fields)
        elif alert.severity == "critical":
            log.error(event, **fields)
        else:
            log.warning(event, **fields)


class CommandSink:
    def __init__(self, spec: CommandSinkSpec, *, environ: Mapping[str, str] | None = None) -> None:
        self.spec = spec
        source = os.environ if environ is None else environ
        keep = (*BASE_COMMAND_ENV, *spec.pass_env)
        self._base_env = {name: source[name] for name in keep if name in source}

    def deliver(self, alert: AlertTransition) -> None:
        env = {**self._base_env, **redact(alert.environment())}
        try:
            done = subprocess.run(  # no shell: argv is run as written
                list(self.spec.argv),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=self.spec.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise _DeliveryFailed(
                f"{self.spec.argv[0]} did not finish within {self.spec.timeout_s} s; killed"
            ) from None
        except OSError as exc:
            raise _DeliveryFailed(f"cannot run {self.spec.argv[0]}: {exc.strerror}") from None
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace")[-_ERROR_TAIL_CHARS:].strip()
            raise _DeliveryFailed(
                f"{self.spec.argv[0]} exited with status {done.returncode}"
                + (f": {tail}" if tail else "")
            )


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could carry an alert past the loopback check; treat it as an error."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookSink:
    def __init__(self, spec: WebhookSinkSpec) -> None:
        self.spec = spec
        # No proxies from the environment either: a loopback URL must stay on this machine.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())

    def deliver(self, alert: AlertTransition) -> None:
        body = json.dumps(redact(alert.to_json())).encode()
        request = urllib.request.Request(
            self.spec.url,
            data=body,
            method="POST",
            headers={"content-type": "application/json", "user-agent": "elexirion-alerts"},
        )
        try:
            with self._opener.open(request, timeout=self.spec.timeout_s) as response:
                response.read(_ERROR_TAIL_CHARS)
        except urllib.error.HTTPError as exc:
            raise _DeliveryFailed(f"the webhook answered HTTP {exc.code}") from None
        except (OSError, urllib.error.URLError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _DeliveryFailed(f"cannot reach the webhook: {reason}") from None


class _DeliveryFailed(Exception):
    """A sink could not deliver; the dispatcher counts and logs it."""


def build_sink(spec: SinkSpec) -> AlertSink:
    if isinstance(spec, CommandSinkSpec):
        return CommandSink(spec)
    if isinstance(spec, WebhookSinkSpec):
        return WebhookSink(spec)
    return LogSink()


# -- delivery -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Delivery:
    sink_name: str
    sink: AlertSink
    alert: AlertTransition


class _Dispatcher:
    """A bounded queue and one thread that hands notifications to sinks, one at a time."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: deque[_Delivery] = deque()
        self._changed = threading.Condition()
        self._unfinished = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._counts = DeliveryCounts()

    def submit(self, item: _Delivery) -> bool:
        with self._changed:
            if self._closed or len(self._items) >= self._capacity:
                self._count(dropped=1)
                dropped = self._counts.dropped
            else:
                self._items.append(item)
                self._unfinished += 1
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="elx-alert-delivery", daemon=True
                    )
                    self._thread.start()
                self._changed.notify_all()
                return True
        log.warning(
            "alert_delivery_dropped",
            alert=item.alert.name,
            state=item.alert.state.value,
            sink=item.sink_name,
            dropped=dropped,
        )
        return False

    def _run(self) -> None:
        while True:
            with self._changed:
                # Untimed on purpose: submit and close both notify.
                self._changed.wait_for(lambda: bool(self._items) or self._closed)
                if not self._items:
                    return
                item = self._items.popleft()
            try:
                item.sink.deliver(item.alert)
            except Exception as exc:  # a sink must not take the dispatcher down
                with self._changed:
                    self._count(failed=1)
                log.warning(
                    "alert_delivery_failed",
                    alert=item.alert.name,
                    state=item.alert.state.value,
                    sink=item.sink_name,
                    error=redact(str(exc) or type(exc).__name__),
                )
            else:
                with self._changed:
                    self._count(delivered=1)
            finally:
                with self._changed:
                    self._unfinished -= 1
                    self._changed.notify_all()

    def _count(self, *, delivered: int = 0, failed: int = 0, dropped: int = 0) -> None:
        c = self._counts
        self._counts = DeliveryCounts(
            c.delivered + delivered, c.failed + failed, c.dropped + dropped
        )

    @property
    def counts(self) -> DeliveryCounts:
        with self._changed:
            return self._counts

    def flush(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._unfinished == 0, timeout)

    def close(self, timeout: float) -> bool:
        """Deliver what is queued, then stop the thread; False if it is still busy at timeout."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()


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
        self._dispatcher = _Dispatcher(capacity)

    def evaluate(self, snapshot: Mapping[str, float]) -> list[AlertTransition]:
        """Advance every rule on ``snapshot``; return the moves made and queue notifications."""
        with self._lock:
            now = self._clock.now()
            moves = [m for rule in self.config.rules for m in self._advance(rule, snapshot, now)]
        for move in moves:
            if move.notifies:
                for sink_name in self._rules[move.name].sinks:
                    self._dispatcher.submit(_Delivery(sink_name, self._sinks[sink_name], move))
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
