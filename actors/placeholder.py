"""A generic idle actor that stands in for children later issues implement.

It answers ``ping`` (as a message or a method call), reports a frozen
snapshot, and implements the supervision ``StatusReporter`` protocol so the
tree shows it like any worker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pykka

from runtime.supervision import WorkerStatus


@dataclass(frozen=True, slots=True)
class PlaceholderSnapshot:
    role: str
    pings: int
    uptime_s: float
    settings: dict[str, Any] = field(default_factory=dict)


class PlaceholderActor(pykka.ThreadingActor):
    """Idle until asked; ``role`` names the child it stands in for."""

    def __init__(self, role: str = "placeholder", **settings: Any) -> None:
        super().__init__()
        self.role = role
        self.settings = dict(settings)
        self._pings = 0
        self._started = time.monotonic()
        self._status = WorkerStatus()

    def on_receive(self, message: Any) -> Any:
        if message == "ping":
            return self.ping()
        return super().on_receive(message)

    def ping(self) -> str:
        self._pings += 1
        return "pong"

    def snapshot(self) -> PlaceholderSnapshot:
        return PlaceholderSnapshot(
            role=self.role,
            pings=self._pings,
            uptime_s=time.monotonic() - self._started,
            settings=dict(self.settings),
        )

    def supervision_status(self) -> WorkerStatus:
        return self._status
