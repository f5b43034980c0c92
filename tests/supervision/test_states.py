"""Lifecycle tables: one transition function, illegal moves named."""

from __future__ import annotations

import pytest

from runtime.errors import IllegalTransition
from runtime.supervision import ChildState, SupervisorState
from runtime.supervision.states import CHILD_MOVES, SUPERVISOR_MOVES, transition


@pytest.mark.parametrize(
    ("current", "target"),
    [(current, target) for current, targets in CHILD_MOVES.items() for target in targets],
)
def test_every_allowed_child_move_is_accepted(current: ChildState, target: ChildState) -> None:
    """Each move in the child table goes through."""
    assert transition("child root/a", current, target, CHILD_MOVES) is target


def test_illegal_move_names_the_object_its_state_and_the_allowed_moves() -> None:
    """running → starting is refused with a message a person can act on."""
    with pytest.raises(IllegalTransition) as caught:
        transition("child root/a", ChildState.RUNNING, ChildState.STARTING, CHILD_MOVES)
    assert str(caught.value) == (
        "child root/a cannot move from running to starting; allowed from running: stopped, stopping"
    )
    assert (caught.value.subject, caught.value.state, caught.value.target) == (
        "child root/a",
        "running",
        "starting",
    )


def test_a_stopped_supervisor_cannot_move_anywhere() -> None:
    """stopped is terminal for a supervisor."""
    with pytest.raises(IllegalTransition, match="allowed from stopped: none"):
        transition(
            "supervisor root", SupervisorState.STOPPED, SupervisorState.RUNNING, SUPERVISOR_MOVES
        )


def test_every_state_has_a_row_in_its_table() -> None:
    """No state is missing from a table."""
    assert set(CHILD_MOVES) == set(ChildState)
    assert set(SUPERVISOR_MOVES) == set(SupervisorState)
