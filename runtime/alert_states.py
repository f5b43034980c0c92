"""An alert's lifecycle: its states, the allowed moves, and the records of a move and of an alert.

``ALERT_MOVES`` is the table of allowed moves and ``transition`` the one
function that checks it; ``next_state`` is the pure policy that picks a rule's
next state. ``AlertTransition`` is one move, as ``AlertEngine.evaluate``
reports it and sinks receive it; ``Alert`` is a pending or firing alert, as
``AlertEngine.active`` lists it. See ``runtime.alerts`` for the state diagram.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from runtime.alert_rules import Severity
from runtime.errors import IllegalTransition

__all__ = [
    "ALERT_MOVES",
    "Alert",
    "AlertState",
    "AlertTransition",
    "next_state",
    "transition",
]


class AlertState(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


ALERT_MOVES: Mapping[AlertState, frozenset[AlertState]] = {
    AlertState.INACTIVE: frozenset({AlertState.PENDING, AlertState.FIRING}),
    AlertState.PENDING: frozenset({AlertState.INACTIVE, AlertState.FIRING}),
    AlertState.FIRING: frozenset({AlertState.RESOLVED}),
    AlertState.RESOLVED: frozenset({AlertState.INACTIVE}),
}


def transition(subject: str, current: AlertState, target: AlertState) -> AlertState:
    """Return ``target`` if ``ALERT_MOVES`` allows ``current`` → ``target``; raise otherwise."""
    allowed = ALERT_MOVES[current]
    if target not in allowed:
        moves = ", ".join(sorted(state.value for state in allowed)) or "none"
        raise IllegalTransition(
            f"alert {subject} cannot move from {current.value} to {target.value}; "
            f"allowed from {current.value}: {moves}",
            subject=subject,
            state=current.value,
            target=target.value,
        )
    return target


def next_state(state: AlertState, holds: bool, held_s: float, for_s: float) -> AlertState:
    """Where a rule goes given whether its condition holds and for how long it has held."""
    if state in (AlertState.INACTIVE, AlertState.RESOLVED):
        if not holds:
            return AlertState.INACTIVE
        return AlertState.FIRING if for_s == 0 else AlertState.PENDING
    if state is AlertState.PENDING:
        if not holds:
            return AlertState.INACTIVE
        return AlertState.FIRING if held_s >= for_s else AlertState.PENDING
    return AlertState.FIRING if holds else AlertState.RESOLVED


# -- records ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertTransition:
    """One move of one rule, as ``evaluate`` reports it and sinks receive it."""

    name: str
    previous: AlertState
    state: AlertState
    at: float
    value: float | None
    threshold: float
    severity: Severity
    summary: str
    expr: str

    @property
    def notifies(self) -> bool:
        return self.state in (AlertState.FIRING, AlertState.RESOLVED)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state.value,
            "previous": self.previous.value,
            "at": self.at,
            "value": _json_number(self.value),
            "threshold": self.threshold,
            "severity": self.severity,
            "summary": self.summary,
            "expr": self.expr,
        }

    def environment(self) -> dict[str, str]:
        """The ``ELX_ALERT_*`` variables a command sink sees."""
        return {
            "ELX_ALERT_NAME": self.name,
            "ELX_ALERT_STATE": self.state.value,
            "ELX_ALERT_VALUE": "" if self.value is None else repr(self.value),
            "ELX_ALERT_THRESHOLD": repr(self.threshold),
            "ELX_ALERT_SEVERITY": self.severity,
            "ELX_ALERT_SUMMARY": self.summary,
        }


@dataclass(frozen=True, slots=True)
class Alert:
    """A pending or firing alert: ``since`` the condition started holding, ``held_s`` so far."""

    name: str
    state: AlertState
    since: float
    held_s: float
    value: float | None
    threshold: float
    severity: Severity
    summary: str
    fired_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state.value,
            "since": self.since,
            "held_s": self.held_s,
            "value": _json_number(self.value),
            "threshold": self.threshold,
            "severity": self.severity,
            "summary": self.summary,
            "fired_at": self.fired_at,
        }


def _json_number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value
