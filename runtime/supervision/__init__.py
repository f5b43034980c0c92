"""OTP supervision semantics over Pykka: specs, supervisors, stable handles, snapshots.

See ``docs/guides/supervision.md`` for the semantics and the supervision.yaml format.
"""

from runtime.supervision.boot import boot, start_supervisor
from runtime.supervision.child_spec import (
    AutoShutdown,
    BackoffSpec,
    ChildKind,
    ChildSpec,
    DynamicSupervisorSpec,
    Restart,
    ShutdownMode,
    Strategy,
    SupervisorSpec,
)
from runtime.supervision.context import SupervisionContext
from runtime.supervision.exit import Exit, ExitReason
from runtime.supervision.handle import ChildHandle, Reply
from runtime.supervision.job import JobOutcome, JobStatus, JobTicket, job_spec, start_job
from runtime.supervision.snapshot import (
    ChildCounts,
    ChildInfo,
    StatusReporter,
    TreeNode,
    WorkerStatus,
    render_tree,
)
from runtime.supervision.spec_file import TreeSpec, load_tree_spec, parse_tree_spec
from runtime.supervision.states import ChildState, SupervisorState
from runtime.supervision.supervisor_handle import RootHandle, SupervisorHandle
from runtime.supervision.timer import ManualTimer, ThreadTimer, Timer

__all__ = [
    "AutoShutdown",
    "BackoffSpec",
    "ChildCounts",
    "ChildHandle",
    "ChildInfo",
    "ChildKind",
    "ChildSpec",
    "ChildState",
    "DynamicSupervisorSpec",
    "Exit",
    "ExitReason",
    "JobOutcome",
    "JobStatus",
    "JobTicket",
    "ManualTimer",
    "Reply",
    "Restart",
    "RootHandle",
    "ShutdownMode",
    "StatusReporter",
    "Strategy",
    "SupervisionContext",
    "SupervisorHandle",
    "SupervisorSpec",
    "SupervisorState",
    "ThreadTimer",
    "Timer",
    "TreeNode",
    "TreeSpec",
    "WorkerStatus",
    "boot",
    "job_spec",
    "load_tree_spec",
    "parse_tree_spec",
    "render_tree",
    "start_job",
    "start_supervisor",
]
