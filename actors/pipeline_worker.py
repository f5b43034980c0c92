"""The worker of one job: runs (or resumes) its pipeline in its own thread, then stops.

Started by ``runtime.jobs.JobManager`` as the only child of ``job-<id>``. On
start it sends itself ``run``; the handler executes the job to a final state
and stops the actor normally, which ends the job supervisor (``completed``).
An exception escapes as a crash: the job supervisor restarts the worker, which
resumes from the job's checkpoints, until its restart budget runs out. Placed
on Ray (``backend: ray``), the same worker runs the pipeline in a Ray process
and calls home to the daemon for the store and the providers
(``runtime.remote_jobs``).
"""

from __future__ import annotations

from typing import Any

import pykka

from runtime import WorkerStatus
from runtime.remote_jobs import job_runner


class PipelineWorker(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id
        self._jobs = job_runner()  # the daemon's jobs, or a runner on Ray that calls home

    def on_start(self) -> None:
        self.actor_ref.tell("run")

    def on_receive(self, message: Any) -> Any:
        if message == "run":
            self._jobs.execute(self.job_id)
            self.stop()
            return None
        return super().on_receive(message)

    def supervision_status(self) -> WorkerStatus:
        return WorkerStatus(job=self.job_id, step=self._jobs.current_step(self.job_id))
