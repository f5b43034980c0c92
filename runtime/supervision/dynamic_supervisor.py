"""A supervisor whose children are added at run time (Elixir's DynamicSupervisor).

one_for_one only. ``max_children`` bounds the children it holds, counting
those waiting to restart, so restarts never take the live count past it. A
child that stops for good (terminated, or exited without a restart) is
forgotten. On shutdown every child is asked to stop at once and each gets its
own shutdown timeout from that moment: the total is about the slowest child,
not the sum.
"""

from __future__ import annotations

import time
from typing import ClassVar

from runtime.supervision.backend import THREAD, Placement
from runtime.supervision.child import Child
from runtime.supervision.child_spec import ChildKind, ChildSpec, DynamicSupervisorSpec, ShutdownMode
from runtime.supervision.context import SupervisionContext
from runtime.supervision.exit import Exit, ExitReason
from runtime.supervision.incarnation import Incarnation
from runtime.supervision.states import ChildState
from runtime.supervision.supervisor import Supervisor, log


class DynamicSupervisor(Supervisor):
    drops_finished_children: ClassVar[bool] = True
    kind: ClassVar[ChildKind] = ChildKind.DYNAMIC_SUPERVISOR

    def __init__(
        self,
        spec: DynamicSupervisorSpec,
        path: str,
        context: SupervisionContext,
        placement: Placement = THREAD,
    ) -> None:
        super().__init__(spec, path, context, placement)
        self.max_children = spec.max_children

    def _check_can_add(self, spec: ChildSpec) -> None:
        super()._check_can_add(spec)
        held = len(self._children)
        if self.max_children is not None and held >= self.max_children:
            raise self._refused(
                "max_children",
                spec.id,
                f"cannot start: {held} children held, max_children is {self.max_children}",
            )

    def _shutdown_children(self) -> None:
        stopping: list[tuple[Child, Incarnation, float | None]] = []
        began = time.monotonic()
        # Concurrent, so no order is promised; asking the oldest first lets each child find
        # itself near the front of Pykka's registry list, whose removal scans from the front.
        for child in self._records():
            incarnation = child.incarnation
            if child.state is not ChildState.RUNNING or incarnation is None:
                exit_ = self._terminate(child)
                self._finished(child, exit_ or Exit(ExitReason.SHUTDOWN, requested=True))
                continue
            child.move(ChildState.STOPPING)
            child.incarnation = None
            child.handle._unbind("is being stopped by its supervisor")
            shutdown = child.spec.shutdown
            if shutdown is ShutdownMode.BRUTAL_KILL:
                self._mark_stopped(child, incarnation.abandon(), "was killed by its supervisor")
                self._finished(child, child.last_exit or Exit(ExitReason.KILLED, requested=True))
                continue
            incarnation.request_stop()
            deadline = None if shutdown is ShutdownMode.INFINITY else began + float(shutdown)
            stopping.append((child, incarnation, deadline))
        for child, incarnation, deadline in stopping:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            if incarnation.wait_exited(timeout) and incarnation.exit is not None:
                exit_ = incarnation.exit
            else:
                log.warning("child_abandoned", supervisor=self.path, child=child.id)
                exit_ = incarnation.abandon()
            self._mark_stopped(child, exit_, "was stopped by its supervisor")
            self._finished(child, exit_)
