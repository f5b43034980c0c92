"""The daemon as a user drives it: `elx daemon`, then submit, wait, status, cancel, tree."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from e2e.conftest import write_pipeline
from runtime.testing.daemon_process import ROOT, DaemonProcess, tree_file

DEMO = ROOT / "pipelines" / "examples" / "demo.yaml"
EVENT_S = 30.0

FAILING = """
    workflow:
      name: fails
      steps:
        - name: broken
          type: llm
          provider: mock
          prompt: "Say hello"
          output_schema: {type: object, required: [answer]}
"""

SLOW = """
    workflow:
      name: slow
      steps:
        - {name: first, type: llm, provider: mock, prompt: "first"}
        - {name: second, type: llm, provider: mock, prompt: "second"}
"""


def test_a_submitted_job_is_waited_for_with_step_progress_and_its_status_and_result_read(
    daemon: DaemonProcess,
) -> None:
    assert "ready on" in daemon.start()
    submitted = daemon.elx("submit", str(DEMO), "--input", "topic=otp")
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip()

    waited = daemon.elx("wait", job)
    assert waited.returncode == 0, waited.stderr
    assert "reviewed c.py (2/3)" in waited.stdout
    status = daemon.elx_json("status", job)
    assert status["status"] == "completed" and status["id"] == job
    result = daemon.elx_json("result", job)
    assert result["result"]["result"]["completed_items"] == 3
    listed = daemon.elx_json("jobs", "--state", "completed")
    assert [row["id"] for row in listed] == [job]
    assert "completed" in daemon.elx("status", job).stdout


def test_submit_with_wait_shows_each_step_and_exits_one_when_the_job_fails(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    daemon.start()
    good = daemon.elx("submit", str(DEMO), "--wait")
    assert good.returncode == 0, good.stderr
    for step in ("outline", "score", "praise", "items", "each"):
        assert f"✓ {step} " in good.stderr
    bad = daemon.elx("submit", str(write_pipeline(tmp_path, "fails.yaml", FAILING)), "--wait")
    assert bad.returncode == 1
    assert "does not match its output_schema" in bad.stderr
    assert "✗ broken (llm)" in bad.stderr


def test_bad_submissions_name_the_problem_and_exit_two(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    daemon.start()
    missing = daemon.elx("submit", "no_such_pipeline")
    assert missing.returncode == 2
    assert "no pipeline 'no_such_pipeline'" in missing.stderr
    broken = write_pipeline(tmp_path, "broken.yaml", "workflow:\n  name: x\n  steps:\n    - {}\n")
    invalid = daemon.elx("submit", str(broken))
    assert invalid.returncode == 2
    assert "broken.yaml:4" in invalid.stderr
    unknown = daemon.elx("status", "nosuchjob")
    assert unknown.returncode == 2 and "no job 'nosuchjob'" in unknown.stderr
    assert daemon.elx("jobs", "--state", "sideways").returncode == 2


def test_the_socket_is_owner_only_inside_an_owner_only_directory(daemon: DaemonProcess) -> None:
    daemon.start()
    assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(daemon.state_dir.stat().st_mode) == 0o700


def test_a_second_daemon_on_the_same_state_dir_is_refused_by_the_lock(
    daemon: DaemonProcess,
) -> None:
    daemon.start()
    second = daemon.elx("daemon", "--config", str(daemon.tree))
    assert second.returncode == 2
    assert f"another daemon (pid {daemon.pid})" in second.stderr
    with daemon.client() as client:
        assert client.call("ping") == "pong"


def test_elx_without_a_daemon_exits_four_and_says_how_to_start_one(
    daemon: DaemonProcess,
) -> None:
    done = daemon.elx("jobs")
    assert done.returncode == 4
    assert "elx daemon" in done.stderr


def test_a_stale_socket_left_by_a_killed_daemon_is_replaced(daemon: DaemonProcess) -> None:
    daemon.start()
    daemon.kill()
    assert daemon.socket.exists()
    daemon.start()
    with daemon.client() as client:
        assert client.call("ping") == "pong"


def test_elx_tree_shows_a_provider_worker_restarted_after_it_is_crashed(
    daemon: DaemonProcess,
) -> None:
    daemon.start()
    with daemon.client().subscribe("subscribe", {"tree": True}, event_timeout=EVENT_S) as events:
        killed = daemon.elx("kill", "providers/mock/w3")
        assert killed.returncode == 0, killed.stderr
        for event in events:
            if event.get("event") == "child_restarted" and event.get("child") == "w3":
                break
    tree = daemon.elx_json("tree")
    mock = next(c for c in tree["children"] if c["id"] == "providers")["children"][3]
    worker = next(w for w in mock["children"] if w["id"] == "w3")
    assert worker["state"] == "running" and worker["restart_count"] == 1
    shown = daemon.elx("tree")
    assert shown.returncode == 0
    assert "1 restart" in shown.stdout


def test_a_terminated_child_makes_elx_tree_exit_three_until_it_is_restarted(
    daemon: DaemonProcess,
) -> None:
    daemon.start()
    assert daemon.elx("terminate", "agent").returncode == 0
    down = daemon.elx("tree")
    assert down.returncode == 3
    assert daemon.elx("health").returncode == 3
    assert daemon.elx("restart", "agent").returncode == 0
    assert daemon.elx("tree").returncode == 0


def test_cancel_during_a_slow_provider_call_ends_the_job_cancelled_and_it_stays_cancelled(
    tmp_path: Path, daemon_with: Callable[..., DaemonProcess]
) -> None:
    daemon = daemon_with(ELX_MOCK_LATENCY_MS="2000")
    with daemon.client() as client:
        pipeline = write_pipeline(tmp_path, "slow.yaml", SLOW)
        job = client.call("submit", {"pipeline": str(pipeline)})["id"]
        subscription = client.subscribe(
            "subscribe", {"jobs": [job], "tree": True}, event_timeout=EVENT_S
        )
        with subscription as events:
            for event in events:
                if event.get("event") == "step_started" and event.get("step") == "first":
                    break
            began = time.monotonic()
            cancelled = client.call("cancel", {"job": job})
            assert cancelled["status"] == "cancelled"
            assert time.monotonic() - began < 1.0
            assert daemon.elx_json("status", job)["status"] == "cancelled"
            for event in events:  # the worker finishes its in-flight call, then its job ends
                if event.get("event") == "child_exited" and event.get("child") == f"job-{job}":
                    break
        final = client.call("result", {"job": job})
        assert final["status"] == "cancelled"
        assert final["error"]["kind"] == "cancelled"
        assert daemon.elx("wait", job).returncode == 1


def test_sigterm_drains_then_removes_the_socket_and_the_interrupted_job_resumes(
    tmp_path: Path, daemon_with: Callable[..., DaemonProcess]
) -> None:
    calls = tmp_path / "calls.jsonl"
    daemon = daemon_with(ELX_MOCK_LATENCY_MS="300", ELX_MOCK_CALL_LOG=str(calls))
    pipeline = write_pipeline(tmp_path, "slow.yaml", SLOW)
    with daemon.client() as client:
        job = client.call("submit", {"pipeline": str(pipeline)})["id"]
        with client.subscribe("subscribe", {"jobs": [job]}, event_timeout=EVENT_S) as events:
            for event in events:
                if event.get("event") == "step_finished" and event.get("step") == "first":
                    break
    assert daemon.terminate() == 0
    assert not daemon.socket.exists()
    daemon.start()
    assert "1 job(s) resumed" in daemon.ready_line
    with daemon.client() as client:
        done = client.call("wait", {"job": job, "timeout": EVENT_S})
    assert done["status"] == "completed"
    steps = [json.loads(line)["step"] for line in calls.read_text().splitlines()]
    assert steps.count("first") == 1
    assert steps.count("second") >= 1


def test_elx_shutdown_stops_the_daemon_and_later_calls_exit_four(daemon: DaemonProcess) -> None:
    daemon.start()
    done = daemon.elx("shutdown")
    assert done.returncode == 0
    assert daemon.wait_exit() == 0
    assert not daemon.socket.exists()
    assert daemon.elx("tree").returncode == 4


def test_jobs_beyond_the_concurrency_limit_queue_and_all_finish(
    tmp_path: Path, daemon_env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    """A finishing job starts the next queued one (from outside the supervisor's thread)."""
    daemon = DaemonProcess(tmp_path / "state", daemon_env, tree=tree_file(tmp_path, max_jobs=2))
    request.addfinalizer(daemon.kill)
    daemon.start()
    pipeline = write_pipeline(tmp_path, "slow.yaml", SLOW)
    with daemon.client() as client:
        jobs = [client.call("submit", {"pipeline": str(pipeline)})["id"] for _ in range(8)]
        for job in jobs:
            assert client.call("wait", {"job": job, "timeout": EVENT_S})["status"] == "completed"
