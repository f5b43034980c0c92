"""What a supervision tree shares: its clock, its timer and its source of jitter."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from runtime.clock import SYSTEM_CLOCK, Clock
from runtime.supervision.handle import HandleBook
from runtime.supervision.timer import ThreadTimer, Timer


@dataclass(frozen=True, slots=True)
class SupervisionContext:
    """Injected into every supervisor of a tree; tests pass a FakeClock and a ManualTimer.

    Use one context per tree: ``handles`` is keyed by path.
    """

    clock: Clock = SYSTEM_CLOCK
    timer: Timer = field(default_factory=ThreadTimer)
    uniform: Callable[[], float] = field(default_factory=lambda: random.Random().random)
    handles: HandleBook = field(default_factory=HandleBook)
