"""Optimized prompts: written into the YAML as a minimal diff, versioned, rolled back exactly."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from runtime.config import Settings
from runtime.errors import ConfigError
from runtime.optimize.versions import PromptVersions
from runtime.optimize.writeback import write_optimized
from runtime.pipeline.executor import run_pipeline
from runtime.pipeline.loader import load_pipeline
from runtime.providers.gateway import LocalGateway
from runtime.providers.mock import MockProvider, MockSettings

PIPELINE = textwrap.dedent(
    """\
    # Capitals: a tiny pipeline the optimizer improves.
    workflow:
      name: capitals   # keep this comment
      inputs:
        country: {type: string}
      steps:
        # the step we optimize
        - name: answer
          type: claude
          prompt: "What is the capital of {{ inputs.country }}?"
        - name: echo
          type: test_echo
          value: "{{ steps.answer.result }}"   # unrelated, untouched
    """
)

BLOCK: dict[str, Any] = {
    "version": 1,
    "date": "2026-11-28T10:00:00+00:00",
    "instructions": "Answer with the city only.",
    "demos": [{"inputs": {"country": "France"}, "answer": "Paris"}],
    "metric": "exact",
    "score_before": 0.2,
    "score_after": 0.9,
    "dataset": "sha256:abc",
    "optimizer": "bootstrap",
    "settings": {"max_bootstrapped_demos": 4},
}


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    path = tmp_path / "capitals.yaml"
    path.write_text(PIPELINE)
    return path


def test_the_optimized_block_is_added_to_the_step_and_nothing_else_changes(pipeline: Path) -> None:
    result = write_optimized(pipeline, "answer", BLOCK)
    text = pipeline.read_text()
    for line in PIPELINE.splitlines():  # every original line, comments included, survives
        assert line in text
    added = [line for line in text.splitlines() if line not in PIPELINE.splitlines()]
    assert added[0].strip() == "optimized:"
    assert all(line.startswith("      ") for line in added)  # all inside the step
    loaded = load_pipeline(pipeline).workflow.steps[0]
    assert loaded.optimized is not None and loaded.optimized.demos[0].answer == "Paris"
    assert result.before == PIPELINE.encode()


def test_the_promoted_instructions_and_demos_reach_the_model(
    pipeline: Path, tmp_path: Path
) -> None:
    write_optimized(pipeline, "answer", BLOCK)
    log = tmp_path / "calls.jsonl"
    mock = MockProvider(MockSettings(call_log=log))
    settings = Settings.from_env({}).with_(
        state_dir=tmp_path / "state", workspace_dir=tmp_path / "w", output_dir=tmp_path / "o"
    )
    result = run_pipeline(
        load_pipeline(pipeline),
        {"country": "Peru"},
        gateway=LocalGateway({"mock": mock}, settings),
        settings=settings,
    )
    assert result.ok
    prompt = log.read_text()
    assert "Answer with the city only." in prompt
    assert "Input: country: France\\nAnswer: Paris" in prompt
    assert "What is the capital of Peru?" in prompt


def test_a_block_that_would_not_load_is_refused_and_the_file_is_untouched(
    pipeline: Path,
) -> None:
    with pytest.raises(ConfigError, match="would not load"):
        write_optimized(pipeline, "answer", {**BLOCK, "version": 0})
    assert pipeline.read_text() == PIPELINE
    with pytest.raises(ConfigError, match="no step named 'nope' \\(steps: answer, echo\\)"):
        write_optimized(pipeline, "nope", BLOCK)


def test_history_diff_and_rollback_restore_the_previous_file_byte_for_byte(
    pipeline: Path, tmp_path: Path
) -> None:
    versions = PromptVersions(tmp_path / "state")
    original = pipeline.read_bytes()
    first = write_optimized(pipeline, "answer", BLOCK)
    versions.record(pipeline, "answer", first.before, first.after, {"score_after": 0.9})
    second = write_optimized(pipeline, "answer", {**BLOCK, "version": 2, "score_after": 0.95})
    versions.record(pipeline, "answer", second.before, second.after, {"score_after": 0.95})
    assert [v.number for v in versions.history(pipeline)] == [1, 2]
    diff = versions.diff(pipeline, 2).splitlines()
    assert "-        version: 1" in diff and "+        version: 2" in diff
    changed = [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert len(changed) == 4  # version and score_after, nothing else
    versions.rollback(pipeline)  # undo version 2
    assert pipeline.read_bytes() == first.after
    versions.rollback(pipeline, to=1)  # and version 1
    assert pipeline.read_bytes() == original
    kinds = [v.kind for v in versions.history(pipeline)]
    assert kinds == ["optimized", "optimized", "rollback", "rollback"]
    with pytest.raises(ConfigError, match="no version 9"):
        versions.rollback(pipeline, to=9)


def test_a_pipeline_that_stops_loading_falls_back_to_its_last_known_good_version(
    pipeline: Path, tmp_path: Path
) -> None:
    versions = PromptVersions(tmp_path / "state")
    written = write_optimized(pipeline, "answer", BLOCK)
    versions.record(pipeline, "answer", written.before, written.after)
    pipeline.write_text(PIPELINE.replace("type: claude", "type: claud"))  # a bad hand edit
    loaded, notice = versions.load_known_good(pipeline)
    assert notice is not None and "last known good version 1" in notice
    assert loaded.workflow.steps[0].optimized is not None


def test_elx_prompts_shows_history_and_diff_and_rolls_back(pipeline: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from runtime.cli import main

    state = str(tmp_path / "state")
    versions = PromptVersions(Path(state))
    written = write_optimized(pipeline, "answer", BLOCK)
    versions.record(
        pipeline, "answer", written.before, written.after, {"score_before": 0.2, "score_after": 0.9}
    )
    runner = CliRunner()
    shown = runner.invoke(main, ["prompts", "history", str(pipeline), "--state-dir", state])
    assert shown.exit_code == 0 and "optimized step answer 0.20 → 0.90" in shown.output
    diff = runner.invoke(main, ["prompts", "diff", str(pipeline), "--state-dir", state])
    assert "+      optimized:" in diff.output
    missing = runner.invoke(
        main, ["prompts", "rollback", str(pipeline), "--to", "7", "--state-dir", state]
    )
    assert missing.exit_code == 2 and "no version 7" in missing.output
    undone = runner.invoke(main, ["prompts", "rollback", str(pipeline), "--state-dir", state])
    assert undone.exit_code == 0, undone.output
    assert pipeline.read_text() == PIPELINE


def test_a_job_whose_pipeline_file_broke_runs_its_last_known_good_version(
    pipeline: Path, tmp_path: Path
) -> None:
    from runtime.jobs import JobManager
    from runtime.store import Store

    settings = Settings.from_env({}).with_(state_dir=tmp_path / "state")
    written = write_optimized(pipeline, "answer", BLOCK)
    PromptVersions(settings.state_dir).record(pipeline, "answer", written.before, written.after)
    pipeline.write_text("workflow: [broken\n")
    settings.state_dir.mkdir(exist_ok=True)
    store = Store(settings.database)
    try:
        jobs = JobManager(store, settings, LocalGateway({}, settings), None)
        loaded = jobs._load(str(pipeline), "job1")
        jobs.close()
    finally:
        store.close()
    assert loaded.workflow.name == "capitals" and loaded.workflow.steps[0].optimized is not None
