"""Circuit breaker: counts health failures in a window, opens, lets exactly one probe through."""

from __future__ import annotations

import threading
from itertools import product

import pytest
from pydantic import ValidationError

from runtime.errors import (
    AuthError,
    FailureKind,
    IllegalTransition,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    Rejected,
    Unavailable,
)
from runtime.providers.breaker import (
    BREAKER_MOVES,
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
    CircuitOpen,
    Permit,
    transition,
)
from runtime.testing import FakeClock

CONFIG = BreakerConfig(failure_threshold=3, window_s=60.0, cooldown_s=30.0)


def make(config: BreakerConfig = CONFIG) -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock()
    return CircuitBreaker(config, clock, provider="claude"), clock


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.config.failure_threshold):
        breaker.on_failure(Overloaded("busy"), breaker.before_call())


@pytest.mark.parametrize(
    ("error", "counts"),
    [
        (ProviderTimeout("slow"), True),
        (Overloaded("busy"), True),
        (Unavailable("down"), True),
        (ProviderError("500"), True),
        (RateLimited("429"), False),
        (Rejected("400"), False),
        (AuthError("401"), False),
        (ValueError("a bug"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_only_provider_health_failures_count(error: BaseException, counts: bool) -> None:
    """Timeouts, overloads, outages and server errors count; caller errors and 429s do not."""
    breaker, _ = make()
    assert breaker.counts(error) is counts
    for _ in range(3):
        breaker.on_failure(error, breaker.before_call())
    assert breaker.state is (BreakerState.OPEN if counts else BreakerState.CLOSED)


def test_rate_limiting_counts_when_configured() -> None:
    """trip_on may add rate_limited to the counted kinds."""
    config = CONFIG.model_copy(update={"trip_on": CONFIG.trip_on | {FailureKind.RATE_LIMITED}})
    breaker, _ = make(config)
    for _ in range(3):
        breaker.on_failure(RateLimited("429"))
    assert breaker.state is BreakerState.OPEN


@pytest.mark.parametrize("kind", [FailureKind.AUTH, FailureKind.BAD_REQUEST, FailureKind.CONFIG])
def test_trip_on_refuses_kinds_that_say_nothing_about_health(kind: FailureKind) -> None:
    """A config that would let a bad key or bad request trip the breaker is rejected."""
    with pytest.raises(ValidationError, match="provider-health"):
        BreakerConfig(trip_on=frozenset({FailureKind.TIMEOUT, kind}))


def test_breaker_config_refuses_unknown_fields() -> None:
    """extra=forbid: a typo is an error, not a silent default."""
    with pytest.raises(ValidationError):
        BreakerConfig.model_validate({"failure_treshold": 3})


def test_breaker_opens_at_the_threshold_and_refuses_calls() -> None:
    """The third failure opens it; the next call is refused with the time left to wait."""
    breaker, clock = make()
    breaker.on_failure(Overloaded("busy"), breaker.before_call())
    breaker.on_failure(Overloaded("busy"), breaker.before_call())
    assert breaker.state is BreakerState.CLOSED
    breaker.on_failure(Overloaded("busy"), breaker.before_call())
    assert breaker.state is BreakerState.OPEN
    clock.advance(10.0)
    with pytest.raises(CircuitOpen, match=r"breaker open for claude, retry after 20\.0 s") as err:
        breaker.before_call()
    assert isinstance(err.value, Unavailable)
    assert err.value.kind is FailureKind.UNAVAILABLE
    assert err.value.retry_after_s == pytest.approx(20.0)
    assert err.value.provider == "claude"
    assert not err.value.retryable


def test_failures_older_than_the_window_are_forgotten() -> None:
    """Failures spread wider than window_s never add up to the threshold."""
    breaker, clock = make()
    for _ in range(10):
        breaker.on_failure(ProviderTimeout("slow"))
        clock.advance(30.0)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot().failures == 1


def test_a_success_clears_the_failure_count() -> None:
    """The threshold is of consecutive failures: a success in between starts over."""
    breaker, _ = make()
    for _ in range(5):
        breaker.on_failure(ProviderTimeout("slow"))
        breaker.on_failure(ProviderTimeout("slow"))
        breaker.on_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot().failures == 0


def test_after_the_cooldown_exactly_one_probe_goes_through() -> None:
    """Half-open admits one probe and refuses everyone else while it is in flight."""
    breaker, clock = make()
    trip(breaker)
    clock.advance(30.0)
    probe = breaker.before_call()
    assert probe.probe
    assert breaker.state is BreakerState.HALF_OPEN
    for _ in range(3):
        with pytest.raises(CircuitOpen, match="probe is in flight"):
            breaker.before_call()
    breaker.on_success(probe)
    assert breaker.state is BreakerState.CLOSED
    assert not breaker.before_call().probe


def test_a_failed_probe_reopens_and_restarts_the_cooldown() -> None:
    """The probe fails: open again, and the next probe waits a full cooldown from now."""
    breaker, clock = make()
    trip(breaker)
    clock.advance(45.0)
    breaker.on_failure(ProviderTimeout("still slow"), breaker.before_call())
    snap = breaker.snapshot()
    assert snap.state is BreakerState.OPEN
    assert snap.opened_at == clock.now()
    assert snap.next_probe_in_s == pytest.approx(30.0)
    clock.advance(29.0)
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    clock.advance(1.0)
    assert breaker.before_call().probe


def test_a_probe_that_fails_for_the_callers_reasons_frees_the_slot() -> None:
    """A bad request from the probe says nothing about health: another probe may go."""
    breaker, clock = make()
    trip(breaker)
    clock.advance(30.0)
    breaker.on_failure(Rejected("bad"), breaker.before_call())
    assert breaker.state is BreakerState.HALF_OPEN
    second = breaker.before_call()
    assert second.probe
    breaker.on_success(second)
    assert breaker.state is BreakerState.CLOSED


def test_a_late_result_from_before_the_breaker_opened_does_not_decide_the_probe() -> None:
    """Results carry their permit; one from an older state is ignored."""
    breaker, clock = make()
    slow_call = breaker.before_call()
    trip(breaker)
    clock.advance(30.0)
    probe = breaker.before_call()
    breaker.on_failure(ProviderTimeout("old news"), slow_call)
    breaker.on_success(slow_call)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.on_success(probe)
    assert breaker.state is BreakerState.CLOSED


def test_half_open_max_calls_admits_that_many_probes_and_needs_them_all() -> None:
    """With two probes allowed, a third is refused and one success alone does not close."""
    breaker, clock = make(CONFIG.model_copy(update={"half_open_max_calls": 2}))
    trip(breaker)
    clock.advance(30.0)
    first, second = breaker.before_call(), breaker.before_call()
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    breaker.on_success(first)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.on_success(second)
    assert breaker.state is BreakerState.CLOSED


def test_snapshot_reports_state_failures_and_time_to_the_probe() -> None:
    """snapshot() is a frozen record of what the CLI shows."""
    breaker, clock = make()
    breaker.on_failure(Overloaded("busy"))
    snap = breaker.snapshot()
    assert (snap.state, snap.failures, snap.opened_at, snap.next_probe_in_s) == (
        BreakerState.CLOSED,
        1,
        None,
        None,
    )
    breaker.on_failure(Overloaded("busy"))
    breaker.on_failure(Overloaded("busy"))
    opened = clock.now()
    clock.advance(12.5)
    snap = breaker.snapshot()
    assert (snap.state, snap.failures, snap.opened_at) == (BreakerState.OPEN, 3, opened)
    assert snap.next_probe_in_s == pytest.approx(17.5)
    clock.advance(100.0)
    assert breaker.snapshot().next_probe_in_s == 0.0
    assert breaker.snapshot().state is BreakerState.OPEN
    with pytest.raises(AttributeError):
        snap.state = BreakerState.CLOSED  # type: ignore[misc]


@pytest.mark.parametrize(("current", "target"), list(product(BreakerState, BreakerState)))
def test_transition_allows_exactly_the_moves_in_the_table(
    current: BreakerState, target: BreakerState
) -> None:
    """One table decides every move; an illegal one names the breaker and what is allowed."""
    if target in BREAKER_MOVES[current]:
        assert transition("breaker for claude", current, target) is target
    else:
        with pytest.raises(IllegalTransition, match="breaker for claude cannot move") as caught:
            transition("breaker for claude", current, target)
        assert caught.value.state == current.value
        assert caught.value.target == target.value


def test_many_threads_racing_after_the_cooldown_get_exactly_one_probe() -> None:
    """32 callers released together into a half-open breaker: one permit, 31 refusals."""
    breaker, clock = make()
    trip(breaker)
    clock.advance(30.0)
    barrier = threading.Barrier(32)
    permits: list[Permit] = []
    refused: list[CircuitOpen] = []
    lock = threading.Lock()

    def call() -> None:
        barrier.wait(5)
        try:
            permit = breaker.before_call()
        except CircuitOpen as exc:
            with lock:
                refused.append(exc)
        else:
            with lock:
                permits.append(permit)

    threads = [threading.Thread(target=call) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(permits) == 1
    assert len(refused) == 31


def test_concurrent_failures_are_all_counted() -> None:
    """Failures reported from many threads at once are neither lost nor double-counted."""
    breaker, _ = make(CONFIG.model_copy(update={"failure_threshold": 1000}))
    barrier = threading.Barrier(20)

    def fail_many() -> None:
        barrier.wait(5)
        for _ in range(40):
            breaker.on_failure(ProviderTimeout("slow"), breaker.before_call())

    threads = [threading.Thread(target=fail_many) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot().failures == 800
