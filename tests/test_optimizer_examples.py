"""Optimizer examples: kept from completed runs, deduplicated, rated, merged with curated ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime.daemon import DaemonContext
from runtime.errors import ConfigError
from runtime.optimize.examples import curated_examples
from runtime.protocol import Request
from runtime.testing.daemon_thread import running_daemon, settings_in

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 20.0

CAPITALS = """\
workflow:
  name: capitals
  inputs:
    country: {type: string}
  steps:
    - {name: answer, type: claude, prompt: "Capital of {{ inputs.country }}?"}
    - {name: echo, type: test_echo, value: "{{ steps.answer.result }}"}
"""


def call(ctx: DaemonContext, method: str, **params: Any) -> Any:
    return ctx.api(Request(1, method, params), None)


def test_completed_runs_leave_examples_that_users_rate_and_curated_ones_join(
    tmp_path: Path,
) -> None:
    pipeline = tmp_path / "capitals.yaml"
    pipeline.write_text(CAPITALS)
    curated = tmp_path / "capitals.examples.jsonl"
    curated.write_text(
        '# hand-checked answers\n{"step": "answer", "inputs": {"country": "France"},'
        ' "answer": "Paris"}\n'
    )
    with running_daemon(settings_in(tmp_path, {}), ROOT / "supervision.yaml") as ctx:
        jobs = [
            call(ctx, "submit", pipeline=str(pipeline), inputs={"country": c})["id"]
            for c in ("Peru", "Peru", "Chile")
        ]
        for job in jobs:
            assert ctx.jobs.wait(job, WAIT_S)["status"] == "completed"
        rated = call(ctx, "rate", job=jobs[2], score=0.25, note="too wordy")
        assert rated["examples"] == 1
        shown = call(ctx, "examples", pipeline=str(pipeline))
    rows = shown["examples"]
    assert shown["pipeline"] == "capitals"
    runs = [r for r in rows if r["source"] == "run"]
    by_country = {r["inputs"]["country"]: r for r in runs}  # jobs run concurrently: any order
    assert len(runs) == 2 and set(by_country) == {"Peru", "Chile"}  # the rerun collapsed
    assert all(r["step"] == "answer" and "Capital of" in r["prompt"] for r in runs)
    assert by_country["Peru"]["score"] is None
    assert by_country["Chile"]["score"] == 0.25 and by_country["Chile"]["note"] == "too wordy"
    assert [(r["source"], r["output"], r["score"]) for r in rows if r["source"] == "curated"] == [
        ("curated", "Paris", 1.0)
    ]


def test_a_bad_curated_line_names_the_file_and_line(tmp_path: Path) -> None:
    pipeline = tmp_path / "p.yaml"
    (tmp_path / "p.examples.jsonl").write_text('{"step": "a", "inputs": {}, "answer": 1}\n{oops\n')
    with pytest.raises(ConfigError, match=r"p.examples.jsonl:2: not JSON"):
        curated_examples(pipeline)


def test_well_rated_answers_become_the_compiles_trainset(tmp_path: Path) -> None:
    pipeline = tmp_path / "capitals.yaml"
    pipeline.write_text(CAPITALS)
    with running_daemon(settings_in(tmp_path, {}), ROOT / "supervision.yaml") as ctx:
        jobs = [
            call(ctx, "submit", pipeline=str(pipeline), inputs={"country": c})["id"]
            for c in ("Peru", "Chile", "Fiji")
        ]
        for job in jobs:
            assert ctx.jobs.wait(job, WAIT_S)["status"] == "completed"
        call(ctx, "rate", job=jobs[0], score=1.0)
        call(ctx, "rate", job=jobs[1], score=0.2)
        trainset = ctx.api._trainset(pipeline, "answer")
    assert trainset is not None
    lines = Path(trainset).read_text().splitlines()
    assert len(lines) == 1 and '"country": "Peru"' in lines[0]
