"""Retry policy: backoff with jitter, retry-after capped, give-up rules, deadlines, cancelling."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from runtime.clock import SYSTEM_CLOCK
from runtime.errors import (
    AuthError,
    Cancelled,
    FailureKind,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    Rejected,
    Unavailable,
)
from runtime.providers.breaker import CircuitOpen
from runtime.providers.retry import Deadline, RetryEvent, RetryPolicy, call_with_retry, next_delay
from runtime.testing import FakeClock

STEADY = RetryPolicy(max_attempts=5, base_s=1.0, max_s=8.0, multiplier=2.0, jitter=0.0)


def zero() -> float:
    return 0.0


def failing(
    errors: list[ProviderError], clock: FakeClock | None = None, takes_s: float = 0.0
) -> tuple[Callable[[], str], list[float]]:
    """A call that raises ``errors`` in turn, then answers "ok"; records when each attempt began."""
    started: list[float] = []

    def call() -> str:
        if clock is not None:
            started.append(clock.now())
            clock.advance(takes_s)
        else:
            started.append(0.0)
        if errors:
            raise errors.pop(0)
        return "ok"

    return call, started


@pytest.mark.parametrize(
    ("error", "attempt", "expected"),
    [
        (ProviderTimeout("t"), 1, 1.0),
        (ProviderTimeout("t"), 2, 2.0),
        (Overloaded("o"), 3, 4.0),
        (Unavailable("u"), 4, 8.0),
        (ProviderError("p"), 1, 1.0),
        (ProviderTimeout("t"), 5, None),
        (Rejected("bad"), 1, None),
        (AuthError("key"), 1, None),
        (RateLimited("r", retry_after_s=3.0), 1, 3.0),
        (RateLimited("r", retry_after_s=3.0), 4, 3.0),
        (RateLimited("r", retry_after_s=500.0), 1, 60.0),
        (RateLimited("r"), 2, 2.0),
        (RateLimited("r", retry_after_s=3.0), 5, None),
        (CircuitOpen("open", provider="p", retry_after_s=5.0), 1, None),
    ],
    ids=[
        "timeout-first",
        "timeout-second",
        "overloaded-third",
        "unavailable-fourth",
        "provider-error",
        "out-of-attempts",
        "bad-request-never",
        "auth-never",
        "retry-after-honoured",
        "retry-after-not-backoff",
        "retry-after-capped",
        "rate-limited-without-header-backs-off",
        "retry-after-out-of-attempts",
        "error-marked-not-retryable",
    ],
)
def test_next_delay_follows_the_decision_table(
    error: ProviderError, attempt: int, expected: float | None
) -> None:
    """Exponential backoff, retry-after capped at the policy's cap, give up on permanent errors."""
    assert next_delay(STEADY, attempt, error, zero) == expected


def test_next_delay_gives_up_on_kinds_outside_retry_on() -> None:
    """A kind the policy does not list is not retried, even if the error calls itself retryable."""
    policy = STEADY.model_copy(update={"retry_on": frozenset({FailureKind.TIMEOUT})})
    assert next_delay(policy, 1, Overloaded("busy"), zero) is None
    assert next_delay(policy, 1, ProviderTimeout("slow"), zero) == 1.0


def test_next_delay_caps_the_exponential_at_max_s() -> None:
    """However many attempts, the wait never exceeds max_s, even where the power overflows."""
    policy = RetryPolicy(max_attempts=100_000, base_s=1.0, max_s=8.0, multiplier=10.0, jitter=0)
    assert next_delay(policy, 6, ProviderTimeout("t"), zero) == 8.0
    assert next_delay(policy, 99_999, ProviderTimeout("t"), zero) == 8.0


@pytest.mark.parametrize(
    ("jitter", "draw", "expected"),
    [
        (0.0, 0.9, 4.0),
        (0.5, 0.0, 4.0),
        (0.5, 0.5, 3.0),
        (1.0, 0.5, 2.0),
        (1.0, 0.0, 4.0),
    ],
)
def test_jitter_shortens_the_delay_by_up_to_its_fraction(
    jitter: float, draw: float, expected: float
) -> None:
    """The delay is raw * (1 - jitter * draw): never longer than the unjittered one."""
    policy = STEADY.model_copy(update={"jitter": jitter})
    delay = next_delay(policy, 3, ProviderTimeout("t"), lambda: draw)
    assert delay == pytest.approx(expected)


