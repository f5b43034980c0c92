"""Why a child stopped: OTP's exit reasons mapped onto Pykka's ways of dying."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from runtime.errors import RestartIntensityExceeded


class ExitReason(StrEnum):
    """``normal``: the actor stopped itself. ``shutdown``: a supervisor stopped it (or it
    shut itself down as a supervisor). ``crash``: an exception in a tell, ``on_start``,
    ``on_stop``, a ``crash_on`` ask, or any ``BaseException``. ``killed``: brutal kill or a
    shutdown timeout expired and the incarnation was abandoned."""

    NORMAL = "normal"
    SHUTDOWN = "shutdown"
    CRASH = "crash"
    KILLED = "killed"

    @property
    def abnormal(self) -> bool:
        """Whether a ``transient`` child is restarted after this reason."""
        return self in (ExitReason.CRASH, ExitReason.KILLED)


@dataclass(frozen=True, slots=True)
class Exit:
    """One incarnation's end. ``requested`` is true when its supervisor asked it to stop."""

    reason: ExitReason
    error: BaseException | None = None
    requested: bool = False

    @property
    def escalated(self) -> bool:
        """A supervisor that gave up after too many restarts exits like this."""
        return isinstance(self.error, RestartIntensityExceeded)

    def describe(self) -> str:
        if self.error is None:
            return self.reason.value
        return f"{self.reason.value}: {self.error!r}"
