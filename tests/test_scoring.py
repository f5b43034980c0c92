"""Metrics the optimizer scores answers with: each one, its options and its errors."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.config import Settings
from runtime.errors import ConfigError
from runtime.optimize.scoring import metric_from
from runtime.providers.gateway import LocalGateway
from runtime.providers.mock import MockProvider, MockRule, MockSettings


@pytest.mark.parametrize(
    ("spec", "answer", "expected", "score"),
    [
        ("exact", " Paris ", "Paris", 1.0),
        ("exact", "paris", "Paris", 0.0),
        ({"exact": {"ignore_case": True}}, "paris", "Paris", 1.0),
        ("contains", "The capital is Paris.", "paris", 1.0),
        ("contains", "Lyon", "Paris", 0.0),
        ({"regex": r"^\d{4}$"}, "2026", None, 1.0),
        ({"regex": {"pattern": "^x"}}, "y", None, 0.0),
        ({"json_schema": {"type": "object", "required": ["a"]}}, '{"a": 1}', None, 1.0),
        ({"json_schema": {"type": "object", "required": ["a"]}}, "not json", None, 0.0),
        ({"numeric": {"tolerance": 0.05}}, "about 3.14", 3.1416, 1.0),
        ({"numeric": {"tolerance": 0.001}}, "3.2", 3.1416, 0.0),
        ("numeric", "no number", 3, 0.0),
    ],
)
def test_each_metric_scores_matches_and_misses(
    spec: Any, answer: Any, expected: Any, score: float
) -> None:
    assert metric_from(spec).score(answer, expected) == score


def test_an_llm_judge_grades_through_the_gateway_and_passes_at_its_threshold() -> None:
    settings = Settings.from_env({})
    mock = MockProvider(
        MockSettings(
            script=(MockRule(match="Grade the answer", response={"score": 8, "reason": "ok"}),)
        )
    )
    gateway = LocalGateway({"mock": mock}, settings)
    judge = metric_from(
        {"llm_judge": {"rubric": "names the capital", "provider": "mock", "threshold": 7}},
        gateway=gateway,
    )
    assert judge.score("Paris", "Paris") == 1.0
    strict = metric_from(
        {"llm_judge": {"rubric": "r", "provider": "mock", "threshold": 9}}, gateway=gateway
    )
    assert strict.score("Paris", "Paris") == 0.0
    assert mock.call_count("llm_judge") == 2


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fuzzy", "unknown metric 'fuzzy'"),
        ({"regex": "("}, "regex does not compile"),
        ({"exact": {"ignore": True}}, "bad options for exact"),
        ({"llm_judge": {"provider": "mock"}}, "needs a provider gateway"),
        ({"a": 1, "b": 2}, "a name or a mapping with one key"),
    ],
)
def test_a_bad_metric_names_the_field_and_the_problem(spec: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=f"steps.answer.metric: .*{message}"):
        metric_from(spec, where="steps.answer.metric")
