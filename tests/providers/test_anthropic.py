"""AnthropicProvider drives the real SDK against the fake Messages API and maps every failure."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from runtime.config import Settings
from runtime.errors import (
    AuthError,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    Rejected,
    Unavailable,
)
from runtime.providers.anthropic import AnthropicProvider, Price, price_for
from runtime.providers.base import FunctionSpec, LLMRequest, Message, OutputFormat, Provider
from runtime.testing.fake_anthropic import AnthropicReply, FakeAnthropic, ToolUse
from runtime.testing.fake_http import Reply

KEY = "sk-ant-test-SECRET-0123456789abcdef"
MODEL = "claude-haiku-4-5"


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


def provider_for(fake: FakeAnthropic, **settings: Any) -> AnthropicProvider:
    environ = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake.base_url}
    return AnthropicProvider(Settings(environ=environ, **settings), default_model=MODEL)


def ask(prompt: str = "Say hi", **fields: Any) -> LLMRequest:
    return LLMRequest(prompt=prompt, provider="anthropic", **fields)


# -- happy paths ---------------------------------------------------------------


def test_provider_satisfies_the_protocol() -> None:
    """AnthropicProvider is a Provider without a key or a network."""
    assert isinstance(AnthropicProvider(Settings(environ={})), Provider)


def test_text_answer_maps_text_usage_cost_and_model(fake: FakeAnthropic) -> None:
    """A plain answer becomes text, usage, a priced cost, the model and the stop reason."""
    fake.reply("Hi!", input_tokens=1000, output_tokens=200)
    response = provider_for(fake).complete(ask(system="Be brief."))
    assert response.text == "Hi!"
    assert (response.provider, response.model, response.stop_reason) == (
        "anthropic",
        MODEL,
        "end_turn",
    )
    assert (response.usage.input_tokens, response.usage.output_tokens) == (1000, 200)
    assert response.cost_usd == pytest.approx((1000 * 1.0 + 200 * 5.0) / 1e6)
    assert response.latency_s >= 0
    body = fake.requests[0].json()
    assert body["system"] == "Be brief."
    assert body["messages"] == [{"role": "user", "content": "Say hi"}]
    assert body["max_tokens"] == 4096


def test_request_maps_history_max_tokens_and_sampling_through_extra_body(
    fake: FakeAnthropic,
) -> None:
    """History precedes the prompt; temperature and top_p travel as extra body fields."""
    request = ask(
        "and now?",
        history=(Message("user", "first"), Message("assistant", "answer")),
        max_tokens=64,
        temperature=0.3,
        options={"top_p": 0.9, "verbose": True},
        model="haiku",
    )
    provider_for(fake).complete(request)
    body = fake.requests[0].json()
    assert [m["content"] for m in body["messages"]] == ["first", "answer", "and now?"]
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (64, 0.3, 0.9)
    assert body["model"] == "claude-haiku-4-5"
    assert "verbose" not in body


def test_unset_sampling_parameters_are_not_sent(fake: FakeAnthropic) -> None:
    """Without temperature or top_p the body carries neither."""
    provider_for(fake).complete(ask())
    body = fake.requests[0].json()
    assert "temperature" not in body and "top_p" not in body


def test_sdk_sends_the_key_as_bearer_with_the_2x_api_version(fake: FakeAnthropic) -> None:
    """The SDK 2.x sends Authorization: Bearer and its pinned anthropic-version."""
    provider_for(fake).complete(ask())
    headers = fake.requests[0].headers
    assert headers["authorization"] == f"Bearer {KEY}"
    assert "x-api-key" not in headers
    assert headers["anthropic-version"] == "2026-10-21"
    assert headers["x-stainless-retry-count"] == "0"


def test_schema_uses_structured_output_and_parses_data(fake: FakeAnthropic) -> None:
    """A schema goes out as output_config.format json_schema; the answer comes back as data."""
    fake.reply(json.dumps({"label": "positive", "score": 0.9}))
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string"}, "score": {"type": "number"}},
        "required": ["label", "score"],
    }
    response = provider_for(fake).complete(ask("classify", schema=schema))
    assert response.data == {"label": "positive", "score": 0.9}
    sent = fake.requests[0].json()["output_config"]["format"]
    assert sent["type"] == "json_schema"
    assert sent["schema"]["properties"] == schema["properties"]
    assert sent["schema"]["additionalProperties"] is False


def test_json_mode_without_schema_asks_in_the_system_prompt(fake: FakeAnthropic) -> None:
    """JSON mode adds an instruction and parses a fenced answer; prose leaves data None."""
    fake.reply('```json\n{"a": 1}\n```')
    fake.reply("not json at all")
    provider = provider_for(fake)
    assert provider.complete(ask(output_format=OutputFormat.JSON)).data == {"a": 1}
    assert provider.complete(ask(output_format=OutputFormat.JSON)).data is None
    assert "JSON" in fake.requests[0].json()["system"]
    assert "output_config" not in fake.requests[0].json()


def test_functions_become_tools_and_tool_use_becomes_function_calls(fake: FakeAnthropic) -> None:
    """Function specs go out as tools; tool_use blocks come back as function calls."""
    fake.reply("", ToolUse("get_weather", {"city": "Paris"}))
    spec = FunctionSpec(
        "get_weather",
        "Weather for a city",
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    )
    response = provider_for(fake).complete(ask("weather in Paris?", functions=(spec,)))
    assert response.stop_reason == "tool_use"
    assert [(c.name, dict(c.arguments)) for c in response.function_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    tool = fake.requests[0].json()["tools"][0]
    assert (tool["name"], tool["input_schema"]["required"]) == ("get_weather", ["city"])


def test_stream_yields_text_deltas_over_sse(fake: FakeAnthropic) -> None:
    """stream() yields the text deltas the SSE events carry, joining to the full answer."""
    fake.reply("one two three four five six seven")
    chunks = list(provider_for(fake).stream(ask()))
    assert len(chunks) > 1
    assert "".join(chunks) == "one two three four five six seven"
    assert fake.requests[0].json()["stream"] is True


def test_stream_error_event_is_classified(fake: FakeAnthropic) -> None:
    """An error event in the middle of a stream maps by its error type."""
    fake.script(AnthropicReply(text="a b c d e f", stream_error="overloaded_error"))
    received: list[str] = []
    with pytest.raises(Overloaded):
        for chunk in provider_for(fake).stream(ask()):
            received.append(chunk)
    assert received == ["a b c "]


def test_stream_cut_mid_answer_is_unavailable(fake: FakeAnthropic) -> None:
    """A stream whose connection drops before message_stop raises Unavailable."""
    events = [("message_start", {"type": "message_start", "message": {}})]
    fake.script(Reply.sse(events, drop=True))
    with pytest.raises(Unavailable):
        list(provider_for(fake).stream(ask()))


# -- the fault matrix ----------------------------------------------------------


FAULTS = [
    pytest.param(FakeAnthropic.rate_limited(2.5), RateLimited, 429, id="429-rate-limited"),
    pytest.param(FakeAnthropic.overloaded(), Overloaded, 529, id="529-overloaded"),
    pytest.param(FakeAnthropic.server_error(500), ProviderError, 500, id="500-server-error"),
    pytest.param(FakeAnthropic.server_error(502), ProviderError, 502, id="502-bad-gateway"),
    pytest.param(FakeAnthropic.server_error(503), Unavailable, 503, id="503-unavailable"),
    pytest.param(FakeAnthropic.server_error(504), ProviderTimeout, 504, id="504-gateway-timeout"),
    pytest.param(FakeAnthropic.error(400, "bad"), Rejected, 400, id="400-bad-request"),
    pytest.param(FakeAnthropic.error(404, "no model"), Rejected, 404, id="404-not-found"),
    pytest.param(FakeAnthropic.error(422, "bad"), Rejected, 422, id="422-unprocessable"),
    pytest.param(FakeAnthropic.error(409, "busy"), ProviderError, 409, id="409-conflict"),
    pytest.param(FakeAnthropic.error(401, "bad key"), AuthError, 401, id="401-unauthorized"),
    pytest.param(FakeAnthropic.error(403, "forbidden"), AuthError, 403, id="403-forbidden"),
    pytest.param(FakeAnthropic.malformed(), ProviderError, None, id="malformed-json"),
    pytest.param(Reply.text("<html>oops</html>"), ProviderError, None, id="not-json"),
    pytest.param(FakeAnthropic.drop(), Unavailable, None, id="dropped-connection"),
    pytest.param(FakeAnthropic.slow(30.0), ProviderTimeout, None, id="slow-past-timeout"),
]


@pytest.mark.parametrize(("fault", "error", "status"), FAULTS)
def test_fault_maps_to_its_error_class(
    fake: FakeAnthropic,
    fault: Reply | AnthropicReply,
    error: type[ProviderError],
    status: int | None,
) -> None:
    """Each fault from the fake raises exactly the taxonomy's class and status, without retry."""
    fake.script(fault)
    # Only the slow fault should time out; the others get room for a loaded machine.
    timeout_s = 0.25 if error is ProviderTimeout and status is None else 10.0
    with pytest.raises(ProviderError) as caught:
        provider_for(fake).complete(ask(timeout_s=timeout_s))
    assert type(caught.value) is error
    assert caught.value.kind is error.kind
    assert caught.value.status == status
    assert caught.value.provider == "anthropic"
    assert len(fake.requests) == 1, "the SDK must not retry: max_retries=0"
    assert KEY not in str(caught.value)
    assert KEY not in "".join(traceback.format_exception(caught.value))


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({}, None),
    ],
)
def test_rate_limit_retry_after_is_parsed(
    fake: FakeAnthropic, headers: dict[str, str], expected: float | None
) -> None:
    """retry-after-ms wins over retry-after; without either retry_after_s is None."""
    fake.script(
        Reply.json(
            429,
            {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}},
            headers=headers,
        )
    )
    with pytest.raises(RateLimited) as caught:
        provider_for(fake).complete(ask())
    assert caught.value.retry_after_s == expected


