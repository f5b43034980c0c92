"""Telemetry: typed events in, metrics and a performance record out, never in anyone's way.

Anything in the daemon calls ``Telemetry.emit(event)`` with one of the typed
events below. ``emit`` puts the event on a bounded queue and returns at once;
when the queue is full the event is dropped and counted
(``elx_telemetry_dropped_total``), so a flood never blocks a job, a provider
call or a supervisor. One consumer thread applies events to the metrics (a
private prometheus-client registry), records each finished step and job in
the store's performance tables, and passes events to sinks (the tracer, the
health monitor). ``prometheus()`` is the text exposition; ``series()`` is the
same numbers as a flat ``{name{labels}: value}`` mapping for alert rules;
``summary()`` is the table `elx metrics` prints.
"""

from __future__ import annotations

import bisect
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CollectorRegistry, generate_latest

if TYPE_CHECKING:
    from runtime.store import Store

log = structlog.get_logger("elexirion.telemetry")

DEFAULT_CAPACITY = 10_000
BATCH = 512  # events applied (and perf rows written in one transaction) per round
FLUSH_S = 0.05  # the longest an event waits to be applied
BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}
HEALTH_VALUES = {"healthy": 0, "degraded": 1, "critical": 2}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
FINAL_JOB_STATES = frozenset({"completed", "failed", "cancelled", "budget_exceeded"})


# -- the events -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobChanged:
    job: str
    status: str
    pipeline: str = ""


@dataclass(frozen=True, slots=True)
class StepDone:
    job: str
    step: str
    step_type: str
    duration_s: float
    outcome: str  # completed | failed
    provider: str = ""
    tokens: int = 0
    cost_usd: float = 0.0
    pipeline: str = ""


@dataclass(frozen=True, slots=True)
class ProviderCall:
    provider: str
    duration_s: float
    outcome: str  # ok | error | cancelled
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    error_kind: str = ""


@dataclass(frozen=True, slots=True)
class ProviderRetry:
    provider: str
    attempt: int
    kind: str
    delay_s: float


@dataclass(frozen=True, slots=True)
class BreakerChanged:
    provider: str
    state: str


@dataclass(frozen=True, slots=True)
class ChildEvent:
    supervisor: str
    child: str
    what: str  # started | exited | restarted | restart_failed
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Escalation:
    supervisor: str
    child: str


@dataclass(frozen=True, slots=True)
class HealthChanged:
    status: str
    issues: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OptimizerRun:
    pipeline: str
    outcome: str
    duration_s: float = 0.0


def provider_call_event(
    provider: str,
    duration_s: float,
    response: Any = None,
    error: Any = None,
    *,
    cancelled: bool = False,
) -> ProviderCall:
    """The ProviderCall for one finished call: its response (an LLMResponse), or its error."""
    if response is not None:
        return ProviderCall(
            response.provider,
            duration_s,
            "ok",
            response.model,
            response.usage.input_tokens,
            response.usage.output_tokens,
            response.cost_usd,
        )
    if cancelled:
        return ProviderCall(provider, duration_s, "cancelled")
    kind = error.kind.value if error is not None else "error"
    return ProviderCall(provider, duration_s, "error", error_kind=kind)


TelemetryEvent = (
    JobChanged
    | StepDone
    | ProviderCall
    | ProviderRetry
    | BreakerChanged
    | ChildEvent
    | Escalation
    | HealthChanged
    | OptimizerRun
)
Sink = Callable[[TelemetryEvent], None]


# -- the metrics ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Family:
    kind: str  # counter | gauge | histogram
    doc: str
    labels: tuple[str, ...] = ()


FAMILIES: Mapping[str, _Family] = {
    "elx_jobs": _Family("counter", "Jobs that reached a state", ("status",)),
    "elx_jobs_running": _Family("gauge", "Jobs running now"),
    "elx_job_queue_depth": _Family("gauge", "Jobs waiting for a slot"),
    "elx_steps": _Family("counter", "Steps finished", ("type", "provider", "outcome")),
    "elx_step_duration_seconds": _Family("histogram", "Step latency", ("type", "provider")),
    "elx_provider_calls": _Family("counter", "Provider calls", ("provider", "outcome")),
    "elx_provider_call_duration_seconds": _Family(
        "histogram", "Provider call latency", ("provider",)
    ),
    "elx_provider_errors": _Family("counter", "Provider errors by kind", ("provider", "kind")),
    "elx_provider_retries": _Family("counter", "Provider retries", ("provider",)),
    "elx_tokens": _Family("counter", "Tokens used", ("provider", "direction")),
    "elx_cost_usd": _Family("counter", "Cost in US dollars", ("provider",)),
    "elx_breaker_state": _Family("gauge", "0 closed, 1 half open, 2 open", ("provider",)),
    "elx_restarts": _Family("counter", "Child restarts by supervisor", ("supervisor",)),
    "elx_escalations": _Family("counter", "Supervisors that gave up", ("supervisor",)),
    "elx_mailbox_depth": _Family("gauge", "Deepest mailbox under each top child", ("child",)),
    "elx_process_rss_bytes": _Family("gauge", "Resident memory of the daemon"),
    "elx_health_status": _Family("gauge", "0 healthy, 1 degraded, 2 critical"),
    "elx_telemetry_dropped": _Family("counter", "Telemetry events dropped (queue full)"),
    "elx_telemetry_queue_depth": _Family("gauge", "Telemetry events waiting"),
    "elx_optimizer_runs": _Family("counter", "Optimizer runs", ("outcome",)),
}


