"""ResilientProvider (breaker, bulkhead, limiter, retry) and fallback chains across providers."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from runtime.errors import (
    AuthError,
    Cancelled,
    ConfigError,
    FailureKind,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    Rejected,
    Unavailable,
)
from runtime.providers.base import LLMRequest, LLMResponse, Provider, Usage
from runtime.providers.breaker import BreakerConfig, BreakerState, CircuitBreaker, CircuitOpen
from runtime.providers.mock import MockErrorName, MockFailure, MockProvider, MockSettings
from runtime.providers.rate_limit import RateLimitConfig, RateLimiter, RateLimitExceeded
from runtime.providers.resilient import (
    ChainAttempt,
    ChainExhausted,
    FallbackChain,
    PoolFull,
    ResilientProvider,
    estimate_tokens,
)
from runtime.providers.retry import Deadline, RetryPolicy
from runtime.testing import FakeClock

ONCE = RetryPolicy(max_attempts=1)
PATIENT = RetryPolicy(max_attempts=4, base_s=1.0, max_s=10.0, jitter=0.0)
BREAKER = BreakerConfig(failure_threshold=2, window_s=60.0, cooldown_s=30.0)
REQUEST = LLMRequest(prompt="Summarize the quarterly report.", provider="claude")


class ScriptedProvider:
    """Raises the scripted errors in turn, then answers; records every request it saw."""

    def __init__(self, name: str, errors: list[ProviderError] | None = None) -> None:
        self.name = name
        self.errors = list(errors or [])
        self.requests: list[LLMRequest] = []
        self._lock = threading.Lock()

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self.requests)

    def complete(self, request: LLMRequest) -> LLMResponse:
        with self._lock:
            self.requests.append(request)
            error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error
        return LLMResponse(
            text=f"{self.name} says hi", provider=self.name, model="m", usage=Usage(10, 5)
        )

    def stream(self, request: LLMRequest) -> Iterator[str]:
        yield self.complete(request).text


class GatedProvider(ScriptedProvider):
    """Blocks every call on ``gate`` and tracks how many calls are inside at once."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.gate = threading.Event()
        self.entered = threading.Semaphore(0)
        self.inside = 0
        self.most_inside = 0

    def complete(self, request: LLMRequest) -> LLMResponse:
        with self._lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        self.entered.release()
        try:
            assert self.gate.wait(5), "the test never opened the gate"
            return super().complete(request)
        finally:
            with self._lock:
                self.inside -= 1


def resilient(
    provider: Provider,
    clock: FakeClock,
    *,
    retry: RetryPolicy = ONCE,
    breaker: BreakerConfig | None = BREAKER,
    rpm: int | None = None,
    size: int = 4,
    pool_timeout_s: float = 5.0,
    limit_wait_s: float = 60.0,
) -> ResilientProvider:
    return ResilientProvider(
        provider,
        retry,
        CircuitBreaker(breaker, clock, provider=provider.name) if breaker else None,
        RateLimiter(RateLimitConfig(requests_per_minute=rpm), clock, provider=provider.name)
        if rpm
        else None,
        size,
        clock=clock,
        pool_timeout_s=pool_timeout_s,
        limit_wait_s=limit_wait_s,
        rng=lambda: 0.0,
    )


def mock(name: str, clock: FakeClock, *failures: MockFailure) -> MockProvider:
    return MockProvider(MockSettings(failures=failures, clock=clock), name=name)


def run_threads(count: int, target: object) -> list[threading.Thread]:
    threads = [threading.Thread(target=target) for _ in range(count)]  # type: ignore[arg-type]
    for thread in threads:
        thread.start()
    return threads


def join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(5)
    assert not any(thread.is_alive() for thread in threads)


# -- ResilientProvider -------------------------------------------------------


def test_a_resilient_provider_is_a_provider() -> None:
    """It can stand wherever a Provider is expected, under the wrapped provider's name."""
    wrapped = resilient(ScriptedProvider("claude"), FakeClock())
    assert isinstance(wrapped, Provider)
    assert wrapped.name == "claude"
    assert wrapped.complete(REQUEST).text == "claude says hi"
    assert list(wrapped.stream(REQUEST)) == ["claude says hi"]


