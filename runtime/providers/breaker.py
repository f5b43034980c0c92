"""A circuit breaker per provider: stop calling a provider that keeps failing, probe it later.

::

    closed ──(failure_threshold health failures within window_s)──► open
    open ──(a call arrives after cooldown_s)──► half_open
    half_open ──(half_open_max_calls probes all succeed)──► closed
    half_open ──(a probe fails)──► open (cooldown starts again)

Only failures that say something about the provider's health count (see
``HEALTH_KINDS``): a timeout, overload, outage or server error. A bad request
or a bad key is the caller's problem and never trips the breaker; rate
limiting counts only when ``trip_on`` includes it. A success while closed
clears the count, so the threshold is of *consecutive* failures, each counted
for ``window_s``: a busy provider with rare errors stays closed.

The open → half_open move is lazy: it happens when ``before_call`` is asked
after the cooldown, so there are no timers. ``before_call`` hands out a
``Permit``; a caller reports every admitted call with ``on_success``,
``on_failure`` or ``release`` (for an outcome that says nothing about health)
and passes the permit back, so a late result from before the breaker opened
cannot decide a probe. Without a permit, the result applies to the current
state.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from runtime.clock import Clock
from runtime.errors import FailureKind, IllegalTransition, ProviderError, Unavailable

__all__ = [
    "BREAKER_MOVES",
    "DEFAULT_TRIP_ON",
    "HEALTH_KINDS",
    "BreakerConfig",
    "BreakerSnapshot",
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpen",
    "Permit",
    "transition",
]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


BREAKER_MOVES: Mapping[BreakerState, frozenset[BreakerState]] = {
    BreakerState.CLOSED: frozenset({BreakerState.OPEN}),
    BreakerState.OPEN: frozenset({BreakerState.HALF_OPEN}),
    BreakerState.HALF_OPEN: frozenset({BreakerState.CLOSED, BreakerState.OPEN}),
}

HEALTH_KINDS: frozenset[FailureKind] = frozenset(
    {
        FailureKind.TIMEOUT,
        FailureKind.OVERLOADED,
        FailureKind.UNAVAILABLE,
        FailureKind.PROVIDER_ERROR,
        FailureKind.RATE_LIMITED,
    }
)
"""The kinds a breaker may count: the ones that say something about the provider."""

DEFAULT_TRIP_ON: frozenset[FailureKind] = HEALTH_KINDS - {FailureKind.RATE_LIMITED}


def transition(subject: str, current: BreakerState, target: BreakerState) -> BreakerState:
    """Return ``target`` if ``BREAKER_MOVES`` allows ``current`` → ``target``; raise otherwise."""
    allowed = BREAKER_MOVES[current]
    if target not in allowed:
        moves = ", ".join(sorted(state.value for state in allowed)) or "none"
        raise IllegalTransition(
            f"{subject} cannot move from {current.value} to {target.value}; "
            f"allowed from {current.value}: {moves}",
            subject=subject,
            state=current.value,
            target=target.value,
        )
    return target


class BreakerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    failure_threshold: int = Field(default=5, ge=1)
    window_s: float = Field(default=60.0, gt=0)
    cooldown_s: float = Field(default=30.0, ge=0)
    half_open_max_calls: int = Field(default=1, ge=1)
    trip_on: frozenset[FailureKind] = DEFAULT_TRIP_ON

    @model_validator(mode="after")
    def _only_health_kinds(self) -> Self:
        stray = self.trip_on - HEALTH_KINDS
        if stray:
            names = ", ".join(sorted(kind.value for kind in stray))
            allowed = ", ".join(sorted(kind.value for kind in HEALTH_KINDS))
            raise ValueError(
                f"trip_on may only name provider-health failures ({allowed}); got {names}"
            )
        return self


class CircuitOpen(Unavailable):
    """The breaker refused the call: nothing was sent. Retrying now cannot help; fall back."""

    retryable = False

    def __init__(self, message: str, *, provider: str, retry_after_s: float | None) -> None:
        super().__init__(message, provider=provider)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to make one call: ``epoch`` is the breaker state it was given in."""

    epoch: int
    probe: bool


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    provider: str
    state: BreakerState
    failures: int
    """Closed: counted failures inside the window. Open: those that opened it. Half-open: 0."""
    opened_at: float | None
    next_probe_in_s: float | None
    """Seconds until a probe may go (0 once the cooldown is over); None unless open."""
    probes_in_flight: int


