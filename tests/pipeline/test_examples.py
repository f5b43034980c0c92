"""The shipped examples in pipelines/examples: each runs with the mock provider and does what
its header comment says.

Runs go through ``run_pipeline`` wired as ``elx run`` wires it (settings, default gateway,
state store), in ``tmp_path``. Settings are built from an explicit environment so a
developer's ``ELX_MOCK_SCRIPT`` or ``TEST_MODE`` cannot change the outcome.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from runtime.config import Settings
from runtime.errors import ProviderTimeout
from runtime.pipeline.executor import RunResult, run_pipeline
from runtime.pipeline.loader import load_pipeline
from runtime.pipeline.registry import STEP_REGISTRY
from runtime.providers.base import LLMRequest, LLMResponse
from runtime.providers.gateway import default_gateway
from runtime.providers.mock import MockFailure, MockProvider, MockRule, MockSettings
from runtime.state_dir import open_state

EXAMPLES = Path(__file__).resolve().parents[2] / "pipelines" / "examples"
MOCK_SCRIPT = EXAMPLES / "mock_script.yaml"


def _is_pipeline(path: Path) -> bool:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return isinstance(data, dict) and "workflow" in data


def _child_pipelines() -> set[Path]:
    """Files other examples include through ``pipeline_file``: not meant to run alone."""
    children: set[Path] = set()
    for path in EXAMPLES.glob("*.yaml"):
        if not _is_pipeline(path):
            continue
        for step in _raw_steps(yaml.safe_load(path.read_text(encoding="utf-8"))):
            target = step.get("pipeline_file")
            if isinstance(target, str):
                children.add((path.parent / target).resolve())
    return children


def _runnable_examples() -> list[Path]:
    children = _child_pipelines()
    return sorted(
        path
        for path in EXAMPLES.glob("*.yaml")
        if _is_pipeline(path) and path.resolve() not in children
    )


def _raw_steps(node: Any) -> Iterator[dict[str, Any]]:
    """Every step mapping (it has a ``name`` and a ``type``) anywhere in a YAML document."""
    if isinstance(node, dict):
        if isinstance(node.get("name"), str) and isinstance(node.get("type"), str):
            yield node
        for value in node.values():
            yield from _raw_steps(value)
    elif isinstance(node, list):
        for value in node:
            yield from _raw_steps(value)


def run_example(
    tmp_path: Path,
    name: str,
    inputs: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    mock: Any = None,
) -> RunResult:
    """Run ``pipelines/examples/<name>`` the way `elx run` does, inside ``tmp_path``."""
    workspace = tmp_path / "workspace"
    settings = Settings.from_env(dict(environ or {})).with_(
        state_dir=tmp_path / ".elexirion",
        workspace_dir=workspace,
        # Inside the workspace, so file_ops can reach what output_to_file writes.
        output_dir=workspace / "reports",
    )
    store = open_state(settings)
    try:
        return run_pipeline(
            load_pipeline(EXAMPLES / name),
            dict(inputs or {}),
            gateway=default_gateway(settings, mock),
            settings=settings,
            store=store,
        )
    finally:
        store.close()


def completed(result: RunResult) -> RunResult:
    assert result.ok, f"run {result.status}: {result.error}"
    return result


def step_result(result: RunResult, name: str) -> Any:
    return result.steps[name]["result"]


# ---------------------------------------------------------------------------
# Every example


@pytest.mark.parametrize("path", _runnable_examples(), ids=lambda p: p.name)
def test_example_runs_to_completion_with_the_mock_provider(path: Path, tmp_path: Path) -> None:
    """Each runnable example completes with no API keys, only the mock answering."""
    result = completed(run_example(tmp_path, path.name))
    assert set(result.providers) <= {"mock"}
    assert result.steps


@pytest.mark.parametrize(
    "path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name
)  # the mock script included
def test_example_file_starts_with_a_comment_saying_what_it_shows_and_how_to_run_it(
    path: Path,
) -> None:
    """The first lines of every example are a comment that includes a command to run it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    assert len(header) >= 2, f"{path.name} needs a header comment"
    assert any("elx run" in line for line in header), f"{path.name}: say how to run it"


def test_every_registered_step_type_is_used_by_some_example() -> None:
    """The examples together cover every step type the registry knows."""
    used: set[str] = set()
    for path in EXAMPLES.glob("*.yaml"):
        if _is_pipeline(path):
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
            used |= {step["type"] for step in _raw_steps(document)}
    missing = set(STEP_REGISTRY.names()) - used
    assert not missing, f"no example uses: {sorted(missing)}"


