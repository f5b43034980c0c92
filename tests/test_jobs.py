"""Durable jobs in one process (no tree): submit, wait, cancel, replay and resume."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.config import Settings
from runtime.errors import ConfigError
from runtime.jobs import JobManager
from runtime.providers.gateway import LocalGateway
from runtime.providers.mock import MockProvider, MockSettings
from runtime.store import Store
from runtime.testing import GateClock

WAIT_S = 5.0

TWO_STEPS = """
workflow:
  name: two
  inputs:
    topic: {type: string}
  steps:
    - {name: first, type: llm, provider: mock, prompt: "first {{ inputs.topic }}"}
    - {name: second, type: llm, provider: mock, prompt: "second {{ inputs.topic }}"}
"""


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    path = tmp_path / "two.yaml"
    path.write_text(textwrap.dedent(TWO_STEPS))
    return path


@pytest.fixture
def clock() -> GateClock:
    return GateClock()


@pytest.fixture
def mock(clock: GateClock) -> MockProvider:
    return MockProvider(MockSettings(latency_s=1.0, clock=clock))


@pytest.fixture
def manager(tmp_path: Path, mock: MockProvider, clock: GateClock) -> Iterator[JobManager]:
    settings = Settings.from_env({}).with_(state_dir=tmp_path / "state")
    settings.state_dir.mkdir()
    store = Store(settings.database)
    jobs = JobManager(store, settings, LocalGateway({"mock": mock}, settings), None)
    yield jobs
    clock.gate.set()
    assert jobs.wait_idle(WAIT_S)
    jobs.close()
    store.close()


def test_a_job_is_committed_before_submit_returns_and_waiting_gives_its_final_state(
    manager: JobManager, pipeline: Path, clock: GateClock
) -> None:
    row = manager.submit(str(pipeline), {"topic": "otp"})
    assert manager.store.get_job(row.id) is not None
    clock.gate.set()
    status = manager.wait(row.id, WAIT_S)
    assert status["status"] == "completed"


def test_a_wait_that_times_out_answers_with_the_state_now(
    manager: JobManager, pipeline: Path, clock: GateClock
) -> None:
    row = manager.submit(str(pipeline), {"topic": "otp"})
    assert clock.sleeping.wait(WAIT_S)
    future = manager.wait_future(row.id, 0.01)
    status = future.result(WAIT_S)
    assert status["status"] == "running"
    assert status["current_step"] == "first"


def test_a_cancelled_job_stays_cancelled_when_its_in_flight_call_returns(
    manager: JobManager, pipeline: Path, clock: GateClock, mock: MockProvider
) -> None:
    row = manager.submit(str(pipeline), {"topic": "otp"})
    assert clock.sleeping.wait(WAIT_S)
    waiting = manager.wait_future(row.id, WAIT_S)
    assert manager.cancel(row.id)["status"] == "cancelled"
    assert waiting.result(WAIT_S)["status"] == "cancelled"
    clock.gate.set()  # the in-flight call now returns; the executor sees the cancel
    assert manager.wait_idle(WAIT_S)
    final = manager.store.get_job(row.id)
    assert final is not None and final.status == "cancelled"
    assert mock.call_count("second") == 0


def test_a_late_listener_gets_the_jobs_events_so_far_then_the_rest_without_a_gap(
    manager: JobManager, pipeline: Path, clock: GateClock
) -> None:
    row = manager.submit(str(pipeline), {"topic": "otp"})
    assert clock.sleeping.wait(WAIT_S)
    seen: list[dict[str, Any]] = []
    remove = manager.add_listener(seen.append, replay=[row.id])
    clock.gate.set()
    manager.wait(row.id, WAIT_S)
    remove()
    statuses = [e["status"] for e in seen if e["type"] == "job"]
    assert statuses == ["accepted", "running", "completed"]
    finished = [e["step"] for e in seen if e.get("event") == "step_finished"]
    assert finished == ["first", "second"]


def test_a_listener_for_a_long_ended_job_gets_its_final_state(
    manager: JobManager, pipeline: Path, clock: GateClock
) -> None:
    clock.gate.set()
    row = manager.submit(str(pipeline), {"topic": "otp"})
    manager.wait(row.id, WAIT_S)
    manager._recent.clear()
    seen: list[dict[str, Any]] = []
    manager.add_listener(seen.append, replay=[row.id])()
    assert seen == [{"type": "job", "job": row.id, "status": "completed"}]


def test_jobs_left_running_by_a_crash_are_resumed_and_finished(
    tmp_path: Path, pipeline: Path, mock: MockProvider, clock: GateClock
) -> None:
    settings = Settings.from_env({}).with_(state_dir=tmp_path / "state")
    settings.state_dir.mkdir()
    store = Store(settings.database)
    store.create_job("abc", str(pipeline), {"topic": "otp"})
    assert store.mark_job_running("abc")
    jobs = JobManager(store, settings, LocalGateway({"mock": mock}, settings), None)
    try:
        clock.gate.set()
        assert jobs.resume_unfinished() == ["abc"]
        assert jobs.wait("abc", WAIT_S)["status"] == "completed"
    finally:
        jobs.close()
        store.close()


def test_unknown_states_and_pipelines_are_refused_with_what_exists(
    manager: JobManager,
) -> None:
    with pytest.raises(ConfigError, match="states: accepted, running"):
        manager.list_jobs("sideways")
    with pytest.raises(ConfigError, match="no pipeline 'nope'"):
        manager.submit("nope")
