"""Actors for tests that need a pipeline worker to misbehave."""

from __future__ import annotations

from typing import Any

from actors.pipeline_worker import PipelineWorker


class CrashingWorker(PipelineWorker):
    """A pipeline worker that dies whenever its job runs `crashy.yaml`."""

    def on_receive(self, message: Any) -> Any:
        if message == "run" and self._jobs.get(self.job_id).pipeline.endswith("crashy.yaml"):
            raise RuntimeError("this worker dies every time")
        return super().on_receive(message)
