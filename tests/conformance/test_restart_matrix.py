"""Restart type by exit reason, and death detection through every Pykka path."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from conformance.children import WAIT_S, Boom, Crash, Journal, probe
from runtime.errors import ChildNotRunning, StartFailed
from runtime.supervision import (
    ExitReason,
    Restart,
    RootHandle,
    SupervisionContext,
    SupervisorSpec,
    start_supervisor,
)
from runtime.supervision.registry import live_actors


def crash_and_settle(root: RootHandle, child_id: str, message: object) -> None:
    """Tell ``message`` to a child, wait for that incarnation to end and the root to react."""
    handle = root.child(child_id)
    generation = handle.generation
    handle.tell(message)
    assert handle.wait_exited(generation, WAIT_S)
    root.wait_processed()


@pytest.mark.parametrize(
    ("restart", "message", "reason", "restarted"),
    [
        (Restart.PERMANENT, Crash(Boom()), ExitReason.CRASH, True),
        (Restart.PERMANENT, "stop_self", ExitReason.NORMAL, True),
        (Restart.TRANSIENT, Crash(Boom()), ExitReason.CRASH, True),
        (Restart.TRANSIENT, "stop_self", ExitReason.NORMAL, False),
        (Restart.TEMPORARY, Crash(Boom()), ExitReason.CRASH, False),
        (Restart.TEMPORARY, "stop_self", ExitReason.NORMAL, False),
    ],
)
def test_restart_type_and_exit_reason_decide_whether_a_child_restarts(
    tree: Callable[..., RootHandle],
    journal: Journal,
    restart: Restart,
    message: object,
    reason: ExitReason,
    restarted: bool,
) -> None:
    """permanent always restarts, transient only after a crash, temporary never (and is dropped)."""
    root = tree(probe("c", journal, restart=restart), intensity=5)
    handle = root.child("c")
    crash_and_settle(root, "c", message)
    assert handle.is_running() is restarted
    assert journal.count("c", "started") == (2 if restarted else 1)
    ids = [row.id for row in root.which_children()]
    assert ids == ([] if restart is Restart.TEMPORARY else ["c"])
    if restart is not Restart.TEMPORARY:
        assert root.tree().find("root/c").last_exit.startswith(reason.value)  # type: ignore[union-attr]


def test_exception_in_on_stop_is_a_crash(tree: Callable[..., RootHandle], journal: Journal) -> None:
    """A transient child whose on_stop raises when it stops itself crashed, so it restarts."""
    root = tree(
        probe("c", journal, restart=Restart.TRANSIENT, args={"crash_on_stop": Boom("in on_stop")})
    )
    crash_and_settle(root, "c", "stop_self")
    assert root.child("c").ask("ping") == "pong"
    assert root.tree().find("root/c").restart_count == 1


def test_base_exception_in_a_tell_crashes_only_that_child(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """SystemExit in a handler does not make Pykka stop every actor: the sibling lives on."""
    root = tree(probe("victim", journal), probe("bystander", journal), intensity=5)
    bystander = root.child("bystander")
    before = live_actors()
    crash_and_settle(root, "victim", Crash(SystemExit(1)))
    crash_and_settle(root, "victim", Crash(KeyboardInterrupt()))
    assert root.child("victim").ask("ping") == "pong"
    assert bystander.generation == 1
    assert bystander.ask("ping") == "pong"
    assert live_actors() == before
    assert "KeyboardInterrupt" in (root.tree().find("root/victim").last_exit or "")


def test_base_exception_in_on_stop_crashes_only_that_child(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """A BaseException from on_stop is a crash of that child alone."""
    root = tree(probe("c", journal, args={"crash_on_stop": SystemExit(2)}), probe("d", journal))
    crash_and_settle(root, "c", "stop_self")
    assert root.child("c").ask("ping") == "pong"
    assert root.child("d").generation == 1
    assert "crash" in (root.tree().find("root/c").last_exit or "")


def test_base_exception_in_on_start_fails_the_start_without_stopping_other_actors(
    ctx: SupervisionContext, journal: Journal
) -> None:
    """KeyboardInterrupt in on_start fails that start; actors outside the tree are untouched."""
    flag = threading.Event()
    flag.set()
    outsider = start_supervisor(SupervisorSpec(children=(probe("outsider", journal),)), context=ctx)
    spec = SupervisorSpec(
        children=(
            probe("c", journal, args={"fail_start": flag, "start_error": KeyboardInterrupt()}),
        )
    )
    with pytest.raises(StartFailed) as caught:
        start_supervisor(spec, name="other", context=ctx)
    assert isinstance(caught.value.cause, KeyboardInterrupt)
    assert outsider.child("outsider").ask("ping") == "pong"
    outsider.shutdown()


def test_base_exception_in_an_ask_fails_the_caller_and_crashes_the_child(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """The caller gets ChildNotRunning at once, and the child is restarted."""
    root = tree(probe("c", journal))
    handle = root.child("c")
    with pytest.raises(ChildNotRunning, match="crashed with SystemExit"):
        handle.call("fail", SystemExit(4))
    assert handle.wait_running(WAIT_S, after_generation=1)
    assert handle.ask("ping") == "pong"


def test_exception_in_an_ask_goes_to_the_caller_and_is_not_a_crash(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """An ask whose handler raises returns the error; the same incarnation keeps serving."""
    root = tree(probe("c", journal))
    handle = root.child("c")
    with pytest.raises(Boom):
        handle.call("fail", Boom("for the caller"))
    root.wait_processed()
    assert handle.generation == 1
    assert handle.ask("ping") == "pong"


def test_crash_on_makes_an_ask_exception_a_crash(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """With crash_on listing it, the caller still gets the error and the child restarts."""
    root = tree(probe("c", journal, crash_on=(Boom,)))
    handle = root.child("c")
    with pytest.raises(Boom):
        handle.call("fail", Boom("counts as a crash"))
    assert handle.wait_running(WAIT_S, after_generation=1)
    with pytest.raises(ValueError):
        handle.call("fail", ValueError("not listed"))
    root.wait_processed()
    assert handle.generation == 2