def test_transient_failures_are_retried_with_backoff_on_the_clock() -> None:
    """Two overloads then an answer: waits 1 s and 2 s, three calls to the provider."""
    clock = FakeClock()
    inner = mock("claude", clock, MockFailure(error="overloaded", times=2))
    wrapped = resilient(inner, clock, retry=PATIENT, breaker=None)
    assert wrapped.complete(REQUEST).provider == "claude"
    assert inner.call_count() == 3
    assert clock.sleeps == [1.0, 2.0]


def test_the_breaker_opening_mid_retry_stops_the_retries_at_once() -> None:
    """With a threshold of 2, the failure that opens the breaker is final: no wait, no 3rd call."""
    clock = FakeClock()
    inner = mock("claude", clock, MockFailure(error="unavailable", times=99))
    wrapped = resilient(inner, clock, retry=PATIENT)
    with pytest.raises(Unavailable, match="injected unavailable failure 2") as caught:
        wrapped.complete(REQUEST)
    assert not isinstance(caught.value, CircuitOpen)
    assert inner.call_count() == 2
    assert clock.sleeps == [1.0]
    with pytest.raises(CircuitOpen, match="breaker open for claude"):
        wrapped.complete(REQUEST)
    assert inner.call_count() == 2
    assert wrapped.snapshot().breaker is not None
    assert wrapped.snapshot().breaker.state is BreakerState.OPEN  # type: ignore[union-attr]


def test_a_retry_after_the_cooldown_goes_ahead_as_the_probe() -> None:
    """If the breaker's cooldown ends before the backoff does, the retry is the probe."""
    clock = FakeClock()
    inner = ScriptedProvider("claude", [Overloaded("busy"), Overloaded("busy")])
    breaker = BREAKER.model_copy(update={"cooldown_s": 1.5})
    wrapped = resilient(inner, clock, retry=PATIENT, breaker=breaker)
    assert wrapped.complete(REQUEST).text == "claude says hi"
    assert inner.calls == 3
    assert clock.sleeps == [1.0, 2.0]
    assert wrapped.breaker is not None
    assert wrapped.breaker.state is BreakerState.CLOSED


def test_caller_errors_do_not_trip_the_breaker() -> None:
    """Bad requests and bad keys pass through unretried and leave the breaker closed."""
    clock = FakeClock()
    inner = ScriptedProvider("claude", [Rejected("bad")] * 3 + [AuthError("key")] * 3)
    wrapped = resilient(inner, clock, retry=PATIENT)
    for error_type in [Rejected] * 3 + [AuthError] * 3:
        with pytest.raises(error_type):
            wrapped.complete(REQUEST)
    assert inner.calls == 6
    snap = wrapped.snapshot().breaker
    assert snap is not None
    assert (snap.state, snap.failures) == (BreakerState.CLOSED, 0)


def test_after_the_cooldown_one_probe_closes_the_breaker() -> None:
    """Open, wait out the cooldown, one successful call closes it again."""
    clock = FakeClock()
    inner = ScriptedProvider("claude", [Overloaded("busy"), Overloaded("busy")])
    wrapped = resilient(inner, clock)
    for _ in range(2):
        with pytest.raises(Overloaded):
            wrapped.complete(REQUEST)
    with pytest.raises(CircuitOpen):
        wrapped.complete(REQUEST)
    clock.advance(30.0)
    assert wrapped.complete(REQUEST).text == "claude says hi"
    assert inner.calls == 3
    assert wrapped.breaker is not None
    assert wrapped.breaker.state is BreakerState.CLOSED


def test_the_request_timeout_is_the_deadline_for_all_attempts() -> None:
    """Each attempt is sent with what is left of the deadline as its timeout."""
    clock = FakeClock()
    inner = ScriptedProvider("claude", [ProviderTimeout("slow"), ProviderTimeout("slow")])
    wrapped = resilient(inner, clock, retry=PATIENT, breaker=None)
    wrapped.complete(LLMRequest(prompt="hi", timeout_s=10.0))
    assert [r.timeout_s for r in inner.requests] == pytest.approx([10.0, 9.0, 7.0])


