"""The messages a supervisor handles: control calls, and those it sends itself.

``ChildExited`` arrives from a child's incarnation when it exits; ``Retry`` is a
failed or delayed restart queued back to the supervisor, so it keeps answering
calls and can be stopped in between.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.supervision.child import ExitWatcher
from runtime.supervision.child_spec import ChildSpec
from runtime.supervision.exit import Exit
from runtime.supervision.incarnation import Incarnation


@dataclass(frozen=True, slots=True)
class ChildExited:
    child_id: str
    incarnation: Incarnation
    exit: Exit


@dataclass(frozen=True, slots=True)
class Retry:
    child_id: str
    counted: bool


@dataclass(frozen=True, slots=True)
class Sync:
    """A no-op: answering it proves every message queued before it was handled."""


@dataclass(frozen=True, slots=True)
class StartChild:
    spec: ChildSpec
    on_exit: ExitWatcher | None = None


@dataclass(frozen=True, slots=True)
class RestartChild:
    child_id: str


@dataclass(frozen=True, slots=True)
class TerminateChild:
    child_id: str


@dataclass(frozen=True, slots=True)
class DeleteChild:
    child_id: str
