"""One worker of a provider pool: holds one provider client and makes one call at a time.

A pool is ``pool: {size: N, actor: actors.provider:ProviderWorker}`` in
supervision.yaml: N of these under a one_for_one supervisor, so N calls wait on
a slow API in parallel and a worker that crashes is replaced on its own. The
caller side (breaker, rate limiter, retries, choosing a free worker) lives in
``runtime.providers.pool``; this actor only calls and reports what it is doing.
"""

from __future__ import annotations

import threading
from typing import Any

import pykka

from runtime import LLMRequest, LLMResponse, ProviderRegistry, Settings, WorkerStatus, pool_detail


class ProviderWorker(pykka.ThreadingActor):
    """Calls its provider; the tree shows the step it is serving, if any."""

    use_daemon_thread = True

    def __init__(self, provider: str = "mock", index: int = 0, **options: Any) -> None:
        super().__init__()
        self.provider_name = provider
        self.index = index
        self.options = dict(options)
        self._provider = ProviderRegistry(Settings.from_env()).create(provider)
        self._status = WorkerStatus(detail=(("provider", provider),))
        self._calls = 0
        self._lock = threading.Lock()

    def complete(self, request: LLMRequest) -> LLMResponse:
        self._status = WorkerStatus(
            job=request.options.get("job") if request.options else None,
            step=request.step,
            detail=(("provider", self.provider_name),),
        )
        abort = getattr(self._provider, "abort", None)
        control = request.control
        remove = control.on_cancel(abort) if control is not None and abort is not None else None
        try:
            return self._provider.complete(request)
        finally:
            if remove is not None:
                remove()
            with self._lock:
                self._calls += 1
            self._status = WorkerStatus(detail=(("provider", self.provider_name),))

    def ping(self) -> str:
        return "pong"

    def calls(self) -> int:
        with self._lock:
            return self._calls

    def supervision_status(self) -> WorkerStatus:
        status = self._status
        return WorkerStatus(
            status.job, status.step, status.detail + pool_detail(self.provider_name)
        )
