"""Retry with exponential backoff and jitter, honouring retry-after, inside a deadline.

``next_delay`` is the whole policy and is pure: given the policy, the number
of the attempt that just failed, its error and a uniform draw, it returns how
long to wait before the next attempt, or ``None`` to give up. It retries only
when the error's ``kind`` is in ``retry_on`` *and* the error says it is
``retryable`` (an adapter may mark one instance as permanent).

* ``RateLimited`` with ``retry_after_s``: wait what the provider asked, capped
  at ``retry_after_cap_s`` (no jitter: the provider named the moment).
* otherwise: ``base_s * multiplier ** (attempt - 1)``, capped at ``max_s``,
  then shortened by up to ``jitter`` of itself (``jitter=1`` is full jitter,
  ``0`` none), so the delay never exceeds ``max_s``.

``call_with_retry`` runs the loop. It never waits past its ``Deadline``: when
the next wait would end at or after it, it raises ``ProviderTimeout`` naming
the deadline, chained to the last error. Waits go through the injected
``Clock`` (a ``FakeClock`` in tests); with the real clock and a ``cancelled``
event, they wait on the event instead, so cancelling wakes them at once.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from runtime.clock import Clock, MonotonicClock
from runtime.errors import Cancelled, FailureKind, ProviderError, ProviderTimeout, RateLimited

__all__ = [
    "DEFAULT_RETRY_ON",
    "Deadline",
    "RetryEvent",
    "RetryPolicy",
    "Uniform",
    "call_with_retry",
    "next_delay",
    "pause",
]

T = TypeVar("T")

Uniform = Callable[[], float]
"""A draw in [0, 1): ``random.Random(seed).random`` in code, ``lambda: 0.5`` in tests."""

DEFAULT_RETRY_ON: frozenset[FailureKind] = frozenset(
    {
        FailureKind.TIMEOUT,
        FailureKind.RATE_LIMITED,
        FailureKind.OVERLOADED,
        FailureKind.UNAVAILABLE,
        FailureKind.PROVIDER_ERROR,
    }
)

_RNG = random.Random()


class RetryPolicy(BaseModel):
    """How often and how patiently to retry one provider call."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(default=3, ge=1)
    """Attempts in total, the first one included; 1 means never retry."""
    base_s: float = Field(default=0.5, ge=0)
    max_s: float = Field(default=30.0, ge=0)
    multiplier: float = Field(default=2.0, ge=1)
    jitter: float = Field(default=0.2, ge=0, le=1)
    retry_after_cap_s: float = Field(default=60.0, ge=0)
    retry_on: frozenset[FailureKind] = DEFAULT_RETRY_ON

    @model_validator(mode="after")
    def _max_covers_base(self) -> Self:
        if self.max_s < self.base_s:
            raise ValueError(f"max_s ({self.max_s}) must be at least base_s ({self.base_s})")
        return self


@dataclass(frozen=True, slots=True)
class Deadline:
    """A moment on a Clock's scale after which no call starts and no wait ends."""

    at: float
    budget_s: float

    @classmethod
    def after(cls, clock: Clock, seconds: float) -> Deadline:
        if seconds < 0:
            raise ValueError(f"a deadline needs a budget of zero or more seconds, got {seconds}")
        return cls(at=clock.now() + seconds, budget_s=seconds)

    def remaining(self, now: float) -> float:
        return max(0.0, self.at - now)

    def expired(self, now: float) -> bool:
        return now >= self.at


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """Told to ``on_retry`` before each wait: which attempt failed, why, and the wait."""

    attempt: int
    error: ProviderError
    delay_s: float


def next_delay(
    policy: RetryPolicy, attempt: int, error: ProviderError, rng: Uniform | None = None
) -> float | None:
    """Seconds to wait after failed ``attempt`` (1-based) before the next one; None to give up."""
    if attempt < 1:
        raise ValueError(f"attempts are numbered from 1, got {attempt}")
    if attempt >= policy.max_attempts:
        return None
    if error.kind not in policy.retry_on or not error.retryable:
        return None
    if isinstance(error, RateLimited) and error.retry_after_s is not None:
        return min(max(0.0, error.retry_after_s), policy.retry_after_cap_s)
    try:
        raw = min(policy.max_s, policy.base_s * policy.multiplier ** (attempt - 1))
    except OverflowError:
        raw = policy.max_s
    unit = (rng or _RNG.random)()
    if not 0.0 <= unit <= 1.0:
        raise ValueError(f"rng must draw from [0, 1], got {unit}")
    return raw * (1.0 - policy.jitter * unit)


def pause(clock: Clock, seconds: float, cancelled: threading.Event | None, why: str) -> None:
    """Wait ``seconds`` on ``clock``; raise Cancelled if ``cancelled`` is set before or during it.

    The real clock waits on the event itself so that cancelling interrupts the
    wait; any other clock (a FakeClock) is asked to ``sleep``.
    """
    if cancelled is not None and cancelled.is_set():
        raise Cancelled(f"cancelled before waiting {seconds:.3f} s {why}")
    if seconds <= 0:
        return
    if cancelled is not None and isinstance(clock, MonotonicClock):
        if cancelled.wait(seconds):
            raise Cancelled(f"cancelled while waiting {seconds:.3f} s {why}")
        return
    clock.sleep(seconds)
    if cancelled is not None and cancelled.is_set():
        raise Cancelled(f"cancelled while waiting {seconds:.3f} s {why}")


def call_with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy,
    clock: Clock,
    deadline: Deadline | None = None,
    rng: Uniform | None = None,
    on_retry: Callable[[RetryEvent], None] | None = None,
    cancelled: threading.Event | None = None,
    give_up: Callable[[RetryEvent], bool] | None = None,
) -> T:
    """Call ``fn`` until it returns, ``next_delay`` gives up, the deadline nears, or a cancel.

    Only ``ProviderError`` is retried; anything else propagates at once. A
    result that arrives after the deadline is still returned: it cost the
    same, and throwing it away helps no one. ``give_up`` may veto a planned
    retry (say, the breaker just opened); the last error is then raised as is.
    """
    attempt = 0
    while True:
        if cancelled is not None and cancelled.is_set():
            raise Cancelled(f"cancelled before attempt {attempt + 1}")
        if deadline is not None and deadline.expired(clock.now()):
            raise ProviderTimeout(
                f"the {deadline.budget_s:g} s deadline passed before attempt {attempt + 1}; "
                "give the request a longer timeout or retry it later",
                attempt=attempt,
            )
        attempt += 1
        try:
            return fn()
        except ProviderError as error:
            if cancelled is not None and cancelled.is_set():
                raise Cancelled(f"cancelled during attempt {attempt}: {error}") from error
            if error.attempt is None:
                error.attempt = attempt
            delay = next_delay(policy, attempt, error, rng)
            if delay is None:
                raise
            if deadline is not None:
                left = deadline.remaining(clock.now())
                if delay >= left:
                    raise ProviderTimeout(
                        f"gave up on {error.provider or 'the provider'} after {attempt} "
                        f"attempt{'s' if attempt != 1 else ''}: the {deadline.budget_s:g} s "
                        f"deadline has {left:.3f} s left and the next retry would wait "
                        f"{delay:.3f} s; last error: {error}",
                        provider=error.provider,
                        attempt=attempt,
                    ) from error
            event = RetryEvent(attempt=attempt, error=error, delay_s=delay)
            if give_up is not None and give_up(event):
                raise
            if on_retry is not None:
                on_retry(event)
            pause(clock, delay, cancelled, f"before attempt {attempt + 1}")