def test_a_short_deadline_ends_the_retries_with_a_timeout() -> None:
    """A wait that would cross the deadline is not started: ProviderTimeout, within budget."""
    clock = FakeClock()
    inner = ScriptedProvider("claude", [Overloaded("busy")] * 5)
    wrapped = resilient(inner, clock, retry=PATIENT, breaker=None)
    deadline = Deadline.after(clock, 2.5)
    with pytest.raises(ProviderTimeout, match=r"2\.5 s deadline"):
        wrapped.complete(REQUEST, deadline=deadline)
    assert inner.calls == 2
    assert clock.now() <= deadline.at


def test_the_local_rate_limit_waits_on_the_clock() -> None:
    """With 2 requests a minute, the third call waits 30 s for its turn."""
    clock = FakeClock()
    wrapped = resilient(ScriptedProvider("claude"), clock, rpm=2)
    for _ in range(3):
        wrapped.complete(REQUEST)
    assert clock.sleeps == pytest.approx([30.0])


def test_the_limiter_is_charged_with_actual_usage() -> None:
    """The estimate is reserved before the call and corrected by the usage reported after."""
    clock = FakeClock()
    limiter = RateLimiter(RateLimitConfig(tokens_per_minute=10_000), clock, provider="claude")
    wrapped = ResilientProvider(ScriptedProvider("claude"), ONCE, None, limiter, 2, clock=clock)
    request = LLMRequest(prompt="x" * 400, max_tokens=1000)
    assert estimate_tokens(request) == 1100
    wrapped.complete(request)
    assert limiter.snapshot().tokens_available == pytest.approx(10_000 - 15)


def test_a_cancel_stops_a_call_waiting_to_retry() -> None:
    """A set cancel event ends the call with Cancelled and releases the breaker's permit."""
    clock = FakeClock()
    inner = ScriptedProvider("claude", [Overloaded("busy")] * 3)
    wrapped = resilient(inner, clock, retry=PATIENT)
    cancelled = threading.Event()
    cancelled.set()
    with pytest.raises(Cancelled):
        wrapped.complete(REQUEST, cancelled=cancelled)
    assert inner.calls == 0


# -- bulkhead ----------------------------------------------------------------


@pytest.mark.parametrize(("callers", "size"), [(8, 3), (5, 1), (4, 4)])
def test_the_bulkhead_lets_at_most_pool_size_calls_in_at_once(callers: int, size: int) -> None:
    """N callers, pool of k: exactly k get in, the rest wait for a slot, all finish."""
    clock = FakeClock()
    inner = GatedProvider("claude")
    wrapped = resilient(inner, clock, size=size, breaker=None)
    answers: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        text = wrapped.complete(REQUEST).text
        with lock:
            answers.append(text)

    threads = run_threads(callers, call)
    try:
        for _ in range(size):
            assert inner.entered.acquire(timeout=5)
        assert not inner.entered.acquire(timeout=0.2)
        snap = wrapped.snapshot()
        assert snap.in_use == size
        assert snap.pool_size == size
    finally:
        inner.gate.set()
        join_all(threads)
    assert inner.most_inside == size
    assert len(answers) == callers
    assert wrapped.snapshot().in_use == 0


def test_a_full_pool_refuses_with_pool_full_and_does_not_blame_the_provider() -> None:
    """No slot in time: Overloaded "pool full", and the breaker does not count it."""
    clock = FakeClock()
    inner = GatedProvider("claude")
    wrapped = resilient(inner, clock, size=1, pool_timeout_s=0.0)
    holder = run_threads(1, lambda: wrapped.complete(REQUEST))
    try:
        assert inner.entered.acquire(timeout=5)
        with pytest.raises(PoolFull, match="pool full for claude") as caught:
            wrapped.complete(REQUEST)
        assert isinstance(caught.value, Overloaded)
        assert caught.value.kind is FailureKind.OVERLOADED
        assert inner.inside == 1
    finally:
        inner.gate.set()
        join_all(holder)
    assert inner.calls == 1
    snap = wrapped.snapshot().breaker
    assert snap is not None
    assert (snap.state, snap.failures, snap.probes_in_flight) == (BreakerState.CLOSED, 0, 0)


