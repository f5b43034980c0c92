"""The telemetry child of the tree: its queue and consumer, and the optional /metrics endpoint.

The daemon creates ``runtime.telemetry.Telemetry`` before the tree (so the
tree's own start is recorded); this actor shows its queue in `elx tree` and,
when ``metrics_port`` (or ``ELX_METRICS_PORT``) is set, serves the Prometheus
text format at ``http://127.0.0.1:<port>/metrics`` (loopback only).
"""

from __future__ import annotations

import os
from typing import Any

import pykka
import structlog

from runtime import WorkerStatus, daemon_context

log = structlog.get_logger("elexirion.telemetry")


class TelemetryActor(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self, metrics_port: int = 0, metrics_addr: str = "127.0.0.1") -> None:
        super().__init__()
        self.port = int(os.environ.get("ELX_METRICS_PORT", metrics_port) or 0)
        self.addr = metrics_addr
        self._server: Any = None
        self._thread: Any = None

    def on_start(self) -> None:
        telemetry = daemon_context().telemetry
        if self.port and telemetry is not None:
            from prometheus_client import start_http_server

            self._server, self._thread = start_http_server(
                self.port, addr=self.addr, registry=telemetry.metrics.registry
            )
            log.info("metrics_endpoint", url=f"http://{self.addr}:{self.port}/metrics")

    def on_stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def ping(self) -> str:
        return "pong"

    def supervision_status(self) -> WorkerStatus:
        telemetry = daemon_context().telemetry
        if telemetry is None:
            return WorkerStatus()
        counts = telemetry.counts()
        detail = [("queued", str(counts["queued"])), ("dropped", str(counts["dropped"]))]
        if self._server is not None:
            detail.append(("metrics", f"{self.addr}:{self.port}"))
        return WorkerStatus(detail=tuple(detail))
