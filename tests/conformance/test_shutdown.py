"""Shutdown: order, timeouts that abandon and fence, brutal kill, the stop race."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pykka
import pytest

from conformance.children import WAIT_S, Block, Boom, Crash, Journal, probe
from runtime.errors import ChildNotRunning
from runtime.supervision import (
    ChildSpec,
    ChildState,
    ExitReason,
    RootHandle,
    ShutdownMode,
    SupervisorSpec,
)


def test_shutdown_stops_children_in_reverse_start_order(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """The root stops the last started child first; nested subtrees stop inside their slot."""
    inner = SupervisorSpec(children=(probe("x", journal), probe("y", journal)))
    root = tree(probe("a", journal), ChildSpec(id="group", supervisor=inner), probe("b", journal))
    exit_ = root.shutdown()
    assert exit_.reason is ExitReason.SHUTDOWN
    assert journal.names("stopped") == ["b", "y", "x", "a"]


def test_shutdown_timeout_abandons_and_fences_the_child(
    tree: Callable[..., RootHandle], journal: Journal, gates: Callable[[], threading.Event]
) -> None:
    """A child slower than its shutdown timeout is abandoned: killed, unregistered, calls fail."""
    stuck = gates()
    root = tree(probe("slow", journal, shutdown=0.2))
    handle = root.child("slow")
    release, entered = gates(), gates()
    in_flight = handle.ask_async(Block(release, entered))
    assert entered.wait(WAIT_S)
    refs_before = len(pykka.ActorRegistry.get_all())
    began = time.monotonic()
    root.terminate_child("slow")
    assert time.monotonic() - began < 2.0
    with pytest.raises(ChildNotRunning, match="abandoned"):
        in_flight.get(WAIT_S)
    assert len(pykka.ActorRegistry.get_all()) == refs_before - 1
    assert "killed" in (root.tree().find("root/slow").last_exit or "")
    release.set()  # the late reply lands on a settled future and is dropped
    assert journal.wait_for(lambda j: j.count("slow", "stopped") == 1)
    with pytest.raises(ChildNotRunning):
        in_flight.get(WAIT_S)
    stuck.set()


def test_brutal_kill_does_not_wait_for_the_child(
    tree: Callable[..., RootHandle], journal: Journal, gates: Callable[[], threading.Event]
) -> None:
    """brutal_kill abandons at once even if the child is busy; the exit is killed."""
    root = tree(probe("k", journal, shutdown=ShutdownMode.BRUTAL_KILL))
    release, entered = gates(), gates()
    root.child("k").ask_async(Block(release, entered))
    assert entered.wait(WAIT_S)
    began = time.monotonic()
    root.terminate_child("k")
    assert time.monotonic() - began < 1.0
    assert (root.tree().find("root/k").last_exit or "").startswith("killed")
    release.set()


def test_infinity_waits_for_a_slow_child_however_long(
    tree: Callable[..., RootHandle], journal: Journal, gates: Callable[[], threading.Event]
) -> None:
    """shutdown: infinity waits for on_stop to finish instead of abandoning."""
    gate = gates()
    root = tree(probe("s", journal, shutdown=ShutdownMode.INFINITY, args={"stop_gate": gate}))
    stopping = threading.Thread(target=root.terminate_child, args=("s",))
    stopping.start()
    assert journal.wait_for(lambda j: j.count("s", "stopping") == 1)
    stopping.join(0.3)
    assert stopping.is_alive()
    gate.set()
    stopping.join(WAIT_S)
    assert (root.tree().find("root/s").last_exit or "") == "shutdown"


def test_child_crashing_while_being_terminated_is_not_restarted(
    tree: Callable[..., RootHandle], journal: Journal, gates: Callable[[], threading.Event]
) -> None:
    """Stop race: a crash racing terminate_child neither restarts the child nor hangs."""
    for _ in range(20):
        journal.clear()
        root = tree(probe("r", journal))
        handle = root.child("r")
        handle.tell(Crash(Boom()))
        root.terminate_child("r")
        root.wait_processed()
        assert root.which_children()[0].state is ChildState.STOPPED
        assert not handle.is_running()
        root.shutdown()
