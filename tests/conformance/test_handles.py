"""Stable handles and failing fast: no call ever waits on a dead incarnation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from conformance.children import WAIT_S, Block, Boom, Crash, Journal, probe
from conformance.test_restart_matrix import crash_and_settle
from runtime.errors import CallTimeout, ChildNotRunning
from runtime.supervision import RootHandle


def test_stable_handle_reaches_the_new_incarnation_after_a_restart(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """The same handle object serves calls before and after restarts."""
    root = tree(probe("c", journal), intensity=5)
    handle = root.child("c")
    for generation in (1, 2, 3):
        assert handle.ask("ping") == "pong"
        crash_and_settle(root, "c", Crash(Boom()))
        assert root.child("c") is handle
        assert handle.generation == generation + 1
    assert handle.call("supervision_status").job is None


def test_queued_ask_fails_fast_when_its_actor_dies(
    tree: Callable[..., RootHandle], journal: Journal, gates: Callable[[], threading.Event]
) -> None:
    """Asks queued behind a crashing message fail with ChildNotRunning as soon as it dies."""
    root = tree(probe("c", journal))
    handle = root.child("c")
    release, entered = gates(), gates()
    blocker = handle.ask_async(Block(release, entered))
    assert entered.wait(WAIT_S)
    handle.tell(Crash(Boom()))
    queued = [handle.ask_async("ping") for _ in range(10)]
    began = time.monotonic()
    release.set()
    assert blocker.get(WAIT_S) == "released"
    for reply in queued:
        with pytest.raises(ChildNotRunning):
            reply.get(WAIT_S)
    assert time.monotonic() - began < 1.0


def test_call_in_flight_when_the_child_is_killed_fails_fast(
    tree: Callable[..., RootHandle], journal: Journal, gates: Callable[[], threading.Event]
) -> None:
    """A caller blocked on a child that is then abandoned gets ChildNotRunning, not a hang."""
    root = tree(probe("c", journal, shutdown=0.05))
    handle = root.child("c")
    release, entered = gates(), gates()
    in_flight = handle.ask_async(Block(release, entered))
    assert entered.wait(WAIT_S)
    errors: list[BaseException] = []

    def wait_for_reply() -> None:
        try:
            in_flight.get(WAIT_S)
        except ChildNotRunning as exc:
            errors.append(exc)

    waiter = threading.Thread(target=wait_for_reply)
    waiter.start()
    root.terminate_child("c")
    waiter.join(WAIT_S)
    assert not waiter.is_alive() and len(errors) == 1
    release.set()


def test_call_to_a_stopped_child_fails_at_once_with_its_path(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """Calling a terminated child raises ChildNotRunning naming it, without waiting."""
    root = tree(probe("c", journal))
    handle = root.child("c")
    root.terminate_child("c")
    began = time.monotonic()
    with pytest.raises(ChildNotRunning) as caught:
        handle.ask("ping", timeout=WAIT_S)
    assert caught.value.child == "root/c"
    with pytest.raises(ChildNotRunning):
        handle.tell("ping")
    assert time.monotonic() - began < 0.5


def test_call_to_a_busy_child_times_out_with_call_timeout(
    tree: Callable[..., RootHandle], journal: Journal, gates: Callable[[], threading.Event]
) -> None:
    """A running but busy child yields CallTimeout after the caller's timeout."""
    root = tree(probe("c", journal))
    handle = root.child("c")
    release, entered = gates(), gates()
    handle.ask_async(Block(release, entered))
    assert entered.wait(WAIT_S)
    with pytest.raises(CallTimeout) as caught:
        handle.ask("ping", timeout=0.05)
    assert caught.value.child == "root/c"
    release.set()


def test_handle_to_a_grandchild_survives_its_supervisor_restarting(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """Handles are per path for the whole tree, so a restarted subtree rebinds the same handle."""
    from runtime.supervision import ChildSpec, SupervisorSpec

    inner = SupervisorSpec(children=(probe("w", journal),), intensity=0)
    root = tree(ChildSpec(id="g", supervisor=inner), intensity=3)
    worker = root.lookup("g/w")
    group = root.supervisor("g")
    worker.tell(Crash(Boom()))  # g gives up at once; root restarts g with a new w
    assert group.wait_running(WAIT_S, after_generation=1)
    assert root.lookup("g/w") is worker
    assert worker.generation == 2
    assert worker.ask("ping") == "pong"
