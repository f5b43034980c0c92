"""OpenTelemetry traces: a span per job, per step and per provider call.

Tracing is off unless ``ELX_TRACING=1`` or a standard ``OTEL_TRACES_EXPORTER``
other than ``none`` is set. Exporters: ``console`` (stderr) and ``otlp`` (when
``opentelemetry-exporter-otlp`` is installed; otherwise a warning says what to
install); tests pass their own exporter (an ``InMemorySpanExporter``).
``OTEL_SERVICE_NAME`` names the service (default ``elexirion``).

``JobTracer`` turns the job manager's events into spans in the job's worker
thread: ``job`` (attributes: job id, pipeline, attempt) → ``step <path>`` →
``provider <name>`` (the gateway opens it around the pool call, inside the
current step span). A job started again after a crash gets a ``restarted``
event; a crash records the exception; an escalation is a ``job.escalated``
span event on a short span in the job's trace.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog

log = structlog.get_logger("elexirion.tracing")


def tracing_wanted(environ: Mapping[str, str]) -> bool:
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    return environ.get("ELX_TRACING", "") in ("1", "true", "yes") or exporter not in ("", "none")


def make_provider(environ: Mapping[str, str], exporter: Any = None) -> Any:
    """A TracerProvider for the configured exporter (or ``exporter``), or None if off."""
    if exporter is None and not tracing_wanted(environ):
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME", "elexirion")})
    provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return provider
    name = environ.get("OTEL_TRACES_EXPORTER", "console").strip().lower() or "console"
    if name == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter,
            )
        except ImportError:
            log.warning(
                "tracing_exporter_missing",
                exporter="otlp",
                hint="pip install opentelemetry-exporter-otlp; using the console exporter",
            )
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        else:
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    return provider


@dataclass
class _JobSpans:
    job: Any
    token: Any
    steps: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # path → (span, token)


class JobTracer:
    """Spans for jobs and steps from the job manager's events (in the job's thread)."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("elexirion")
        self._lock = threading.Lock()
        self._jobs: dict[str, _JobSpans] = {}
        self._contexts: dict[str, Any] = {}  # job → its span context, kept after it ends

    def job_started(self, job: str, pipeline: str, attempt: int) -> None:
        from opentelemetry import context, trace

        span = self._tracer.start_span(
            "job",
            attributes={"elx.job": job, "elx.pipeline": pipeline, "elx.attempt": attempt},
        )
        if attempt > 1:
            span.add_event("restarted", {"elx.attempt": attempt})
        token = context.attach(trace.set_span_in_context(span))
        with self._lock:
            self._jobs[job] = _JobSpans(span, token)
            self._contexts[job] = span.get_span_context()

    def step_event(self, job: str, event: Mapping[str, Any]) -> None:
        from opentelemetry import context, trace
        from opentelemetry.trace import Status, StatusCode

        with self._lock:
            spans = self._jobs.get(job)
        if spans is None:
            return
        kind, path = event.get("event"), str(event.get("step") or "")
        if kind == "step_started" and path:
            span = self._tracer.start_span(
                f"step {path}",
                attributes={"elx.step": path, "elx.step_type": event.get("step_type", "")},
            )
            token = context.attach(trace.set_span_in_context(span))
            spans.steps[path] = (span, token)
        elif kind in ("step_finished", "step_failed") and path in spans.steps:
            span, token = spans.steps.pop(path)
            providers = event.get("providers") or []
            if providers:
                span.set_attribute("elx.providers", ",".join(providers))
            span.set_attribute("elx.tokens", int(event.get("tokens") or 0))
            if kind == "step_failed":
                span.set_status(Status(StatusCode.ERROR, str(event.get("message", ""))))
            context.detach(token)
            span.end()

    def job_ended(self, job: str, status: str, error: BaseException | None = None) -> None:
        from opentelemetry import context
        from opentelemetry.trace import Status, StatusCode

        with self._lock:
            spans = self._jobs.pop(job, None)
        if spans is None:
            return
        for span, token in reversed(list(spans.steps.values())):
            context.detach(token)
            span.end()
        spans.job.set_attribute("elx.status", status)
        if error is not None:
            spans.job.record_exception(error)
            spans.job.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        elif status not in ("completed", "running"):
            spans.job.set_status(Status(StatusCode.ERROR, status))
        context.detach(spans.token)
        spans.job.end()

    def job_escalated(self, job: str, supervisor: str) -> None:
        from opentelemetry import trace

        with self._lock:
            parent = self._contexts.get(job)
        ctx = trace.set_span_in_context(trace.NonRecordingSpan(parent)) if parent else None
        span = self._tracer.start_span("job.escalation", context=ctx, attributes={"elx.job": job})
        span.add_event("escalated", {"elx.supervisor": supervisor})
        span.end()
        with self._lock:
            self._contexts.pop(job, None)

    @contextmanager
    def provider_call(self, provider: str, model: str | None) -> Iterator[Any]:
        """A ``provider <name>`` span around one call, in the current (step) context."""
        with self._tracer.start_as_current_span(
            f"provider {provider}", attributes={"elx.provider": provider, "elx.model": model or ""}
        ) as span:
            yield span

    def shutdown(self) -> None:
        with contextlib_suppress():
            self.provider.shutdown()


@contextmanager
def contextlib_suppress() -> Iterator[None]:
    try:
        yield
    except Exception as exc:  # an exporter that fails at shutdown must not stop the daemon
        log.warning("tracing_shutdown_failed", error=str(exc))


def from_environment(
    environ: Mapping[str, str] | None = None, exporter: Any = None
) -> JobTracer | None:
    """The tracer the environment asks for; ``exporter`` (tests) turns tracing on with it."""
    provider = make_provider(dict(os.environ if environ is None else environ), exporter)
    return JobTracer(provider) if provider is not None else None
