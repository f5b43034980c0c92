"""Durable jobs: accepted (committed) → running → a final state, resumed after a crash.

``JobManager`` is the daemon's job table in motion. ``submit`` validates the
pipeline, commits the job row, and only then acknowledges; jobs start under
the ``pipelines`` dynamic supervisor as ``job-<id>`` (each with its own
restart budget) as long as there is room, the rest wait in a priority queue.
A worker actor calls ``execute`` from its own thread; a crashed worker is
restarted by its job supervisor and resumes from the job's checkpoints, so a
completed step never runs twice. Waiters and subscribers are woken by events,
never by polling.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from runtime.clock import SYSTEM_CLOCK
from runtime.config import Settings
from runtime.errors import ConfigError, IllegalTransition
from runtime.pipeline.events import RunEvent
from runtime.pipeline.executor import RunResult, run_pipeline
from runtime.pipeline.loader import load_pipeline
from runtime.pipeline.models import Budget
from runtime.providers.base import CallControl, ProviderGateway
from runtime.redaction import redact
from runtime.timers import Timers

if TYPE_CHECKING:
    from runtime.store import JobRow, Store
    from runtime.supervision import JobOutcome, SupervisorHandle
    from runtime.tracing import JobTracer

log = structlog.get_logger("elexirion.jobs")


class JobState(StrEnum):
    ACCEPTED = "accepted"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BUDGET_EXCEEDED = "budget_exceeded"

    @property
    def final(self) -> bool:
        return self in FINAL


FINAL = frozenset(
    {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.BUDGET_EXCEEDED}
)

JOB_MOVES: Mapping[JobState, frozenset[JobState]] = {
    JobState.ACCEPTED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.FAILED}),
    JobState.RUNNING: frozenset({JobState.RUNNING, *FINAL}),
    JobState.COMPLETED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
    JobState.BUDGET_EXCEEDED: frozenset(),
}


def check_move(job_id: str, current: JobState, target: JobState) -> None:
    """Raise if ``current → target`` is not in the table."""
    allowed = JOB_MOVES[current]
    if target not in allowed:
        names = ", ".join(sorted(s.value for s in allowed)) or "none (it has ended)"
        raise IllegalTransition(
            f"job {job_id} is {current.value}; it cannot become {target.value} (allowed: {names})",
            subject=f"job {job_id}",
            state=current.value,
            target=target.value,
        )


@dataclass(eq=False)
class _Live:
    """What the daemon knows of a job while it is queued or running."""

    job_id: str
    cancel: CallControl = field(default_factory=CallControl)
    done: threading.Event = field(default_factory=threading.Event)
    step: str | None = None
    started: bool = False
    cancelled_by_user: bool = False
    waiters: list[Future[dict[str, Any]]] = field(default_factory=list)
    history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=HISTORY))


@dataclass(frozen=True, slots=True)
class Begun:
    """A job between ``begin`` and ``end``: what its run needs, wherever it runs."""

    row: JobRow
    live: _Live
    loaded: Any
    settings: Settings
    budget: Budget | None
    resume: bool
    on_event: Callable[[RunEvent], None]


JobListener = Callable[[dict[str, Any]], None]
HISTORY = 2000  # events kept per live job, replayed to a subscriber that comes late
RECENT = 256  # ended jobs whose events are still kept for replay


class JobManager:
    """Submits, starts, runs, cancels, waits for and resumes jobs."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        gateway: ProviderGateway,
        pipelines: SupervisorHandle | None,
        *,
        worker_actor: str = "actors.pipeline_worker:PipelineWorker",
        max_running: int = 64,
        restart_intensity: int = 3,
        restart_period_s: float = 10.0,
    ) -> None:
        self.store = store
        self.settings = settings
        self.gateway = gateway
        self.pipelines = pipelines
        self.worker_actor = worker_actor
        self.max_running = max_running
        self.restart_intensity = restart_intensity
        self.restart_period_s = restart_period_s
        self._lock = threading.Lock()
        self._live: dict[str, _Live] = {}
        self._queue: list[tuple[int, int, str]] = []
        self._order = itertools.count()
        self._running = 0
        self._accepting = True
        self._draining = False
        self._listeners: list[JobListener] = []
        self._idle = threading.Condition(self._lock)
        self._timers = Timers(name="elx-job-waits")
        self._starter = ThreadPoolExecutor(1, thread_name_prefix="elx-job-starter")
        self._recent: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self.tracer: JobTracer | None = None  # set by the daemon when tracing is on

    # -- events -----------------------------------------------------------------

    def add_listener(self, listener: JobListener, replay: Iterable[str] = ()) -> Callable[[], None]:
        """Call ``listener`` with every job event from now on; returns its remover.

        For each job id in ``replay``, the listener first gets what that job has
        done so far (its events while live, else its final state), in order and
        without a gap or a duplicate before the live events that follow.
        """
        with self._lock:
            self._listeners.append(listener)
            for job_id in replay:
                live = self._live.get(job_id)
                if live is not None:
                    past = list(live.history)
                elif job_id in self._recent:
                    past = self._recent[job_id]
                elif (row := self.store.get_job(job_id)) is not None:
                    past = [{"type": "job", "job": job_id, "status": row.status}]
                else:
                    continue
                for event in past:
                    try:
                        listener(event)
                    except Exception:
                        log.warning("listener_failed", event=event.get("type"))

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def _emit(self, event: dict[str, Any]) -> None:
        with self._lock:
            live = self._live.get(event["job"])
            if live is not None:
                live.history.append(event)
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a broken subscriber must not break a job
                log.warning("listener_failed", event=event.get("type"))

    # -- submitting -------------------------------------------------------------

    def submit(
        self,
        pipeline: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        priority: int = 0,
        meta: Mapping[str, Any] | None = None,
        budget: Budget | None = None,
    ) -> JobRow:
        """Validate, commit, queue. The returned row is durable.

        ``budget`` (tokens, USD) tightens the pipeline's own for this job.
        """
        with self._lock:
            if not self._accepting:
                raise ConfigError("the daemon is shutting down and accepts no new jobs")
        loaded = load_pipeline(self.resolve_pipeline(pipeline))
        from runtime.pipeline.executor import coerce_inputs

        given = coerce_inputs(loaded.workflow.inputs, dict(inputs or {}), file=str(loaded.path))
        job_id = uuid.uuid4().hex[:12]
        meta = dict(meta or {})
        if budget is not None:
            meta["budget"] = budget.model_dump(exclude_none=True)
        row = self.store.create_job(job_id, str(loaded.path), given, priority=priority, meta=meta)
        with self._lock:
            self._live.setdefault(job_id, _Live(job_id))
        self._emit({"type": "job", "job": job_id, "status": "accepted"})
        self._enqueue(job_id, priority)
        return row

    def resolve_pipeline(self, name: str) -> Path:
        """A path, or a name under pipelines/ (``analysis`` → pipelines/analysis.yaml)."""
        shown = name if len(name) <= 200 else f"{name[:200]}..."
        try:
            candidate = Path(name).expanduser()
            if candidate.suffix in (".yaml", ".yml") or candidate.exists():
                return candidate.resolve()
            for base in self.settings.pipeline_dirs:
                for suffix in (".yaml", ".yml"):
                    found = base / f"{name}{suffix}"
                    if found.exists():
                        return found.resolve()
        except (OSError, ValueError) as exc:  # a name too long, a NUL byte: no such file
            raise ConfigError(f"no pipeline '{shown}': {exc.__class__.__name__}") from None
        raise ConfigError(
            f"no pipeline '{shown}': not a file, and not found in "
            + ", ".join(str(d) for d in self.settings.pipeline_dirs)
        )

    def _enqueue(self, job_id: str, priority: int) -> None:
        with self._lock:
            self._live.setdefault(job_id, _Live(job_id))
            heapq.heappush(self._queue, (-priority, next(self._order), job_id))
        self._request_pump()

    def _request_pump(self) -> None:
        """Start queued jobs on the starter thread: submit acknowledges without waiting for
        a start, and a job supervisor's outcome callback never asks its own supervisor."""
        with contextlib.suppress(RuntimeError):  # closed: nothing more is started
            self._starter.submit(self._pump)

    def _pump(self) -> None:
        """Start queued jobs while there is room."""
        while True:
            with self._lock:
                if not self._queue or self._running >= self.max_running or not self._accepting:
                    return
                _, _, job_id = heapq.heappop(self._queue)
                live = self._live.get(job_id)
                if live is None or live.cancel.is_set():
                    continue
                self._running += 1
                live.started = True
            try:
                self._start_worker(job_id)
            except Exception as exc:  # the slot must come back whatever went wrong
                log.error("job_start_failed", job=job_id, error=str(exc))
                try:
                    self._finish(
                        job_id, JobState.FAILED, error={"kind": "crash", "message": str(exc)}
                    )
                finally:
                    self._release(job_id)

    def _start_worker(self, job_id: str) -> None:
        if self.pipelines is None:  # embedded use without a tree: run inline on a thread
            thread = threading.Thread(
                target=self._run_inline, args=(job_id,), name=f"job-{job_id}", daemon=True
            )
            thread.start()
            return
        from runtime.supervision import ChildSpec, start_job

        start_job(
            self.pipelines,
            job_id,
            ChildSpec(id="worker", actor=self.worker_actor, args={"job_id": job_id}),
            intensity=self.restart_intensity,
            period_s=self.restart_period_s,
            on_outcome=self._on_outcome,
        )

    def _run_inline(self, job_id: str) -> None:
        try:
            self.execute(job_id)
        except Exception as exc:
            self._finish(job_id, JobState.FAILED, error={"kind": "crash", "message": str(exc)})
        finally:
            self._release(job_id)

    def _on_outcome(self, outcome: JobOutcome) -> None:
        """The job supervisor ended: if the job has no final state yet, it crashed."""
        try:
            self._settle_outcome(outcome)
        finally:  # the running slot is released even if recording the outcome fails
            self._release(outcome.job_id)

    def _settle_outcome(self, outcome: JobOutcome) -> None:
        from runtime.supervision import JobStatus

        job_id = outcome.job_id
        row = self.store.get_job(job_id)
        if self._draining:
            log.info("job_left_for_resume", job=job_id, status=row.status if row else None)
        elif row is not None and not JobState(row.status).final:
            if outcome.status is JobStatus.ESCALATED:
                if self.tracer is not None:
                    self.tracer.job_escalated(job_id, f"job-{job_id}")
                error = {
                    "kind": "crash_loop",
                    "message": f"job {job_id} crashed repeatedly; its supervisor gave up "
                    f"({outcome.exit.describe()})",
                }
            else:
                error = {"kind": "crash", "message": outcome.exit.describe()}
            self._finish(job_id, JobState.FAILED, error=error)

    def _release(self, job_id: str) -> None:
        with self._lock:
            live = self._live.pop(job_id, None)
            if live is not None and live.started:
                self._running -= 1
            if live is not None:
                self._recent[job_id] = list(live.history)
                while len(self._recent) > RECENT:
                    self._recent.popitem(last=False)
            self._idle.notify_all()
        if live is not None:
            self._mark_done(live)
        self._request_pump()

    # -- running (called by the worker actor, in its thread) --------------------

    def execute(self, job_id: str) -> RunResult | None:
        """Run (or resume) the job to a final state. Safe to call again after a crash."""
        begun = self.begin(job_id)
        if begun is None:
            return None
        try:
            result = run_pipeline(
                begun.loaded,
                begun.row.inputs,
                gateway=self.gateway,
                settings=begun.settings,
                budget=begun.budget,
                store=self.store,
                run_id=job_id,
                resume=begun.resume,
                events=begun.on_event,
                clock=SYSTEM_CLOCK,
                cancel=begun.live.cancel,
            )
            return self.end(begun, result)
        except BaseException as exc:
            self.crashed(begun, exc)
            raise

    def begin(self, job_id: str) -> Begun | None:
        """The first half of ``execute``: mark the job running and prepare its run; None when
        there is nothing to run (already final). The Ray backend runs the pipeline between
        ``begin`` and ``end`` in another process."""
        row = self.store.get_job(job_id)
        if row is None:
            raise ConfigError(f"no job {job_id}")
        if JobState(row.status).final or not self.store.mark_job_running(job_id):
            return None
        tracer = self.tracer
        if tracer is not None:
            tracer.job_started(job_id, Path(row.pipeline).stem, row.attempts + 1)
        with self._lock:
            live = self._live.setdefault(job_id, _Live(job_id, started=True))
        self._emit(
            {
                "type": "job",
                "job": job_id,
                "status": "running",
                "attempt": row.attempts + 1,
                "pipeline": Path(row.pipeline).stem,
            }
        )
        try:
            loaded = self._load(row.pipeline, job_id)
        except BaseException as exc:
            if tracer is not None:
                tracer.job_ended(job_id, "crashed", error=exc)
            raise
        pipeline_name = loaded.workflow.name

        def on_event(event: RunEvent) -> None:
            if event.path:
                live.step = event.path
            data = {
                "type": "step",
                "job": job_id,
                "event": event.kind.value,
                "step": event.path,
                "step_type": event.step_type,
                "duration_ms": round(event.duration_ms, 3),
                "message": event.message,
                "pipeline": pipeline_name,
                **event.meta,
            }
            if tracer is not None:
                tracer.step_event(job_id, data)
            self._emit(data)

        meta = row.meta or {}
        settings = self.settings
        if meta.get("provider"):  # a fallback onto another provider
            settings = settings.with_(force_provider=str(meta["provider"]))
        return Begun(
            row=row,
            live=live,
            loaded=loaded,
            settings=settings,
            budget=Budget.model_validate(meta["budget"]) if meta.get("budget") else None,
            resume=self.store.get_run(job_id) is not None,
            on_event=on_event,
        )

    def crashed(self, begun: Begun, error: BaseException) -> None:
        """The run raised (the worker crashes and its supervisor restarts it)."""
        if self.tracer is not None:
            self.tracer.job_ended(begun.row.id, "crashed", error=error)

    def end(self, begun: Begun, result: RunResult) -> RunResult:
        """The second half of ``execute``: the job's final state from its run's result."""
        row, live = begun.row, begun.live
        job_id = row.id
        pipeline = begun.loaded.workflow.name
        status: JobState | None = (
            JobState(result.status)
            if result.status in JobState._value2member_map_
            else JobState.FAILED
        )
        if status is JobState.CANCELLED and self._draining and not live.cancelled_by_user:
            # Stopped at a checkpoint for a shutdown: it stays running and resumes next start.
            log.info("job_interrupted", job=job_id, step=live.step)
            status = None
        if self.tracer is not None:  # the trace is complete before anyone waiting hears of the end
            self.tracer.job_ended(job_id, result.status if status is not None else "running")
        if status is not None:
            if status is JobState.COMPLETED:
                self._keep_examples(row, pipeline, result)
            self._record_arms(row, pipeline, result)
            self._finish(job_id, status, result=result.to_json(), error=result.error)
        return result

    def _load(self, pipeline: str, job_id: str) -> Any:
        """The pipeline, or — if its file stopped loading (a bad edit) — its last known good
        optimized version, with a warning."""
        from runtime.errors import ValidationError
        from runtime.optimize.versions import PromptVersions

        try:
            return load_pipeline(pipeline)
        except ValidationError:
            loaded, notice = PromptVersions(self.settings.state_dir).load_known_good(Path(pipeline))
            log.warning("pipeline_fell_back", job=job_id, notice=notice)
            return loaded

    def _record_arms(self, row: JobRow, pipeline: str, result: RunResult) -> None:
        """Steps that ran an A/B arm: which arm, and whether the step succeeded."""
        rows = [
            (
                pipeline,
                name,
                str(record["meta"]["arm"]),
                row.id,
                record.get("status") == "completed",
            )
            for name, record in result.steps.items()
            if (record.get("meta") or {}).get("arm")
        ]
        error = result.error or {}
        if error.get("arm") and error.get("step") and error["step"] not in result.steps:
            rows.append((pipeline, str(error["step"]), str(error["arm"]), row.id, False))
        if rows:
            try:
                self.store.record_ab(rows)
            except Exception as exc:
                log.warning("ab_outcome_not_kept", job=row.id, error=str(exc))

    def _keep_examples(self, row: JobRow, pipeline: str, result: RunResult) -> None:
        """Each LLM step of a completed job becomes an optimizer example (deduplicated)."""
        rows = []
        for name, record in result.steps.items():
            meta = record.get("meta") or {}
            if "prompt" not in meta or record.get("status") != "completed":
                continue
            providers = meta.get("providers") or []
            rows.append(
                {
                    "pipeline": pipeline,
                    "step": name,
                    "job": row.id,
                    "inputs": row.inputs,
                    "prompt": meta["prompt"],
                    "output": record.get("result"),
                    "provider": providers[0] if providers else None,
                }
            )
        if rows:
            try:
                self.store.add_examples(rows)
            except Exception as exc:  # examples are a by-product; the job is done either way
                log.warning("examples_not_kept", job=row.id, error=str(exc))

    def _finish(
        self,
        job_id: str,
        status: JobState,
        *,
        result: Any = None,
        error: Any = None,
    ) -> bool:
        changed = self.store.finish_job(
            job_id, status.value, result=redact(result), error=redact(error)
        )
        if changed:
            self._emit({"type": "job", "job": job_id, "status": status.value})
            log.info("job_finished", job=job_id, status=status.value)
        with self._lock:
            live = self._live.get(job_id)
        if live is not None:
            self._mark_done(live)
        return changed

    def _mark_done(self, live: _Live) -> None:
        with self._lock:
            live.done.set()
            waiters, live.waiters = live.waiters, []
        if waiters:
            status = self.status(live.job_id)
            for future in waiters:
                _resolve(future, status)

    # -- asking -------------------------------------------------------------------

    def current_step(self, job_id: str) -> str | None:
        with self._lock:
            live = self._live.get(job_id)
        return live.step if live is not None else None

    def get(self, job_id: str, *, with_result: bool = True) -> JobRow:
        row = self.store.get_job(job_id, with_result=with_result)
        if row is None:
            raise KeyError(job_id)
        return row

    def status(self, job_id: str) -> dict[str, Any]:
        row = self.get(job_id, with_result=False)
        data = row.to_json()
        data.pop("result", None)
        with self._lock:
            live = self._live.get(job_id)
        data["current_step"] = live.step if live is not None else None
        data["steps_done"] = self.store.count_checkpoints(job_id)  # durable: survives restarts
        return data

    def wait(self, job_id: str, timeout: float) -> dict[str, Any]:
        """Block until the job ends or ``timeout`` passes; return its status either way."""
        return self.wait_future(job_id, timeout).result()

    def wait_future(self, job_id: str, timeout: float) -> Future[dict[str, Any]]:
        """Like ``wait``, but answered later: no thread blocks while the job runs."""
        future: Future[dict[str, Any]] = Future()
        row = self.get(job_id)
        with self._lock:
            live = self._live.get(job_id)
            pending = live is not None and not live.done.is_set()
            if pending and live is not None:
                live.waiters.append(future)
        if not pending or JobState(row.status).final:
            _resolve(future, self.status(job_id))
            return future
        timer = self._timers.call_later(timeout, lambda: _resolve(future, self.status(job_id)))

        def forget(_: Future[dict[str, Any]]) -> None:
            timer.cancel()
            with self._lock:
                if live is not None and future in live.waiters:
                    live.waiters.remove(future)

        future.add_done_callback(forget)
        return future

    def cancel(self, job_id: str) -> dict[str, Any]:
        """End the job ``cancelled`` now; a running step stops at its next check."""
        row = self.get(job_id)
        current = JobState(row.status)
        if current.final:
            return self.status(job_id)
        check_move(job_id, current, JobState.CANCELLED)
        with self._lock:
            live = self._live.get(job_id)
        if live is not None:
            live.cancelled_by_user = True
            live.cancel.set()
        self._finish(
            job_id,
            JobState.CANCELLED,
            error={"kind": "cancelled", "message": f"job {job_id} was cancelled"},
        )
        if live is not None and not live.started:
            self._release(job_id)
        return self.status(job_id)

    def list_jobs(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        if status is not None and status not in JobState._value2member_map_:
            raise ConfigError(
                f"unknown job state {status!r} (states: {', '.join(s.value for s in JobState)})"
            )
        rows = self.store.list_jobs(status, limit)
        return [{k: v for k, v in r.to_json().items() if k != "result"} for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            queued = len(self._queue)
            running = self._running
        return {**self.store.count_jobs(), "queued_now": queued, "running_now": running}

    # -- daemon life ----------------------------------------------------------------

    def resume_unfinished(self) -> list[str]:
        """Queue every accepted or running job again (after a restart of the daemon)."""
        ids = []
        for row in self.store.unfinished_jobs():
            ids.append(row.id)
            self._enqueue(row.id, row.priority)
        if ids:
            log.info("jobs_resumed", count=len(ids))
        return ids

    def stop_accepting(self) -> None:
        with self._lock:
            self._accepting = False

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no job is running (drain); True if that happened in time."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._running > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def interrupt_running(self) -> None:
        """Ask running jobs to stop at their next checkpoint; they stay resumable."""
        with self._lock:
            self._draining = True
            lives = list(self._live.values())
        for live in lives:
            live.cancel.set()

    def close(self) -> None:
        """Answer every pending wait with the job's status now; stop the timers and starter."""
        with self._lock:
            lives = list(self._live.values())
        for live in lives:
            with self._lock:
                waiters, live.waiters = live.waiters, []
            for future in waiters:
                _resolve(future, self.status(live.job_id))
        self._timers.close()
        self._starter.shutdown(wait=True, cancel_futures=True)


def _resolve(future: Future[dict[str, Any]], status: dict[str, Any]) -> None:
    """Set a wait's answer unless the job's end and the timeout raced and it is set already."""
    with contextlib.suppress(InvalidStateError):
        future.set_result(status)
