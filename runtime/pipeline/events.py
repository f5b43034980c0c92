"""Progress events a run emits; the CLI renders them, telemetry records them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    RUN_STARTED = "run_started"
    STEP_STARTED = "step_started"
    STEP_FINISHED = "step_finished"
    STEP_SKIPPED = "step_skipped"
    STEP_RESTORED = "step_restored"
    STEP_RETRY = "step_retry"
    STEP_FAILED = "step_failed"
    RUN_FINISHED = "run_finished"


@dataclass(frozen=True, slots=True)
class RunEvent:
    kind: EventKind
    run_id: str
    path: str = ""
    step_type: str = ""
    depth: int = 0
    duration_ms: float = 0.0
    attempt: int = 0
    message: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)  # providers, tokens, cost_usd
