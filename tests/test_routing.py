"""Routing: rules pick the pipeline, earliest match wins, the classifier fills gaps."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.errors import ConfigError
from runtime.routing import ClassifierSpec, RouteTable, load_routes

ROUTES = Path(__file__).resolve().parents[1] / "pipelines" / "routes.yaml"


@pytest.fixture(scope="module")
def table() -> RouteTable:
    return load_routes(ROUTES)


@pytest.mark.parametrize(
    ("request_text", "pipeline"),
    [
        ("analyze runtime/", "analysis"),
        ("Please REVIEW the supervisor module", "analysis"),
        ("what are the risks of this migration?", "analysis"),
        ("refactor the store into smaller modules", "refactor"),
        ("clean up cli.py", "refactor"),
        ("generate a parser for the config", "generate"),
        ("write an analysis of the executor", "generate"),
        ("analyze, then write a summary", "analysis"),
        ("how do supervisors restart children?", "general"),
        ("the reviewer said hello", "general"),
    ],
)
def test_the_shipped_routes_send_each_request_to_the_expected_pipeline(
    table: RouteTable, request_text: str, pipeline: str
) -> None:
    assert table.decide(request_text).pipeline == pipeline


def test_a_decision_says_which_rule_matched_and_what_it_matched(table: RouteTable) -> None:
    decision = table.decide("Analyze runtime/")
    assert decision.rule == "keyword 'analyze'"
    assert decision.reason == "matched keyword 'analyze' ('Analyze') of route 'analysis'"
    assert table.decide("hello there").reason == "no rule matched; default"


def test_the_classifier_decides_only_when_no_rule_matches_and_it_is_confident() -> None:
    table = RouteTable.model_validate(
        {
            "routes": [{"pipeline": "analysis", "keywords": ["analyze"]}],
            "default": "general",
            "classifier": {"min_confidence": 0.7},
        }
    )
    asked: list[str] = []

    def classify(text: str, pipelines: list[str]) -> tuple[str, float]:
        asked.append(text)
        assert pipelines == ["analysis", "general"]
        return ("analysis", 0.9) if "risk" in text else ("analysis", 0.4)

    assert table.decide("analyze this", classify).rule == "keyword 'analyze'"
    sure = table.decide("is this risky?", classify)
    assert (sure.pipeline, sure.score) == ("analysis", 0.9)
    unsure = table.decide("hmm", classify)
    assert unsure.pipeline == "general" and "under 0.70" in unsure.reason
    assert asked == ["is this risky?", "hmm"]


def test_a_failing_classifier_falls_back_to_the_default_and_says_why() -> None:
    table = RouteTable(classifier=ClassifierSpec())

    def broken(text: str, pipelines: list[str]) -> tuple[str, float]:
        raise RuntimeError("provider down")

    decision = table.decide("anything", broken)
    assert decision.pipeline == "general" and "provider down" in decision.reason


def test_a_bad_routes_file_names_the_file_and_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "routes.yaml"
    bad.write_text("routes:\n  - pipeline: x\n    patterns: ['(unclosed']\n")
    with pytest.raises(ConfigError, match=r"routes.yaml: routes.0.patterns: .*unclosed"):
        load_routes(bad)
    bad.write_text("routes: [\n")
    with pytest.raises(ConfigError, match=r"routes.yaml:\d+:\d+: invalid YAML"):
        load_routes(bad)
    bad.write_text("routs: []\n")
    with pytest.raises(ConfigError, match="routs"):
        load_routes(bad)
