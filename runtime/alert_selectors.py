"""Series selectors: which series of the flat metrics snapshot an alert rule reads.

A selector is a metric name, optionally with label matchers (``=``, ``!=``,
``=~``, ``!~``; regexes match the whole value), in the syntax of the series
names ``Telemetry.series()`` returns (``name{label="v",...}``)::

    elx_breaker_state{provider="anthropic"}   one provider's breaker
    elx_provider_errors_total                  every series of that metric, any labels
    elx_provider_errors_total{kind=~"overloaded|timeout"}

A label a series lacks has the value ``""``. See ``runtime.alerts`` for how
rules combine the selected series.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

__all__ = ["LabelMatcher", "MatchOp", "Selector"]


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
