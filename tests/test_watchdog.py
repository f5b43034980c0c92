"""The health monitor in a running daemon: faults drive each transition, action and reversal."""

from __future__ import annotations

import contextlib
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runtime.daemon import DaemonContext
from runtime.errors import ProtocolError
from runtime.health import HealthReport
from runtime.protocol import Request
from runtime.testing.daemon_thread import running_daemon, settings_in

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 20.0

HEALTH_ARGS = (
    "      args:                # runtime/health.py HealthConfig; docs/guides/operations.md\n"
    "        interval_s: 5\n"
    "        window_s: 60\n"
    "        hysteresis: {degrade_after: 2, recover_after: 3}"
)

ONE_CALL = (
    "workflow:\n  name: one\n  steps:\n    - {name: ask, type: llm, provider: mock, prompt: hi}\n"
)


def tree_with_health(directory: Path, health: str, max_jobs: int = 64) -> Path:
    text = (ROOT / "supervision.yaml").read_text()
    assert HEALTH_ARGS in text, "supervision.yaml's health args changed; update this test"
    text = text.replace(HEALTH_ARGS, "      args:\n" + textwrap.indent(health.strip(), " " * 8))
    text = text.replace("max_children: 64", f"max_children: {max_jobs}")
    path = directory / "tree.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., DaemonContext]]:
    with contextlib.ExitStack() as stack:

        def start(health: str, max_jobs: int = 64) -> DaemonContext:
            tree = tree_with_health(tmp_path, health, max_jobs)
            context = stack.enter_context(running_daemon(settings_in(tmp_path), tree))
            assert context.watchdog is not None
            return context

        yield start


def kinds(report: HealthReport) -> set[str]:
    return {a.kind.value for a in report.actions}


def test_the_optimizer_down_degrades_health_and_static_prompts_hold_until_it_is_back(
    start_daemon: Callable[..., DaemonContext],
) -> None:
    ctx = start_daemon("interval_s: 0.05\nhysteresis: {degrade_after: 1, recover_after: 1}")
    watchdog = ctx.watchdog
    assert watchdog is not None and ctx.root is not None
    assert watchdog.wait_until(lambda r: r.status.value == "healthy", WAIT_S)
    ctx.root.terminate_child("optimizer")
    assert watchdog.wait_until(lambda r: "static_prompts" in kinds(r), WAIT_S)
    assert watchdog.modes.static_prompts and watchdog.report is not None
    assert watchdog.report.status.value == "degraded"
    ctx.root.restart_child("optimizer")
    assert watchdog.wait_until(lambda r: r.status.value == "healthy" and not r.actions, WAIT_S)
    assert not watchdog.modes.static_prompts


