"""Which pipeline answers a free-text request: rules from config, an optional LLM classifier.

The routes file (``pipelines/routes.yaml`` by default) lists routes in order;
each names a pipeline and the keywords (whole words or phrases, any case) and
regular expressions that pick it. The route whose match comes *earliest* in the
request wins ("write an analysis of X" is a ``generate`` request: the verb
comes first); a tie goes to the route listed first. With no match, an optional
classifier (an LLM call with a JSON schema) may pick a route when it is
confident enough; otherwise the ``default`` pipeline answers.

``RouteTable.decide`` is pure apart from the classifier callable it is given,
so tests drive it without a daemon. Every ``Decision`` says why it was made.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from runtime.errors import ConfigError

DEFAULT_ROUTES_FILE = "routes.yaml"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Route(_Frozen):
    pipeline: str = Field(min_length=1)
    keywords: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    description: str = ""

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"pattern {pattern!r} is not a regular expression: {exc}"
                ) from None
        return patterns

    @cached_property
    def matchers(self) -> tuple[tuple[str, re.Pattern[str]], ...]:
        words = [
            (f"keyword {word!r}", re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE))
            for word in self.keywords
        ]
        return (
            *words,
            *((f"pattern {p!r}", re.compile(p, re.IGNORECASE)) for p in self.patterns),
        )


class ClassifierSpec(_Frozen):
    """An LLM that picks a route when no rule matches."""

    provider: str = "anthropic"
    model: str | None = None
    min_confidence: float = Field(default=0.6, ge=0, le=1)


class RouteTable(_Frozen):
    routes: tuple[Route, ...] = ()
    default: str = "general"
    classifier: ClassifierSpec | None = None

    @property
    def pipelines(self) -> list[str]:
        return list(dict.fromkeys([*(r.pipeline for r in self.routes), self.default]))

    def match(self, text: str) -> Decision | None:
        """The rule that matches earliest in ``text``, or None."""
        best: tuple[int, int, Route, str, str] | None = None
        for order, route in enumerate(self.routes):
            for label, regex in route.matchers:
                found = regex.search(text)
                if found is None:
                    continue
                key = (found.start(), order)
                if best is None or key < best[:2]:
                    best = (found.start(), order, route, label, found.group(0))
        if best is None:
            return None
        _, _, route, label, matched = best
        return Decision(
            pipeline=route.pipeline,
            reason=f"matched {label} ({matched!r}) of route '{route.pipeline}'",
            rule=label,
        )

    def decide(self, text: str, classify: Classifier | None = None) -> Decision:
        """The pipeline for ``text``: a rule, else a confident classifier, else the default."""
        matched = self.match(text)
        if matched is not None:
            return matched
        if self.classifier is not None and classify is not None:
            try:
                choice, confidence = classify(text, self.pipelines)
            except Exception as exc:  # a failing classifier must not fail the request
                return Decision(
                    self.default, f"no rule matched; the classifier failed ({exc}); default"
                )
            if choice in self.pipelines and confidence >= self.classifier.min_confidence:
                return Decision(
                    choice,
                    f"no rule matched; the classifier chose '{choice}' "
                    f"with confidence {confidence:.2f}",
                    score=confidence,
                )
            return Decision(
                self.default,
                f"no rule matched; the classifier's '{choice}' ({confidence:.2f}) is under "
                f"{self.classifier.min_confidence:.2f}; default",
                score=confidence,
            )
        return Decision(self.default, "no rule matched; default")


Classifier = Callable[[str, list[str]], tuple[str, float]]
"""``(text, pipelines) -> (pipeline, confidence)``."""


@dataclass(frozen=True)
class Decision:
    pipeline: str
    reason: str
    rule: str | None = None
    score: float | None = None
    health: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "reason": self.reason,
            "rule": self.rule,
            "score": self.score,
            "provider_health": dict(self.health),
        }


def load_routes(path: Path) -> RouteTable:
    """Parse a routes file; problems name the file and the field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the routes file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a routes file is a mapping with 'routes' and 'default'")
    try:
        return RouteTable.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(root)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None


def classifier_schema(pipelines: list[str]) -> dict[str, Any]:
    """The JSON schema a classifier answers with."""
    return {
        "type": "object",
        "properties": {
            "pipeline": {"type": "string", "enum": pipelines},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["pipeline", "confidence"],
    }
