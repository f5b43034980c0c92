"""How well an answer matches what was wanted: the metrics a step names in its YAML.

``metric:`` on a step (or ``--metric`` on the command line) is one of::

    exact                       the answer equals the expected one (trimmed; case kept)
    {exact: {ignore_case: true}}
    contains                    the expected text occurs in the answer
    {regex: "^Paris\\b"}         the answer matches the pattern
    {json_schema: {...}}        the answer (JSON) satisfies the schema
    {numeric: {tolerance: 0.01}} both are numbers within the tolerance (absolute)
    {llm_judge: {rubric: "...", provider: anthropic, model: haiku, threshold: 7}}

``Metric.score(answer, expected) -> float`` in 0..1; ``passed`` is
``score >= 0.5`` except for the judge, whose 0-10 grade passes at its
threshold. The judge asks the configured provider through the gateway, so its
calls are limited, budgeted and recorded like any other.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from runtime.errors import ConfigError

METRIC_NAMES = ("exact", "contains", "regex", "json_schema", "numeric", "llm_judge")


class Metric(Protocol):
    @property
    def name(self) -> str: ...

    def score(self, answer: Any, expected: Any) -> float: ...


@dataclass(frozen=True)
class Exact:
    ignore_case: bool = False
    name: str = "exact"

    def score(self, answer: Any, expected: Any) -> float:
        a, e = _text(answer).strip(), _text(expected).strip()
        if self.ignore_case:
            a, e = a.casefold(), e.casefold()
        return 1.0 if a == e else 0.0


@dataclass(frozen=True)
class Contains:
    ignore_case: bool = True
    name: str = "contains"

    def score(self, answer: Any, expected: Any) -> float:
        a, e = _text(answer), _text(expected).strip()
        if self.ignore_case:
            a, e = a.casefold(), e.casefold()
        return 1.0 if e and e in a else 0.0


@dataclass(frozen=True)
class Regex:
    pattern: str
    name: str = "regex"

    def score(self, answer: Any, expected: Any) -> float:
        return 1.0 if re.search(self.pattern, _text(answer)) else 0.0


@dataclass(frozen=True)
class JsonSchema:
    schema: Mapping[str, Any]
    name: str = "json_schema"

    def score(self, answer: Any, expected: Any) -> float:
        import jsonschema

        value = answer
        if isinstance(answer, str):
            try:
                value = json.loads(answer)
            except json.JSONDecodeError:
                return 0.0
        return 1.0 if jsonschema.Draft202012Validator(self.schema).is_valid(value) else 0.0


@dataclass(frozen=True)
class Numeric:
    tolerance: float = 0.0
    name: str = "numeric"

    def score(self, answer: Any, expected: Any) -> float:
        a, e = _number(answer), _number(expected)
        if a is None or e is None:
            return 0.0
        return 1.0 if math.isclose(a, e, rel_tol=0.0, abs_tol=self.tolerance) else 0.0


@dataclass(frozen=True)
class LlmJudge:
    """A rubric graded 0-10 by a provider; passes (score 1) at ``threshold``."""

    rubric: str
    gateway: Any
    provider: str = "anthropic"
    model: str | None = None
    threshold: float = 7.0
    name: str = "llm_judge"

    def grade(self, answer: Any, expected: Any) -> float:
        from runtime.providers.base import LLMRequest, OutputFormat

        prompt = (
            f"Grade the answer from 0 to 10 by this rubric.\nRubric: {self.rubric}\n\n"
            f"Expected (for reference): {_text(expected)}\n\nAnswer: {_text(answer)}\n\n"
            'Reply with JSON: {"score": <0-10>, "reason": "..."}.'
        )
        response = self.gateway.complete(
            LLMRequest(
                prompt=prompt,
                provider=self.provider,
                model=self.model,
                output_format=OutputFormat.JSON,
                schema={
                    "type": "object",
                    "properties": {
                        "score": {"type": "number", "minimum": 0, "maximum": 10},
                        "reason": {"type": "string"},
                    },
                    "required": ["score"],
                },
                step="llm_judge",
                timeout_s=60.0,
            )
        )
        data = response.data if isinstance(response.data, Mapping) else {}
        return float(data.get("score", 0.0))

    def score(self, answer: Any, expected: Any) -> float:
        return 1.0 if self.grade(answer, expected) >= self.threshold else 0.0


def metric_from(spec: Any, *, gateway: Any = None, where: str = "metric") -> Metric:
    """A metric from its YAML form (a name, or a one-key mapping of name → options)."""
    name, options = _split(spec, where)
    try:
        if name == "exact":
            return Exact(**options)
        if name == "contains":
            return Contains(**options)
        if name == "regex":
            pattern = options.get("pattern") if isinstance(options, Mapping) else options
            re.compile(str(pattern))
            return Regex(str(pattern))
        if name == "json_schema":
            schema = options.get("schema", options) if isinstance(options, Mapping) else options
            if not isinstance(schema, Mapping):
                raise ConfigError(f"{where}: json_schema needs a schema mapping")
            return JsonSchema(dict(schema))
        if name == "numeric":
            return Numeric(**options)
        if name == "llm_judge":
            if gateway is None:
                raise ConfigError(f"{where}: llm_judge needs a provider gateway")
            if "rubric" not in options:
                raise ConfigError(f"{where}: llm_judge needs a 'rubric'")
            return LlmJudge(gateway=gateway, **options)
    except TypeError as exc:
        raise ConfigError(f"{where}: bad options for {name}: {exc}") from None
    except re.error as exc:
        raise ConfigError(f"{where}: regex does not compile: {exc}") from None
    raise ConfigError(f"{where}: unknown metric '{name}' (metrics: {', '.join(METRIC_NAMES)})")


def _split(spec: Any, where: str) -> tuple[str, Any]:
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, Mapping) and len(spec) == 1:
        ((name, options),) = spec.items()
        if name == "regex" and isinstance(options, str):
            return "regex", {"pattern": options}
        return str(name), dict(options or {}) if isinstance(options, Mapping) else options
    raise ConfigError(f"{where}: a metric is a name or a mapping with one key, got {spec!r}")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    match = re.search(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", _text(value))
    return float(match.group(0)) if match else None
