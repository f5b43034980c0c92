"""OpenTelemetry spans: job → step → provider call; restarts and escalations as span events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from runtime.daemon import DaemonContext
from runtime.testing.daemon_thread import running_daemon, settings_in
from runtime.tracing import tracing_wanted

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 20.0


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[tuple[DaemonContext, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    tree = ROOT / "supervision.yaml"
    with running_daemon(settings_in(tmp_path, {}), tree, span_exporter=exporter) as context:
        yield context, exporter


def by_name(exporter: InMemorySpanExporter) -> dict[str, list[Any]]:
    spans: dict[str, list[Any]] = {}
    for span in exporter.get_finished_spans():
        spans.setdefault(span.name, []).append(span)
    return spans


def test_a_job_is_a_trace_of_its_steps_and_their_provider_calls(
    traced: tuple[DaemonContext, InMemorySpanExporter],
) -> None:
    context, exporter = traced
    row = context.jobs.submit(str(ROOT / "pipelines" / "examples" / "demo.yaml"))
    assert context.jobs.wait(row.id, WAIT_S)["status"] == "completed"
    spans = by_name(exporter)
    (job,) = spans["job"]
    assert job.attributes["elx.job"] == row.id and job.attributes["elx.status"] == "completed"
    outline = spans["step outline"][0]
    assert outline.parent.span_id == job.context.span_id
    assert outline.context.trace_id == job.context.trace_id
    call = spans["provider mock"][0]
    assert call.parent.span_id in {s.context.span_id for s in spans["step outline"]}
    assert {s.name for s in exporter.get_finished_spans()} >= {
        "step score",
        "step each",
        "step each[0]/review",
    }


def test_restarts_and_an_escalation_appear_as_span_events(
    traced: tuple[DaemonContext, InMemorySpanExporter], tmp_path: Path
) -> None:
    context, exporter = traced
    crashy = tmp_path / "crashy.yaml"
    crashy.write_text(
        "workflow:\n  name: crashy\n  steps:\n    - {name: never, type: claude, prompt: x}\n"
    )
    jobs = context.jobs
    original = jobs.end

    def crash_inside_the_job(begun: Any, result: Any) -> Any:
        if begun.row.pipeline.endswith("crashy.yaml"):
            raise RuntimeError("the worker dies mid-job")
        return original(begun, result)

    jobs.end = crash_inside_the_job  # type: ignore[method-assign]
    row = context.jobs.submit(str(crashy))
    assert context.jobs.wait(row.id, WAIT_S)["status"] == "failed"
    spans = by_name(exporter)
    attempts = sorted(s.attributes["elx.attempt"] for s in spans["job"])
    assert attempts[0] == 1 and len(attempts) >= 2
    restarted = [s for s in spans["job"] if any(e.name == "restarted" for e in s.events)]
    assert len(restarted) == len(attempts) - 1
    (escalation,) = spans["job.escalation"]
    assert [e.name for e in escalation.events] == ["escalated"]
    assert escalation.context.trace_id in {s.context.trace_id for s in spans["job"]}


def test_tracing_is_off_unless_asked_for() -> None:
    assert not tracing_wanted({})
    assert not tracing_wanted({"OTEL_TRACES_EXPORTER": "none"})
    assert tracing_wanted({"OTEL_TRACES_EXPORTER": "console"})
    assert tracing_wanted({"ELX_TRACING": "1"})
