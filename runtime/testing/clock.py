"""A clock that only moves when told to."""

from __future__ import annotations

import threading


class FakeClock:
    """Deterministic clock: ``sleep`` advances time at once and records the wait."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock cannot go back ({seconds} s)")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(0.0, seconds)


class StillClock:
    """Time stands still; waits are only recorded. Shows each caller's own wait."""

    def __init__(self, at: float = 500.0) -> None:
        self.at = at
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        return self.at

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)


class GateClock(StillClock):
    """A wait blocks until ``gate`` opens, so a test can act while a caller is waiting."""

    def __init__(self, at: float = 500.0) -> None:
        super().__init__(at)
        self.sleeping = threading.Event()
        self.gate = threading.Event()

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        self.sleeping.set()
        if not self.gate.wait(5):
            raise TimeoutError("GateClock: the gate was not opened within 5 s")
