"""A provider wrapped in its resilience policies, and fallback chains of such providers.

``ResilientProvider.complete`` retries (``retry.call_with_retry``) an attempt
that passes, in this order:

1. the **breaker**: an open breaker refuses at once (``CircuitOpen``), before
   anything waits or is spent; after its cooldown it admits one probe;
2. the **bulkhead**: a bounded semaphore of ``bulkhead_size`` slots, so calls
   from many jobs run in parallel up to the pool size and the rest queue; a
   slot not free within ``pool_timeout_s`` (or the deadline) raises
   ``PoolFull`` (an ``Overloaded``);
3. the **rate limiter**: waits up to ``limit_wait_s`` (or the deadline) for
   one request and the estimated tokens, else ``RateLimitExceeded``;
4. the provider call, with ``timeout_s`` set to what is left of the deadline.

Each retry attempt passes all four again: the limiter and breaker see every
request actually sent, and no pool slot is held during a backoff wait. A retry
is dropped (the provider's error raised as is) when the breaker is open and
would still refuse it once its backoff wait is over. Only the provider's own
errors are reported to the breaker; refusals by our own breaker, pool or
limiter are not failures of the provider, are not retried (retrying would only
wait again) and make a fallback chain move on.

The deadline is the ``deadline`` argument, else ``request.timeout_s`` from
the start of the call: a budget for all attempts and waits together.

``FallbackChain`` tries its providers in order and returns a ``ChainResult``
naming the one that answered and the failures before it. Whether it moves on
is a table over the failure kind (``DEFAULT_FALLBACK_ON``):

=============== ========= ====================================================
kind            moves on  why
=============== ========= ====================================================
unavailable     yes       down, or its breaker is open (it is not called)
rate_limited    yes       another provider has its own quota
overloaded      yes       likewise; also our own pool being full
timeout         yes       unless the shared deadline has passed
provider_error  yes       a server fault on one provider says nothing of others
auth            yes       one provider's key is missing or wrong, not all of them
bad_request     no        the request itself is wrong; others would reject it too,
                          and a chain should not hide a bug by paying elsewhere
=============== ========= ====================================================
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from runtime.clock import SYSTEM_CLOCK, Clock
from runtime.errors import (
    ConfigError,
    FailureKind,
    Overloaded,
    ProviderError,
    ProviderTimeout,
)
from runtime.providers.base import LLMRequest, LLMResponse, Provider
from runtime.providers.breaker import BreakerSnapshot, BreakerState, CircuitBreaker, Permit
from runtime.providers.rate_limit import RateLimiter, RateLimitSnapshot
from runtime.providers.retry import (
    Deadline,
    RetryEvent,
    RetryPolicy,
    Uniform,
    call_with_retry,
)

__all__ = [
    "DEFAULT_FALLBACK_ON",
    "ChainAttempt",
    "ChainExhausted",
    "ChainResult",
    "FallbackChain",
    "PoolFull",
    "ResilientProvider",
    "ResilientSnapshot",
    "estimate_tokens",
]

DEFAULT_FALLBACK_ON: frozenset[FailureKind] = frozenset(
    {
        FailureKind.UNAVAILABLE,
        FailureKind.RATE_LIMITED,
        FailureKind.OVERLOADED,
        FailureKind.TIMEOUT,
        FailureKind.PROVIDER_ERROR,
        FailureKind.AUTH,
    }
)


class PoolFull(Overloaded):
    """Every slot of a provider's bulkhead stayed busy for the wait allowed; nothing was sent."""

    retryable = False

    def __init__(self, message: str, *, provider: str, pool_size: int) -> None:
        super().__init__(message, provider=provider)
        self.pool_size = pool_size


def estimate_tokens(request: LLMRequest) -> int:
    """A cheap upper-ish guess for the limiter: ~4 characters a token, plus the output cap."""
    chars = len(request.prompt) + len(request.system or "")
    chars += sum(len(message.content) for message in request.history)
    return (chars + 3) // 4 + (request.max_tokens or 0)


@dataclass(frozen=True, slots=True)
class ResilientSnapshot:
    provider: str
    pool_size: int
    in_use: int
    waiting: int
    breaker: BreakerSnapshot | None
    limiter: RateLimitSnapshot | None