def test_elx_validate_accepts_every_example_pipeline() -> None:
    """`elx validate` reports ok for every pipeline file, child pipelines included."""
    files = sorted(str(p) for p in EXAMPLES.glob("*.yaml") if _is_pipeline(p))
    proc = _elx("validate", *files)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("ok: ") == len(files)


def test_elx_run_console_script_runs_the_pipeline_ex_example_with_the_mock_script(
    tmp_path: Path,
) -> None:
    """The installed `elx` runs an example end to end, reading ELX_MOCK_SCRIPT, and exits 0."""
    proc = _elx(
        "run",
        str(EXAMPLES / "pipeline_ex_review.yaml"),
        "--state-dir",
        str(tmp_path / ".elexirion"),
        "--workspace",
        str(tmp_path / "workspace"),
        "--output-dir",
        str(tmp_path / "outputs"),
        env={"ELX_MOCK_SCRIPT": str(MOCK_SCRIPT)},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Approved with two small follow-ups." in proc.stdout
    assert "completed" in proc.stderr
    assert "- approve (claude)" not in proc.stderr  # the approval path ran
    assert "- request_changes (claude) skipped" in proc.stderr
    assert (tmp_path / "outputs" / "review.md").is_file()


def _elx(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    elx = Path(sys.executable).parent / "elx"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ELX_", "TEST_MODE"))}
    environ.update(env or {})
    return subprocess.run(
        [str(elx), *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd,
        timeout=60,
        check=False,
    )


# ---------------------------------------------------------------------------
# demo.yaml


def test_demo_guards_a_step_with_a_condition_and_loops_over_a_variable(tmp_path: Path) -> None:
    """The demo's condition holds for any schema-valid score and its loop reviews each file."""
    result = completed(run_example(tmp_path, "demo.yaml", {"topic": "actor models"}))
    score = step_result(result, "score")
    assert 1 <= score["score"] <= 10
    assert step_result(result, "praise") == f"score was {score['score']}"
    assert step_result(result, "each")["results"] == [
        "reviewed a.py (0/3)",
        "reviewed b.py (1/3)",
        "reviewed c.py (2/3)",
    ]
    assert result.usage["calls"] == 2


# ---------------------------------------------------------------------------
# claude_family.yaml


def test_claude_family_runs_each_claude_step_type_with_its_own_behaviour(tmp_path: Path) -> None:
    """Preset, session history, extraction, batch and parallel results all show up."""
    result = completed(run_example(tmp_path, "claude_family.yaml"))
    steps = result.steps
    assert steps["risks"]["meta"]["preset"] == "analysis"
    assert steps["discuss_design"]["meta"]["session_turns"] == 1
    assert steps["discuss_tests"]["meta"]["session_turns"] == 2
    checklist = step_result(result, "checklist")
    assert {"key_points", "recommendations", "code_blocks", "metadata"} <= set(checklist)
    batch = step_result(result, "per_file")
    assert [t["task_id"] for t in batch["batch_results"]] == ["client", "backoff", "tests"]
    assert batch["successful_tasks"] == 3
    assert "## backoff" in batch["text"]
    saved = tmp_path / "workspace" / "reports" / "reviews" / "tests.md"
    assert saved.read_text(encoding="utf-8") == batch["batch_results"][2]["result"]
    parallel = step_result(result, "perspectives")
    assert sorted(parallel["individual_results"]) == ["operability", "performance", "security"]
    assert step_result(result, "verdict").startswith("3/3 files reviewed, 3 perspectives")


def test_claude_robust_falls_back_to_its_emergency_response_when_the_provider_keeps_failing(
    tmp_path: Path,
) -> None:
    """Under an injected overload the robust step retries, then answers with its fallback."""
    failing = MockProvider(
        MockSettings(failures=[MockFailure(step="release_note", error="overloaded", times=100)])
    )
    result = completed(run_example(tmp_path, "claude_family.yaml", mock=failing))
    note = result.steps["release_note"]
    assert note["result"] == "Release note unavailable; see the change description."
    assert note["meta"]["fallback_type"] == "emergency_response"
    assert len(note["meta"]["error_history"]) == 3  # the first try and max_retries: 2
    assert failing.call_count("release_note") == 3


# ---------------------------------------------------------------------------
# gemini_family.yaml

_GEMINI_SOURCE = yaml.safe_load((EXAMPLES / "gemini_family.yaml").read_text(encoding="utf-8"))
_GEMINI_STEPS = {s["name"]: s for s in _GEMINI_SOURCE["workflow"]["steps"]}


def test_gemini_family_returns_a_function_call_and_schema_valid_json(tmp_path: Path) -> None:
    """The gemini step calls route_ticket; the structured steps satisfy their schemas."""
    result = completed(run_example(tmp_path, "gemini_family.yaml"))
    route = step_result(result, "route")
    [call] = route["function_calls"]
    assert call["name"] == "route_ticket"
    route_schema = _GEMINI_SOURCE["workflow"]["gemini_functions"]["route_ticket"]["parameters"]
    jsonschema.validate(call["arguments"], route_schema)
    for name in ("classify", "reply"):
        jsonschema.validate(step_result(result, name), _GEMINI_STEPS[name]["schema"])
    triage = step_result(result, "triage")
    assert triage["team"] == call["arguments"]["team"]
    assert triage["severity"] == step_result(result, "classify")["severity"]


def test_gemini_instructor_re_asks_until_the_answer_fits_its_schema(tmp_path: Path) -> None:
    """A first answer that breaks the schema is rejected and the step asks again."""
    mock = MockProvider(
        MockSettings(
            script=[
                MockRule(match="Draft a reply", step="reply", response={"subject": "Hi"}),
                MockRule(
                    match="previous answer was rejected",
                    step="reply",
                    response={
                        "subject": "Your checkout issue",
                        "body": "We found the cause and a fix ships today.",
                        "needs_followup": False,
                    },
                ),
            ]
        )
    )
    result = completed(run_example(tmp_path, "gemini_family.yaml", mock=mock))
    assert step_result(result, "reply")["subject"] == "Your checkout issue"
    assert result.steps["reply"]["meta"]["reasks"] == 1
    assert mock.call_count("reply") == 2


# ---------------------------------------------------------------------------
# llm_neutral.yaml


def test_llm_step_returns_json_that_satisfies_its_output_schema(tmp_path: Path) -> None:
    """format: json gives parsed data; schema gives the requested shape."""
    result = completed(run_example(tmp_path, "llm_neutral.yaml"))
    facts = step_result(result, "facts")
    assert isinstance(facts["key_points"], list)
    assert facts["key_points"]
    assert set(step_result(result, "metrics")) == {"revenue_musd", "growth_percent", "new_offices"}
    assert isinstance(step_result(result, "tldr"), str)
    assert result.steps["tldr"]["meta"]["provider"] == "mock"
    assert f"({len(facts['key_points'])} facts" in step_result(result, "report")


def test_llm_step_fails_as_invalid_output_when_the_answer_breaks_its_output_schema(
    tmp_path: Path,
) -> None:
    """An answer without the required key_points fails the run with invalid_output."""
    mock = MockProvider(
        MockSettings(script=[MockRule(step="facts", response={"summary": "only this"})])
    )
    result = run_example(tmp_path, "llm_neutral.yaml", mock=mock)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["kind"] == "invalid_output"
    assert "key_points" in result.error["message"]


# ---------------------------------------------------------------------------
# control_flow.yaml


def test_sequential_loop_skips_with_continue_condition_and_stops_at_break_condition(
    tmp_path: Path,
) -> None:
    """legacy-cron is skipped, billing breaks the loop, search is never visited."""
    result = completed(run_example(tmp_path, "control_flow.yaml"))
    loop = step_result(result, "health_checks")
    visited = [it["item"]["name"] for it in loop["iterations"]]
    assert visited == ["api", "worker", "legacy-cron", "billing"]
    assert [it.get("skipped", False) for it in loop["iterations"]] == [False, False, True, False]
    assert loop["results"][-1] == "4/5 billing ok"
    assert loop["completed_items"] == 3


def test_parallel_loop_visits_every_item_in_order(tmp_path: Path) -> None:
    """All four changelog entries are polished and the results keep the input order."""
    result = completed(run_example(tmp_path, "control_flow.yaml"))
    loop = step_result(result, "polish_changelog")
    entries = ["fix login redirect", "faster search", "drop py3.10", "new billing API"]
    assert [it["item"] for it in loop["iterations"]] == entries
    assert loop["completed_items"] == 4
    for entry, text in zip(entries, loop["results"], strict=True):
        assert entry in text


class _GatedMock:
    """The mock, except that one prompt waits until another prompt has been asked."""

    name = "mock"

    def __init__(self, waits_for: str, blocked: str) -> None:
        self._inner = MockProvider()
        self._waits_for = waits_for
        self._blocked = blocked
        self._arrived = threading.Event()

    def complete(self, request: LLMRequest) -> LLMResponse:
        if self._waits_for in request.prompt:
            self._arrived.set()
        if self._blocked in request.prompt and not self._arrived.wait(5):
            raise ProviderTimeout("the later item never started", provider=self.name)
        return self._inner.complete(request)


def test_parallel_loop_starts_the_next_item_while_a_slow_one_is_still_running(
    tmp_path: Path,
) -> None:
    """With max_parallel: 2, a slow first item does not hold back the third one."""
    gated = _GatedMock(waits_for="drop py3.10", blocked="fix login redirect")
    result = completed(run_example(tmp_path, "control_flow.yaml", mock=gated))
    assert step_result(result, "polish_changelog")["completed_items"] == 4


def test_while_loop_counts_with_set_variable_until_its_condition_fails(tmp_path: Path) -> None:
    """The flaky suite reruns three times; the counter ends at three."""
    result = completed(run_example(tmp_path, "control_flow.yaml"))
    loop = step_result(result, "rerun_flaky")
    assert loop["iterations"] == 3
    assert loop["result"] == "flaky suite pass 3"
    assert step_result(result, "bump")["values"] == {"attempts": 3}


@pytest.mark.parametrize(
    ("release_type", "case", "branch_step", "text"),
    [
        ("major", "major", "major_plan", "needs two approvals"),
        ("minor", "minor", "minor_plan", "3 services checked"),
        ("patch", "patch", "patch_plan", "ship it"),
        ("hotfix", "default", "unknown_plan", "unknown release type hotfix"),
    ],
)
def test_switch_runs_the_branch_for_the_release_type(
    tmp_path: Path, release_type: str, case: str, branch_step: str, text: str
) -> None:
    """Each release type picks its case; an unknown one falls to default."""
    result = completed(run_example(tmp_path, "control_flow.yaml", {"release_type": release_type}))
    switch = step_result(result, "approval")
    assert switch["case"] == case
    assert list(switch["results"]) == [branch_step]
    assert text in switch["result"]


# ---------------------------------------------------------------------------
# nested.yaml


def test_nested_pipeline_maps_child_outputs_into_the_parent(tmp_path: Path) -> None:
    """The pipeline_file step exposes summary, tags and limit; the inline one its channel."""
    result = completed(run_example(tmp_path, "nested.yaml"))
    summary = step_result(result, "summarize")
    assert set(summary) == {"summary", "tags", "limit"}
    assert summary["limit"] == 25
    assert "at most 25 words" in summary["summary"]
    assert 2 <= len(summary["tags"]) <= 5
    announce = step_result(result, "announce")
    assert announce["channel"] == "#elexirion-operators"
    assert "Elexirion for operators" in announce["post"]
    assert step_result(result, "published") == {
        "channel": "#elexirion-operators",
        "tags": summary["tags"],
        "limit": 25,
    }
    assert "keywords" not in result.steps  # child steps stay inside the child


# ---------------------------------------------------------------------------
# data_and_files.yaml


def test_data_transforms_filter_join_sort_and_aggregate_the_orders(tmp_path: Path) -> None:
    """Only paid orders of 50 or more, richest first, with customer names; sums per region."""
    result = completed(run_example(tmp_path, "data_and_files.yaml"))
    top = step_result(result, "top_orders")["orders"]
    assert [(o["id"], o["name"], o["total"]) for o in top] == [
        (3, "Chen", 310.5),
        (5, "Dara", 199.9),
        (1, "Ada", 120.0),
    ]
    assert set(top[0]) == {"id", "name", "tier", "region", "total"}
    grouped = step_result(result, "by_region")["by_region"]
    assert {region: [o["id"] for o in orders] for region, orders in grouped.items()} == {
        "eu": [1, 4],
        "us": [3],
        "apac": [5],
    }
    assert step_result(result, "revenue")["revenue_by_region"] == {
        "eu": 162.0,
        "us": 310.5,
        "apac": 199.9,
    }
    assert step_result(result, "paid_count") == {"paid_count": 4}


def test_file_steps_leave_reports_copies_and_conversions_in_the_workspace(
    tmp_path: Path,
) -> None:
    """output_to_file writes the reports; file_ops list, copy, convert and validate them."""
    result = completed(run_example(tmp_path, "data_and_files.yaml"))
    workspace = tmp_path / "workspace"
    listed = [entry["path"] for entry in step_result(result, "reports")]
    assert listed == ["reports/revenue.json", "reports/top_orders.json"]
    archived = json.loads((workspace / "archive" / "top_orders.json").read_text(encoding="utf-8"))
    assert archived == step_result(result, "top_orders")["orders"]
    with (workspace / "exports" / "top_orders.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["name"] for row in rows] == ["Chen", "Dara", "Ada"]
    revenue = yaml.safe_load((workspace / "exports" / "revenue.yaml").read_text(encoding="utf-8"))
    assert revenue == {"revenue_by_region": {"eu": 162.0, "us": 310.5, "apac": 199.9}}
    assert step_result(result, "check")["valid"] is True


# ---------------------------------------------------------------------------
# error_handling.yaml


def test_failed_steps_run_their_handlers_and_the_pipeline_continues(tmp_path: Path) -> None:
    """Both failing steps are recorded as failed, their handlers log an incident each."""
    result = completed(run_example(tmp_path, "error_handling.yaml"))
    assert result.steps["legacy_feed"]["status"] == "failed"
    assert "HTTP 410" in result.steps["legacy_feed"]["error"]["message"]
    assert result.steps["stats"]["status"] == "failed"
    assert result.steps["stats"]["error"]["kind"] == "invalid_output"
    publish = step_result(result, "publish")
    assert publish["legacy_feed"] == "failed"
    assert publish["stats"] == "failed"
    first, second = publish["incidents"]
    assert "HTTP 410" in first
    assert second.startswith("invalid_output: ")


def test_retry_policy_recovers_from_transient_rate_limits(tmp_path: Path) -> None:
    """Two injected rate limits on the draft are retried; the third attempt succeeds."""
    flaky = MockProvider(
        MockSettings(failures=[MockFailure(step="draft", error="rate_limited", times=2)])
    )
    result = completed(run_example(tmp_path, "error_handling.yaml", mock=flaky))
    assert result.steps["draft"]["status"] == "completed"
    assert result.steps["draft"]["meta"]["attempts"] == 3
    assert flaky.call_count("draft") == 3


# ---------------------------------------------------------------------------
# pipeline_ex_review.yaml and mock_script.yaml


def test_pipeline_ex_example_takes_the_approval_path_with_the_scripted_score(
    tmp_path: Path,
) -> None:
    """With mock_script.yaml the score is 8: approve runs, request_changes is skipped."""
    result = completed(
        run_example(
            tmp_path, "pipeline_ex_review.yaml", environ={"ELX_MOCK_SCRIPT": str(MOCK_SCRIPT)}
        )
    )
    assert step_result(result, "analyze")["score"] == 8
    assert step_result(result, "approve").startswith("LGTM.")
    assert result.steps["request_changes"]["status"] == "skipped"
    loop = step_result(result, "fix_issues")
    assert [it["item"] for it in loop["iterations"]] == [
        "parse_price() accepts negative amounts",
        "no test for an empty cart",
    ]
    assert step_result(result, "count_reviews")["values"] == {"reviews_done": 1, "last_score": 8}
    review = tmp_path / "workspace" / "reports" / "review.md"
    assert review.read_text(encoding="utf-8").startswith("## Review\nApproved")


def test_pipeline_ex_example_requests_changes_when_the_score_is_low(tmp_path: Path) -> None:
    """A scripted score of 3 flips the pipeline_ex conditions to the change-request path."""
    mock = MockProvider(
        MockSettings(
            script=[
                MockRule(
                    step="analyze",
                    response={"score": 3, "summary": "Hard to follow.", "issues": ["no tests"]},
                ),
                # Answers only if the templates put the score and summary into the prompt.
                MockRule(match="Score was 3: Hard to follow.", response="Please split cart.py."),
            ]
        )
    )
    result = completed(run_example(tmp_path, "pipeline_ex_review.yaml", mock=mock))
    assert result.steps["approve"]["status"] == "skipped"
    assert result.steps["request_changes"]["status"] == "completed"
    assert step_result(result, "request_changes") == "Please split cart.py."
