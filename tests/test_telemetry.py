"""Telemetry: emitting never blocks, events become metrics and records, Prometheus parses."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from runtime.store import Store
from runtime.telemetry import (
    BreakerChanged,
    ChildEvent,
    Escalation,
    JobChanged,
    ProviderCall,
    ProviderRetry,
    StepDone,
    Telemetry,
    from_job_event,
    from_tree_event,
)

WAIT_S = 5.0


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    t = Telemetry()
    t.start()
    yield t
    t.stop()


def test_a_flood_of_events_never_blocks_the_emitter_and_what_overflows_is_counted() -> None:
    blocked = threading.Event()
    telemetry = Telemetry(capacity=100)
    telemetry.add_sink(lambda _: blocked.wait(WAIT_S))  # a sink stuck on its first event
    telemetry.start()
    try:
        results = [telemetry.emit(ProviderRetry("mock", 1, "timeout", 0.1)) for _ in range(5000)]
        counts = telemetry.counts()
        assert results.count(False) == counts["dropped"] >= 5000 - 101
        assert telemetry.series()["elx_telemetry_dropped_total"] == counts["dropped"]
    finally:
        blocked.set()
        assert telemetry.drain(WAIT_S)
        telemetry.stop()
    assert telemetry.counts()["applied"] == results.count(True)


def test_events_become_counters_histograms_and_gauges_that_prometheus_can_parse(
    telemetry: Telemetry,
) -> None:
    for event in (
        JobChanged("j1", "completed", "demo"),
        StepDone("j1", "ask", "claude", 0.2, "completed", "anthropic", 120, 0.003, "demo"),
        ProviderCall("anthropic", 0.19, "ok", "claude-haiku-4-5", 100, 20, 0.003),
        ProviderCall("anthropic", 0.05, "error", error_kind="overloaded"),
        ProviderRetry("anthropic", 1, "overloaded", 0.5),
        BreakerChanged("anthropic", "open"),
        ChildEvent("root/providers/mock", "w0", "restarted"),
        Escalation("root/pipelines/job-j2", "worker"),
    ):
        assert telemetry.emit(event)
    assert telemetry.drain(WAIT_S)
    series = telemetry.series()
    assert series['elx_jobs_total{status="completed"}'] == 1
    assert series['elx_steps_total{outcome="completed",provider="anthropic",type="claude"}'] == 1
    assert series['elx_step_duration_seconds_count{provider="anthropic",type="claude"}'] == 1
    assert series['elx_provider_calls_total{outcome="error",provider="anthropic"}'] == 1
    assert series['elx_provider_errors_total{kind="overloaded",provider="anthropic"}'] == 1
    assert series['elx_tokens_total{direction="input",provider="anthropic"}'] == 100
    assert series['elx_cost_usd_total{provider="anthropic"}'] == pytest.approx(0.003)
    assert series['elx_breaker_state{provider="anthropic"}'] == 2
    assert series['elx_restarts_total{supervisor="root/providers/mock"}'] == 1
    assert series['elx_escalations_total{supervisor="root/pipelines/job-j2"}'] == 1
    telemetry.refresh_gauges(running=3, queued=7, rss_bytes=123)
    families = {f.name: f for f in text_string_to_metric_families(telemetry.prometheus().decode())}
    assert families["elx_jobs_running"].samples[0].value == 3
    assert families["elx_job_queue_depth"].samples[0].value == 7
    assert families["elx_process_rss_bytes"].samples[0].value == 123
    assert "elx_provider_call_duration_seconds" in families


def test_finished_steps_and_jobs_are_kept_in_the_performance_record(tmp_path: Path) -> None:
    store = Store(tmp_path / "elx.db")
    telemetry = Telemetry(store=store)
    telemetry.start()
    try:
        store.create_job("j1", str(tmp_path / "demo.yaml"), {})
        store.mark_job_running("j1")
        store.finish_job(
            "j1",
            "completed",
            result={
                "usage": {"input_tokens": 10, "output_tokens": 5, "cost_usd": 0.01},
                "providers": ["mock"],
            },
        )
        telemetry.emit(StepDone("j1", "ask", "claude", 0.2, "completed", "mock", 15, 0.01, "demo"))
        telemetry.emit(JobChanged("j1", "completed", "demo"))
        assert telemetry.drain(WAIT_S)
        runs = store.perf_runs(0.0)
        assert [(r["pipeline"], r["status"], r["tokens"], r["providers"]) for r in runs] == [
            ("demo", "completed", 15, "mock")
        ]
        steps = store.perf_steps(0.0, "demo")
        assert [(s["step"], s["provider"], s["outcome"]) for s in steps] == [
            ("ask", "mock", "completed")
        ]
        assert store.prune_perf(before=float("inf")) == 2
    finally:
        telemetry.stop()
        store.close()


def test_job_and_tree_records_translate_into_typed_events() -> None:
    step = from_job_event(
        {
            "type": "step",
            "job": "j",
            "event": "step_failed",
            "step": "s",
            "step_type": "llm",
            "duration_ms": 250.0,
            "providers": ["gemini"],
            "tokens": 7,
            "pipeline": "p",
        }
    )
    assert step == StepDone("j", "s", "llm", 0.25, "failed", "gemini", 7, 0.0, "p")
    assert from_job_event({"type": "step", "job": "j", "event": "step_started"}) is None
    assert from_tree_event(
        {"event": "child_restarted", "supervisor": "root", "child": "agent"}
    ) == ChildEvent("root", "agent", "restarted", "")
    assert from_tree_event({"event": "supervisor_escalated", "supervisor": "root/x", "child": "y"})
    assert from_tree_event({"event": "something_else"}) is None