def test_connection_refused_is_unavailable() -> None:
    """Nothing listening at the base URL raises Unavailable naming where it tried."""
    with FakeAnthropic() as fake:
        url = fake.base_url
    provider = AnthropicProvider(
        Settings(environ={"ANTHROPIC_API_KEY": KEY}), base_url=url, default_model=MODEL
    )
    with pytest.raises(Unavailable, match="ANTHROPIC_BASE_URL") as caught:
        provider.complete(ask(timeout_s=2))
    assert url in str(caught.value)


def test_missing_key_is_an_auth_error_before_any_request(fake: FakeAnthropic) -> None:
    """Without ANTHROPIC_API_KEY the provider refuses and says which variable to set."""
    provider = AnthropicProvider(Settings(environ={}), base_url=fake.base_url)
    with pytest.raises(AuthError, match="ANTHROPIC_API_KEY is not set"):
        provider.complete(ask())
    assert fake.requests == ()


def test_key_never_reaches_error_messages_or_logs(
    fake: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    """Even when the server echoes the key, errors and debug logs never show it."""
    fake.script(FakeAnthropic.error(401, f"key {KEY} is invalid"))
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthError) as caught:
        provider_for(fake).complete(ask())
    assert KEY not in str(caught.value)
    assert "[redacted]" in str(caught.value)
    assert "Sending HTTP Request" in caplog.text, "the SDK's debug log was captured"
    assert KEY not in caplog.text


