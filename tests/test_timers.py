"""One timer thread serves many deadlines: in order, cancellable, stopped by close."""

from __future__ import annotations

import threading

import pytest

from runtime.timers import Timers

WAIT_S = 5.0


def test_callbacks_run_in_deadline_order_and_a_cancelled_one_never_runs() -> None:
    timers = Timers()
    ran: list[str] = []
    last = threading.Event()
    try:
        timers.call_later(0.03, lambda: (ran.append("late"), last.set()))
        dropped = timers.call_later(0.02, lambda: ran.append("cancelled"))
        timers.call_later(0.01, lambda: ran.append("early"))
        dropped.cancel()
        assert last.wait(WAIT_S)
    finally:
        timers.close()
    assert ran == ["early", "late"]


def test_a_failing_callback_does_not_stop_the_ones_after_it() -> None:
    timers = Timers()
    after = threading.Event()

    def boom() -> None:
        raise RuntimeError("boom")

    try:
        timers.call_later(0.0, boom)
        timers.call_later(0.0, after.set)
        assert after.wait(WAIT_S)
    finally:
        timers.close()


def test_after_close_nothing_runs_and_new_deadlines_are_refused() -> None:
    timers = Timers()
    never = threading.Event()
    timers.call_later(3600, never.set)
    timers.close()
    assert not never.is_set()
    with pytest.raises(RuntimeError, match="closed"):
        timers.call_later(0, never.set)
