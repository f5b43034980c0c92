"""A daemon killed with jobs in flight: on the next start every accepted job finishes."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from e2e.conftest import THREE_STEPS, write_pipeline
from runtime.store import Store
from runtime.testing.daemon_process import DaemonProcess

JOBS = 50
KILL_AFTER_STEPS = 70  # more than JOBS: some jobs have two steps checkpointed
EVENT_S = 60.0


def test_sigkill_with_fifty_jobs_running_then_a_restart_finishes_all_and_reruns_no_step(
    tmp_path: Path, daemon_with: Callable[..., DaemonProcess]
) -> None:
    calls = tmp_path / "calls.jsonl"
    daemon = daemon_with(ELX_MOCK_LATENCY_MS="200", ELX_MOCK_CALL_LOG=str(calls))
    pipeline = write_pipeline(tmp_path, "three.yaml", THREE_STEPS)

    with daemon.client() as client:
        with client.subscribe("subscribe", {"tree": False}, event_timeout=EVENT_S) as events:
            jobs = {
                client.call("submit", {"pipeline": str(pipeline), "inputs": {"n": n}})["id"]: n
                for n in range(JOBS)
            }
            finished = 0
            for event in events:
                if event.get("event") == "step_finished":
                    finished += 1
                    if finished == KILL_AFTER_STEPS:
                        break
        daemon.kill()  # SIGKILL: no drain, no goodbye

    store = Store.in_state_dir(daemon.state_dir)
    try:
        done_before = {job: set(store.checkpoints(job)) for job in jobs}
        unfinished = {row.id for row in store.unfinished_jobs()}
    finally:
        store.close()
    assert sum(len(steps) for steps in done_before.values()) >= KILL_AFTER_STEPS
    assert any({"one", "two"} <= steps for steps in done_before.values())
    assert unfinished, "the kill came too late to interrupt anything"

    daemon.start()
    assert f"{len(unfinished)} job(s) resumed" in daemon.ready_line
    with daemon.client(timeout=EVENT_S + 10) as client:
        for job in jobs:
            status = client.call("wait", {"job": job, "timeout": EVENT_S})
            assert status["status"] == "completed", status

    seen = Counter(
        (entry["step"], entry["prompt"])
        for entry in map(json.loads, calls.read_text().splitlines())
    )
    for job, n in jobs.items():
        for step in ("one", "two", "three"):
            ran = seen[(step, f"{step} of job {n}")]
            assert ran >= 1, f"job {job} never ran {step}"
            if step in done_before[job]:
                assert ran == 1, f"job {job}'s {step} was checkpointed yet ran {ran} times"