class ResilientProvider:
    """Any Provider behind a breaker, a bulkhead and a rate limiter, with retries."""

    def __init__(
        self,
        provider: Provider,
        retry: RetryPolicy,
        breaker: CircuitBreaker | None = None,
        limiter: RateLimiter | None = None,
        bulkhead_size: int = 4,
        *,
        clock: Clock = SYSTEM_CLOCK,
        pool_timeout_s: float = 30.0,
        limit_wait_s: float = 60.0,
        rng: Uniform | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
    ) -> None:
        if bulkhead_size < 1:
            raise ConfigError(
                f"bulkhead_size for {provider.name} must be at least 1, got {bulkhead_size}"
            )
        self.provider = provider
        self.name = provider.name
        self.retry = retry
        self.breaker = breaker
        self.limiter = limiter
        self.bulkhead_size = bulkhead_size
        self._clock = clock
        self._pool_timeout_s = pool_timeout_s
        self._limit_wait_s = limit_wait_s
        self._rng = rng
        self._on_retry = on_retry
        self._pool = threading.BoundedSemaphore(bulkhead_size)
        self._counts_lock = threading.Lock()
        self._in_use = 0
        self._waiting = 0

    def complete(
        self,
        request: LLMRequest,
        *,
        deadline: Deadline | None = None,
        cancelled: threading.Event | None = None,
    ) -> LLMResponse:
        if deadline is None and request.timeout_s is not None:
            deadline = Deadline.after(self._clock, request.timeout_s)
        if cancelled is None:
            cancelled = request.control
        return call_with_retry(
            lambda: self._attempt(request, deadline, cancelled),
            self.retry,
            self._clock,
            deadline=deadline,
            rng=self._rng,
            on_retry=self._on_retry,
            cancelled=cancelled,
            give_up=self._breaker_refuses,
        )

    def stream(self, request: LLMRequest) -> Iterator[str]:
        """Stream through the breaker, bulkhead and limiter; not retried (chunks may be out).

        The pool slot is held until the stream is exhausted or closed.
        """
        permit = self.breaker.before_call() if self.breaker is not None else None
        reported = False
        try:
            with self._slot(None):
                self._acquire_limit(request, None, None)
                try:
                    yield from self.provider.stream(request)
                except ProviderError as error:
                    if request.control is not None and request.control.is_set():
                        raise  # we cut the call ourselves: not the provider's failure
                    reported = self._report_failure(error, permit)
                    raise
                reported = self._report_success(permit)
        finally:
            if not reported and self.breaker is not None:
                self.breaker.release(permit)

    def snapshot(self) -> ResilientSnapshot:
        with self._counts_lock:
            in_use, waiting = self._in_use, self._waiting
        return ResilientSnapshot(
            provider=self.name,
            pool_size=self.bulkhead_size,
            in_use=in_use,
            waiting=waiting,
            breaker=self.breaker.snapshot() if self.breaker is not None else None,
            limiter=self.limiter.snapshot() if self.limiter is not None else None,
        )

    # One attempt

    def _attempt(
        self, request: LLMRequest, deadline: Deadline | None, cancelled: threading.Event | None
    ) -> LLMResponse:
        permit = self.breaker.before_call() if self.breaker is not None else None
        reported = False
        try:
            with self._slot(deadline):
                estimate = self._acquire_limit(request, deadline, cancelled)
                timeout_s = request.timeout_s
                if deadline is not None:
                    left = deadline.remaining(self._clock.now())
                    if left <= 0:
                        raise ProviderTimeout(
                            f"the {deadline.budget_s:g} s deadline passed while {self.name} "
                            "waited for a pool slot and its rate limit; nothing was sent",
                            provider=self.name,
                        )
                    timeout_s = left if timeout_s is None else min(timeout_s, left)
                try:
                    response = self.provider.complete(replace(request, timeout_s=timeout_s))
                except ProviderError as error:
                    if cancelled is not None and cancelled.is_set():
                        raise  # we cut the call ourselves: not the provider's failure
                    reported = self._report_failure(error, permit)
                    raise
                reported = self._report_success(permit)
            if self.limiter is not None:
                self.limiter.record_actual(response.usage.total_tokens, estimate)
            return response
        finally:
            if not reported and self.breaker is not None:
                self.breaker.release(permit)

    def _report_failure(self, error: ProviderError, permit: Permit | None) -> bool:
        if self.breaker is not None:
            self.breaker.on_failure(error, permit)
        return True

    def _breaker_refuses(self, planned: RetryEvent) -> bool:
        """True when the breaker is open and will still be when the planned retry would start.

        Waiting only to be refused wastes the backoff; the provider's own error (its
        kind tells a chain why) is raised instead.
        """
        if self.breaker is None:
            return False
        snap = self.breaker.snapshot()
        next_probe = snap.next_probe_in_s
        return (
            snap.state is BreakerState.OPEN
            and next_probe is not None
            and (next_probe > planned.delay_s)
        )

    def _report_success(self, permit: Permit | None) -> bool:
        if self.breaker is not None:
            self.breaker.on_success(permit)
        return True

    def _acquire_limit(
        self, request: LLMRequest, deadline: Deadline | None, cancelled: threading.Event | None
    ) -> int:
        estimate = estimate_tokens(request)
        if self.limiter is not None:
            wait = self._limit_wait_s
            if deadline is not None:
                wait = min(wait, deadline.remaining(self._clock.now()))
            self.limiter.acquire(estimate, timeout=wait, cancelled=cancelled)
        return estimate

    def _slot(self, deadline: Deadline | None) -> _Slot:
        timeout = self._pool_timeout_s
        if deadline is not None:
            timeout = min(timeout, deadline.remaining(self._clock.now()))
        return _Slot(self, timeout)


