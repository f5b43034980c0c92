"""Backoff between restarts: bounds, the timer, reset after a long run, cancellation."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from conformance.children import WAIT_S, Boom, Crash, Journal, probe
from conformance.test_restart_matrix import crash_and_settle
from runtime.supervision import (
    BackoffSpec,
    ChildState,
    ManualTimer,
    RootHandle,
    SupervisionContext,
    SupervisorSpec,
    start_supervisor,
)
from runtime.supervision.restart_policy import backoff_delay
from runtime.testing import FakeClock

BACKOFF = BackoffSpec(min_s=0.1, max_s=1.0, jitter=0.5, reset_after_s=30)


@pytest.mark.parametrize("attempt", [0, 1, 2, 3, 4, 5, 10, 100])
@pytest.mark.parametrize("unit", [0.0, 0.5, 1.0])
def test_backoff_delay_stays_within_its_bounds(attempt: int, unit: float) -> None:
    """delay(n) = min(max_s, min_s·2ⁿ)·(1 + U·jitter), between min_s and max_s·(1 + jitter)."""
    delay = backoff_delay(BACKOFF, attempt, unit)
    base = min(BACKOFF.max_s, BACKOFF.min_s * 2**attempt)
    assert delay == pytest.approx(base * (1 + unit * BACKOFF.jitter))
    assert BACKOFF.min_s <= delay <= BACKOFF.max_s * (1 + BACKOFF.jitter)


def test_restart_waits_for_the_backoff_delay_on_the_timer(
    tree: Callable[..., RootHandle], journal: Journal, timer: ManualTimer
) -> None:
    """With backoff the child is restarting until the delay passes, then starts; delays double."""
    root = tree(probe("c", journal), intensity=10, period_s=60, backoff=BACKOFF)
    handle = root.child("c")
    expected = [0.125, 0.25, 0.5]  # min_s·2ⁿ·(1 + 0.5·0.5) with the context's uniform() = 0.5
    for n, delay in enumerate(expected):
        crash_and_settle(root, "c", Crash(Boom()))
        assert timer.requested[-1] == pytest.approx(delay)
        assert root.which_children()[0].presence == "restarting"
        assert handle.ask_async("ping").done()
        timer.advance(delay / 2)
        root.wait_processed()
        assert not handle.is_running()
        timer.advance(delay / 2)
        assert handle.wait_running(WAIT_S, after_generation=n + 1)


def test_backoff_resets_after_the_child_ran_reset_after_s(
    tree: Callable[..., RootHandle], journal: Journal, timer: ManualTimer, clock: FakeClock
) -> None:
    """A child that ran longer than reset_after_s restarts after the minimum delay again."""
    root = tree(probe("c", journal), intensity=10, period_s=60, backoff=BACKOFF)
    handle = root.child("c")
    for generation in (1, 2):
        crash_and_settle(root, "c", Crash(Boom()))
        timer.advance(timer.requested[-1])
        assert handle.wait_running(WAIT_S, after_generation=generation)
    assert timer.requested == [pytest.approx(0.125), pytest.approx(0.25)]
    clock.advance(BACKOFF.reset_after_s + 1)
    crash_and_settle(root, "c", Crash(Boom()))
    assert timer.requested[-1] == pytest.approx(0.125)


def test_terminating_a_child_waiting_on_backoff_cancels_its_restart(
    tree: Callable[..., RootHandle], journal: Journal, timer: ManualTimer
) -> None:
    """terminate_child during the delay leaves the child stopped even when the timer fires."""
    root = tree(probe("c", journal), intensity=10, backoff=BACKOFF)
    crash_and_settle(root, "c", Crash(Boom()))
    root.terminate_child("c")
    assert timer.pending() == 0
    timer.advance(10)
    root.wait_processed()
    assert root.which_children()[0].state is ChildState.STOPPED
    assert journal.count("c", "started") == 1


def test_real_timer_restarts_after_the_delay(journal: Journal) -> None:
    """With the real clock and timer, a backoff restart happens by itself shortly after."""
    spec = SupervisorSpec(
        children=(probe("c", journal),),
        backoff=BackoffSpec(min_s=0.01, max_s=0.05, jitter=0.1),
    )
    root = start_supervisor(spec, context=SupervisionContext())
    root.child("c").tell(Crash(Boom()))
    assert root.child("c").wait_running(WAIT_S, after_generation=1)
    root.shutdown()


def test_failed_restart_retries_wait_for_backoff_too(
    tree: Callable[..., RootHandle],
    journal: Journal,
    timer: ManualTimer,
    gates: Callable[[], threading.Event],
) -> None:
    """A failed restart's retry is also delayed by backoff rather than spinning."""
    broken = gates()
    root = tree(
        probe("c", journal, args={"fail_start": broken}), intensity=10, period_s=60, backoff=BACKOFF
    )
    broken.set()
    crash_and_settle(root, "c", Crash(Boom()))
    timer.advance(timer.requested[-1])
    assert journal.wait_for(lambda j: j.count("c", "start_failed") == 1)
    assert timer.wait_scheduled(2, WAIT_S)
    assert timer.requested[1] == pytest.approx(0.25)
    broken.clear()
    timer.advance(timer.requested[1])
    assert root.child("c").wait_running(WAIT_S, after_generation=1)