class Metrics:
    """The daemon's metrics as plain numbers, exposed through a prometheus-client collector.

    Only the telemetry consumer thread adds to counters and histograms (gauges are set
    by whoever reads the state), so no lock is taken per event: applying an event is a
    few dict operations, which keeps telemetry's cost per step small. The registry is
    private to this object: tests and daemons never share one.
    """

    def __init__(self) -> None:
        self._values: dict[str, dict[tuple[str, ...], float]] = {n: {} for n in FAMILIES}
        self._hists: dict[str, dict[tuple[str, ...], list[float]]] = {
            n: {} for n, f in FAMILIES.items() if f.kind == "histogram"
        }
        self._bounds = LATENCY_BUCKETS
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    def inc(self, name: str, labels: tuple[str, ...] = (), amount: float = 1.0) -> None:
        values = self._values[name]
        values[labels] = values.get(labels, 0.0) + amount

    def set(self, name: str, labels: tuple[str, ...], value: float) -> None:
        self._values[name][labels] = float(value)

    def observe(self, name: str, labels: tuple[str, ...], value: float) -> None:
        hist = self._hists[name].get(labels)
        if hist is None:  # [count per bucket..., +Inf, sum]
            hist = self._hists[name][labels] = [0.0] * (len(self._bounds) + 2)
        hist[bisect.bisect_left(self._bounds, value)] += 1
        hist[-1] += value

    def apply(self, event: TelemetryEvent) -> None:
        if isinstance(event, StepDone):
            provider = event.provider or "none"
            self.inc("elx_steps", (event.step_type, provider, event.outcome))
            self.observe("elx_step_duration_seconds", (event.step_type, provider), event.duration_s)
        elif isinstance(event, ProviderCall):
            provider = event.provider
            self.inc("elx_provider_calls", (provider, event.outcome))
            self.observe("elx_provider_call_duration_seconds", (provider,), event.duration_s)
            if event.error_kind:
                self.inc("elx_provider_errors", (provider, event.error_kind))
            if event.input_tokens:
                self.inc("elx_tokens", (provider, "input"), event.input_tokens)
            if event.output_tokens:
                self.inc("elx_tokens", (provider, "output"), event.output_tokens)
            if event.cost_usd:
                self.inc("elx_cost_usd", (provider,), event.cost_usd)
        elif isinstance(event, JobChanged):
            self.inc("elx_jobs", (event.status,))
        elif isinstance(event, ProviderRetry):
            self.inc("elx_provider_retries", (event.provider,))
        elif isinstance(event, BreakerChanged):
            self.set("elx_breaker_state", (event.provider,), BREAKER_VALUES.get(event.state, 0))
        elif isinstance(event, ChildEvent):
            if event.what == "restarted":
                self.inc("elx_restarts", (event.supervisor,))
        elif isinstance(event, Escalation):
            self.inc("elx_escalations", (event.supervisor,))
        elif isinstance(event, HealthChanged):
            self.set("elx_health_status", (), HEALTH_VALUES.get(event.status, 0))
        elif isinstance(event, OptimizerRun):
            self.inc("elx_optimizer_runs", (event.outcome,))

    def families(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        for name, family in FAMILIES.items():
            labels = list(family.labels)
            if family.kind == "histogram":
                hist_family = HistogramMetricFamily(name, family.doc, labels=labels)
                for key, hist in list(self._hists[name].items()):
                    cumulative, buckets = 0.0, []
                    for bound, count in zip((*self._bounds, math.inf), hist[:-1], strict=True):
                        cumulative += count
                        buckets.append((_le(bound), cumulative))
                    hist_family.add_metric(list(key), buckets, hist[-1])
                yield hist_family
                continue
            kind = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
            metric = kind(name, family.doc, labels=labels)
            values = list(self._values[name].items())
            if not values and not labels:
                values = [((), 0.0)]
            for key, value in values:
                metric.add_metric(list(key), value)
            yield metric


class _Collector:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        return self.metrics.families()


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


# -- the pipeline of events -----------------------------------------------------------------


@dataclass
class _Counts:
    dropped: int = 0
    applied: int = 0
    sink_failures: int = 0


@dataclass
class Telemetry:
    """The event queue, its consumer thread, the metrics and the performance record."""

    store: Store | None = None
    capacity: int = DEFAULT_CAPACITY
    retention_days: float = 30.0
    metrics: Metrics = field(default_factory=Metrics)

    def __post_init__(self) -> None:
        # A deque: append and popleft are atomic, so emitting takes no lock at all.
        self._queue: deque[TelemetryEvent] = deque()
        self._counts = _Counts()
        self._lock = threading.Lock()
        self._sinks: list[Sink] = []
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0
        self._hurry = threading.Event()  # set: apply what is queued now
        self._stopping = False
        self._applied = threading.Condition(self._lock)

    # -- emitting (any thread, never blocks) -----------------------------------------------

    def emit(self, event: TelemetryEvent) -> bool:
        """Queue ``event``; False (and counted) if the queue is full. Never blocks."""
        if len(self._queue) >= self.capacity:
            with self._lock:
                self._counts.dropped += 1
                self.metrics.inc("elx_telemetry_dropped")
            return False
        self._queue.append(event)
        return True

    def add_sink(self, sink: Sink) -> Callable[[], None]:
        with self._lock:
            self._sinks.append(sink)

        def remove() -> None:
            with self._lock:
                if sink in self._sinks:
                    self._sinks.remove(sink)

        return remove

    # -- the consumer ----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="elx-telemetry", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Apply what is queued, then stop the consumer."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._hurry.set()
        thread.join(timeout)
        self._thread = None

    def drain(self, timeout: float) -> bool:
        """Wait until every event emitted so far has been applied (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._queue or self._busy:
                self._hurry.set()
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._applied.wait(min(left, FLUSH_S))
        return True

    _busy = False

    def _run(self) -> None:
        """Apply events in batches, every ``FLUSH_S`` or sooner when asked: one wake-up and
        one store write per batch, so the consumer does not contend with the emitters for
        every single event."""
        while True:
            self._hurry.wait(FLUSH_S)
            self._hurry.clear()
            while self._queue:
                with self._lock:
                    self._busy = True
                batch: list[TelemetryEvent] = []
                try:
                    while self._queue and len(batch) < BATCH:
                        batch.append(self._queue.popleft())
                    self._apply(batch)
                finally:
                    with self._lock:
                        self._counts.applied += len(batch)
                        self._busy = False
                        self._applied.notify_all()
            with self._lock:
                self._applied.notify_all()
            if self._stopping:
                return

    def _apply(self, events: list[TelemetryEvent]) -> None:
        steps: list[StepDone] = []
        ended: list[str] = []
        with self._lock:
            sinks = list(self._sinks)
        for event in events:
            try:
                self.metrics.apply(event)
            except Exception as exc:
                log.error("telemetry_event_failed", event=type(event).__name__, error=str(exc))
            if isinstance(event, StepDone):
                steps.append(event)
            elif isinstance(event, JobChanged) and event.status in FINAL_JOB_STATES:
                ended.append(event.job)
            for sink in sinks:
                try:
                    sink(event)
                except Exception as exc:  # a sink's failure is its own
                    with self._lock:
                        self._counts.sink_failures += 1
                    log.warning("telemetry_sink_failed", error=str(exc))
        if self.store is not None and (steps or ended):
            try:
                self._record(steps, ended)
            except Exception as exc:
                log.error("telemetry_record_failed", error=str(exc))

    def _record(self, steps: list[StepDone], ended: list[str]) -> None:
        assert self.store is not None
        if steps:
            self.store.record_steps_perf(
                [
                    (
                        e.job,
                        e.pipeline,
                        e.step,
                        e.step_type,
                        e.provider,
                        e.duration_s * 1000,
                        e.tokens,
                        e.cost_usd,
                        e.outcome,
                    )
                    for e in steps
                ]
            )
        for job in ended:
            self.store.record_run_perf(job)
        now = time.time()
        if ended and now - self._last_prune > 3600:
            self._last_prune = now
            self.store.prune_perf(now - self.retention_days * 86400)

    # -- reading ---------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        with self._lock:
            c = self._counts
            return {
                "emitted": c.applied + c.dropped + len(self._queue),
                "dropped": c.dropped,
                "applied": c.applied,
                "sink_failures": c.sink_failures,
                "queued": len(self._queue),
            }

    def refresh_gauges(self, **values: Any) -> None:
        """Set point-in-time gauges the daemon reads when asked (queue, RSS, mailboxes)."""
        m = self.metrics
        if "running" in values:
            m.set("elx_jobs_running", (), values["running"])
        if "queued" in values:
            m.set("elx_job_queue_depth", (), values["queued"])
        if "breakers" in values:
            for provider, state in dict(values["breakers"]).items():
                m.set("elx_breaker_state", (provider,), BREAKER_VALUES.get(state, 0))
        if "mailboxes" in values:
            for child, depth in dict(values["mailboxes"]).items():
                m.set("elx_mailbox_depth", (child,), depth)
        m.set("elx_process_rss_bytes", (), values.get("rss_bytes", process_rss_bytes()))
        m.set("elx_telemetry_queue_depth", (), len(self._queue))

    def prometheus(self) -> bytes:
        return generate_latest(self.metrics.registry)

    def series(self) -> dict[str, float]:
        """Every sample as ``name{label="v",...}`` → value (labels sorted)."""
        out: dict[str, float] = {}
        for family in self.metrics.registry.collect():
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                out[f"{sample.name}{{{labels}}}" if labels else sample.name] = float(sample.value)
        return out

    def summary(self) -> dict[str, Any]:
        """The numbers `elx metrics` shows, grouped for a table."""
        series = self.series()

        def pick(prefix: str) -> dict[str, float]:
            return {k[len(prefix) :]: v for k, v in series.items() if k.startswith(prefix)}

        return {
            "jobs": pick("elx_jobs_total"),
            "steps": pick("elx_steps_total"),
            "step_seconds": {
                "sum": sum(pick("elx_step_duration_seconds_sum").values()),
                "count": sum(pick("elx_step_duration_seconds_count").values()),
            },
            "provider_calls": pick("elx_provider_calls_total"),
            "provider_errors": pick("elx_provider_errors_total"),
            "provider_retries": pick("elx_provider_retries_total"),
            "tokens": pick("elx_tokens_total"),
            "cost_usd": pick("elx_cost_usd_total"),
            "breakers": pick("elx_breaker_state"),
            "restarts": pick("elx_restarts_total"),
            "escalations": pick("elx_escalations_total"),
            "telemetry": self.counts(),
        }


def from_job_event(event: Mapping[str, Any]) -> TelemetryEvent | None:
    """The job manager's event dicts (see runtime.jobs) as typed telemetry events."""
    kind = event.get("type")
    if kind == "job":
        return JobChanged(str(event["job"]), str(event["status"]), str(event.get("pipeline", "")))
    if kind == "step" and event.get("event") in ("step_finished", "step_failed"):
        providers = list(event.get("providers") or [])
        return StepDone(
            job=str(event["job"]),
            step=str(event.get("step", "")),
            step_type=str(event.get("step_type", "")),
            duration_s=float(event.get("duration_ms") or 0.0) / 1000,
            outcome="completed" if event["event"] == "step_finished" else "failed",
            provider=providers[0] if providers else "",
            tokens=int(event.get("tokens") or 0),
            cost_usd=float(event.get("cost_usd") or 0.0),
            pipeline=str(event.get("pipeline", "")),
        )
    return None


def from_tree_event(event: Mapping[str, Any]) -> TelemetryEvent | None:
    """A supervision log record (child_started, child_restarted, ...) as a telemetry event."""
    name = str(event.get("event", ""))
    supervisor, child = str(event.get("supervisor", "")), str(event.get("child", ""))
    if name in ("max_restart_intensity_reached", "supervisor_escalated"):
        return Escalation(supervisor, child)
    what = {
        "child_started": "started",
        "child_exited": "exited",
        "child_restarted": "restarted",
        "child_restart_failed": "restart_failed",
    }.get(name)
    if what is None:
        return None
    return ChildEvent(supervisor, child, what, str(event.get("reason", "")))


def process_rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


__all__ = [
    "BreakerChanged",
    "ChildEvent",
    "Escalation",
    "HealthChanged",
    "JobChanged",
    "Metrics",
    "OptimizerRun",
    "ProviderCall",
    "ProviderRetry",
    "StepDone",
    "Telemetry",
    "TelemetryEvent",
    "from_job_event",
    "from_tree_event",
    "percentile",
    "process_rss_bytes",
    "provider_call_event",
]