class _Slot:
    """Hold one bulkhead slot for a ``with`` block, keeping the snapshot counts."""

    def __init__(self, owner: ResilientProvider, timeout: float) -> None:
        self._owner = owner
        self._timeout = timeout

    def __enter__(self) -> None:
        owner = self._owner
        with owner._counts_lock:
            owner._waiting += 1
        try:
            got = owner._pool.acquire(timeout=max(0.0, self._timeout))
        finally:
            with owner._counts_lock:
                owner._waiting -= 1
        if not got:
            raise PoolFull(
                f"pool full for {owner.name}: all {owner.bulkhead_size} slots stayed busy for "
                f"{self._timeout:.3f} s; raise its bulkhead size or fall back to another provider",
                provider=owner.name,
                pool_size=owner.bulkhead_size,
            )
        with owner._counts_lock:
            owner._in_use += 1

    def __exit__(self, *exc_info: object) -> None:
        owner = self._owner
        with owner._counts_lock:
            owner._in_use -= 1
        owner._pool.release()


# -- fallback chains ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainAttempt:
    """A provider the chain tried that did not answer, and why."""

    provider: str
    kind: FailureKind
    message: str


@dataclass(frozen=True, slots=True)
class ChainResult:
    """The answer, the chain name of the provider that gave it, and the failures before it."""

    response: LLMResponse
    provider: str
    attempts: tuple[ChainAttempt, ...] = ()


class ChainExhausted(ProviderError):
    """Every provider in a chain failed; ``kind`` and ``retryable`` are those of the last."""

    def __init__(self, message: str, *, attempts: tuple[ChainAttempt, ...], last: ProviderError):
        super().__init__(message, provider=last.provider)
        self.kind = last.kind
        self.retryable = last.retryable
        self.attempts = attempts


class FallbackChain:
    """Providers tried in order under one shared deadline; see the module table."""

    def __init__(
        self,
        providers: Sequence[tuple[str, ResilientProvider]],
        *,
        clock: Clock = SYSTEM_CLOCK,
        fallback_on: frozenset[FailureKind] = DEFAULT_FALLBACK_ON,
    ) -> None:
        if not providers:
            raise ConfigError("a fallback chain needs at least one provider")
        names = [name for name, _ in providers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(
                f"a fallback chain lists {', '.join(duplicates)} more than once: {names}"
            )
        self.providers = tuple(providers)
        self.fallback_on = fallback_on
        self._clock = clock

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.providers)

    def complete(
        self,
        request: LLMRequest,
        *,
        deadline: Deadline | None = None,
        cancelled: threading.Event | None = None,
    ) -> ChainResult:
        if deadline is None and request.timeout_s is not None:
            deadline = Deadline.after(self._clock, request.timeout_s)
        attempts: list[ChainAttempt] = []
        last: ProviderError | None = None
        for name, provider in self.providers:
            if deadline is not None and deadline.expired(self._clock.now()):
                last = ProviderTimeout(
                    f"the {deadline.budget_s:g} s deadline passed before {name} was tried",
                    provider=name,
                )
                attempts.append(ChainAttempt(name, last.kind, str(last)))
                break
            try:
                response = provider.complete(
                    replace(request, provider=name, fallbacks=()),
                    deadline=deadline,
                    cancelled=cancelled,
                )
            except ProviderError as error:
                attempts.append(ChainAttempt(name, error.kind, str(error)))
                if error.kind not in self.fallback_on:
                    if len(attempts) > 1:
                        error.add_note(f"fallback chain so far: {_summary(attempts)}")
                    raise
                last = error
                continue
            return ChainResult(response=response, provider=name, attempts=tuple(attempts))
        assert last is not None
        tried = tuple(attempts)
        raise ChainExhausted(
            f"no provider in the chain {' → '.join(self.names)} answered: {_summary(tried)}; "
            "each failure is listed above; wait for one to recover or add another fallback",
            attempts=tried,
            last=last,
        ) from last


def _summary(attempts: Sequence[ChainAttempt]) -> str:
    return "; ".join(f"{a.provider}: {a.kind.value} ({a.message})" for a in attempts)
