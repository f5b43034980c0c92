"""Strategies: base cases, bystanders, and a sibling failing to start during a group restart."""

from __future__ import annotations

import threading
from collections.abc import Callable

from conformance.children import WAIT_S, Boom, Crash, Journal, probe
from conformance.test_restart_matrix import crash_and_settle
from runtime.supervision import ChildState, Restart, RootHandle, Strategy


def test_one_for_one_restarts_only_the_dead_child(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """Siblings of a crashed child keep their incarnation under one_for_one."""
    root = tree(probe("a", journal), probe("b", journal), probe("c", journal))
    journal.clear()
    crash_and_settle(root, "b", Crash(Boom()))
    assert journal.names("started") == ["b"]
    assert [root.child(i).generation for i in "abc"] == [1, 2, 1]


def test_one_for_all_stops_others_in_reverse_and_starts_all_in_order(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """one_for_all: the others stop newest first, then every child starts in spec order."""
    root = tree(
        probe("a", journal), probe("b", journal), probe("c", journal), strategy=Strategy.ONE_FOR_ALL
    )
    journal.clear()
    crash_and_settle(root, "b", Crash(Boom()))
    assert journal.names("stopped") == ["c", "a"]
    assert journal.names("started") == ["a", "b", "c"]
    assert [root.child(i).generation for i in "abc"] == [2, 2, 2]
    assert root.tree().restarts_in_window == 1


def test_rest_for_one_restarts_later_siblings_in_order(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """rest_for_one: children after the dead one stop in reverse, then it and they start."""
    root = tree(
        probe("a", journal),
        probe("b", journal),
        probe("c", journal),
        probe("d", journal),
        strategy=Strategy.REST_FOR_ONE,
    )
    journal.clear()
    crash_and_settle(root, "b", Crash(Boom()))
    assert journal.names("stopped") == ["d", "c"]
    assert journal.names("started") == ["b", "c", "d"]
    assert [root.child(i).generation for i in "abcd"] == [1, 2, 2, 2]


def test_temporary_bystander_is_stopped_and_dropped_not_restarted(
    tree: Callable[..., RootHandle], journal: Journal
) -> None:
    """A temporary child is never restarted, not even as a bystander of a group restart."""
    root = tree(
        probe("a", journal),
        probe("temp", journal, restart=Restart.TEMPORARY),
        probe("trans", journal, restart=Restart.TRANSIENT),
        strategy=Strategy.ONE_FOR_ALL,
    )
    crash_and_settle(root, "a", Crash(Boom()))
    assert [row.id for row in root.which_children()] == ["a", "trans"]
    assert journal.count("temp", "started") == 1
    assert journal.count("trans", "started") == 2


def test_sibling_start_failure_during_group_restart_is_retried(
    tree: Callable[..., RootHandle], journal: Journal, gates: Callable[[], threading.Event]
) -> None:
    """A sibling failing to start in a one_for_all restart makes the group retry until it starts."""
    broken = gates()
    root = tree(
        probe("a", journal),
        probe("b", journal, args={"fail_start": broken}),
        probe("c", journal),
        strategy=Strategy.ONE_FOR_ALL,
        intensity=100,
    )
    broken.set()
    handle_c = root.child("c")
    generation = root.child("a").generation
    root.child("a").tell(Crash(Boom()))
    assert journal.wait_for(lambda j: j.count("b", "start_failed") >= 3)
    states = {row.id: row.state for row in root.which_children()}
    assert states["b"] in (ChildState.RESTARTING, ChildState.STARTING)
    broken.clear()
    assert handle_c.wait_running(WAIT_S, after_generation=1)
    root.wait_processed()
    assert all(row.state is ChildState.RUNNING for row in root.which_children())
    assert root.child("a").generation > generation
    assert root.child("a").ask("ping") == "pong"
