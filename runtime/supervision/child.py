"""A supervisor's record of one child: spec, lifecycle state, current incarnation, counters.

Owned by the supervisor's thread; other threads only read it for snapshots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from runtime.supervision.child_spec import ChildKind, ChildSpec
from runtime.supervision.exit import Exit
from runtime.supervision.handle import ChildHandle
from runtime.supervision.incarnation import Incarnation
from runtime.supervision.states import CHILD_MOVES, ChildState, transition
from runtime.supervision.timer import Cancellable

ExitWatcher = Callable[[Exit], None]


@dataclass(eq=False)
class Child:
    spec: ChildSpec
    path: str
    handle: ChildHandle
    state: ChildState = ChildState.STOPPED
    incarnation: Incarnation | None = None
    generation: int = 0
    restart_count: int = 0
    backoff_attempts: int = 0
    last_exit: Exit | None = None
    ignored: bool = False
    pending: Cancellable | None = None
    watchers: list[ExitWatcher] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def is_supervisor(self) -> bool:
        return self.spec.kind is not ChildKind.WORKER

    def move(self, target: ChildState) -> None:
        self.state = transition(f"child {self.path}", self.state, target, CHILD_MOVES)
