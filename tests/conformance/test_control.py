"""Control calls with OTP's error cases, and introspection."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from conformance.children import WAIT_S, Boom, Crash, Journal, probe
from conformance.test_restart_matrix import crash_and_settle
from runtime.errors import ChildControlError, StartFailed
from runtime.supervision import (
    BackoffSpec,
    ChildKind,
    ChildSpec,
    ChildState,
    Restart,
    RootHandle,
    ShutdownMode,
    SupervisorSpec,
)


def code_of(call: Callable[[], object]) -> str:
    with pytest.raises(ChildControlError) as caught:
        call()
    return caught.value.code


def test_control_calls_report_otp_error_codes(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """not_found, running, already_started and already_present come back as codes."""
    root = tree(probe("c", journal))
    assert code_of(lambda: root.restart_child("nope")) == "not_found"
    assert code_of(lambda: root.terminate_child("nope")) == "not_found"
    assert code_of(lambda: root.delete_child("nope")) == "not_found"
    assert code_of(lambda: root.restart_child("c")) == "running"
    assert code_of(lambda: root.delete_child("c")) == "running"
    assert code_of(lambda: root.start_child(probe("c", journal))) == "already_started"
    root.terminate_child("c")
    assert code_of(lambda: root.start_child(probe("c", journal))) == "already_present"
    assert root.restart_child("c").ask("ping") == "pong"
    root.terminate_child("c")
    root.delete_child("c")
    assert root.which_children() == []
    assert root.start_child(probe("c", journal)).ask("ping") == "pong"


def test_restarting_child_refuses_restart_and_delete(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """While a child waits on backoff, restart_child and delete_child answer restarting."""
    root = tree(probe("c", journal), intensity=5, backoff=BackoffSpec(min_s=10, max_s=10))
    crash_and_settle(root, "c", Crash(Boom()))
    assert code_of(lambda: root.restart_child("c")) == "restarting"
    assert code_of(lambda: root.delete_child("c")) == "restarting"
    root.terminate_child("c")
    root.delete_child("c")


def test_start_child_that_fails_to_start_is_not_added(
    tree: Callable[..., RootHandle], journal: Journal, gates: Callable[[], threading.Event]
) -> None:
    """start_child raises StartFailed naming the child, and no spec is kept."""
    broken = gates()
    broken.set()
    root = tree()
    with pytest.raises(StartFailed) as caught:
        root.start_child(probe("bad", journal, args={"fail_start": broken}))
    assert caught.value.child == "root/bad"
    assert root.which_children() == []


def test_temporary_child_spec_is_dropped_when_terminated(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """OTP drops a temporary child's spec as soon as it stops."""
    root = tree(probe("t", journal, restart=Restart.TEMPORARY))
    root.terminate_child("t")
    assert root.which_children() == []


def test_which_count_and_get_childspec_describe_the_children(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """Introspection lists handles and states, counts kinds, and fills spec defaults."""
    inner = SupervisorSpec(children=(probe("w", journal),))
    root = tree(probe("a", journal), ChildSpec(id="g", supervisor=inner))
    rows = root.which_children()
    assert [(r.id, r.kind, r.state, r.presence) for r in rows] == [
        ("a", ChildKind.WORKER, ChildState.RUNNING, "running"),
        ("g", ChildKind.SUPERVISOR, ChildState.RUNNING, "running"),
    ]
    assert rows[0].handle is root.child("a")
    counts = root.count_children()
    assert (counts.specs, counts.active, counts.supervisors, counts.workers) == (2, 2, 1, 1)
    worker_spec = root.get_childspec("a")
    assert (worker_spec.restart, worker_spec.shutdown) == (Restart.PERMANENT, 5.0)
    assert root.get_childspec("g").shutdown is ShutdownMode.INFINITY


def test_tree_snapshot_reports_state_counts_uptime_mailbox_and_job(
    tree: Callable[..., RootHandle], journal: Journal, clock: object
) -> None:
    """tree() nests supervisors and carries the fields the CLI renders."""
    from runtime.supervision import render_tree
    from runtime.testing import FakeClock

    assert isinstance(clock, FakeClock)
    inner = SupervisorSpec(children=(probe("w", journal),), intensity=4, period_s=9)
    root = tree(probe("a", journal), ChildSpec(id="g", supervisor=inner), intensity=2)
    root.lookup("g/w").call("set_status", "job-42", "summarize")
    crash_and_settle(root, "a", Crash(Boom()))
    clock.advance(3)
    snap = root.tree()
    assert (snap.path, snap.kind, snap.state, snap.intensity, snap.restarts_in_window) == (
        "root",
        ChildKind.SUPERVISOR,
        "running",
        2,
        1,
    )
    a = snap.find("root/a")
    assert (a.restart_count, a.uptime_s, a.mailbox_depth) == (1, 3.0, 0)
    group = snap.find("root/g")
    assert (group.strategy, group.intensity, group.period_s) == (inner.strategy, 4, 9)
    worker = snap.find("root/g/w")
    assert (worker.job, worker.step) == ("job-42", "summarize")
    text = render_tree(snap)
    assert "job job-42 step summarize" in text and "restarts 1/2 in 5s" in text
    with pytest.raises(AttributeError):
        snap.state = "x"  # type: ignore[misc]
    assert WAIT_S > 0


def test_kill_child_crashes_it_and_its_supervisor_restarts_it() -> None:
    """kill_child is OTP's exit(Pid, kill): the child crashes and is restarted, counted."""
    from runtime.supervision import ChildSpec, SupervisionContext, SupervisorSpec, start_supervisor

    root = start_supervisor(
        SupervisorSpec(
            intensity=5,
            children=(ChildSpec(id="c", actor="actors.placeholder:PlaceholderActor"),),
        ),
        context=SupervisionContext(),
    )
    try:
        handle = root.child("c")
        generation = handle.generation
        root.kill_child("c")
        assert handle.wait_running(5, after_generation=generation)
        root.wait_processed()
        node = root.tree().find(f"{root.path}/c")
        assert node.restart_count == 1
        assert "crash" in (node.last_exit or "")
    finally:
        root.shutdown()
