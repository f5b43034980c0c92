"""Purpose-built children for the conformance suite.

``Probe`` crashes on command with a chosen reason, stops slowly when given a
stop gate, blocks in ``on_start`` until released, fails to start while a flag
is set, and records every lifecycle step in a shared ``Journal`` that tests
wait on (with timeouts, never sleeps).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from runtime.errors import StartIgnored
from runtime.supervision import ChildSpec, WorkerStatus

WAIT_S = 5.0


class StartError(Exception):
    """What a Probe raises from on_start while its fail flag is set."""


class Boom(Exception):
    """The default crash reason."""


@dataclass(frozen=True)
class Crash:
    """Tell this to a Probe: it raises ``error`` from the handler."""

    error: BaseException


@dataclass(frozen=True)
class Block:
    """Ask this: the Probe sets ``entered`` and waits for ``release`` (bounded)."""

    release: threading.Event
    entered: threading.Event


class Journal:
    """A thread-safe log of (child name, event) pairs with ``wait_for``."""

    def __init__(self) -> None:
        self._entries: list[tuple[str, str]] = []
        self._changed = threading.Condition()

    def record(self, name: str, event: str) -> None:
        with self._changed:
            self._entries.append((name, event))
            self._changed.notify_all()

    def entries(self) -> list[tuple[str, str]]:
        with self._changed:
            return list(self._entries)

    def names(self, event: str) -> list[str]:
        """Child names that recorded ``event``, in order."""
        return [name for name, what in self.entries() if what == event]

    def count(self, name: str, event: str) -> int:
        return sum(1 for entry in self.entries() if entry == (name, event))

    def wait_for(self, predicate: Callable[[Journal], bool], timeout: float = WAIT_S) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    def clear(self) -> None:
        with self._changed:
            self._entries.clear()


class Probe(pykka.ThreadingActor):
    """A child that does exactly what the test tells it to."""

    def __init__(
        self,
        name: str,
        journal: Journal,
        start_gate: threading.Event | None = None,
        fail_start: threading.Event | None = None,
        ignore_start: threading.Event | None = None,
        stop_gate: threading.Event | None = None,
        stop_wait_s: float = WAIT_S,
        crash_on_stop: BaseException | None = None,
        start_error: BaseException | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.journal = journal
        self.start_gate = start_gate
        self.fail_start = fail_start
        self.ignore_start = ignore_start
        self.stop_gate = stop_gate
        self.stop_wait_s = stop_wait_s
        self.crash_on_stop = crash_on_stop
        self.start_error = start_error
        self.status = WorkerStatus()

    def on_start(self) -> None:
        self.journal.record(self.name, "starting")
        if self.start_gate is not None:
            self.start_gate.wait(WAIT_S)
        if self.fail_start is not None and self.fail_start.is_set():
            self.journal.record(self.name, "start_failed")
            raise self.start_error or StartError(f"{self.name} refuses to start")
        if self.ignore_start is not None and self.ignore_start.is_set():
            raise StartIgnored(f"{self.name} declines to start")
        self.journal.record(self.name, "started")

    def on_stop(self) -> None:
        self.journal.record(self.name, "stopping")
        if self.stop_gate is not None:
            self.stop_gate.wait(self.stop_wait_s)
        if self.crash_on_stop is not None:
            raise self.crash_on_stop
        self.journal.record(self.name, "stopped")

    def on_receive(self, message: Any) -> Any:
        if message == "ping":
            return "pong"
        if message == "stop_self":
            self.stop()
            return None
        if isinstance(message, Crash):
            self.journal.record(self.name, "crashing")
            raise message.error
        if isinstance(message, Block):
            message.entered.set()
            message.release.wait(WAIT_S)
            return "released"
        return super().on_receive(message)

    def fail(self, error: BaseException) -> None:
        raise error

    def set_status(self, job: str | None, step: str | None) -> None:
        self.status = WorkerStatus(job=job, step=step)

    def supervision_status(self) -> WorkerStatus:
        return self.status


def probe(child_id: str, journal: Journal, **spec: Any) -> ChildSpec:
    """A ChildSpec for a Probe named ``child_id``; ``args`` entries go to the Probe."""
    args = {"name": child_id, "journal": journal, **spec.pop("args", {})}
    return ChildSpec(id=child_id, actor=Probe, args=args, **spec)


class BrokenInit(pykka.ThreadingActor):
    """Its constructor raises ``error``."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        raise error
