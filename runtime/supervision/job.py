"""Per-job supervisors: each job gets its own restart budget under a dynamic supervisor.

``start_job`` adds ``job-<id>``, a one_for_one supervisor holding the job's
worker, to a dynamic supervisor (``pipelines`` in supervision.yaml). The worker
is significant, so when it finishes normally the job supervisor shuts itself
down (``auto_shutdown: any_significant``): the job ``completed``. If the worker
crash-loops, only the job supervisor's budget runs out: it escalates, and the
starter's ``JobTicket.outcome`` resolves to ``escalated`` (carrying
``RestartIntensityExceeded``) instead of other jobs or the tree going down.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import structlog

from runtime.supervision.child_spec import (
    AutoShutdown,
    BackoffSpec,
    ChildSpec,
    Restart,
    ShutdownMode,
    Strategy,
    SupervisorSpec,
)
from runtime.supervision.exit import Exit, ExitReason
from runtime.supervision.handle import ChildHandle
from runtime.supervision.supervisor_handle import SupervisorHandle

log = structlog.get_logger("runtime.supervision")


class JobStatus(StrEnum):
    COMPLETED = "completed"
    ESCALATED = "escalated"
    CANCELLED = "cancelled"
    CRASHED = "crashed"


@dataclass(frozen=True, slots=True)
class JobOutcome:
    job_id: str
    status: JobStatus
    exit: Exit

    @staticmethod
    def from_exit(job_id: str, exit_: Exit) -> JobOutcome:
        if exit_.escalated:
            status = JobStatus.ESCALATED
        elif exit_.reason is ExitReason.NORMAL or (
            exit_.reason is ExitReason.SHUTDOWN and not exit_.requested
        ):
            status = JobStatus.COMPLETED
        elif exit_.reason is ExitReason.SHUTDOWN:
            status = JobStatus.CANCELLED
        else:
            status = JobStatus.CRASHED
        return JobOutcome(job_id, status, exit_)


@dataclass(frozen=True, slots=True)
class JobTicket:
    """What the starter of a job keeps: the job supervisor's handle and the outcome."""

    job_id: str
    supervisor: SupervisorHandle
    outcome: concurrent.futures.Future[JobOutcome]

    @property
    def worker(self) -> ChildHandle:
        return self.supervisor.child(WORKER_ID)

    def wait(self, timeout: float) -> JobOutcome:
        return self.outcome.result(timeout)


WORKER_ID = "worker"


def job_spec(
    job_id: str,
    worker: ChildSpec,
    *,
    intensity: int = 3,
    period_s: float = 10.0,
    backoff: BackoffSpec | None = None,
) -> ChildSpec:
    """The ``job-<id>`` supervisor spec around ``worker`` (made significant, and transient
    unless it is temporary)."""
    restart = Restart.TEMPORARY if worker.restart is Restart.TEMPORARY else Restart.TRANSIENT
    worker = worker.model_copy(update={"id": WORKER_ID, "significant": True, "restart": restart})
    return ChildSpec(
        id=f"job-{job_id}",
        supervisor=SupervisorSpec(
            strategy=Strategy.ONE_FOR_ONE,
            intensity=intensity,
            period_s=period_s,
            backoff=backoff,
            auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
            children=(worker,),
        ),
        restart=Restart.TEMPORARY,
        shutdown=ShutdownMode.INFINITY,
    )


def start_job(
    pipelines: SupervisorHandle,
    job_id: str,
    worker: ChildSpec,
    *,
    intensity: int = 3,
    period_s: float = 10.0,
    backoff: BackoffSpec | None = None,
    on_outcome: Callable[[JobOutcome], None] | None = None,
) -> JobTicket:
    """Start ``job-<id>`` under ``pipelines``; its outcome resolves when it stops for good."""
    outcome: concurrent.futures.Future[JobOutcome] = concurrent.futures.Future()

    def report(exit_: Exit) -> None:
        result = JobOutcome.from_exit(job_id, exit_)
        if result.status is JobStatus.ESCALATED:
            log.error("job_escalated", supervisor=pipelines.path, child=f"job-{job_id}")
        outcome.set_result(result)
        if on_outcome is not None:
            on_outcome(result)

    spec = job_spec(job_id, worker, intensity=intensity, period_s=period_s, backoff=backoff)
    handle = pipelines.start_child(spec, on_exit=report)
    assert isinstance(handle, SupervisorHandle)
    return JobTicket(job_id, handle, outcome)