def test_jittered_delays_stay_within_bounds_for_any_draw() -> None:
    """With a real random source every delay lies in [raw * (1 - jitter), raw]."""
    policy = STEADY.model_copy(update={"jitter": 0.3})
    for attempt in range(1, 5):
        raw = min(8.0, 2.0 ** (attempt - 1))
        for _ in range(200):
            delay = next_delay(policy, attempt, ProviderTimeout("t"))
            assert delay is not None
            assert raw * 0.7 <= delay <= raw


def test_next_delay_rejects_attempt_zero() -> None:
    """Attempts are numbered from 1."""
    with pytest.raises(ValueError, match="from 1"):
        next_delay(STEADY, 0, ProviderTimeout("t"), zero)


@pytest.mark.parametrize(
    "fields",
    [
        {"jitter": 1.5},
        {"max_attempts": 0},
        {"multiplier": 0.5},
        {"base_s": 10.0, "max_s": 1.0},
        {"surprise": True},
    ],
    ids=["jitter-over-1", "no-attempts", "shrinking", "max-below-base", "unknown-field"],
)
def test_retry_policy_rejects_bad_config(fields: dict[str, object]) -> None:
    """The config model is strict: bounds checked, unknown fields refused."""
    with pytest.raises(ValidationError):
        RetryPolicy.model_validate(fields)


def test_retry_policy_is_frozen() -> None:
    """A policy cannot change after it is built."""
    with pytest.raises(ValidationError):
        STEADY.max_attempts = 9  # type: ignore[misc]


def test_call_with_retry_backs_off_until_the_call_succeeds() -> None:
    """Two failures, then success: waits 1 s and 2 s on the clock and tells on_retry each time."""
    clock = FakeClock()
    call, started = failing([Overloaded("busy"), ProviderTimeout("slow")])
    events: list[RetryEvent] = []
    result = call_with_retry(call, STEADY, clock, rng=zero, on_retry=events.append)
    assert result == "ok"
    assert clock.sleeps == [1.0, 2.0]
    assert [(e.attempt, e.error.kind, e.delay_s) for e in events] == [
        (1, FailureKind.OVERLOADED, 1.0),
        (2, FailureKind.TIMEOUT, 2.0),
    ]
    assert len(started) == 3


def test_call_with_retry_raises_the_last_error_when_attempts_run_out() -> None:
    """After max_attempts the last error propagates, stamped with its attempt number."""
    clock = FakeClock()
    policy = STEADY.model_copy(update={"max_attempts": 3})
    call, started = failing([Overloaded(f"busy {n}") for n in range(5)])
    with pytest.raises(Overloaded, match="busy 2") as caught:
        call_with_retry(call, policy, clock, rng=zero)
    assert caught.value.attempt == 3
    assert len(started) == 3
    assert clock.sleeps == [1.0, 2.0]


@pytest.mark.parametrize("error", [Rejected("bad"), AuthError("no key")])
def test_call_with_retry_does_not_retry_permanent_errors(error: ProviderError) -> None:
    """A bad request or a bad key fails on the first attempt, without waiting."""
    clock = FakeClock()
    call, started = failing([error])
    with pytest.raises(type(error)):
        call_with_retry(call, STEADY, clock, rng=zero)
    assert len(started) == 1
    assert clock.sleeps == []


def test_give_up_vetoes_a_planned_retry_and_raises_the_last_error() -> None:
    """give_up sees the planned retry; when it says so, the error propagates without a wait."""
    clock = FakeClock()
    call, started = failing([Overloaded("first"), Overloaded("second"), Overloaded("third")])
    planned: list[RetryEvent] = []

    def veto_second(event: RetryEvent) -> bool:
        planned.append(event)
        return event.attempt == 2

    with pytest.raises(Overloaded, match="second"):
        call_with_retry(call, STEADY, clock, rng=zero, give_up=veto_second)
    assert [(e.attempt, e.delay_s) for e in planned] == [(1, 1.0), (2, 2.0)]
    assert len(started) == 2
    assert clock.sleeps == [1.0]


def test_call_with_retry_lets_other_exceptions_through_at_once() -> None:
    """Only ProviderError is retried; a bug is not hidden behind retries."""
    calls = 0

    def broken() -> str:
        nonlocal calls
        calls += 1
        raise KeyError("bug")

    with pytest.raises(KeyError):
        call_with_retry(broken, STEADY, FakeClock())
    assert calls == 1