def test_many_threads_share_one_resilient_provider_safely() -> None:
    """16 threads x 25 calls: every call answered, counted once by provider and limiter."""
    clock = FakeClock()
    inner = mock("claude", clock)
    wrapped = resilient(inner, clock, size=5, rpm=1000)
    barrier = threading.Barrier(16)
    errors: list[BaseException] = []

    def work() -> None:
        barrier.wait(5)
        for _ in range(25):
            try:
                wrapped.complete(REQUEST)
            except BaseException as exc:
                errors.append(exc)

    join_all(run_threads(16, work))
    assert errors == []
    assert inner.call_count() == 400
    snap = wrapped.snapshot()
    assert snap.in_use == 0
    assert snap.limiter is not None
    assert snap.limiter.requests_available == pytest.approx(600.0)
    assert clock.sleeps == []


# -- fallback chains ---------------------------------------------------------


def chain_of(clock: FakeClock, first: Provider, second: Provider, **kw: object) -> FallbackChain:
    return FallbackChain(
        [
            ("claude", resilient(first, clock, **kw)),  # type: ignore[arg-type]
            ("gemini", resilient(second, clock, **kw)),  # type: ignore[arg-type]
        ],
        clock=clock,
    )


@pytest.mark.parametrize(
    ("error", "moves_on"),
    [
        ("timeout", True),
        ("rate_limited", True),
        ("overloaded", True),
        ("unavailable", True),
        ("auth", True),
        ("bad_request", False),
    ],
)
def test_the_chain_moves_on_per_the_decision_table(error: MockErrorName, moves_on: bool) -> None:
    """Health failures and a bad key move to the next provider; a bad request stops the chain."""
    clock = FakeClock()
    claude = mock("anthropic", clock, MockFailure(error=error, times=1))
    gemini = mock("gemini", clock)
    chain = chain_of(clock, claude, gemini)
    if moves_on:
        result = chain.complete(REQUEST)
        assert result.provider == "gemini"
        assert result.response.provider == "gemini"
        assert [(a.provider, a.kind) for a in result.attempts] == [("claude", FailureKind(error))]
    else:
        with pytest.raises(Rejected):
            chain.complete(REQUEST)
    assert claude.call_count() == 1
    assert gemini.call_count() == (1 if moves_on else 0)


def test_the_chain_answers_from_the_first_provider_when_it_is_healthy() -> None:
    """No failure: the first provider answers and there are no attempts to report."""
    clock = FakeClock()
    claude, gemini = ScriptedProvider("anthropic"), ScriptedProvider("gemini")
    result = chain_of(clock, claude, gemini).complete(REQUEST)
    assert (result.provider, result.response.provider, result.attempts) == (
        "claude",
        "anthropic",
        (),
    )
    assert claude.requests[0].provider == "claude"
    assert gemini.calls == 0


def test_the_chain_skips_an_open_provider_without_calling_it() -> None:
    """Once claude's breaker is open, the chain goes straight to gemini; claude sees no call."""
    clock = FakeClock()
    claude = ScriptedProvider("anthropic", [Unavailable("down")] * 2)
    gemini = ScriptedProvider("gemini")
    chain = chain_of(clock, claude, gemini)
    chain.complete(REQUEST)
    chain.complete(REQUEST)
    assert claude.calls == 2
    result = chain.complete(REQUEST)
    assert claude.calls == 2
    assert result.provider == "gemini"
    assert len(result.attempts) == 1
    assert result.attempts[0].kind is FailureKind.UNAVAILABLE
    assert "breaker open for anthropic" in result.attempts[0].message


def test_the_chain_moves_on_when_the_local_rate_limit_is_spent() -> None:
    """A provider out of local quota is passed over at once, without waiting or calling it."""
    clock = FakeClock()
    claude, gemini = ScriptedProvider("anthropic"), ScriptedProvider("gemini")
    chain = chain_of(clock, claude, gemini, rpm=1, limit_wait_s=0.0)
    assert chain.complete(REQUEST).provider == "claude"
    result = chain.complete(REQUEST)
    assert result.provider == "gemini"
    assert result.attempts[0].kind is FailureKind.RATE_LIMITED
    assert claude.calls == 1
    assert clock.sleeps == []


