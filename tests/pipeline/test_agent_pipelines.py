"""The four pipelines the routing agent sends free-text requests to: analysis, refactor,
generate and general (pipelines/*.yaml).

The agent relies on a contract: each is named after its file, takes ``request``, ``context`` and
``session``, continues a named session's earlier turns in its first LLM call, and answers with
a Markdown string from its last step. Runs use the ``harness`` fixture (mock provider, fake
clock, a state store in ``tmp_path``); the mock's call log shows the prompts it received.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Harness

from runtime.pipeline.executor import RunResult
from runtime.pipeline.loader import load_pipeline
from runtime.pipeline.models import LlmStepSpec, SessionContextPart, TestEchoStep
from runtime.providers.mock import MockRule, MockSettings

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
AGENT_PIPELINES = ("analysis", "refactor", "generate", "general")
FIRST_LLM_STEP = {"analysis": "scope", "refactor": "assess", "generate": "spec", "general": "draft"}
REQUESTS = {
    "analysis": "analyze runtime/",
    "refactor": "refactor parse_args to use a dispatch table",
    "generate": "generate a CLI parser for a todo app",
    "general": "what is a supervision tree?",
}
HEADINGS = {
    "analysis": [
        "# Analysis: analyze runtime/",
        "## Summary",
        "## Scope",
        "## Findings",
        "## Recommendations",
        "## Gaps and open questions",
        "## Next steps",
    ],
    "refactor": [
        "# Refactoring: refactor parse_args to use a dispatch table",
        "## Current state",
        "## Plan",
        "## Changes",
        "## Refactored code",
        "## Risks",
    ],
    "generate": [
        "# Generated: generate a CLI parser for a todo app",
        "## Spec",
        "## Files",
        "## Explanation",
        "## Tests",
        "## Review notes",
    ],
    "general": [
        "# what is a supervision tree?",
        "**TL;DR:**",
        "## Answer",
        "## Key points",
        "## You might also ask",
    ],
}


def pipeline_path(name: str) -> Path:
    return PIPELINES / f"{name}.yaml"


def run_agent_pipeline(harness: Harness, name: str, **inputs: Any) -> RunResult:
    """Run pipelines/<name>.yaml (an absolute path: the harness root does not apply)."""
    return harness.run(str(pipeline_path(name)), inputs)


def completed(result: RunResult) -> RunResult:
    assert result.ok, f"run {result.status}: {result.error}"
    return result


def step_result(result: RunResult, name: str) -> Any:
    return result.steps[name]["result"]


def prompts_sent(harness: Harness) -> list[dict[str, Any]]:
    log = harness.root / "mock_calls.jsonl"
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def log_calls(harness: Harness) -> None:
    harness.use_mock(MockSettings(clock=harness.clock, call_log=harness.root / "mock_calls.jsonl"))


# ---------------------------------------------------------------------------
# The contract


@pytest.mark.parametrize("name", AGENT_PIPELINES)
def test_each_pipeline_is_named_after_its_file_and_takes_request_context_and_session(
    name: str,
) -> None:
    """workflow.name is the file stem; request is required, context and session default to ""."""
    workflow = load_pipeline(pipeline_path(name)).workflow
    assert workflow.name == name
    inputs = workflow.inputs
    assert inputs["request"].type == "string"
    assert inputs["request"].required
    for optional in ("context", "session"):
        assert inputs[optional].type == "string"
        assert not inputs[optional].required
        assert inputs[optional].default == ""


@pytest.mark.parametrize("name", AGENT_PIPELINES)
def test_each_pipeline_has_three_to_five_steps_ending_in_a_templated_answer_and_no_tools(
    name: str,
) -> None:
    """The last step renders the answer; the first LLM step reads the session; no tools."""
    steps = load_pipeline(pipeline_path(name)).workflow.steps
    assert 3 <= len(steps) <= 5
    assert isinstance(steps[-1], TestEchoStep)
    llm_steps = [step for step in steps if isinstance(step, LlmStepSpec)]
    first = llm_steps[0]
    assert first.name == FIRST_LLM_STEP[name]
    assert first.prompt is not None
    sessions = [part for part in first.prompt.parts if isinstance(part, SessionContextPart)]
    assert [part.session for part in sessions] == ["{{ inputs.session }}"]
    for step in llm_steps:
        options = getattr(step, "claude_options", None)
        assert options is None or options.allowed_tools is None, f"{step.name} sets tools"


def test_the_pipelines_together_use_claude_gemini_and_the_neutral_llm_step() -> None:
    """Every pipeline mixes providers; between them they use all three call families."""
    used: set[str] = set()
    for name in AGENT_PIPELINES:
        types = {step.type for step in load_pipeline(pipeline_path(name)).workflow.steps}
        assert "claude" in types
        assert types & {"gemini", "gemini_structured", "llm"}
        used |= types
    assert {"claude", "gemini", "gemini_structured", "llm"} <= used


@pytest.mark.parametrize("name", AGENT_PIPELINES)
def test_each_pipeline_starts_with_a_comment_saying_what_it_does_and_how_to_run_it(
    name: str,
) -> None:
    """The header comment names the run command for this very file."""
    header = []
    for line in pipeline_path(name).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    assert len(header) >= 3
    assert any(f"elx run pipelines/{name}.yaml" in line for line in header)


def test_elx_validate_reports_ok_for_the_four_pipelines() -> None:
    """`elx validate` accepts every template and reference in the four files."""
    proc = elx("validate", *(str(pipeline_path(name)) for name in AGENT_PIPELINES))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("ok: ") == len(AGENT_PIPELINES)


def test_elx_run_prints_the_analysis_as_markdown_with_no_api_keys(tmp_path: Path) -> None:
    """The documented command exits 0 and prints the Markdown report on stdout."""
    proc = elx(
        "run",
        str(pipeline_path("analysis")),
        "--input",
        "request=analyze runtime/",
        "--state-dir",
        str(tmp_path / ".elexirion"),
        "--workspace",
        str(tmp_path / "workspace"),
        "--output-dir",
        str(tmp_path / "outputs"),
        env={"TEST_MODE": "mock"},  # the mock answers even where API keys are set
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# Analysis: analyze runtime/\n")
    assert "## Findings\n" in proc.stdout


def elx(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed `elx`, with only the ELX_ and TEST_MODE variables given in ``env``."""
    command = Path(sys.executable).parent / "elx"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ELX_", "TEST_MODE"))}
    environ.update(env or {})
    return subprocess.run(
        [str(command), *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd,
        timeout=60,
        check=False,
    )


# ---------------------------------------------------------------------------
# The answer


@pytest.mark.parametrize("name", AGENT_PIPELINES)
def test_each_pipeline_answers_with_markdown_headings_in_order_and_the_request(
    harness: Harness, name: str
) -> None:
    """With only the mock answering, the run completes and its result is the Markdown page."""
    result = completed(run_agent_pipeline(harness, name, request=REQUESTS[name]))
    answer = result.result
    assert isinstance(answer, str)
    assert answer == step_result(result, list(result.steps)[-1])
    assert answer.startswith("# ")
    assert REQUESTS[name] in answer
    positions = [answer.find(heading) for heading in HEADINGS[name]]
    assert -1 not in positions, f"missing: {HEADINGS[name][positions.index(-1)]}"
    assert positions == sorted(positions)
    assert set(result.providers) <= {"mock"}


def test_analysis_lists_every_finding_with_its_severity_and_every_recommendation(
    harness: Harness,
) -> None:
    """The structured assessment becomes the Findings and Recommendations sections."""
    harness.use_mock(
        MockSettings(
            clock=harness.clock,
            script=[
                MockRule(
                    step="assess",
                    response={
                        "summary": "The runtime is sound; two hot spots need attention.",
                        "findings": [
                            {
                                "title": "Lock held during I/O",
                                "severity": "high",
                                "detail": "Store.append_session_turns holds the lock on fsync.",
                            },
                            {
                                "title": "Unbounded queue",
                                "severity": "medium",
                                "detail": "jobs.py accepts jobs without a limit.",
                            },
                        ],
                        "recommendations": ["Move fsync out of the lock", "Cap the job queue"],
                    },
                )
            ],
        )
    )
    answer = completed(run_agent_pipeline(harness, "analysis", request="analyze runtime/")).result
    summary = answer.split("## Summary")[1].split("## Scope")[0]
    assert summary.strip() == "The runtime is sound; two hot spots need attention."
    findings = answer.split("## Findings")[1].split("## Recommendations")[0]
    assert findings.strip().splitlines() == [
        "- **Lock held during I/O** (high): Store.append_session_turns holds the lock on fsync.",
        "- **Unbounded queue** (medium): jobs.py accepts jobs without a limit.",
    ]
    recommendations = answer.split("## Recommendations")[1].split("## Gaps")[0]
    assert recommendations.strip().splitlines() == [
        "- Move fsync out of the lock",
        "- Cap the job queue",
    ]


def test_analysis_says_so_when_there_are_no_findings(harness: Harness) -> None:
    """An empty findings list reads "No findings." rather than an empty section."""
    harness.use_mock(
        MockSettings(
            clock=harness.clock,
            script=[
                MockRule(
                    step="assess",
                    response={
                        "summary": "Nothing to report.",
                        "findings": [],
                        "recommendations": [],
                    },
                )
            ],
        )
    )
    answer = completed(run_agent_pipeline(harness, "analysis", request="review the design")).result
    assert "## Findings\n\n- No findings.\n" in answer
    assert "## Recommendations\n\n- None.\n" in answer


def test_analysis_reports_the_second_opinion_confidence_gaps_and_next_steps(
    harness: Harness,
) -> None:
    """The llm step's structured review fills the closing sections."""
    result = completed(run_agent_pipeline(harness, "analysis", request="what are the risks of X?"))
    challenge = step_result(result, "challenge")
    assert challenge["confidence"] in ("high", "medium", "low")
    assert f"Confidence in this analysis: **{challenge['confidence']}**" in result.result
    for gap in challenge["gaps"]:
        assert f"- {gap}" in result.result
    for action in challenge["next_steps"]:
        assert f"1. {action}" in result.result


def test_refactor_shows_the_plan_the_changes_the_code_and_the_risks(harness: Harness) -> None:
    """Each planned step, change and risk is listed; the new code sits in a fenced block."""
    result = completed(
        run_agent_pipeline(
            harness,
            "refactor",
            request="clean up parse_args",
            context="def parse_args(argv):\n    ...",
        )
    )
    plan = step_result(result, "plan")
    answer = result.result
    for item in plan["plan"]:
        assert f"1. {item}" in answer
    for change in plan["changes"]:
        assert f"- **{change['location']}**: {change['change']} ({change['reason']})" in answer
    for risk in plan["risks"]:
        assert f"- {risk}" in answer.split("## Risks")[1]
    code = step_result(result, "rewrite").strip()
    assert f"## Refactored code\n\n```\n{code}\n```\n" in answer


def test_refactor_keeps_a_code_answer_that_is_already_fenced_as_it_is(harness: Harness) -> None:
    """A model that fences its own code does not get a second, broken fence around it."""
    fenced = "```python\ndef parse_args(argv):\n    return TABLE[argv[0]](argv[1:])\n```"
    harness.use_mock(
        MockSettings(clock=harness.clock, script=[MockRule(step="rewrite", response=fenced)])
    )
    answer = completed(
        run_agent_pipeline(harness, "refactor", request="refactor parse_args")
    ).result
    assert f"## Refactored code\n\n{fenced}\n\n## Risks" in answer
    assert answer.count("```") == 2


def test_generate_shows_each_file_and_test_in_a_fenced_block_with_the_explanation(
    harness: Harness,
) -> None:
    """Files and tests come with their paths and full contents; the review closes the page."""
    harness.use_mock(
        MockSettings(
            clock=harness.clock,
            script=[
                MockRule(
                    step="build",
                    response={
                        "language": "Python",
                        "files": [{"path": "todo/cli.py", "content": "import argparse\n"}],
                        "explanation": "argparse with one subcommand per action.",
                        "tests": [
                            {"path": "tests/test_cli.py", "content": "def test_add(): ...\n"}
                        ],
                    },
                ),
                MockRule(step="review", response="- No problems found."),
            ],
        )
    )
    answer = completed(
        run_agent_pipeline(harness, "generate", request="generate a CLI parser for a todo app")
    ).result
    assert "### `todo/cli.py`\n\n```python\nimport argparse\n```" in answer
    assert "## Explanation\n\nargparse with one subcommand per action." in answer
    tests = answer.split("## Tests")[1]
    assert "### `tests/test_cli.py`\n\n```python\ndef test_add(): ...\n```" in tests
    assert answer.rstrip().endswith("## Review notes\n\n- No problems found.")


def test_generate_with_the_unscripted_mock_lists_every_schema_shaped_file(
    harness: Harness,
) -> None:
    """Whatever files and tests the structured step returns, each one is on the page."""
    result = completed(
        run_agent_pipeline(harness, "generate", request="write a test for parse_args")
    )
    build = step_result(result, "build")
    assert build["files"]
    for entry in [*build["files"], *build["tests"]]:
        assert f"### `{entry['path']}`" in result.result
        assert entry["content"].strip() in result.result
    assert build["explanation"] in result.result


def test_general_gives_a_tldr_then_the_full_answer_key_points_and_follow_ups(
    harness: Harness,
) -> None:
    """The Claude answer is kept whole; Gemini's summary adds the TL;DR and the lists."""
    result = completed(
        run_agent_pipeline(harness, "general", request="what is a supervision tree?")
    )
    distilled = step_result(result, "distill")
    answer = result.result
    assert f"**TL;DR:** {distilled['tldr']}" in answer
    assert f"## Answer\n\n{step_result(result, 'draft')}" in answer
    for point in distilled["key_points"]:
        assert f"- {point}" in answer.split("## Key points")[1]
    for question in distilled["follow_ups"]:
        assert f"- {question}" in answer.split("## You might also ask")[1]


def test_a_multi_line_request_gives_a_one_line_title_and_template_syntax_stays_literal(
    harness: Harness,
) -> None:
    """User text is data: braces are not rendered, and line breaks do not split the title."""
    request = "explain {{ steps }} and {% raw %}\nin Jinja templates"
    answer = completed(run_agent_pipeline(harness, "general", request=request)).result
    assert answer.splitlines()[0] == "# explain {{ steps }} and {% raw %} in Jinja templates"


# ---------------------------------------------------------------------------
# Conversations


@pytest.mark.parametrize("name", AGENT_PIPELINES)
def test_a_named_session_puts_its_earlier_turns_into_the_first_llm_prompt(
    harness: Harness, name: str
) -> None:
    """Turns stored for the session appear, in order, in the first prompt the model sees."""
    harness.store.append_session_turns(
        "chat-42",
        [
            ("user", "Look at runtime/store.py"),
            ("assistant", "It holds the SQLite state and session turns."),
        ],
    )
    log_calls(harness)
    completed(run_agent_pipeline(harness, name, request="and what about it?", session="chat-42"))
    first = prompts_sent(harness)[0]
    assert first["step"] == FIRST_LLM_STEP[name]
    prompt = first["prompt"]
    earlier = (
        "User: Look at runtime/store.py\nAssistant: It holds the SQLite state and session turns."
    )
    assert earlier in prompt


@pytest.mark.parametrize("name", AGENT_PIPELINES)
def test_without_a_session_no_stored_turns_reach_the_prompts(harness: Harness, name: str) -> None:
    """Another session's turns stay out when the session input is empty."""
    harness.store.append_session_turns("someone-else", [("user", "SECRET-EARLIER-TURN")])
    log_calls(harness)
    completed(run_agent_pipeline(harness, name, request=REQUESTS[name]))
    calls = prompts_sent(harness)
    assert calls
    assert all("SECRET-EARLIER-TURN" not in call["prompt"] for call in calls)


@pytest.mark.parametrize("name", AGENT_PIPELINES)
def test_the_context_input_reaches_the_first_llm_prompt(harness: Harness, name: str) -> None:
    """Material passed as context (code, a design) is part of what the model reads first."""
    log_calls(harness)
    completed(
        run_agent_pipeline(
            harness, name, request=REQUESTS[name], context="class Store:  # CONTEXT-MARKER"
        )
    )
    assert "class Store:  # CONTEXT-MARKER" in prompts_sent(harness)[0]["prompt"]
