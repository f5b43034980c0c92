"""Fixtures for the supervision conformance suite: leak checks, fake time, tree starters."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conformance.children import Journal
from runtime.supervision import (
    ManualTimer,
    RootHandle,
    SupervisionContext,
    SupervisorSpec,
    start_supervisor,
)
from runtime.supervision.registry import live_actors, stop_all_actors, wait_threads_back
from runtime.testing import FakeClock


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Every test ends with no actor registered and the thread count back to baseline."""
    baseline = set(threading.enumerate())
    yield
    stop_all_actors(timeout=5.0)
    left = [t for t in wait_threads_back(baseline, timeout=5.0) if not _ray_runtime(t)]
    assert not left, f"threads still alive after the test: {left}"
    assert live_actors() == 0


def _ray_runtime(thread: threading.Thread) -> bool:
    """Threads of the Ray runtime, which lives as long as the process once a test starts it."""
    return thread.name.startswith("ray_") or type(thread).__name__ == "PythonGCThread"


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def timer(clock: FakeClock) -> ManualTimer:
    return ManualTimer(clock)


@pytest.fixture
def ctx(clock: FakeClock, timer: ManualTimer) -> SupervisionContext:
    """Fake time: the window and uptime read ``clock``; backoff waits on ``timer``."""
    return SupervisionContext(clock=clock, timer=timer, uniform=lambda: 0.5)


@pytest.fixture
def gates() -> Iterator[Callable[[], threading.Event]]:
    """Make events that are all set at teardown, so no child stays blocked on one."""
    made: list[threading.Event] = []

    def make() -> threading.Event:
        event = threading.Event()
        made.append(event)
        return event

    yield make
    for event in made:
        event.set()


@pytest.fixture
def tree(ctx: SupervisionContext) -> Iterator[Callable[..., RootHandle]]:
    """Start a root supervisor on the fake context (flags as keywords); shut it down after."""
    roots: list[RootHandle] = []

    def start(*children: Any, **flags: Any) -> RootHandle:
        root = start_supervisor(SupervisorSpec(children=children, **flags), context=ctx)
        roots.append(root)
        return root

    yield start
    for root in reversed(roots):
        if not root.exit_future.done():
            root.shutdown(timeout=10.0)
