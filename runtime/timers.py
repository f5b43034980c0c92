"""One thread that runs callbacks after a delay: many deadlines, not one thread each.

``Timers.call_later(delay, fn)`` returns a handle whose ``cancel()`` drops the
callback if it has not run. Callbacks run on the timers' thread, in deadline
order; keep them short (resolve a future, set an event). Time comes from the
injected clock's ``now()``; waiting uses a condition variable, so ``close()``
and new earlier deadlines wake the thread at once.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from runtime.clock import SYSTEM_CLOCK, Clock

log = structlog.get_logger("elexirion.timers")


@dataclass(order=True)
class TimerHandle:
    due: float
    order: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class Timers:
    """A heap of deadlines served by one daemon thread, started on first use."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, name: str = "elx-timers") -> None:
        self._clock = clock
        self._name = name
        self._heap: list[TimerHandle] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle(self._clock.now() + max(0.0, delay_s), next(self._order), callback)
        with self._cond:
            if self._closed:
                raise RuntimeError("the timers are closed")
            heapq.heappush(self._heap, handle)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()
        return handle

    def close(self) -> None:
        """Stop the thread; callbacks not yet due never run."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    if self._heap and self._heap[0].cancelled:
                        heapq.heappop(self._heap)
                        continue
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = self._heap[0].due - self._clock.now()
                    if wait <= 0:
                        handle = heapq.heappop(self._heap)
                        break
                    self._cond.wait(wait)
            try:
                handle.callback()
            except Exception:  # one failing callback must not stop the others
                log.exception("timer_callback_failed")
