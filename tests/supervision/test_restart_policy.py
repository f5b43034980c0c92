"""The pure restart policy: matrix, sliding window, backoff."""

from __future__ import annotations

import pytest

from runtime.supervision import BackoffSpec, ExitReason, Restart
from runtime.supervision.restart_policy import (
    RestartWindow,
    attempt_after_run,
    backoff_delay,
    should_restart,
)


@pytest.mark.parametrize(
    ("restart", "reason", "expected"),
    [
        (Restart.PERMANENT, ExitReason.NORMAL, True),
        (Restart.PERMANENT, ExitReason.SHUTDOWN, True),
        (Restart.PERMANENT, ExitReason.CRASH, True),
        (Restart.PERMANENT, ExitReason.KILLED, True),
        (Restart.TRANSIENT, ExitReason.NORMAL, False),
        (Restart.TRANSIENT, ExitReason.SHUTDOWN, False),
        (Restart.TRANSIENT, ExitReason.CRASH, True),
        (Restart.TRANSIENT, ExitReason.KILLED, True),
        (Restart.TEMPORARY, ExitReason.NORMAL, False),
        (Restart.TEMPORARY, ExitReason.SHUTDOWN, False),
        (Restart.TEMPORARY, ExitReason.CRASH, False),
        (Restart.TEMPORARY, ExitReason.KILLED, False),
    ],
)
def test_restart_matrix_follows_otp(restart: Restart, reason: ExitReason, expected: bool) -> None:
    """permanent always, transient only after crash or killed, temporary never."""
    assert should_restart(restart, reason) is expected


def test_window_allows_intensity_restarts_within_the_period() -> None:
    """With intensity 2 in 5 s the third restart inside 5 s is refused."""
    window = RestartWindow(intensity=2, period_s=5)
    window, ok1 = window.record(100.0)
    window, ok2 = window.record(101.0)
    window, ok3 = window.record(104.9)
    assert (ok1, ok2, ok3) == (True, True, False)


def test_window_slides_so_old_restarts_stop_counting() -> None:
    """A restart older than period_s no longer counts."""
    window = RestartWindow(intensity=1, period_s=5)
    window, _ = window.record(100.0)
    window, allowed = window.record(105.0)
    assert allowed
    assert window.count(105.0) == 1
    assert window.count(110.0) == 0


def test_intensity_zero_allows_no_restart() -> None:
    """intensity 0 refuses the very first restart."""
    assert RestartWindow(intensity=0, period_s=5).record(0.0)[1] is False


def test_backoff_is_off_without_a_spec() -> None:
    """No backoff spec means restart at once."""
    assert backoff_delay(None, 5, 0.9) == 0.0


def test_backoff_rejects_a_draw_outside_the_unit_interval() -> None:
    """The uniform draw must lie in [0, 1]."""
    with pytest.raises(ValueError, match="unit"):
        backoff_delay(BackoffSpec(), 0, 1.5)


def test_backoff_attempts_reset_after_a_long_enough_run() -> None:
    """Running reset_after_s or longer sends the attempt count back to zero."""
    spec = BackoffSpec(reset_after_s=10)
    assert attempt_after_run(spec, 4, 9.9) == 4
    assert attempt_after_run(spec, 4, 10.0) == 0
