"""Token-bucket limiter: requests and tokens per minute, exact waits, no lock held while waiting."""

from __future__ import annotations

import threading

import pytest
from pydantic import ValidationError

from runtime.clock import Clock
from runtime.errors import Cancelled, FailureKind, RateLimited
from runtime.providers.rate_limit import (
    Bucket,
    RateLimitConfig,
    RateLimiter,
    RateLimitExceeded,
)
from runtime.testing import FakeClock, GateClock, StillClock


def limiter(
    rpm: int | None = None, tpm: int | None = None, clock: Clock | None = None
) -> tuple[RateLimiter, FakeClock]:
    fake = FakeClock()
    config = RateLimitConfig(requests_per_minute=rpm, tokens_per_minute=tpm)
    return RateLimiter(config, clock or fake, provider="claude"), fake


@pytest.mark.parametrize(
    ("level", "elapsed", "expected"),
    [(0.0, 0.0, 0.0), (0.0, 6.0, 6.0), (50.0, 30.0, 60.0), (-10.0, 5.0, -5.0)],
)
def test_bucket_refills_at_its_rate_up_to_capacity(
    level: float, elapsed: float, expected: float
) -> None:
    """A 60-a-minute bucket gains one a second and never holds more than 60."""
    bucket = Bucket(capacity=60.0, per_s=1.0, level=level, at=0.0)
    assert bucket.refilled(elapsed).level == pytest.approx(expected)


@pytest.mark.parametrize(
    ("level", "amount", "wait"),
    [(10.0, 5.0, 0.0), (0.0, 5.0, 5.0), (-3.0, 1.0, 4.0), (60.0, 90.0, 30.0)],
    ids=["enough", "empty", "in-debt", "bigger-than-bucket"],
)
def test_bucket_wait_is_the_time_to_refill_the_shortfall(
    level: float, amount: float, wait: float
) -> None:
    """wait_for(n) = max(0, (n - level) / rate)."""
    bucket = Bucket(capacity=60.0, per_s=1.0, level=level, at=0.0)
    assert bucket.wait_for(amount) == pytest.approx(wait)


def test_try_acquire_allows_a_minutes_burst_then_refuses() -> None:
    """Three requests a minute: three at once, a fourth refused, allowed again 20 s later."""
    limit, clock = limiter(rpm=3)
    assert [limit.try_acquire(0) for _ in range(4)] == [True, True, True, False]
    clock.advance(19.9)
    assert not limit.try_acquire(0)
    clock.advance(0.1)
    assert limit.try_acquire(0)


def test_acquire_waits_exactly_until_a_request_is_free() -> None:
    """At 60 a minute the 61st request waits 1 s and the 62nd another 1 s."""
    limit, clock = limiter(rpm=60)
    for _ in range(60):
        assert limit.acquire(0, timeout=0) == 0.0
    assert clock.sleeps == []
    assert limit.acquire(0, timeout=5) == pytest.approx(1.0)
    assert limit.acquire(0, timeout=5) == pytest.approx(1.0)
    assert clock.sleeps == pytest.approx([1.0, 1.0])


def test_acquire_waits_for_the_tokens_it_needs() -> None:
    """600 tokens a minute is 10 a second: 100 more tokens after a full burst wait 10 s."""
    limit, clock = limiter(tpm=600)
    assert limit.acquire(600, timeout=0) == 0.0
    assert limit.acquire(100, timeout=60) == pytest.approx(10.0)
    assert clock.sleeps == pytest.approx([10.0])


def test_acquire_waits_for_the_slower_of_the_two_buckets() -> None:
    """With both limits, the wait is the longer of the two."""
    limit, _ = limiter(rpm=60, tpm=600)
    limit.acquire(600, timeout=0)
    assert limit.acquire(50, timeout=60) == pytest.approx(5.0)
    limit, _ = limiter(rpm=6, tpm=6000)
    for _ in range(6):
        limit.acquire(10, timeout=0)
    assert limit.acquire(10, timeout=60) == pytest.approx(10.0)


def test_a_request_bigger_than_the_bucket_waits_for_the_minute_to_cover_it() -> None:
    """1.5 minutes' worth of tokens from a full bucket waits 30 s instead of forever."""
    limit, _ = limiter(tpm=600)
    assert limit.acquire(900, timeout=60) == pytest.approx(30.0)


def test_acquire_raises_with_the_wait_needed_when_it_exceeds_the_timeout() -> None:
    """Too long a wait: RateLimitExceeded with retry_after_s, nothing reserved, no wait."""
    limit, clock = limiter(rpm=60)
    for _ in range(60):
        limit.acquire(0, timeout=0)
    before = limit.snapshot()
    with pytest.raises(RateLimitExceeded, match=r"would wait 1\.000 s") as caught:
        limit.acquire(0, timeout=0.5)
    error = caught.value
    assert isinstance(error, RateLimited)
    assert error.kind is FailureKind.RATE_LIMITED
    assert error.retry_after_s == pytest.approx(1.0)
    assert error.provider == "claude"
    assert not error.retryable
    assert limit.snapshot() == before
    assert clock.sleeps == []


