"""The agent in one process: routing, answers, sessions, fallbacks per failure class, budgets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from workers import CrashingWorker

from runtime.agent import Agent, AskRequest
from runtime.config import Settings
from runtime.jobs import JobManager
from runtime.pipeline.models import Budget
from runtime.providers.base import Provider
from runtime.providers.gateway import LocalGateway
from runtime.providers.mock import MockFailure, MockProvider, MockSettings
from runtime.routing import Route, RouteTable
from runtime.store import Store
from runtime.testing import GateClock
from runtime.testing.daemon_thread import running_daemon, settings_in

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 20.0


class House:
    """A store, jobs run inline (no tree), an agent, and the mocks it talks to."""

    def __init__(self, tmp_path: Path, providers: dict[str, Provider], env: dict[str, str]):
        self.settings = Settings.from_env(env).with_(
            state_dir=tmp_path / "state",
            workspace_dir=tmp_path / "workspace",
            output_dir=tmp_path / "outputs",
            pipeline_dirs=(ROOT / "pipelines",),
        )
        self.settings.state_dir.mkdir()
        self.store = Store(self.settings.database)
        gateway = LocalGateway(providers, self.settings)
        self.jobs = JobManager(self.store, self.settings, gateway, None)
        self.agent = Agent(self.jobs, self.store, self.settings, gateway)

    def ask(self, text: str, **kw: Any) -> dict[str, Any]:
        return self.agent.ask(AskRequest(text, **kw)).result(WAIT_S)

    def close(self) -> None:
        self.jobs.wait_idle(WAIT_S)
        self.agent.close()
        self.jobs.close()
        self.store.close()


@pytest.fixture
def make_house(tmp_path: Path) -> Iterator[Callable[..., House]]:
    made: list[House] = []

    def make(
        failures: tuple[MockFailure, ...] = (),
        providers: dict[str, Provider] | None = None,
        env: dict[str, str] | None = None,
    ) -> House:
        mock = MockProvider(MockSettings(failures=failures))
        house = House(tmp_path, {"mock": mock, **(providers or {})}, env or {})
        made.append(house)
        return house

    yield make
    for house in made:
        house.close()


def test_a_request_is_routed_run_and_answered_with_everything_a_client_needs(
    make_house: Callable[..., House],
) -> None:
    house = make_house()
    answer = house.ask("analyze runtime/")
    assert answer["status"] == "completed"
    assert answer["pipeline_used"] == "analysis"
    assert answer["response"].startswith("# Analysis: analyze runtime/")
    assert "## Findings" in answer["response"]
    assert answer["providers"] == ["mock"] and answer["tokens"] > 0
    assert answer["fallback_used"] is None and answer["error"] is None
    assert (
        answer["decision"]["reason"] == "matched keyword 'analyze' ('analyze') of route 'analysis'"
    )
    assert answer["execution_time_ms"] > 0
    job = house.jobs.get(answer["job_id"])
    assert job.meta["agent"]["decision"]["pipeline"] == "analysis"


def test_an_async_request_returns_the_accepted_job_at_once(
    make_house: Callable[..., House],
) -> None:
    house = make_house()
    answer = house.ask("write a haiku about supervisors", wait=False)
    assert answer["status"] == "accepted" and answer["pipeline_used"] == "generate"
    assert f"elx wait {answer['job_id']}" in answer["response"]
    assert house.jobs.wait(answer["job_id"], WAIT_S)["status"] == "completed"


def test_a_session_carries_the_conversation_into_the_next_request(
    make_house: Callable[..., House],
) -> None:
    house = make_house()
    for text in ("what is a supervisor?", "and a dynamic one?", "analyze the two"):
        assert house.ask(text, session="chat-1")["status"] == "completed"
    log = house.store.session_log("chat-1")
    assert [t["role"] for t in log] == ["user", "assistant"] * 3
    assert [t["pipeline"] for t in log[::2]] == ["general", "general", "analysis"]
    third = house.jobs.get(log[4]["job"])
    assert third.inputs["session"] == "chat-1"


@pytest.mark.parametrize(
    ("error", "kind", "steps"),
    [
        ("max_turns_exceeded", "simple", 1),
        ("tool_not_allowed", "no_tools", 3),
    ],
)
def test_a_failure_class_runs_its_fallback_pipeline_once_and_says_so(
    make_house: Callable[..., House], error: str, kind: str, steps: int
) -> None:
    house = make_house(failures=(MockFailure(error=error, step="draft", times=1),))  # type: ignore[arg-type]
    answer = house.ask("how do restarts work?")
    assert answer["status"] == "completed", answer["error"]
    fallback = answer["fallback_used"]
    assert fallback["kind"] == kind and fallback["failure"] == error
    assert fallback["pipeline"] == f"general_{kind}"
    failed = house.jobs.get(fallback["failed_job"])
    assert failed.status == "failed" and failed.error["kind"] == error
    saved = house.settings.state_dir / "fallbacks" / f"{failed.id}-general_{kind}.yaml"
    assert saved.exists() and "# because:" in saved.read_text()
    rerun = house.jobs.get(answer["job_id"])
    assert rerun.meta["fallback_of"] == failed.id
    assert len(rerun.result["steps"]) == steps


def test_a_provider_failure_reruns_the_pipeline_on_another_healthy_provider(
    make_house: Callable[..., House],
) -> None:
    gemini = MockProvider(MockSettings(), name="gemini")
    house = make_house(
        failures=(MockFailure(error="auth", times=100),),
        providers={"gemini": gemini},
        env={"GEMINI_API_KEY": "test-key-not-real"},
    )
    answer = house.ask("what is a breaker?")
    assert answer["status"] == "completed", answer["error"]
    assert answer["fallback_used"]["kind"] == "alternative_provider"
    assert answer["fallback_used"]["provider"] == "gemini"
    assert answer["providers"] == ["gemini"]
    assert gemini.call_count() >= 1


def test_a_timeout_runs_a_short_single_step_fallback_with_a_tight_budget(
    make_house: Callable[..., House],
) -> None:
    house = make_house(failures=(MockFailure(error="timeout", step="draft", times=1),))
    answer = house.ask("explain backoff " + "in great detail " * 400)
    assert answer["status"] == "completed", answer["error"]
    assert answer["fallback_used"]["kind"] == "short"
    rerun = house.jobs.get(answer["job_id"])
    assert len(rerun.result["steps"]) == 1


def test_when_the_fallback_fails_too_the_error_names_both_failures(
    make_house: Callable[..., House],
) -> None:
    house = make_house(
        failures=(
            MockFailure(error="max_turns_exceeded", step="draft", times=1),
            MockFailure(error="bad_request", step="answer", times=1),
        )
    )
    answer = house.ask("how do restarts work?")
    assert answer["status"] == "failed"
    message = answer["error"]["message"]
    assert "max_turns_exceeded" in message and "bad_request" in message
    assert "simple fallback failed too" in message


def test_a_failure_no_fallback_can_help_is_answered_as_it_is(
    make_house: Callable[..., House],
) -> None:
    house = make_house(failures=(MockFailure(error="bad_request", step="draft", times=1),))
    answer = house.ask("how do restarts work?")
    assert answer["status"] == "failed" and answer["fallback_used"] is None
    assert answer["error"]["kind"] == "bad_request"


def test_a_job_over_its_token_budget_stops_keeps_its_partial_results_and_calls_no_more(
    make_house: Callable[..., House],
) -> None:
    house = make_house()
    answer = house.ask("analyze runtime/", budget=Budget(max_tokens=1))
    assert answer["status"] == "budget_exceeded"
    job = house.jobs.get(answer["job_id"])
    assert job.status == "budget_exceeded"
    assert list(job.result["steps"]) == ["scope"]
    assert job.result["usage"]["calls"] == 1


def test_a_job_whose_worker_crash_loops_gets_the_pipelines_declared_fallback(
    tmp_path: Path,
) -> None:
    """The job supervisor gives up (crash_loop); the agent runs the `fallback:` pipeline."""
    (tmp_path / "steady.yaml").write_text(
        "workflow:\n  name: steady\n  inputs:\n    request: {type: string}\n"
        "  steps:\n    - {name: answer, type: claude, prompt: 'Steady: {{ inputs.request }}'}\n"
    )
    crashy = tmp_path / "crashy.yaml"
    crashy.write_text(
        "workflow:\n  name: crashy\n  fallback: steady.yaml\n  inputs:\n"
        "    request: {type: string}\n  steps:\n    - {name: never, type: claude, prompt: x}\n"
    )
    with running_daemon(settings_in(tmp_path, {}), ROOT / "supervision.yaml") as context:
        assert context.agent is not None
        agent = context.agent
        context.jobs.worker_actor = CrashingWorker  # type: ignore[assignment]
        agent.routes = RouteTable(routes=(Route(pipeline=str(crashy), keywords=("crash",)),))
        answer = agent.ask(AskRequest("crash please")).result(WAIT_S * 3)
    assert answer["status"] == "completed", answer["error"]
    assert answer["fallback_used"]["kind"] == "declared"
    assert answer["fallback_used"]["failure"] == "crash_loop"
    assert answer["fallback_used"]["pipeline"] == "steady"
    assert answer["response"].startswith("[mock]")


def test_with_a_classifier_configured_an_unmatched_request_is_classified_by_an_llm(
    make_house: Callable[..., House],
) -> None:
    house = make_house()
    house.agent.routes = RouteTable.model_validate(
        {
            "routes": [{"pipeline": "analysis", "keywords": ["analyze"]}],
            "default": "general",
            "classifier": {"provider": "mock", "min_confidence": 0.0},
        }
    )
    decision = house.agent.decide("is this design any good?")
    assert "the classifier chose" in decision.reason
    assert decision.pipeline in ("analysis", "general") and decision.score is not None
    assert decision.health == {}


def test_a_request_that_outlasts_its_timeout_is_answered_running_with_the_job_to_follow(
    tmp_path: Path,
) -> None:
    gate = GateClock()
    house = House(tmp_path, {"mock": MockProvider(MockSettings(latency_s=1.0, clock=gate))}, {})
    try:
        answer = house.agent.handle_request("how do mailboxes work?", timeout_s=0.05).result(WAIT_S)
        assert answer["status"] == "running"
        assert f"elx wait {answer['job_id']}" in answer["response"]
        gate.gate.set()
        assert house.jobs.wait(answer["job_id"], WAIT_S)["status"] == "completed"
    finally:
        gate.gate.set()
        house.close()


def test_requests_still_pending_when_the_agent_stops_are_answered_with_an_error(
    tmp_path: Path,
) -> None:
    from runtime.errors import DaemonUnavailable

    gate = GateClock()
    house = House(tmp_path, {"mock": MockProvider(MockSettings(latency_s=1.0, clock=gate))}, {})
    try:
        pending = house.agent.handle_request("how do mailboxes work?")
        assert gate.sleeping.wait(WAIT_S)
        house.agent.close()
        with pytest.raises(DaemonUnavailable, match="stopped before the answer"):
            pending.result(WAIT_S)
        assert house.agent.status()["in_flight"] == 0
    finally:
        gate.gate.set()
        house.jobs.wait_idle(WAIT_S)
        house.jobs.close()
        house.store.close()
