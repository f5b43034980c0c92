"""A client-side token-bucket limiter: requests per minute and tokens per minute.

Each limit is a ``Bucket`` that holds up to one minute's allowance, starts
full and refills continuously. ``Bucket`` is a frozen value whose methods
return new buckets, so the arithmetic is pure and reads ``now`` from the
caller; ``RateLimiter`` keeps the current pair under a lock.

``acquire`` *reserves* at once, letting a level go below zero, and then
waits outside the lock for as long as that debt takes to refill. Callers are
therefore served in arrival order, each waits exactly once, and a later
caller waits behind the debt of the earlier ones. A call whose wait would
exceed its ``timeout`` reserves nothing and raises ``RateLimitExceeded``
with the wait it would need. A request larger than the bucket waits until
the minute's allowance covers it.

Token counts are estimated before the call; ``record_actual`` corrects the
bucket once the provider reports usage.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from pydantic import BaseModel, ConfigDict, Field

from runtime.clock import Clock
from runtime.errors import Cancelled, RateLimited
from runtime.providers.retry import pause

__all__ = [
    "Bucket",
    "RateLimitConfig",
    "RateLimitExceeded",
    "RateLimitSnapshot",
    "RateLimiter",
]


class RateLimitConfig(BaseModel):
    """Allowances per minute; None means that dimension is not limited."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requests_per_minute: int | None = Field(default=None, gt=0)
    tokens_per_minute: int | None = Field(default=None, gt=0)


class RateLimitExceeded(RateLimited):
    """Our own limiter refused: nothing was sent, and the wait allowed has been spent.

    Not retryable: a retry would only wait again for the same budget. Fall back instead.
    """

    retryable = False


@dataclass(frozen=True, slots=True)
class Bucket:
    """``level`` units available at time ``at``; refills ``per_s`` a second up to ``capacity``."""

    capacity: float
    per_s: float
    level: float
    at: float

    @classmethod
    def per_minute(cls, allowance: float, now: float) -> Bucket:
        return cls(capacity=allowance, per_s=allowance / 60.0, level=allowance, at=now)

    def refilled(self, now: float) -> Bucket:
        elapsed = max(0.0, now - self.at)
        level = min(self.capacity, self.level + elapsed * self.per_s)
        return replace(self, level=level, at=max(now, self.at))

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available (the bucket must be refilled to now)."""
        return max(0.0, (amount - self.level) / self.per_s)

    def take(self, amount: float) -> Bucket:
        return replace(self, level=self.level - amount)

    def give(self, amount: float) -> Bucket:
        return replace(self, level=min(self.capacity, self.level + amount))


@dataclass(frozen=True, slots=True)
class RateLimitSnapshot:
    provider: str
    requests_per_minute: int | None
    tokens_per_minute: int | None
    requests_available: float | None
    """Negative while callers are waiting on reserved requests."""
    tokens_available: float | None


class RateLimiter:
    """Both buckets of one provider; safe to share between threads."""

    def __init__(self, config: RateLimitConfig, clock: Clock, *, provider: str) -> None:
        self.config = config
        self.provider = provider
        self._clock = clock
        self._lock = threading.Lock()
        now = clock.now()
        rpm, tpm = config.requests_per_minute, config.tokens_per_minute
        self._requests = Bucket.per_minute(rpm, now) if rpm is not None else None
        self._tokens = Bucket.per_minute(tpm, now) if tpm is not None else None

    def acquire(
        self, tokens_estimate: int, timeout: float, cancelled: threading.Event | None = None
    ) -> float:
        """Reserve one request and ``tokens_estimate`` tokens, waiting up to ``timeout`` s.

        Returns the seconds waited. The lock is not held while waiting.
        """
        self._check(tokens_estimate)
        with self._lock:
            wait = self._wait_locked(tokens_estimate)
            if wait > timeout:
                raise RateLimitExceeded(
                    f"rate limit for {self.provider} ({self._describe()}): a call of "
                    f"{tokens_estimate} tokens would wait {wait:.3f} s, longer than its "
                    f"{timeout:.3f} s allowance; fall back to another provider or slow down",
                    provider=self.provider,
                    status=None,
                    retry_after_s=wait,
                )
            self._take_locked(tokens_estimate)
        try:
            pause(self._clock, wait, cancelled, f"for the {self.provider} rate limit")
        except Cancelled:
            self._give_back(tokens_estimate)
            raise
        return wait

    def try_acquire(self, tokens_estimate: int) -> bool:
        """Reserve at once if both buckets allow it now; never waits."""
        self._check(tokens_estimate)
        with self._lock:
            if self._wait_locked(tokens_estimate) > 0:
                return False
            self._take_locked(tokens_estimate)
            return True

    def record_actual(self, actual_tokens: int, estimated_tokens: int) -> None:
        """Correct a reservation: refund an overestimate, charge an underestimate."""
        self._check(actual_tokens)
        with self._lock:
            if self._tokens is not None:
                now = self._clock.now()
                bucket = self._tokens.refilled(now)
                self._tokens = bucket.give(estimated_tokens - actual_tokens)

    def snapshot(self) -> RateLimitSnapshot:
        with self._lock:
            now = self._clock.now()
            requests = self._requests.refilled(now).level if self._requests else None
            tokens = self._tokens.refilled(now).level if self._tokens else None
        return RateLimitSnapshot(
            provider=self.provider,
            requests_per_minute=self.config.requests_per_minute,
            tokens_per_minute=self.config.tokens_per_minute,
            requests_available=requests,
            tokens_available=tokens,
        )

    # Internals

    @staticmethod
    def _check(tokens: int) -> None:
        if tokens < 0:
            raise ValueError(f"a token count cannot be negative, got {tokens}")

    def _wait_locked(self, tokens: int) -> float:
        """Refill both buckets to now and return the wait both allow; lock held."""
        now = self._clock.now()
        wait = 0.0
        if self._requests is not None:
            self._requests = self._requests.refilled(now)
            wait = self._requests.wait_for(1)
        if self._tokens is not None:
            self._tokens = self._tokens.refilled(now)
            wait = max(wait, self._tokens.wait_for(tokens))
        return wait

    def _take_locked(self, tokens: int) -> None:
        if self._requests is not None:
            self._requests = self._requests.take(1)
        if self._tokens is not None:
            self._tokens = self._tokens.take(tokens)

    def _give_back(self, tokens: int) -> None:
        with self._lock:
            if self._requests is not None:
                self._requests = self._requests.give(1)
            if self._tokens is not None:
                self._tokens = self._tokens.give(tokens)

    def _describe(self) -> str:
        parts = []
        if self.config.requests_per_minute is not None:
            parts.append(f"{self.config.requests_per_minute} requests/min")
        if self.config.tokens_per_minute is not None:
            parts.append(f"{self.config.tokens_per_minute} tokens/min")
        return " and ".join(parts) or "unlimited"