def test_waiting_callers_queue_behind_each_others_reservations() -> None:
    """Time standing still, each new caller waits one second longer than the last."""
    still = StillClock()
    limit, _ = limiter(rpm=60, clock=still)
    for _ in range(60):
        assert limit.try_acquire(0)
    waits = [limit.acquire(0, timeout=10) for _ in range(3)]
    assert waits == pytest.approx([1.0, 2.0, 3.0])
    assert still.sleeps == pytest.approx([1.0, 2.0, 3.0])
    assert limit.snapshot().requests_available == pytest.approx(-3.0)


def test_record_actual_refunds_an_overestimate_and_charges_an_underestimate() -> None:
    """The token bucket is corrected by the difference between estimate and usage."""
    limit, _ = limiter(tpm=1000)
    limit.acquire(400, timeout=0)
    limit.record_actual(100, estimated_tokens=400)
    assert limit.snapshot().tokens_available == pytest.approx(900.0)
    limit.acquire(100, timeout=0)
    limit.record_actual(500, estimated_tokens=100)
    assert limit.snapshot().tokens_available == pytest.approx(400.0)


def test_a_refund_never_overfills_the_bucket() -> None:
    """Refunds stop at capacity."""
    limit, _ = limiter(tpm=1000)
    limit.record_actual(0, estimated_tokens=5000)
    assert limit.snapshot().tokens_available == pytest.approx(1000.0)


def test_an_unlimited_limiter_never_waits() -> None:
    """No limits configured: everything is admitted at once."""
    limit, _ = limiter()
    for _ in range(1000):
        assert limit.try_acquire(10_000)
    assert limit.acquire(10**9, timeout=0) == 0.0
    snap = limit.snapshot()
    assert (snap.requests_available, snap.tokens_available) == (None, None)


def test_the_lock_is_not_held_while_a_caller_waits() -> None:
    """While one caller sleeps out its wait, others can still ask and read the snapshot."""
    clock = GateClock()
    limit, _ = limiter(rpm=60, clock=clock)
    for _ in range(60):
        limit.try_acquire(0)
    done = threading.Event()

    def wait_for_slot() -> None:
        limit.acquire(0, timeout=10)
        done.set()

    worker = threading.Thread(target=wait_for_slot)
    worker.start()
    try:
        assert clock.sleeping.wait(5)
        assert not limit.try_acquire(0)
        assert limit.snapshot().requests_available == pytest.approx(-1.0)
        assert not done.is_set()
    finally:
        clock.gate.set()
        worker.join(5)
    assert done.is_set()


def test_a_cancelled_wait_gives_its_reservation_back() -> None:
    """Cancelling during the wait raises Cancelled and returns the request and tokens."""
    limit, _ = limiter(rpm=60, tpm=6000)
    for _ in range(60):
        limit.try_acquire(0)
    cancelled = threading.Event()
    cancelled.set()
    before = limit.snapshot()
    with pytest.raises(Cancelled):
        limit.acquire(100, timeout=10, cancelled=cancelled)
    assert limit.snapshot() == before


def test_concurrent_callers_never_exceed_the_allowance() -> None:
    """50 threads racing for 20 requests: exactly 20 are admitted."""
    limit, _ = limiter(rpm=20, clock=StillClock())
    barrier = threading.Barrier(50)
    admitted: list[bool] = []
    lock = threading.Lock()

    def race() -> None:
        barrier.wait(5)
        ok = limit.try_acquire(1)
        with lock:
            admitted.append(ok)

    threads = [threading.Thread(target=race) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert admitted.count(True) == 20
    assert admitted.count(False) == 30


def test_concurrent_waiting_callers_each_get_a_distinct_slot() -> None:
    """Waiters reserving at once are spread out: their waits are 1, 2, ... 10 s, no two equal."""
    still = StillClock()
    limit, _ = limiter(rpm=60, clock=still)
    for _ in range(60):
        limit.try_acquire(0)
    barrier = threading.Barrier(10)

    def wait() -> None:
        barrier.wait(5)
        limit.acquire(0, timeout=60)

    threads = [threading.Thread(target=wait) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert sorted(still.sleeps) == pytest.approx([float(n) for n in range(1, 11)])


@pytest.mark.parametrize(
    "fields",
    [{"requests_per_minute": 0}, {"tokens_per_minute": -5}, {"rpm": 10}],
    ids=["zero-rpm", "negative-tpm", "unknown-field"],
)
def test_rate_limit_config_rejects_bad_values(fields: dict[str, object]) -> None:
    """Allowances are positive; unknown fields are refused."""
    with pytest.raises(ValidationError):
        RateLimitConfig.model_validate(fields)


def test_negative_token_counts_are_refused() -> None:
    """A negative estimate is a bug in the caller."""
    limit, _ = limiter(tpm=100)
    with pytest.raises(ValueError, match="negative"):
        limit.try_acquire(-1)
