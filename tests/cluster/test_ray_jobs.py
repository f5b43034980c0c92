"""Jobs whose workers run on Ray: the daemon keeps the store, a killed worker is a crash,
and the job resumes on a new actor from its last checkpoint."""

from __future__ import annotations

import json
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from e2e.conftest import THREE_STEPS

from cluster.conftest import ray_tree
from runtime.testing.daemon_thread import running_daemon, settings_in

pytestmark = pytest.mark.ray
WAIT_S = 120.0


def test_a_ray_killed_worker_is_seen_as_a_crash_and_its_job_resumes_without_rerunning_steps(
    tmp_path: Path, local_ray: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("ELX_MOCK_LATENCY_MS", "300")  # the provider pools read the process's
    monkeypatch.setenv("ELX_MOCK_CALL_LOG", str(calls))
    settings = settings_in(tmp_path)
    pipeline = tmp_path / "three.yaml"
    pipeline.write_text(textwrap.dedent(THREE_STEPS))
    with running_daemon(settings, ray_tree(tmp_path)) as context:
        first_done = threading.Event()
        crashed = threading.Event()

        def on_job(event: dict[str, Any]) -> None:
            if event.get("event") == "step_finished" and event.get("step") == "one":
                first_done.set()

        def on_tree(event: dict[str, Any]) -> None:
            if event.get("event") == "child_exited" and event.get("reason") == "crash":
                crashed.set()

        context.jobs.add_listener(on_job)
        context.tree_listeners.append(on_tree)
        job = context.jobs.submit(str(pipeline), {"n": 1}).id
        assert first_done.wait(WAIT_S), "the first step never finished"
        worker = local_ray.get_actor(f"root/pipelines/job-{job}/worker#1", namespace="elexirion")
        killed = time.monotonic()
        local_ray.kill(worker)
        assert crashed.wait(WAIT_S)
        seen_after = time.monotonic() - killed
        final = context.jobs.wait_future(job, WAIT_S).result(WAIT_S)
        assert final["status"] == "completed", final
        meta = context.store.get_job(job).meta
    assert seen_after < 2.0, f"the crash was seen {seen_after:.2f} s after ray.kill"
    assert meta["ray"]["pid"] > 0
    steps = [json.loads(line)["step"] for line in calls.read_text().splitlines()]
    assert steps.count("one") == 1  # checkpointed before the kill: restored, not rerun
    assert steps.count("three") == 1
    assert 1 <= steps.count("two") <= 2  # in flight when killed: it may run again


def test_the_tree_shows_where_a_ray_worker_runs(
    tmp_path: Path, local_ray: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELX_MOCK_LATENCY_MS", "2000")
    settings = settings_in(tmp_path)
    pipeline = tmp_path / "three.yaml"
    pipeline.write_text(textwrap.dedent(THREE_STEPS))
    with running_daemon(settings, ray_tree(tmp_path)) as context:
        started = threading.Event()
        context.jobs.add_listener(
            lambda e: started.set() if e.get("event") == "step_started" else None
        )
        job = context.jobs.submit(str(pipeline), {"n": 2}).id
        assert started.wait(WAIT_S)
        assert context.root is not None
        node = context.root.tree().find(f"root/pipelines/job-{job}/worker")
        detail = dict(node.detail)
        assert detail["backend"] == "ray"
        assert int(detail["pid"]) > 0 and detail["node"]
        context.jobs.cancel(job)
