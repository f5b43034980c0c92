"""Health configuration: the ``health`` section of the config as frozen models.

``HealthConfig.from_mapping`` parses the section once, at the boundary; a problem
raises ``ConfigError`` naming its field. ``Thresholds`` holds the limits the checks
grade a snapshot against (see ``runtime.health_checks``), ``Hysteresis`` how many
evaluations in a row move the reported status and the actions (see
``runtime.health``), and ``backups`` the providers each provider's calls go to
while it is unavailable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from runtime.errors import ConfigError

__all__ = [
    "DEFAULT_BACKUPS",
    "GIB",
    "MB",
    "HealthConfig",
    "Hysteresis",
    "Thresholds",
]

MB = 1000**2
GIB = 1024**3


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Thresholds(_Frozen):
    provider_error_rate: float = Field(default=0.5, gt=0, le=1)
    queue_saturation: float = Field(default=0.9, gt=0)
    queue_saturation_critical: float = Field(default=3.0, gt=0)
    restarts_per_window: int = Field(default=5, ge=1)
    min_free_disk_bytes: int = Field(default=500 * MB, ge=0)
    critical_free_disk_bytes: int = Field(default=100 * MB, ge=0)
    rss_limit_bytes: int = Field(default=2 * GIB, gt=0)
    rss_degraded_ratio: float = Field(default=0.8, gt=0, le=1)
    agent_max_in_flight: int = Field(default=500, ge=1)
    pool_stuck_s: float = Field(default=120.0, gt=0)

    @model_validator(mode="after")
    def _critical_beyond_degraded(self) -> Self:
        if self.queue_saturation_critical <= self.queue_saturation:
            raise ValueError(
                f"queue_saturation_critical ({self.queue_saturation_critical}) must be above "
                f"queue_saturation ({self.queue_saturation})"
            )
        if self.critical_free_disk_bytes > self.min_free_disk_bytes:
            raise ValueError(
                f"critical_free_disk_bytes ({self.critical_free_disk_bytes}) must not be above "
                f"min_free_disk_bytes ({self.min_free_disk_bytes})"
            )
        return self


class Hysteresis(_Frozen):
    degrade_after: int = Field(default=2, ge=1)
    """Consecutive evaluations at least that bad before the status gets worse."""
    recover_after: int = Field(default=3, ge=1)
    """Consecutive evaluations at least that good before the status gets better."""


DEFAULT_BACKUPS: Mapping[str, tuple[str, ...]] = {
    "anthropic": ("gemini", "openai"),
    "gemini": ("anthropic", "openai"),
    "openai": ("anthropic", "gemini"),
}


class HealthConfig(_Frozen):
    interval_s: float = Field(default=5.0, gt=0)
    window_s: float = Field(default=60.0, gt=0)
    """The window the daemon counts provider calls and supervisor restarts over."""
    thresholds: Thresholds = Thresholds()
    hysteresis: Hysteresis = Hysteresis()
    backups: Mapping[str, tuple[str, ...]] = Field(default_factory=lambda: dict(DEFAULT_BACKUPS))

    @model_validator(mode="after")
    def _backups_are_others(self) -> Self:
        for provider, backups in self.backups.items():
            if provider in backups:
                raise ValueError(f"backups.{provider}: a provider cannot be its own backup")
            if len(set(backups)) != len(backups):
                raise ValueError(f"backups.{provider}: a backup is listed twice")
        return self

    @property
    def retry_after_s(self) -> float:
        """How long clients are told to wait in emergency mode: two intervals, at least 5 s."""
        return max(5.0, 2 * self.interval_s)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any] | None, *, source: str = "health"
    ) -> HealthConfig:
        """Parse the ``health`` section of the config; a problem names its field."""
        try:
            return cls.model_validate(dict(data or {}))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join([source, *(str(p) for p in error['loc'])])}: {error['msg']}"
                for error in exc.errors()
            )
            raise ConfigError(f"invalid health config: {problems}") from None