def test_a_rate_limit_exceeded_error_says_how_long_to_wait() -> None:
    """The local limiter's refusal is a RateLimited carrying the wait it would need."""
    clock = FakeClock()
    wrapped = resilient(ScriptedProvider("claude"), clock, rpm=1, limit_wait_s=0.0)
    wrapped.complete(REQUEST)
    with pytest.raises(RateLimitExceeded) as caught:
        wrapped.complete(REQUEST)
    assert caught.value.retry_after_s == pytest.approx(60.0)


def test_when_every_provider_fails_the_chain_reports_them_all() -> None:
    """ChainExhausted lists each provider's failure and takes the last one's kind."""
    clock = FakeClock()
    claude = ScriptedProvider("anthropic", [Overloaded("busy")])
    gemini = ScriptedProvider("gemini", [ProviderTimeout("slow")])
    with pytest.raises(ChainExhausted, match=r"claude: overloaded.*gemini: timeout") as caught:
        chain_of(clock, claude, gemini).complete(REQUEST)
    error = caught.value
    assert error.kind is FailureKind.TIMEOUT
    assert error.retryable
    assert [(a.provider, a.kind) for a in error.attempts] == [
        ("claude", FailureKind.OVERLOADED),
        ("gemini", FailureKind.TIMEOUT),
    ]
    assert isinstance(error.__cause__, ProviderTimeout)


def test_a_bad_request_after_a_fallback_notes_the_chain_so_far() -> None:
    """The Rejected propagates as itself, with a note of the providers tried before."""
    clock = FakeClock()
    claude = ScriptedProvider("anthropic", [Overloaded("busy")])
    gemini = ScriptedProvider("gemini", [Rejected("schema not supported")])
    with pytest.raises(Rejected) as caught:
        chain_of(clock, claude, gemini).complete(REQUEST)
    assert any("claude: overloaded" in note for note in caught.value.__notes__)


def test_the_chain_shares_one_deadline_across_providers() -> None:
    """Time spent retrying the first provider is not given again to the second."""
    clock = FakeClock()
    claude = ScriptedProvider("anthropic", [Overloaded("busy")] * 9)
    gemini = ScriptedProvider("gemini")
    chain = chain_of(clock, claude, gemini, retry=PATIENT, breaker=None)
    result = chain.complete(LLMRequest(prompt="hi", timeout_s=10.0))
    assert result.provider == "gemini"
    assert result.attempts == (ChainAttempt("claude", FailureKind.OVERLOADED, "busy"),)
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert gemini.requests[0].timeout_s == pytest.approx(3.0)


def test_the_chain_stops_once_the_deadline_has_passed() -> None:
    """A provider is not tried after the shared deadline; the chain fails with a timeout."""
    clock = FakeClock()

    class Slow(ScriptedProvider):
        def complete(self, request: LLMRequest) -> LLMResponse:
            clock.advance(5.0)
            return super().complete(request)

    claude = Slow("anthropic", [ProviderTimeout("slow")])
    gemini = ScriptedProvider("gemini")
    with pytest.raises(ChainExhausted, match="deadline passed before gemini") as caught:
        chain_of(clock, claude, gemini).complete(LLMRequest(prompt="hi", timeout_s=5.0))
    assert caught.value.kind is FailureKind.TIMEOUT
    assert gemini.calls == 0


@pytest.mark.parametrize(
    "providers",
    [[], [("claude", "a"), ("claude", "b")]],
    ids=["empty", "duplicate"],
)
def test_a_chain_needs_distinct_providers(providers: list[tuple[str, str]]) -> None:
    """An empty chain or one naming a provider twice is a configuration error."""
    clock = FakeClock()
    built = [(name, resilient(ScriptedProvider(p), clock)) for name, p in providers]
    with pytest.raises(ConfigError):
        FallbackChain(built, clock=clock)