# -- the fake server itself ----------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"x-api-key": "k"}, 200),
        ({"authorization": "Bearer k"}, 200),
        ({}, 401),
        ({"authorization": "Basic k"}, 401),
    ],
)
def test_fake_accepts_x_api_key_and_bearer(
    fake: FakeAnthropic, headers: dict[str, str], status: int
) -> None:
    """The fake accepts either header form and answers 401 authentication_error without one."""
    import httpx2

    body = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    response = httpx2.post(f"{fake.base_url}/v1/messages", json=body, headers=headers, timeout=5)
    assert response.status_code == status
    if status == 401:
        assert response.json()["error"]["type"] == "authentication_error"
    else:
        assert response.json()["type"] == "message"


def test_fake_with_api_keys_refuses_other_keys(fake: FakeAnthropic) -> None:
    """With api_keys set the fake accepts only those keys."""
    with FakeAnthropic(api_keys=("right",)) as strict:
        provider = AnthropicProvider(
            Settings(environ={"ANTHROPIC_API_KEY": "wrong"}), base_url=strict.base_url
        )
        with pytest.raises(AuthError):
            provider.complete(ask())


def test_fake_close_interrupts_a_slow_reply_and_leaves_no_threads() -> None:
    """Closing the fake cuts a pending delay short and stops every thread it started."""
    import httpx2

    before = set(threading.enumerate())
    fake = FakeAnthropic()
    with fake:
        fake.script(FakeAnthropic.slow(60.0))
        body = {"model": MODEL, "max_tokens": 1, "messages": []}
        with pytest.raises(httpx2.TimeoutException):
            httpx2.post(
                f"{fake.base_url}/v1/messages", json=body, headers={"x-api-key": "k"}, timeout=0.2
            )
        assert fake.wait_requests(1, timeout=2)
        started = time.monotonic()
    assert time.monotonic() - started < 2.0
    assert set(threading.enumerate()) - before == set()


def test_importing_the_provider_and_fakes_does_not_import_the_sdk() -> None:
    """The SDK (about a second to import) loads on first use, not with runtime.providers."""
    code = (
        "import sys, runtime.providers.anthropic, runtime.providers.tools, "
        "runtime.testing.fake_anthropic; print('anthropic' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "False"


def test_price_table_matches_by_longest_prefix() -> None:
    """A dated model id takes its family's price; an unknown model costs nothing."""
    prices = {"claude-opus": Price(5, 25), "claude-opus-4-1": Price(15, 75)}
    assert price_for("claude-opus-4-1-20250805", prices) == Price(15, 75)
    assert price_for("claude-opus-5", prices) == Price(5, 25)
    assert price_for("gpt-x", prices) is None