@pytest.mark.parametrize(
    ("retry_after", "cap", "waited"),
    [(7.0, 60.0, 7.0), (100.0, 5.0, 5.0), (0.0, 60.0, 0.0)],
    ids=["honoured", "capped", "immediately"],
)
def test_call_with_retry_waits_what_retry_after_asks_up_to_the_cap(
    retry_after: float, cap: float, waited: float
) -> None:
    """RateLimited.retry_after_s sets the wait, cut to retry_after_cap_s."""
    clock = FakeClock()
    policy = STEADY.model_copy(update={"retry_after_cap_s": cap})
    call, _ = failing([RateLimited("slow down", retry_after_s=retry_after)])
    assert call_with_retry(call, policy, clock, rng=zero) == "ok"
    assert clock.sleeps == ([waited] if waited else [])
    assert clock.now() == pytest.approx(1000.0 + waited)


def test_call_with_retry_stops_before_a_wait_would_cross_the_deadline() -> None:
    """Waits of 1, 2 and 4 s fit a 10 s deadline; the 8 s one would not: ProviderTimeout."""
    clock = FakeClock()
    policy = STEADY.model_copy(update={"max_attempts": 10, "max_s": 60.0})
    deadline = Deadline.after(clock, 10.0)
    call, _ = failing([Overloaded("busy", provider="claude") for _ in range(10)])
    with pytest.raises(ProviderTimeout, match=r"10 s deadline") as caught:
        call_with_retry(call, policy, clock, deadline=deadline, rng=zero)
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert clock.now() <= deadline.at
    assert caught.value.provider == "claude"
    assert caught.value.attempt == 4
    assert isinstance(caught.value.__cause__, Overloaded)


@pytest.mark.parametrize("budget", [0.5, 3.0, 10.0, 45.0])
@pytest.mark.parametrize("takes_s", [0.0, 0.7, 2.5])
def test_no_attempt_starts_and_no_wait_ends_after_the_deadline(
    budget: float, takes_s: float
) -> None:
    """Whatever the budget and however long each attempt takes, waits stay inside the deadline."""
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=50, base_s=0.5, max_s=20.0, jitter=0.5)
    deadline = Deadline.after(clock, budget)
    call, started = failing([ProviderTimeout("slow") for _ in range(50)], clock, takes_s)
    with pytest.raises(ProviderTimeout):
        call_with_retry(call, policy, clock, deadline=deadline)
    assert started
    assert all(moment < deadline.at for moment in started)
    assert clock.now() <= max(deadline.at, started[-1] + takes_s)


def test_call_with_retry_does_not_start_after_the_deadline() -> None:
    """An expired deadline fails before the first attempt."""
    clock = FakeClock()
    deadline = Deadline.after(clock, 1.0)
    clock.advance(1.0)
    call, started = failing([])
    with pytest.raises(ProviderTimeout, match="passed before attempt 1"):
        call_with_retry(call, STEADY, clock, deadline=deadline)
    assert started == []


def test_deadline_needs_a_non_negative_budget() -> None:
    """Deadline.after refuses a negative budget."""
    with pytest.raises(ValueError, match="zero or more"):
        Deadline.after(FakeClock(), -1.0)


def test_a_cancel_during_the_backoff_stops_the_retries() -> None:
    """Cancelling while waiting raises Cancelled and makes no further attempt."""
    clock = FakeClock()
    cancelled = threading.Event()
    call, started = failing([Overloaded("busy") for _ in range(5)])
    with pytest.raises(Cancelled):
        call_with_retry(
            call, STEADY, clock, rng=zero, on_retry=lambda _: cancelled.set(), cancelled=cancelled
        )
    assert len(started) == 1


def test_a_cancel_wakes_a_real_clock_wait_at_once() -> None:
    """With the real clock the backoff waits on the cancel event, so a 60 s wait ends early."""
    policy = RetryPolicy(max_attempts=3, base_s=60.0, max_s=60.0, jitter=0.0)
    cancelled = threading.Event()
    waiting = threading.Event()
    outcome: list[BaseException] = []
    call, started = failing([Overloaded("busy") for _ in range(3)])

    def run() -> None:
        try:
            call_with_retry(
                call,
                policy,
                SYSTEM_CLOCK,
                on_retry=lambda _: waiting.set(),
                cancelled=cancelled,
            )
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    assert waiting.wait(5)
    cancelled.set()
    worker.join(5)
    assert not worker.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], Cancelled)
    assert len(started) == 1
