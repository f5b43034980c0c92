"""Handles to supervisors: the public way to inspect and control a (sub)tree.

Introspection reads the live supervisor's records directly (it never waits
behind the supervisor's mailbox); control calls go through its mailbox so
they are serialized with exits and restarts. ``RootHandle`` adds the root's
exit and ``shutdown``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
from typing import TYPE_CHECKING, cast

from runtime.errors import ChildNotRunning
from runtime.supervision.child_spec import ChildSpec
from runtime.supervision.exit import Exit
from runtime.supervision.handle import ChildHandle
from runtime.supervision.incarnation import Incarnation
from runtime.supervision.snapshot import ChildCounts, ChildInfo, TreeNode

if TYPE_CHECKING:
    from runtime.supervision.child import ExitWatcher
    from runtime.supervision.supervisor import Supervisor

DEFAULT_CONTROL_TIMEOUT_S = 60.0


class SupervisorHandle(ChildHandle):
    """A stable handle to a supervisor or dynamic supervisor."""

    def _supervisor(self) -> Supervisor:
        incarnation = self._current()
        actor = incarnation.actor if incarnation is not None else None
        if actor is None:
            raise self._not_running()
        return cast("Supervisor", actor)

    # -- introspection ----------------------------------------------------------

    def which_children(self) -> list[ChildInfo]:
        return self._supervisor().which_children()

    def count_children(self) -> ChildCounts:
        return self._supervisor().count_children()

    def get_childspec(self, child_id: str) -> ChildSpec:
        return self._supervisor().get_childspec(child_id)

    def tree(self) -> TreeNode:
        return self._supervisor().tree()

    def child(self, child_id: str) -> ChildHandle:
        """The stable handle of a direct child."""
        return self._supervisor().child_handle(child_id)

    def supervisor(self, child_id: str) -> SupervisorHandle:
        handle = self.child(child_id)
        if not isinstance(handle, SupervisorHandle):
            raise TypeError(f"{handle.path} is a worker, not a supervisor")
        return handle

    def lookup(self, relative_path: str) -> ChildHandle:
        """The handle at ``a/b/c`` below this supervisor."""
        parts = [part for part in relative_path.split("/") if part]
        node: ChildHandle = self
        for part in parts:
            if not isinstance(node, SupervisorHandle):
                raise KeyError(f"{node.path} is a worker; it has no child {part!r}")
            node = node.child(part)
        return node

    def wait_processed(self, timeout: float = DEFAULT_CONTROL_TIMEOUT_S) -> None:
        """Return once the supervisor has handled every message queued before this call
        (exits reported so far, retries, control calls)."""
        from runtime.supervision.supervisor import Sync

        self.ask(Sync(), timeout=timeout)

    # -- control (OTP's error cases raise ChildControlError with .code) -------------

    def start_child(
        self,
        spec: ChildSpec,
        *,
        on_exit: ExitWatcher | None = None,
        timeout: float = DEFAULT_CONTROL_TIMEOUT_S,
    ) -> ChildHandle:
        """Add and start a child; ``on_exit`` is called once it stops for good."""
        from runtime.supervision.supervisor import StartChild

        return cast(ChildHandle, self.ask(StartChild(spec, on_exit), timeout=timeout))

    def restart_child(
        self, child_id: str, *, timeout: float = DEFAULT_CONTROL_TIMEOUT_S
    ) -> ChildHandle:
        from runtime.supervision.supervisor import RestartChild

        return cast(ChildHandle, self.ask(RestartChild(child_id), timeout=timeout))

    def terminate_child(self, child_id: str, *, timeout: float = DEFAULT_CONTROL_TIMEOUT_S) -> None:
        from runtime.supervision.supervisor import TerminateChild

        self.ask(TerminateChild(child_id), timeout=timeout)

    def kill_child(self, child_id: str, reason: str = "killed by an operator") -> None:
        """Make a running child crash, as OTP's ``exit(Pid, kill)``: its restart policy applies."""
        from runtime.supervision.incarnation import CrashCommand

        self.child(child_id).tell(CrashCommand(reason))

    def delete_child(self, child_id: str, *, timeout: float = DEFAULT_CONTROL_TIMEOUT_S) -> None:
        from runtime.supervision.supervisor import DeleteChild

        self.ask(DeleteChild(child_id), timeout=timeout)


class RootHandle(SupervisorHandle):
    """The top of a tree: owns its exit, and ``shutdown`` stops everything in reverse."""

    def __init__(self, path: str, *, shutdown_bound_s: float) -> None:
        super().__init__(path)
        self.shutdown_bound_s = shutdown_bound_s
        self.exit_future: concurrent.futures.Future[Exit] = concurrent.futures.Future()
        self._root: Incarnation | None = None

    def _attach(self, incarnation: Incarnation) -> None:
        self._root = incarnation
        self._bind(incarnation)

    def _on_exit(self, incarnation: Incarnation, exit_: Exit) -> None:
        self._unbind(f"exited ({exit_.describe()})")
        self._settle(exit_)

    def _settle(self, exit_: Exit) -> None:
        # The root's thread and shutdown() may both report the same exit.
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            self.exit_future.set_result(exit_)

    def wait_exit(self, timeout: float) -> Exit:
        """The root's exit (``shutdown`` with ``RestartIntensityExceeded`` after escalation)."""
        return self.exit_future.result(timeout)

    def shutdown(self, timeout: float | None = None) -> Exit:
        """Stop the whole tree in reverse start order, within each child's shutdown timeout."""
        root = self._root
        if root is None:
            raise ChildNotRunning(f"{self.path} was never started", child=self.path)
        if not self.exit_future.done():
            root.request_stop()
        bound = self.shutdown_bound_s if timeout is None else timeout
        if not root.wait_exited(bound):
            root.abandon()
            raise ChildNotRunning(
                f"{self.path} did not shut down within {bound:g} s; it was abandoned",
                child=self.path,
            )
        if root.exit is not None:
            self._settle(root.exit)
        return self.exit_future.result(0)