def test_a_critical_queue_puts_the_daemon_in_emergency_mode_until_it_drains(
    start_daemon: Callable[..., DaemonContext], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELX_MOCK_LATENCY_MS", "300")
    ctx = start_daemon(
        "interval_s: 0.05\nhysteresis: {degrade_after: 1, recover_after: 1}\n"
        "thresholds: {queue_saturation: 1.0, queue_saturation_critical: 2.0}",
        max_jobs=1,
    )
    watchdog = ctx.watchdog
    assert watchdog is not None
    pipeline = tmp_path / "one.yaml"
    pipeline.write_text(ONE_CALL)
    jobs = [ctx.jobs.submit(str(pipeline)).id for _ in range(4)]
    assert watchdog.wait_until(lambda r: "emergency_mode" in kinds(r), WAIT_S)
    with pytest.raises(ProtocolError) as refused:
        ctx.api(Request(1, "submit", {"pipeline": str(pipeline)}), None)
    assert refused.value.code == "overloaded"
    assert refused.value.data["retry_after_s"] >= 5  # type: ignore[index]
    for job in jobs:  # running and queued jobs carry on
        assert ctx.jobs.wait(job, WAIT_S)["status"] == "completed"
    assert watchdog.wait_until(lambda r: "emergency_mode" not in kinds(r), WAIT_S)
    accepted = ctx.api(Request(2, "submit", {"pipeline": str(pipeline)}), None)
    assert accepted["status"] == "accepted"


def test_an_open_breaker_sends_traffic_to_backups_fires_an_alert_and_both_end_on_recovery(
    start_daemon: Callable[..., DaemonContext], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "mock.yaml"
    # Each pool worker has its own mock, so fail by prompt, not by count.
    script.write_text("failures:\n  - {match: fail-me, error: unavailable, times: 1000}\n")
    fired = tmp_path / "alerts.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f'#!/bin/sh\necho "$ELX_ALERT_NAME $ELX_ALERT_STATE" >> {fired}\n')
    hook.chmod(0o755)
    monkeypatch.setenv("ELX_MOCK_SCRIPT", str(script))
    monkeypatch.setenv("ELX_BREAKER_THRESHOLD", "3")
    monkeypatch.setenv("ELX_BREAKER_COOLDOWN_S", "0.3")
    ctx = start_daemon(
        "interval_s: 0.05\nwindow_s: 0.5\nhysteresis: {degrade_after: 1, recover_after: 1}\n"
        "backups: {mock: [gemini]}\n"
        "alerts:\n"
        "  sinks: {hook: {type: command, argv: [" + str(hook) + "]}}\n"
        "  rules:\n"
        "    - {name: mock_breaker_open, expr: 'elx_breaker_state{provider=\"mock\"}',"
        " op: '>=', threshold: 2, sinks: [log, hook]}"
    )
    watchdog, gateway = ctx.watchdog, ctx.gateway
    assert watchdog is not None and gateway is not None
    pipeline = tmp_path / "one.yaml"
    pipeline.write_text(ONE_CALL)
    failing = tmp_path / "failing.yaml"
    failing.write_text(ONE_CALL.replace("prompt: hi", "prompt: fail-me"))
    for _ in range(3):  # three failed calls open the mock's breaker
        job = ctx.jobs.submit(str(failing)).id
        assert ctx.jobs.wait(job, WAIT_S)["status"] == "failed"
    assert watchdog.wait_until(lambda r: "use_backups" in kinds(r), WAIT_S)
    assert gateway.rerouted == {"mock": ("gemini",)}
    assert watchdog.wait_until(lambda r: bool(watchdog.to_json().get("alerts")), WAIT_S)
    assert watchdog.wait_until(lambda r: gateway.breaker_states()["mock"] != "open", WAIT_S)
    job = ctx.jobs.submit(str(pipeline)).id  # the probe call succeeds and closes the breaker
    done = ctx.jobs.wait(job, WAIT_S)
    assert done["status"] == "completed", done["error"]
    assert watchdog.wait_until(lambda r: r.status.value == "healthy" and not r.actions, WAIT_S)
    assert gateway.rerouted == {}
    assert watchdog.alerts is not None and watchdog.alerts.flush(WAIT_S)
    assert fired.read_text().splitlines() == [
        "mock_breaker_open firing",
        "mock_breaker_open resolved",
    ]


def test_an_overloaded_agent_is_bypassed_until_its_load_falls(
    start_daemon: Callable[..., DaemonContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELX_MOCK_LATENCY_MS", "400")
    ctx = start_daemon(
        "interval_s: 0.05\nhysteresis: {degrade_after: 1, recover_after: 1}\n"
        "thresholds: {agent_max_in_flight: 1}"
    )
    watchdog, agent = ctx.watchdog, ctx.agent
    assert watchdog is not None and agent is not None
    answers = [agent.handle_request(f"question {n}") for n in range(3)]
    assert watchdog.wait_until(lambda r: "bypass_agent" in kinds(r), WAIT_S)
    assert agent.bypass and watchdog.modes.bypass_agent
    assert [a.result(WAIT_S)["status"] for a in answers] == ["completed"] * 3
    assert watchdog.wait_until(lambda r: "bypass_agent" not in kinds(r), WAIT_S)
    assert not agent.bypass


def test_a_stuck_provider_pool_is_restarted_once(
    start_daemon: Callable[..., DaemonContext], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELX_MOCK_LATENCY_MS", "1500")
    ctx = start_daemon(
        "interval_s: 0.05\nhysteresis: {degrade_after: 1, recover_after: 1}\n"
        "thresholds: {pool_stuck_s: 0.3}"
    )
    watchdog, root = ctx.watchdog, ctx.root
    assert watchdog is not None and root is not None
    pool = root.supervisor("providers").supervisor("mock")
    began = time.monotonic()
    pipeline = tmp_path / "one.yaml"
    pipeline.write_text(ONE_CALL)
    for _ in range(8):  # every mock worker busy, none finishing for 1.5 s
        ctx.jobs.submit(str(pipeline))
    assert watchdog.wait_until(lambda r: "restart_pool" in kinds(r), WAIT_S)
    restarted = watchdog.wait_until(  # a pool that started after the test began
        lambda r: (pool.tree().uptime_s or 1e9) < time.monotonic() - began, WAIT_S
    )
    assert restarted and pool.tree().state == "running"
    restarts = [
        a
        for a in (watchdog.report.actions if watchdog.report else ())
        if a.kind.value == "restart_pool"
    ]
    assert len(restarts) <= 1
