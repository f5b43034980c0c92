"""Cross-process stand-ins for the suite's Journal and gates, for children placed on Ray.

The thread-backend suite shares a ``Journal`` and ``threading.Event`` gates with its
children in memory. A child on Ray lives in another process, so these keep their
state in a small async Ray actor and pass through pickling as a handle to it.
Waiting is a remote call that blocks on an asyncio condition: no polling, no sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import ray

from conformance.children import WAIT_S


@ray.remote(num_cpus=0)
class _Board:
    """Entries and a flag, with waits that wake on change."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []
        self.flag = False
        self.changed = asyncio.Condition()

    async def record(self, name: str, event: str) -> None:
        async with self.changed:
            self.entries.append((name, event))
            self.changed.notify_all()

    async def read(self) -> list[tuple[str, str]]:
        return list(self.entries)

    async def wait_change(self, seen: int, timeout: float) -> list[tuple[str, str]]:
        async with self.changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.changed.wait_for(lambda: len(self.entries) != seen), timeout
                )
            return list(self.entries)

    async def clear(self) -> None:
        async with self.changed:
            self.entries.clear()
            self.changed.notify_all()

    async def set_flag(self) -> None:
        async with self.changed:
            self.flag = True
            self.changed.notify_all()

    async def wait_flag(self, timeout: float) -> bool:
        async with self.changed:
            try:
                await asyncio.wait_for(self.changed.wait_for(lambda: self.flag), timeout)
            except TimeoutError:
                return False
            return True


class RayJournal:
    """The ``Journal`` interface over a Ray actor: usable from any process."""

    def __init__(self) -> None:
        self._board: Any = _Board.remote()

    def record(self, name: str, event: str) -> None:
        ray.get(self._board.record.remote(name, event))

    def entries(self) -> list[tuple[str, str]]:
        entries: list[tuple[str, str]] = ray.get(self._board.read.remote())
        return entries

    def names(self, event: str) -> list[str]:
        return [name for name, what in self.entries() if what == event]

    def count(self, name: str, event: str) -> int:
        return sum(1 for entry in self.entries() if entry == (name, event))

    def wait_for(self, predicate: Callable[[Any], bool], timeout: float = WAIT_S) -> bool:
        import time

        deadline = time.monotonic() + timeout
        seen = self.entries()
        while not predicate(self):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            seen = ray.get(self._board.wait_change.remote(len(seen), left))
        return True

    def clear(self) -> None:
        ray.get(self._board.clear.remote())


class RayGate:
    """A ``threading.Event`` look-alike across processes (``set``, ``wait``, ``is_set``)."""

    def __init__(self) -> None:
        self._board: Any = _Board.remote()

    def set(self) -> None:
        ray.get(self._board.set_flag.remote())

    def wait(self, timeout: float | None = None) -> bool:
        return bool(ray.get(self._board.wait_flag.remote(WAIT_S if timeout is None else timeout)))

    def is_set(self) -> bool:
        return self.wait(0)
