"""The socket server's worker pool: a thread pool that counts the work it holds.

Handlers and ``on_close`` callbacks run here, never on the I/O thread. The
count lets ``SocketServer.stop`` wait, with a deadline, until every piece of
submitted work has finished, including work still queued when the pool was
shut down.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class WorkerPool:
    """A bounded ``ThreadPoolExecutor`` plus a count of work submitted and not yet done."""

    def __init__(self, workers: int, thread_name_prefix: str) -> None:
        self._workers = workers
        self._thread_name_prefix = thread_name_prefix
        self._running = 0
        self._idle = threading.Condition()
        self._local = threading.local()
        self._executor: ThreadPoolExecutor | None = None

    @property
    def in_worker(self) -> bool:
        """True on one of this pool's threads while it runs submitted work."""
        return bool(getattr(self._local, "worker", False))

    def start(self) -> None:
        self._executor = ThreadPoolExecutor(self._workers, self._thread_name_prefix)

    def submit(self, fn: Callable[..., None], *args: Any) -> bool:
        """Run ``fn(*args)`` on a worker; False (and nothing runs) once the pool is shut down."""
        assert self._executor is not None
        with self._idle:
            self._running += 1
        try:
            self._executor.submit(self._counted, fn, *args)
        except RuntimeError:  # the pool is shut down
            self._done_one()
            return False
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Block until no submitted work is left, at most ``timeout`` seconds; True if none is."""
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, timeout)

    def shutdown(self, *, wait: bool) -> None:
        """Refuse new work; queued work still runs. With ``wait``, join the threads."""
        assert self._executor is not None
        self._executor.shutdown(wait=wait)

    def _counted(self, fn: Callable[..., None], *args: Any) -> None:
        self._local.worker = True
        try:
            fn(*args)
        finally:
            self._local.worker = False
            self._done_one()

    def _done_one(self) -> None:
        with self._idle:
            self._running -= 1
            if self._running == 0:
                self._idle.notify_all()
