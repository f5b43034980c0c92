"""Pure restart policy: whether to restart, the sliding intensity window, backoff.

Every function takes ``now`` (from an injected monotonic Clock) and returns
new values instead of mutating, so tests drive them with plain numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.supervision.child_spec import BackoffSpec, Restart
from runtime.supervision.exit import ExitReason


def should_restart(restart: Restart, reason: ExitReason) -> bool:
    """OTP's matrix: permanent always, transient after an abnormal exit, temporary never."""
    if restart is Restart.PERMANENT:
        return True
    if restart is Restart.TRANSIENT:
        return reason.abnormal
    return False


@dataclass(frozen=True, slots=True)
class RestartWindow:
    """Timestamps of the restarts inside the last ``period_s`` seconds."""

    intensity: int
    period_s: float
    stamps: tuple[float, ...] = ()

    def count(self, now: float) -> int:
        return sum(1 for stamp in self.stamps if now - stamp < self.period_s)

    def record(self, now: float) -> tuple[RestartWindow, bool]:
        """Add a restart at ``now``; the flag says whether it is allowed (count ≤ intensity)."""
        kept = tuple(stamp for stamp in self.stamps if now - stamp < self.period_s)
        stamps = (*kept, now)
        window = RestartWindow(self.intensity, self.period_s, stamps)
        return window, len(stamps) <= self.intensity


def backoff_delay(spec: BackoffSpec | None, attempt: int, unit: float) -> float:
    """Delay before restart ``attempt`` (0-based); ``unit`` is a uniform draw in [0, 1)."""
    if spec is None:
        return 0.0
    if not 0.0 <= unit <= 1.0:
        raise ValueError(f"unit must be in [0, 1], got {unit}")
    base = min(spec.max_s, spec.min_s * 2.0 ** min(attempt, 64))
    return base * (1.0 + unit * spec.jitter)


def attempt_after_run(spec: BackoffSpec | None, attempts: int, ran_for_s: float) -> int:
    """The backoff attempt to use after an exit: back to 0 once a child ran ``reset_after_s``."""
    if spec is None or ran_for_s >= spec.reset_after_s:
        return 0
    return attempts