class CircuitBreaker:
    """One provider's breaker; every method is safe to call from many threads."""

    def __init__(
        self,
        config: BreakerConfig,
        clock: Clock,
        *,
        provider: str,
        on_change: Callable[[str, BreakerState], None] | None = None,
    ) -> None:
        self.config = config
        self.provider = provider
        self.on_change = on_change  # called with (provider, new state); must not block
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._epoch = 0
        self._failures: deque[float] = deque()
        self._opened_at: float | None = None
        self._probes_started = 0
        self._probes_in_flight = 0
        self._probes_passed = 0

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state

    def before_call(self) -> Permit:
        """Admit a call or raise CircuitOpen; after the cooldown, admit the probes only."""
        with self._lock:
            now = self._clock.now()
            if self._state is BreakerState.OPEN:
                wait = self._next_probe_in(now)
                if wait is not None and wait > 0:
                    raise CircuitOpen(
                        f"breaker open for {self.provider}, retry after {wait:.1f} s "
                        f"(it opened after {self.config.failure_threshold} failures; "
                        "a fallback provider can answer meanwhile)",
                        provider=self.provider,
                        retry_after_s=wait,
                    )
                self._move(BreakerState.HALF_OPEN)
            if self._state is BreakerState.HALF_OPEN:
                if self._probes_started >= self.config.half_open_max_calls:
                    raise CircuitOpen(
                        f"breaker half-open for {self.provider}: its probe is in flight; "
                        "retry once it answers, or use a fallback provider",
                        provider=self.provider,
                        retry_after_s=None,
                    )
                self._probes_started += 1
                self._probes_in_flight += 1
                return Permit(epoch=self._epoch, probe=True)
            return Permit(epoch=self._epoch, probe=False)

    def on_success(self, permit: Permit | None = None) -> None:
        with self._lock:
            if not self._current(permit):
                return
            if self._state is BreakerState.CLOSED:
                self._failures.clear()
            elif self._state is BreakerState.HALF_OPEN:
                self._probes_in_flight -= 1
                self._probes_passed += 1
                if self._probes_passed >= self.config.half_open_max_calls:
                    self._move(BreakerState.CLOSED)

    def on_failure(self, error: BaseException, permit: Permit | None = None) -> BreakerState:
        """Count ``error`` if it is a health failure named in ``trip_on``; otherwise release.

        Returns the state afterwards, so a caller can stop retrying once it opened.
        """
        if not self.counts(error):
            self.release(permit)
            return self.state
        with self._lock:
            if not self._current(permit):
                return self._state
            now = self._clock.now()
            if self._state is BreakerState.CLOSED:
                self._failures.append(now)
                self._forget_old(now)
                if len(self._failures) >= self.config.failure_threshold:
                    self._open(now)
            elif self._state is BreakerState.HALF_OPEN:
                self._open(now)
            return self._state

    def release(self, permit: Permit | None = None) -> None:
        """The admitted call ended without saying anything about health: free its probe slot."""
        with self._lock:
            if not self._current(permit):
                return
            if self._state is BreakerState.HALF_OPEN and (permit is None or permit.probe):
                self._probes_in_flight = max(0, self._probes_in_flight - 1)
                self._probes_started = max(0, self._probes_started - 1)

    def counts(self, error: BaseException) -> bool:
        return isinstance(error, ProviderError) and error.kind in self.config.trip_on

    def snapshot(self) -> BreakerSnapshot:
        with self._lock:
            now = self._clock.now()
            if self._state is BreakerState.CLOSED:
                failures = sum(1 for t in self._failures if now - t < self.config.window_s)
            else:
                failures = len(self._failures)
            return BreakerSnapshot(
                provider=self.provider,
                state=self._state,
                failures=failures,
                opened_at=self._opened_at,
                next_probe_in_s=self._next_probe_in(now),
                probes_in_flight=self._probes_in_flight,
            )

    # Internals: called with the lock held.

    def _current(self, permit: Permit | None) -> bool:
        return permit is None or permit.epoch == self._epoch

    def _next_probe_in(self, now: float) -> float | None:
        if self._state is not BreakerState.OPEN or self._opened_at is None:
            return None
        return max(0.0, self._opened_at + self.config.cooldown_s - now)

    def _forget_old(self, now: float) -> None:
        while self._failures and now - self._failures[0] >= self.config.window_s:
            self._failures.popleft()

    def _open(self, now: float) -> None:
        self._move(BreakerState.OPEN)
        self._opened_at = now

    def _move(self, target: BreakerState) -> None:
        self._state = transition(f"breaker for {self.provider}", self._state, target)
        if self.on_change is not None:
            self.on_change(self.provider, target)
        self._epoch += 1
        self._probes_started = self._probes_in_flight = self._probes_passed = 0
        if target is not BreakerState.OPEN:
            self._failures.clear()
        if target is BreakerState.CLOSED:
            self._opened_at = None
