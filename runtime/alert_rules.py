"""Alert rules: the ``alerts`` config section as frozen models, and the pure helpers rules use.

``load_alerts`` validates the section once, at the boundary, into an
``AlertConfig`` (rules and named sink specs); a problem raises ``ConfigError``
naming its field. ``compare``, ``aggregate`` and ``rates`` turn the series a
rule's selector picks (see ``runtime.alert_selectors``) into whether its
condition holds. See ``runtime.alerts`` for the whole design.
"""

from __future__ import annotations

import ipaddress
import math
import operator
import string
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from runtime.alert_selectors import Selector
from runtime.errors import ConfigError
from runtime.redaction import redact

__all__ = [
    "LOOPBACK_NAMES",
    "OPERATORS",
    "SINK_TYPES",
    "SUMMARY_FIELDS",
    "Aggregate",
    "AlertConfig",
    "AlertRule",
    "CommandSinkSpec",
    "LogSinkSpec",
    "Op",
    "Severity",
    "SinkSpec",
    "WebhookSinkSpec",
    "aggregate",
    "compare",
    "load_alerts",
    "rates",
]

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
SUMMARY_FIELDS = frozenset({"value", "threshold", "name"})


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
