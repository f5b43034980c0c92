"""Provider pools under supervision: parallel workers, crash recovery, chains, visible health."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from runtime.config import Settings
from runtime.errors import AuthError, ProviderError, Unavailable
from runtime.providers.base import LLMRequest
from runtime.providers.breaker import BreakerConfig
from runtime.providers.pool import PoolGateway, PoolPolicy, pool_detail
from runtime.providers.retry import RetryPolicy
from runtime.supervision import (
    ChildSpec,
    RootHandle,
    SupervisionContext,
    SupervisorSpec,
    start_supervisor as start,
)
from runtime.testing.fake_anthropic import AnthropicReply, FakeAnthropic

KEY = "sk-test-pool-secret"


def providers_tree(pools: dict[str, tuple[str, int]]) -> SupervisorSpec:
    children = tuple(
        ChildSpec.model_validate(
            {
                "id": name,
                "pool": {
                    "size": size,
                    "actor": "actors.provider:ProviderWorker",
                    "args": {"provider": provider},
                },
            }
        )
        for name, (provider, size) in pools.items()
    )
    return SupervisorSpec(
        children=(ChildSpec(id="providers", supervisor=SupervisorSpec(children=children)),)
    )


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        yield server


@pytest.fixture
def tree(fake: FakeAnthropic) -> Iterator[RootHandle]:
    root = start(
        providers_tree({"anthropic": ("anthropic", 4), "mock": ("mock", 2)}),
        context=SupervisionContext(),
    )
    yield root
    root.shutdown()


def gateway(root: RootHandle, **policy: object) -> PoolGateway:
    policies = {name: PoolPolicy(**policy) for name in ("anthropic", "mock")}  # type: ignore[arg-type]
    return PoolGateway.from_tree(
        root.supervisor("providers"), Settings.from_env(), policies=policies
    )


def test_calls_are_served_by_the_real_sdk_through_a_worker(
    tree: RootHandle, fake: FakeAnthropic
) -> None:
    """A request for claude reaches the fake Anthropic API through a pool worker."""
    fake.reply("hello from the pool")
    gw = gateway(tree)
    try:
        response = gw.complete(LLMRequest(prompt="hi", provider="claude", timeout_s=10))
    finally:
        gw.close()
    assert response.text == "hello from the pool"
    assert response.provider == "anthropic"
    assert fake.requests[0].header("authorization") == f"Bearer {KEY}"


def test_a_pool_of_four_serves_four_slow_calls_at_once(
    tree: RootHandle, fake: FakeAnthropic
) -> None:
    """Calls wait on the API in parallel, up to the pool size, never one at a time."""
    for _ in range(4):
        fake.script(fake.slow(2.0, AnthropicReply(text="ok")))
    gw = gateway(tree)
    results: list[str] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                gw.complete(LLMRequest(prompt="x", provider="anthropic", timeout_s=10)).text
            )
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    try:
        # Each answer takes 2 s: all four can only arrive within 2 s if they run in parallel.
        assert fake.wait_requests(4, timeout=2.0), "the pool serialized its calls"
        assert dict(pool_detail("anthropic"))["busy"] == "4/4"
    finally:
        for thread in threads:
            thread.join(10)
        gw.close()
    assert results == ["ok"] * 4


def test_a_call_to_a_worker_that_is_down_fails_fast_and_is_retried_elsewhere(
    tree: RootHandle, fake: FakeAnthropic
) -> None:
    """With w0 down, the call that picks it fails at once and the retry lands on w1."""
    pool = tree.supervisor("providers").supervisor("anthropic")
    pool.terminate_child("w0")
    fake.reply("still serving")
    gw = gateway(tree, retry=RetryPolicy(max_attempts=3, base_s=0.01, max_s=0.05))
    try:
        response = gw.complete(LLMRequest(prompt="x", provider="anthropic", timeout_s=10))
    finally:
        gw.close()
    assert response.text == "still serving"
    pool.restart_child("w0")
    assert pool.child("w0").wait_running(5)


def test_a_failing_provider_falls_back_to_the_next_in_the_chain(
    tree: RootHandle, fake: FakeAnthropic
) -> None:
    """Overloaded Anthropic → the mock answers, and the response says so."""
    for _ in range(3):
        fake.script(fake.overloaded())
    gw = gateway(tree, retry=RetryPolicy(max_attempts=1))
    try:
        response = gw.complete(
            LLMRequest(prompt="x", provider="claude", fallbacks=("mock",), timeout_s=10)
        )
    finally:
        gw.close()
    assert response.provider == "mock"


def test_an_open_breaker_shows_in_the_tree_and_is_skipped_without_a_call(
    tree: RootHandle, fake: FakeAnthropic
) -> None:
    """After two failures the breaker opens; the next chain goes straight to the mock."""
    for _ in range(2):
        fake.script(fake.server_error(500))
    gw = gateway(
        tree,
        retry=RetryPolicy(max_attempts=1),
        breaker=BreakerConfig(failure_threshold=2, cooldown_s=60),
    )
    try:
        for _ in range(2):
            with pytest.raises(ProviderError):
                gw.complete(LLMRequest(prompt="x", provider="anthropic", timeout_s=10))
        calls_before = len(fake.requests)
        response = gw.complete(
            LLMRequest(prompt="x", provider="anthropic", fallbacks=("mock",), timeout_s=10)
        )
        assert response.provider == "mock"
        assert len(fake.requests) == calls_before
        node = tree.tree().find("root/providers/anthropic/w0")
        assert ("breaker", "open") in node.detail
    finally:
        gw.close()


def test_without_a_key_the_mock_answers_only_when_allowed(
    tree: RootHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No key: the mock stands in by default; with ELX_MOCK_FALLBACK=0 the call is refused."""
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    allowed = PoolGateway.from_tree(tree.supervisor("providers"), Settings.from_env())
    try:
        assert allowed.complete(LLMRequest(prompt="x", provider="claude")).provider == "mock"
    finally:
        allowed.close()
    monkeypatch.setenv("ELX_MOCK_FALLBACK", "0")
    strict = PoolGateway.from_tree(tree.supervisor("providers"), Settings.from_env())
    try:
        with pytest.raises(AuthError, match="no API key"):
            strict.complete(LLMRequest(prompt="x", provider="claude"))
        with pytest.raises(Unavailable, match="no pool here"):
            strict.complete(LLMRequest(prompt="x", provider="openai"))
    finally:
        strict.close()
