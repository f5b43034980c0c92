"""Jobs whose worker runs on Ray: the pipeline runs there, the daemon keeps everything else.

The daemon stays the single owner of the store and of the providers. A worker
on Ray calls home (``runtime.supervision.ray_host.call_home``) for each thing
only the daemon may do, and ``JobHome`` answers in the daemon:

- ``job.begin`` / ``job.end``: ``JobManager.begin`` and ``JobManager.end``, so
  the job's state, events, examples and trace are kept exactly as for a
  local run;
- ``job.store``: the run's checkpoint reads and writes (an allow-list of
  ``Store`` methods). A checkpoint is committed before the worker moves on,
  so a worker that dies resumes on a new actor from its last finished step;
- ``gateway.complete``: every LLM call goes through the daemon's provider
  gateway, so rate limits, breakers, budgets' cost accounting and API keys
  stay in one place (keys never leave the daemon's machine);
- ``job.event``: step events, sent without waiting, in order.

Every answer carries whether the job was cancelled, so cancel reaches the
remote run at its next call home.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runtime.clock import SYSTEM_CLOCK
from runtime.errors import ConfigError
from runtime.providers.base import CallControl, LLMRequest, LLMResponse
from runtime.redaction import is_secret_key

if TYPE_CHECKING:
    from runtime.jobs import Begun, JobManager
    from runtime.pipeline.events import RunEvent
    from runtime.pipeline.executor import RunResult

STORE_METHODS = frozenset(
    {
        "get_run",
        "checkpoints",
        "create_run",
        "save_checkpoint",
        "set_run_status",
        "session_turns",
        "append_session_turns",
        "cache_get",
        "cache_put",
    }
)


class JobHome:
    """The daemon's side: answers calls home from job workers placed on Ray."""

    def __init__(self, jobs: JobManager) -> None:
        self.jobs = jobs
        self._begun: dict[str, Begun] = {}

    def __call__(self, kind: str, payload: Any) -> Any:
        if kind == "job.begin":
            return self._begin(payload)
        job_id = payload[0]
        begun = self._begun.get(job_id)
        if begun is None:
            raise ConfigError(f"job {job_id} is not running here; its worker must begin again")
        if kind == "job.event":
            begun.on_event(payload[1])
            return None
        if kind == "job.end":
            del self._begun[job_id]
            self.jobs.end(begun, payload[1])
            return None
        if kind == "job.crashed":
            self.jobs.crashed(begun, payload[1])
            return None
        if kind == "job.store":
            _, method, args, kwargs = payload
            if method not in STORE_METHODS:
                raise ConfigError(f"a remote worker may not call Store.{method}")
            value = getattr(self.jobs.store, method)(*args, **kwargs)
        elif kind == "gateway.complete":
            request = dataclasses.replace(payload[1], control=begun.live.cancel)
            value = self.jobs.gateway.complete(request)
        else:
            raise ConfigError(f"unknown call home {kind!r}")
        return {"value": value, "cancelled": begun.live.cancel.is_set()}

    def _begin(self, payload: tuple[str, dict[str, Any]]) -> dict[str, Any] | None:
        job_id, where = payload
        begun = self.jobs.begin(job_id)
        if begun is None:
            return None
        self._begun[job_id] = begun
        meta = dict(begun.row.meta or {})
        meta["ray"] = where  # `elx status` shows where the job ran
        self.jobs.store.update_job_meta(job_id, meta)
        settings = begun.settings
        # The remote run gets no secrets: provider calls come back here, keys stay here.
        environ = {k: v for k, v in settings.environ.items() if not is_secret_key(k)}
        return {
            "pipeline": str(begun.loaded.path),
            "inputs": begun.row.inputs,
            "settings": settings.with_(environ=environ),
            "budget": begun.budget,
            "resume": begun.resume,
        }


class RemoteJobRunner:
    """The worker's side, in a Ray process: runs the pipeline, calls home for the rest."""

    def __init__(self, call: Callable[[str, Any], Any], notify: Callable[[str, Any], None]):
        self.call = call
        self.notify = notify
        self.steps: dict[str, str | None] = {}

    def execute(self, job_id: str) -> RunResult | None:
        from runtime.pipeline.executor import run_pipeline
        from runtime.pipeline.loader import load_pipeline

        spec = self.call("job.begin", (job_id, _where()))
        if spec is None:
            return None
        control = CallControl()
        try:
            result = run_pipeline(
                load_pipeline(spec["pipeline"]),
                spec["inputs"],
                gateway=_RemoteGateway(self, job_id, control),
                settings=spec["settings"],
                budget=spec["budget"],
                store=_RemoteStore(self, job_id, control),  # type: ignore[arg-type]
                run_id=job_id,
                resume=spec["resume"],
                events=lambda event: self._event(job_id, event),
                clock=SYSTEM_CLOCK,
                cancel=control,
            )
        except BaseException as exc:
            self.notify("job.crashed", (job_id, RuntimeError(f"{type(exc).__name__}: {exc}")))
            raise
        self.call("job.end", (job_id, result))
        return result

    def current_step(self, job_id: str) -> str | None:
        return self.steps.get(job_id)

    def _event(self, job_id: str, event: RunEvent) -> None:
        if event.path:
            self.steps[job_id] = event.path
        self.notify("job.event", (job_id, event))

    def answer(self, control: CallControl, kind: str, payload: Any) -> Any:
        reply = self.call(kind, payload)
        if reply["cancelled"]:
            control.set()
        return reply["value"]


class _RemoteGateway:
    def __init__(self, runner: RemoteJobRunner, job_id: str, control: CallControl) -> None:
        self.runner, self.job_id, self.control = runner, job_id, control

    def complete(self, request: LLMRequest) -> LLMResponse:
        portable = dataclasses.replace(request, control=None)
        response: LLMResponse = self.runner.answer(
            self.control, "gateway.complete", (self.job_id, portable)
        )
        return response


class _RemoteStore:
    """The ``Store`` methods a run uses, answered by the daemon's store."""

    path = "the daemon's store"

    def __init__(self, runner: RemoteJobRunner, job_id: str, control: CallControl) -> None:
        self.runner, self.job_id, self.control = runner, job_id, control

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method not in STORE_METHODS:
            raise AttributeError(method)

        def remote(*args: Any, **kwargs: Any) -> Any:
            payload = (self.job_id, method, args, kwargs)
            return self.runner.answer(self.control, "job.store", payload)

        return remote


def _where() -> dict[str, Any]:
    import os

    import ray

    context = ray.get_runtime_context()
    return {
        "node": context.get_node_id(),
        "ip": ray.util.get_node_ip_address(),  # type: ignore[no-untyped-call]
        "pid": os.getpid(),
    }


def job_runner() -> Any:
    """What runs a job in this process: the daemon's JobManager, or — in a Ray worker
    process — a runner that calls home."""
    from runtime.supervision.ray_host import call_home, notify_home, on_ray

    if on_ray():
        return RemoteJobRunner(call_home, notify_home)
    from runtime.daemon import daemon_context

    return daemon_context().jobs
