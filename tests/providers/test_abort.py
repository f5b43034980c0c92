"""A cancelled call is cut on the wire: the SDK's blocked read ends at once, the client lives on."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future

import pytest

from runtime.config import Settings
from runtime.errors import ProviderError
from runtime.providers.anthropic import AnthropicProvider
from runtime.providers.base import CallControl, LLMRequest
from runtime.providers.openai_compatible import OpenAICompatibleProvider
from runtime.testing.fake_anthropic import FakeAnthropic
from runtime.testing.fake_openai import FakeOpenAI

SLOW_S = 30.0  # the fake answers this late (or when it stops): far beyond any wait here
WAIT_S = 10.0


@pytest.fixture
def anthropic_fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


def call_in_thread(provider: object, request: LLMRequest) -> Future[object]:
    result: Future[object] = Future()

    def run() -> None:
        try:
            result.set_result(provider.complete(request))  # type: ignore[attr-defined]
        except BaseException as exc:
            result.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return result


def test_cancelling_cuts_an_anthropic_call_in_flight_and_the_next_call_works(
    anthropic_fake: FakeAnthropic,
) -> None:
    environ = {
        "ANTHROPIC_API_KEY": "sk-ant-test-0123456789abcdef",
        "ANTHROPIC_BASE_URL": anthropic_fake.base_url,
    }
    provider = AnthropicProvider(Settings(environ=environ))
    anthropic_fake.script(anthropic_fake.slow(SLOW_S))
    control = CallControl()
    request = LLMRequest(prompt="take your time", provider="anthropic", control=control)
    pending = call_in_thread(provider, request)
    assert anthropic_fake.server.wait_requests(1, WAIT_S)
    began = time.monotonic()
    control.on_cancel(provider.abort)
    control.set()
    with pytest.raises(ProviderError):
        pending.result(WAIT_S)
    assert time.monotonic() - began < 2.0
    anthropic_fake.reply("and now quickly")
    assert (
        provider.complete(LLMRequest(prompt="hi", provider="anthropic")).text == "and now quickly"
    )


def test_cancelling_cuts_an_openai_compatible_call_in_flight() -> None:
    with FakeOpenAI() as fake:
        environ = {"OPENAI_API_KEY": "sk-test-0123456789abcdef", "OPENAI_BASE_URL": fake.base_url}
        provider = OpenAICompatibleProvider(Settings(environ=environ))
        fake.script(fake.slow(SLOW_S))
        control = CallControl()
        pending = call_in_thread(
            provider, LLMRequest(prompt="slowly", provider="openai", control=control)
        )
        assert fake.server.wait_requests(1, WAIT_S)
        control.on_cancel(provider.abort)
        control.set()
        with pytest.raises(ProviderError):
            pending.result(2.0)


def test_a_control_cancelled_before_the_call_runs_its_abort_at_once() -> None:
    control = CallControl()
    control.set()
    ran = threading.Event()
    control.on_cancel(ran.set)
    assert ran.is_set()
