"""`elx daemon` with its pipeline workers on Ray, driven through `elx` like any daemon."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from e2e.conftest import THREE_STEPS, write_pipeline

from cluster.conftest import ray_tree
from runtime.testing.daemon_process import DaemonProcess, clean_env

pytestmark = [pytest.mark.ray, pytest.mark.e2e]


def test_jobs_run_on_ray_and_elx_tree_shows_where_the_worker_runs(tmp_path: Path) -> None:
    env = clean_env(
        ELX_STATE_DIR=str(tmp_path / "state"),
        PIPELINE_WORKSPACE_DIR=str(tmp_path / "workspace"),
        PIPELINE_OUTPUT_DIR=str(tmp_path / "outputs"),
        ELX_MOCK_LATENCY_MS="1500",
    )
    daemon = DaemonProcess(tmp_path / "state", env, tree=ray_tree(tmp_path))
    try:
        daemon.start()
        pipeline = write_pipeline(tmp_path, "three.yaml", THREE_STEPS)
        job = daemon.elx("submit", str(pipeline), "--input", "n=1").stdout.strip()
        with (
            daemon.client() as client,
            client.subscribe(
                "subscribe", {"jobs": [job], "tree": False}, event_timeout=120
            ) as events,
        ):
            for event in events:  # a step is running: its worker is placed
                if event.get("event") == "step_started":
                    break
            tree = daemon.elx("tree")
            assert tree.returncode == 0, tree.stderr
            flat = re.sub(r"[\s│]+", " ", tree.stdout)  # the renderer wraps long lines
            assert re.search(
                rf"worker running [^├└]*job {job}[^├└]*backend=ray node=\S+ pid=\d+", flat
            ), tree.stdout
        waited = daemon.elx("wait", job, "--timeout", "120")
        assert waited.returncode == 0, waited.stderr
        status = json.loads(daemon.elx("status", job, "--json").stdout)
        assert status["status"] == "completed" and status["meta"]["ray"]["pid"] > 0
    finally:
        daemon.kill()
