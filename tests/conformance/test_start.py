"""Start group: order, blocking starts, start failure, ignore."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from conformance.children import WAIT_S, BrokenInit, Journal, StartError, probe
from runtime.errors import StartFailed
from runtime.supervision import (
    ChildSpec,
    ChildState,
    RootHandle,
    SupervisionContext,
    SupervisorSpec,
    start_supervisor,
)


def test_children_start_in_spec_order(tree: Callable[..., RootHandle], journal: Journal) -> None:
    """Children start one after another in the order of the spec."""
    tree(probe("a", journal), probe("b", journal), probe("c", journal))
    assert journal.names("started") == ["a", "b", "c"]


def test_next_child_starts_only_after_previous_on_start_returns(
    ctx: SupervisionContext, journal: Journal, gates: Callable[[], threading.Event]
) -> None:
    """A child whose on_start blocks holds back its later siblings until it returns."""
    gate = gates()
    spec = SupervisorSpec(
        children=(probe("slow", journal, args={"start_gate": gate}), probe("next", journal))
    )
    roots: list[RootHandle] = []
    booting = threading.Thread(target=lambda: roots.append(start_supervisor(spec, context=ctx)))
    booting.start()
    assert journal.wait_for(lambda j: j.names("starting") == ["slow"])
    assert journal.names("started") == []
    gate.set()
    booting.join(WAIT_S)
    assert journal.names("started") == ["slow", "next"]
    roots[0].shutdown()


def test_start_failure_stops_started_children_in_reverse_and_names_the_child(
    ctx: SupervisionContext, journal: Journal, gates: Callable[[], threading.Event]
) -> None:
    """A failing start stops the siblings already started, newest first, and says which failed."""
    broken = gates()
    broken.set()
    spec = SupervisorSpec(
        children=(
            probe("a", journal),
            probe("b", journal),
            probe("bad", journal, args={"fail_start": broken}),
            probe("never", journal),
        )
    )
    with pytest.raises(StartFailed) as caught:
        start_supervisor(spec, context=ctx)
    assert caught.value.child == "root/bad"
    assert isinstance(caught.value.cause, StartError)
    assert "root/bad failed to start" in str(caught.value)
    assert journal.names("stopped") == ["b", "a"]
    assert "never" not in journal.names("starting")


def test_nested_start_failure_names_the_innermost_child(
    ctx: SupervisionContext, journal: Journal, gates: Callable[[], threading.Event]
) -> None:
    """When a grandchild fails to start, the error names its full path."""
    broken = gates()
    broken.set()
    inner = SupervisorSpec(
        children=(probe("ok", journal), probe("bad", journal, args={"fail_start": broken}))
    )
    spec = SupervisorSpec(
        children=(probe("first", journal), ChildSpec(id="group", supervisor=inner))
    )
    with pytest.raises(StartFailed) as caught:
        start_supervisor(spec, context=ctx)
    assert caught.value.child == "root/group/bad"
    assert journal.names("stopped") == ["ok", "first"]


def test_base_exception_in_a_child_constructor_fails_its_start(
    ctx: SupervisionContext, journal: Journal
) -> None:
    """Even SystemExit raised by a child's constructor is a start failure naming that child."""
    spec = SupervisorSpec(
        children=(
            probe("a", journal),
            ChildSpec(id="bad", actor=BrokenInit, args={"error": SystemExit(3)}),
        )
    )
    with pytest.raises(StartFailed) as caught:
        start_supervisor(spec, context=ctx)
    assert caught.value.child == "root/bad"
    assert isinstance(caught.value.cause, SystemExit)
    assert journal.names("stopped") == ["a"]


def test_child_that_declines_to_start_is_kept_as_undefined(
    tree: Callable[..., RootHandle], journal: Journal, gates: Callable[[], threading.Event]
) -> None:
    """A child raising StartIgnored is not started, its spec stays, and the others carry on."""
    declines = gates()
    declines.set()
    root = tree(probe("quiet", journal, args={"ignore_start": declines}), probe("b", journal))
    rows = {row.id: row for row in root.which_children()}
    assert rows["quiet"].presence == "undefined"
    assert rows["quiet"].handle is None
    assert rows["quiet"].state is ChildState.STOPPED
    assert rows["b"].presence == "running"
    declines.clear()
    handle = root.restart_child("quiet")
    assert handle.ask("ping") == "pong"


def test_on_start_that_never_returns_times_out_and_is_abandoned(
    ctx: SupervisionContext, journal: Journal, gates: Callable[[], threading.Event]
) -> None:
    """A child stuck in on_start past start_timeout_s fails the start instead of hanging it."""
    gate = gates()
    spec = SupervisorSpec(
        children=(probe("stuck", journal, args={"start_gate": gate}, start_timeout_s=0.2),)
    )
    with pytest.raises(StartFailed, match=r"did not finish on_start within 0\.2 s"):
        start_supervisor(spec, context=ctx)


def test_args_that_do_not_fit_the_actor_constructor_are_rejected_up_front(journal: Journal) -> None:
    """A spec whose args cannot bind to the actor's __init__ fails validation, not at start."""
    from pydantic import ValidationError

    from conformance.children import Probe

    with pytest.raises(ValidationError, match=r"args do not fit Probe\(\): missing a required"):
        ChildSpec(id="bad", actor=Probe, args={"name": "x"})
