"""Start a tree: from specs (``start_supervisor``) or from ``supervision.yaml`` (``boot``)."""

from __future__ import annotations

from pathlib import Path

from runtime.errors import StartFailed
from runtime.supervision.child_spec import ChildSpec, ShutdownMode, SupervisorSpec
from runtime.supervision.context import SupervisionContext
from runtime.supervision.incarnation import Incarnation, StartOutcome
from runtime.supervision.spec_file import load_tree_spec
from runtime.supervision.supervisor import Supervisor
from runtime.supervision.supervisor_handle import RootHandle

SHUTDOWN_MARGIN_S = 5.0
KILL_ALLOWANCE_S = 0.5


def boot(path: str | Path, *, context: SupervisionContext | None = None) -> RootHandle:
    """Parse ``path`` and start its tree; children start in order. Raises StartFailed."""
    tree = load_tree_spec(path)
    return start_supervisor(tree.root, name=tree.name, context=context)


def start_supervisor(
    spec: SupervisorSpec,
    *,
    name: str = "root",
    context: SupervisionContext | None = None,
) -> RootHandle:
    """Start a root supervisor and wait until all its children have started."""
    ctx = context or SupervisionContext()
    handle = RootHandle(name, shutdown_bound_s=shutdown_bound(spec) + SHUTDOWN_MARGIN_S)
    incarnation = Incarnation(
        path=name, generation=1, crash_on=(), clock=ctx.clock, on_exit=handle._on_exit
    )
    incarnation.spawn(Supervisor, {"spec": spec, "path": name, "context": ctx})
    outcome = incarnation.wait_started(start_bound(spec))
    if outcome is StartOutcome.STARTED:
        handle._attach(incarnation)
        return handle
    error = incarnation.start_error
    if outcome is StartOutcome.TIMED_OUT:
        incarnation.abandon()
    if isinstance(error, StartFailed):
        raise StartFailed(error.message, child=error.child, cause=error.cause) from error
    raise StartFailed(f"{name} failed to start: {error!r}", child=name, cause=error) from error


def start_bound(spec: SupervisorSpec) -> float:
    """The longest a tree's start can take: every start timeout, in sequence."""
    return sum(_child_start_bound(child) for child in spec.children) + SHUTDOWN_MARGIN_S


def _child_start_bound(child: ChildSpec) -> float:
    if child.supervisor is not None:
        return child.start_timeout_s + start_bound(child.supervisor)
    return child.start_timeout_s


def shutdown_bound(spec: SupervisorSpec) -> float:
    """The longest a clean shutdown can take with these specs (children stop one by one)."""
    return sum(_child_shutdown_bound(child) for child in spec.children)


def _child_shutdown_bound(child: ChildSpec) -> float:
    if child.shutdown is ShutdownMode.BRUTAL_KILL:
        return KILL_ALLOWANCE_S
    if child.shutdown is ShutdownMode.INFINITY:
        if child.supervisor is not None:
            return shutdown_bound(child.supervisor) + KILL_ALLOWANCE_S
        # A dynamic supervisor's children are unknown up front; they stop concurrently.
        return SHUTDOWN_MARGIN_S
    return float(child.shutdown)
