"""`elx optimize` via a running daemon: compiled off to the side, crashes reported."""

from __future__ import annotations

import shutil
from pathlib import Path

from runtime.testing.daemon_process import ROOT, DaemonProcess

EXAMPLES = ROOT / "pipelines" / "examples"


def test_the_daemon_compiles_off_to_the_side_and_a_failing_compile_leaves_it_healthy(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    for name in ("codes.yaml", "codes.examples.jsonl"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    pipeline = tmp_path / "codes.yaml"
    original = pipeline.read_bytes()
    daemon.start()

    done = daemon.elx(
        "optimize",
        str(pipeline),
        "--step",
        "code",
        "--provider",
        "demo",
        "--max-demos",
        "4",
        "--wait",
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "step code: 0.00 → 1.00; promoted as version 1" in done.stdout
    assert "compiling with bootstrap" in done.stderr  # the compile's progress, relayed
    assert b"optimized:" in pipeline.read_bytes()

    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    failed = daemon.elx(
        "optimize", str(pipeline), "--step", "code", "--trainset", str(bad), "--wait"
    )
    assert failed.returncode == 1
    assert "the compile failed" in failed.stderr and "bad.jsonl:1: not JSON" in failed.stderr
    with daemon.client() as client:
        assert client.call("ping") == "pong"
        statuses = [c["status"] for c in client.call("optimizations")]
        started = client.call(  # a compile past its time limit is stopped and reported
            "optimize",
            {"pipeline": str(pipeline), "step": "code", "provider": "demo", "time_limit_s": 0.01},
        )
        assert started["status"] == "running"
        done = client.call(
            "optimize",
            {
                "pipeline": str(pipeline),
                "provider": "demo",
                "step": "code",
                "time_limit_s": 0.01,
                "wait": True,
            },
        )
        assert done["status"] == "timed_out" and "time limit" in done["error"]
    assert statuses == ["promoted", "failed"]
    assert daemon.elx("health").returncode == 0

    rolled = daemon.elx("prompts", "rollback", str(pipeline))
    assert rolled.returncode == 0, rolled.stderr
    assert pipeline.read_bytes() == original
