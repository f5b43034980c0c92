"""Where a worker runs: the backend interface and its two implementations.

A supervisor never runs remotely: it keeps restart types, intensity, backoff
and escalation in the daemon. Only its workers are placed. ``Placement`` is
what a supervisor hands down: a child's own ``backend``/``ray`` win, else the
parent's. Each backend makes ``Incarnation`` objects with one interface
(spawn, wait_started, ask, tell, request_stop, abandon, finish), so handles,
restarts and the tree do not care where a life is lived:

- ``thread`` (the default): a Pykka actor on a daemon thread
  (``runtime.supervision.incarnation``).
- ``ray``: a Ray actor with Ray's own restarts off, watched from the daemon
  (``runtime.supervision.ray_backend``; imported only when used).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime.clock import Clock
from runtime.supervision.child_spec import Backend, ChildKind, ChildSpec, RaySpec
from runtime.supervision.incarnation import Incarnation

if TYPE_CHECKING:
    from runtime.supervision.exit import Exit


@dataclass(frozen=True, slots=True)
class Placement:
    backend: Backend = Backend.THREAD
    ray: RaySpec | None = None

    def below(self, spec: ChildSpec) -> Placement:
        """The placement of ``spec``'s workers: its own settings, else this one."""
        if spec.backend is None:
            return self
        if spec.backend is Backend.RAY:
            return Placement(Backend.RAY, spec.ray or RaySpec())
        return Placement(Backend.THREAD)

    def incarnation(
        self,
        spec: ChildSpec,
        *,
        path: str,
        generation: int,
        clock: Clock,
        on_exit: Callable[[Incarnation, Exit], None],
    ) -> Incarnation:
        """A new life for ``spec``: supervisors always on a thread, workers as placed."""
        placed = self.below(spec)
        crash_on = spec.crash_on_types()
        if spec.kind is ChildKind.WORKER and placed.backend is Backend.RAY:
            from runtime.supervision.ray_backend import RayIncarnation

            return RayIncarnation(
                placed.ray or RaySpec(),
                path=path,
                generation=generation,
                crash_on=crash_on,
                clock=clock,
                on_exit=on_exit,
            )
        return Incarnation(
            path=path, generation=generation, crash_on=crash_on, clock=clock, on_exit=on_exit
        )


THREAD = Placement()
