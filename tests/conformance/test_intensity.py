"""Restart intensity: sliding window, escalation, intensity 0, failing restarts."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import structlog

from conformance.children import WAIT_S, Boom, Crash, Journal, probe
from conformance.test_restart_matrix import crash_and_settle
from runtime.errors import ChildNotRunning, RestartIntensityExceeded
from runtime.supervision import (
    ChildSpec,
    ChildState,
    ExitReason,
    RootHandle,
    SupervisorHandle,
    SupervisorSpec,
)
from runtime.testing import FakeClock


def test_restarts_spaced_wider_than_the_period_never_exceed_intensity(
    tree: Callable[..., RootHandle], journal: Journal, clock: FakeClock
) -> None:
    """With intensity 1 in 5 s, a crash every 6 s is restarted forever (the window slides)."""
    root = tree(probe("c", journal), intensity=1, period_s=5)
    for _ in range(5):
        crash_and_settle(root, "c", Crash(Boom()))
        assert root.child("c").is_running()
        clock.advance(6)
    assert root.tree().find("root/c").restart_count == 5


def test_intensity_exceeded_stops_children_in_reverse_and_exits_with_shutdown(
    tree: Callable[..., RootHandle], journal: Journal, clock: FakeClock
) -> None:
    """Two crashes inside the window with intensity 1: reverse stop, exit shutdown, logged."""
    root = tree(
        probe("a", journal), probe("b", journal), probe("c", journal), intensity=1, period_s=5
    )
    crash_and_settle(root, "b", Crash(Boom()))
    clock.advance(4)
    journal.clear()
    with structlog.testing.capture_logs() as logs:
        root.child("b").tell(Crash(Boom()))
        exit_ = root.wait_exit(WAIT_S)
    assert exit_.reason is ExitReason.SHUTDOWN
    assert isinstance(exit_.error, RestartIntensityExceeded)
    assert exit_.error.supervisor == "root"
    assert journal.names("stopped") == ["c", "a"]
    reached = [entry for entry in logs if entry["event"] == "max_restart_intensity_reached"]
    assert reached and reached[0]["supervisor"] == "root" and reached[0]["child"] == "b"
    assert any(entry["event"] == "supervisor_escalated" for entry in logs)


def test_intensity_zero_escalates_on_the_first_crash(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """intensity 0 allows no restart at all."""
    root = tree(probe("c", journal), intensity=0)
    root.child("c").tell(Crash(Boom()))
    assert root.wait_exit(WAIT_S).escalated
    assert journal.count("c", "started") == 1


def test_nested_supervisor_escalates_to_its_parent_which_restarts_it(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """A child supervisor that gives up exits; its parent counts that and restarts the subtree."""
    inner = SupervisorSpec(children=(probe("w", journal),), intensity=0)
    root = tree(probe("first", journal), ChildSpec(id="group", supervisor=inner), intensity=3)
    group = root.supervisor("group")
    worker = root.lookup("group/w")
    worker.tell(Crash(Boom()))
    assert group.wait_running(WAIT_S, after_generation=1)
    root.wait_processed()
    node = root.tree().find("root/group")
    assert node.restart_count == 1
    assert "RestartIntensityExceeded" in (node.last_exit or "")
    assert root.tree().restarts_in_window == 1
    assert worker.ask("ping") == "pong"
    assert root.child("first").generation == 1


def test_failing_restarts_count_toward_intensity_and_supervisor_stays_responsive(
    tree: Callable[..., RootHandle], journal: Journal, gates: Callable[[], threading.Event]
) -> None:
    """While restarts keep failing the child is restarting, calls are answered, and it can stop."""
    broken = gates()
    root = tree(
        probe("c", journal, args={"fail_start": broken}),
        probe("d", journal),
        intensity=10_000,
        period_s=60,
    )
    broken.set()
    root.child("c").tell(Crash(Boom()))
    assert journal.wait_for(lambda j: j.count("c", "start_failed") >= 5)
    rows = {row.id: row for row in root.which_children()}
    assert rows["c"].presence in ("restarting", "undefined")
    root.wait_processed(timeout=WAIT_S)
    assert root.tree().restarts_in_window >= 5
    assert root.child("d").ask("ping") == "pong"
    exit_ = root.shutdown(timeout=WAIT_S)
    assert exit_.reason is ExitReason.SHUTDOWN


def test_failing_restarts_exhaust_intensity_and_escalate(
    tree: Callable[..., RootHandle], journal: Journal, gates: Callable[[], threading.Event]
) -> None:
    """Each failed restart attempt is a restart: with intensity 3 the fourth attempt escalates."""
    broken = gates()
    root = tree(probe("c", journal, args={"fail_start": broken}), intensity=3, period_s=60)
    broken.set()
    root.child("c").tell(Crash(Boom()))
    assert root.wait_exit(WAIT_S).escalated
    assert journal.count("c", "start_failed") == 3


@pytest.mark.parametrize("intensity", [1, 2, 3])
def test_the_restart_past_intensity_is_the_one_that_escalates(
    tree: Callable[..., RootHandle], journal: Journal, intensity: int
) -> None:
    """Exactly ``intensity`` restarts are allowed in one window; the next one escalates."""
    root = tree(probe("c", journal), intensity=intensity, period_s=5)
    handle = root.child("c")
    for _ in range(intensity):
        crash_and_settle(root, "c", Crash(Boom()))
        assert handle.is_running()
    handle.tell(Crash(Boom()))
    assert root.wait_exit(WAIT_S).escalated


def test_supervisor_state_after_escalation_is_stopped_and_handles_fail_fast(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """After escalation the children's handles fail at once instead of waiting."""
    root = tree(probe("c", journal), intensity=0)
    handle = root.child("c")
    handle.tell(Crash(Boom()))
    root.wait_exit(WAIT_S)
    assert not handle.is_running()
    with pytest.raises(ChildNotRunning, match=r"root/c (exited|is being stopped)"):
        handle.ask("ping", timeout=WAIT_S)
    assert isinstance(root, SupervisorHandle)
    assert not root.is_running()
    assert ChildState.STOPPED.value == "stopped"
