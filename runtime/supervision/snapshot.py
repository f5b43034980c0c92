"""Frozen records that introspection returns, and the worker status protocol.

``tree()`` returns a ``TreeNode``: one per supervisor and worker, nested. The
CLI only renders these (``render_tree``); nothing in them is live.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from runtime.supervision.child_spec import ChildKind, Restart, Strategy
from runtime.supervision.states import ChildState

if TYPE_CHECKING:
    from runtime.supervision.handle import ChildHandle


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """What a worker is doing now; ``None`` fields mean idle."""

    job: str | None = None
    step: str | None = None
    detail: tuple[tuple[str, str], ...] = ()


@runtime_checkable
class StatusReporter(Protocol):
    """Optional for workers: the supervisor calls this from its own thread for ``tree()``.

    It must be cheap and thread-safe; the usual way is to keep a ``WorkerStatus``
    in an attribute, replace it (never mutate it) as work moves on, and return it.
    """

    def supervision_status(self) -> WorkerStatus: ...


Presence = Literal["running", "restarting", "undefined"]


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One row of ``which_children``: the handle when running, else why not."""

    id: str
    handle: ChildHandle | None
    presence: Presence
    kind: ChildKind
    state: ChildState


@dataclass(frozen=True, slots=True)
class ChildCounts:
    """``count_children``: specs held, children running, and how many of each kind."""

    specs: int
    active: int
    supervisors: int
    workers: int


@dataclass(frozen=True, slots=True)
class TreeNode:
    """A supervisor or worker at one moment. Supervisor-only fields are ``None`` on workers."""

    path: str
    id: str
    kind: ChildKind
    state: str
    restart: Restart | None
    restart_count: int
    uptime_s: float | None
    mailbox_depth: int | None
    last_exit: str | None = None
    strategy: Strategy | None = None
    restarts_in_window: int | None = None
    intensity: int | None = None
    period_s: float | None = None
    max_children: int | None = None
    job: str | None = None
    step: str | None = None
    detail: tuple[tuple[str, str], ...] = ()
    children: tuple[TreeNode, ...] = ()

    def walk(self) -> Iterator[TreeNode]:
        yield self
        for child in self.children:
            yield from child.walk()

    def find(self, path: str) -> TreeNode:
        for node in self.walk():
            if node.path == path:
                return node
        raise KeyError(f"no node {path!r} under {self.path!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def render_tree(node: TreeNode) -> str:
    """Render a snapshot as the indented text ``elx tree`` prints."""
    lines: list[str] = []
    _render(node, "", "", lines)
    return "\n".join(lines)


def _describe(node: TreeNode) -> str:
    parts = [node.id, f"[{node.kind.value}]", node.state]
    if node.strategy is not None:
        parts.append(node.strategy.value)
        parts.append(f"restarts {node.restarts_in_window}/{node.intensity} in {node.period_s:g}s")
    if node.max_children is not None:
        parts.append(f"max {node.max_children}")
    if node.restart is not None:
        parts.append(node.restart.value)
    parts.append(f"restarted {node.restart_count}x")
    if node.uptime_s is not None:
        parts.append(f"up {node.uptime_s:.1f}s")
    if node.mailbox_depth:
        parts.append(f"mailbox {node.mailbox_depth}")
    if node.job is not None:
        parts.append(f"job {node.job}" + (f" step {node.step}" if node.step else ""))
    parts.extend(f"{key}={value}" for key, value in node.detail)
    if node.last_exit is not None and node.state != ChildState.RUNNING:
        parts.append(f"last exit {node.last_exit}")
    return " ".join(parts)


def _render(node: TreeNode, prefix: str, child_prefix: str, lines: list[str]) -> None:
    lines.append(prefix + _describe(node))
    for index, child in enumerate(node.children):
        last = index == len(node.children) - 1
        _render(
            child,
            child_prefix + ("└── " if last else "├── "),
            child_prefix + ("    " if last else "│   "),
            lines,
        )
