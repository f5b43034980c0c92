"""Lifecycles of children and supervisors: Enums, their tables of allowed moves, one transition.

Child (as its supervisor sees it)::

    stopped ──► starting ──► running ──► stopping ──► stopped
                   │  ▲          │
                   ▼  │          ▼
                restarting ◄── stopped (exited, restart pending)

``restarting`` means a restart is owed: a backoff delay is running or the last
start attempt failed and a retry is queued as a message to the supervisor.

Supervisor: starting ──► running ──► shutting_down ──► stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from runtime.errors import IllegalTransition


class ChildState(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPING = "stopping"


class SupervisorState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    SHUTTING_DOWN = "shutting_down"
    STOPPED = "stopped"


CHILD_MOVES: Mapping[ChildState, frozenset[ChildState]] = {
    ChildState.STOPPED: frozenset({ChildState.STARTING, ChildState.RESTARTING}),
    ChildState.STARTING: frozenset({ChildState.RUNNING, ChildState.RESTARTING, ChildState.STOPPED}),
    ChildState.RUNNING: frozenset({ChildState.STOPPING, ChildState.STOPPED}),
    ChildState.RESTARTING: frozenset(
        {ChildState.STARTING, ChildState.STOPPED, ChildState.STOPPING}
    ),
    ChildState.STOPPING: frozenset({ChildState.STOPPED}),
}

SUPERVISOR_MOVES: Mapping[SupervisorState, frozenset[SupervisorState]] = {
    SupervisorState.STARTING: frozenset({SupervisorState.RUNNING, SupervisorState.SHUTTING_DOWN}),
    SupervisorState.RUNNING: frozenset({SupervisorState.SHUTTING_DOWN}),
    SupervisorState.SHUTTING_DOWN: frozenset({SupervisorState.STOPPED}),
    SupervisorState.STOPPED: frozenset(),
}

S = TypeVar("S", ChildState, SupervisorState)


def transition(subject: str, current: S, target: S, table: Mapping[S, frozenset[S]]) -> S:
    """Return ``target`` if ``table`` allows ``current`` → ``target``; raise otherwise."""
    allowed = table[current]
    if target not in allowed:
        moves = ", ".join(sorted(state.value for state in allowed)) or "none"
        raise IllegalTransition(
            f"{subject} cannot move from {current.value} to {target.value}; "
            f"allowed from {current.value}: {moves}",
            subject=subject,
            state=current.value,
            target=target.value,
        )
    return target
