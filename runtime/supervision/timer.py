"""Delayed callbacks for backoff restarts, real or driven by a FakeClock.

A supervisor never sleeps: a backoff delay is a timer whose callback sends the
supervisor a message. ``ManualTimer`` fires callbacks only when a test
advances it, so backoff is tested without waiting.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from typing import Protocol

from runtime.testing.clock import FakeClock


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Timer(Protocol):
    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Cancellable:
        """Run ``callback`` once, about ``delay_s`` seconds from now, on some other thread."""
        ...


class ThreadTimer:
    """One short-lived daemon thread per pending delay (backoff delays are rare)."""

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Cancellable:
        timer = threading.Timer(max(0.0, delay_s), callback)
        timer.daemon = True
        timer.name = "supervision-backoff"
        timer.start()
        return timer


class _ManualEntry:
    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualTimer:
    """A timer on a FakeClock: ``advance`` moves the clock and fires what fell due."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._heap: list[tuple[float, int, _ManualEntry]] = []
        self._seq = itertools.count()
        self.requested: list[float] = []
        self._scheduled = threading.Condition(self._lock)

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Cancellable:
        entry = _ManualEntry(callback)
        with self._lock:
            self.requested.append(delay_s)
            heapq.heappush(self._heap, (self.clock.now() + delay_s, next(self._seq), entry))
            self._scheduled.notify_all()
        return entry

    def pending(self) -> int:
        with self._lock:
            return sum(1 for _, _, entry in self._heap if not entry.cancelled)

    def wait_scheduled(self, count: int, timeout: float) -> bool:
        """Block until ``count`` delays have been requested in total."""
        with self._lock:
            return self._scheduled.wait_for(lambda: len(self.requested) >= count, timeout)

    def advance(self, seconds: float) -> int:
        """Advance the clock; run the callbacks now due, in order. Returns how many ran."""
        self.clock.advance(seconds)
        ran = 0
        while True:
            with self._lock:
                if not self._heap or self._heap[0][0] > self.clock.now():
                    return ran
                _, _, entry = heapq.heappop(self._heap)
            if not entry.cancelled:
                entry.callback()
                ran += 1
