"""The optimization loop on the shipped example: compile, promote, answer better, roll back."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from runtime.cli import main
from runtime.config import Settings
from runtime.pipeline.executor import run_pipeline
from runtime.pipeline.loader import load_pipeline
from runtime.providers.gateway import LocalGateway
from runtime.testing.demo_mock import DemoMockProvider

EXAMPLE = Path(__file__).resolve().parents[2] / "pipelines" / "examples"


def answer(path: Path, key: str, tmp_path: Path) -> str:
    settings = Settings.from_env({}).with_(
        state_dir=tmp_path / "run-state", workspace_dir=tmp_path / "w", output_dir=tmp_path / "o"
    )
    gateway = LocalGateway({"mock": DemoMockProvider()}, settings)
    result = run_pipeline(load_pipeline(path), {"key": key}, gateway=gateway, settings=settings)
    assert result.ok, result.error
    return str(result.result)


def test_elx_optimize_improves_the_example_writes_it_back_and_rollback_undoes_it(
    tmp_path: Path,
) -> None:
    for name in ("codes.yaml", "codes.examples.jsonl"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    pipeline, state = tmp_path / "codes.yaml", str(tmp_path / "state")
    original = pipeline.read_bytes()
    assert answer(pipeline, "river:nile", tmp_path) == "UNKNOWN"  # it cannot, untaught

    runner = CliRunner()
    done = runner.invoke(
        main,
        [
            "optimize",
            "--local",
            str(pipeline),
            "--step",
            "code",
            "--provider",
            "demo",
            "--max-demos",
            "4",
            "--state-dir",
            state,
        ],
    )
    assert done.exit_code == 0, done.output
    assert "step code: 0.00 → 1.00; promoted as version 1" in done.output
    text = pipeline.read_text()
    assert "optimized:" in text and "score_after: 1.0" in text
    assert text.startswith(original.decode())  # the rest of the file, comments too, unchanged
    assert answer(pipeline, "river:nile", tmp_path) == "elin"  # taught by a river demo

    again = runner.invoke(  # the promoted prompt is what a new candidate must beat
        main,
        [
            "optimize",
            "--local",
            str(pipeline),
            "--step",
            "code",
            "--provider",
            "demo",
            "--max-demos",
            "4",
            "--state-dir",
            state,
        ],
    )
    assert "step code: 1.00 → 1.00; kept the current prompt" in again.output, again.output

    history = runner.invoke(main, ["prompts", "history", str(pipeline), "--state-dir", state])
    assert "optimized step code 0.00 → 1.00" in history.output
    undone = runner.invoke(main, ["prompts", "rollback", str(pipeline), "--state-dir", state])
    assert undone.exit_code == 0, undone.output
    assert pipeline.read_bytes() == original


def test_too_few_examples_is_a_clear_error(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE / "codes.yaml", tmp_path / "codes.yaml")
    trainset = tmp_path / "few.jsonl"
    trainset.write_text('{"inputs": {"key": "metal:tin"}, "answer": "TIN"}\n')
    done = CliRunner().invoke(
        main,
        [
            "optimize",
            "--local",
            str(tmp_path / "codes.yaml"),
            "--step",
            "code",
            "--trainset",
            str(trainset),
            "--state-dir",
            str(tmp_path / "state"),
        ],
    )
    assert done.exit_code == 2
    assert "has 1 example(s); give at least 4" in done.output


def test_the_steps_own_metric_scores_the_compile_and_is_recorded(tmp_path: Path) -> None:
    for name in ("codes.yaml", "codes.examples.jsonl"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    pipeline = tmp_path / "codes.yaml"
    pipeline.write_text(
        pipeline.read_text().replace("provider: mock\n", "provider: mock\n      metric: contains\n")
    )
    done = CliRunner().invoke(
        main,
        [
            "optimize",
            "--local",
            str(pipeline),
            "--step",
            "code",
            "--provider",
            "demo",
            "--max-demos",
            "4",
            "--state-dir",
            str(tmp_path / "state"),
        ],
    )
    assert done.exit_code == 0, done.output
    assert "metric: contains" in pipeline.read_text().split("optimized:", 1)[1]
