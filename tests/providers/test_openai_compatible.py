"""OpenAICompatibleProvider drives the openai SDK against the fake Chat Completions API."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
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
from runtime.providers.base import FunctionSpec, LLMRequest, Message, OutputFormat, Provider
from runtime.providers.openai_compatible import NO_KEY, OpenAICompatibleProvider
from runtime.testing.fake_http import Reply
from runtime.testing.fake_openai import FakeOpenAI, OpenAIReply, ToolCall, error_reply

KEY = "sk-test-SECRET-0123456789abcdef"
MODEL = "llama3.2"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def provider_for(
    fake: FakeOpenAI, *, key: str | None = KEY, **kwargs: Any
) -> OpenAICompatibleProvider:
    environ = {"OPENAI_BASE_URL": fake.base_url}
    if key is not None:
        environ["OPENAI_API_KEY"] = key
    return OpenAICompatibleProvider(Settings(environ=environ), default_model=MODEL, **kwargs)


def ask(prompt: str = "Say hi", **fields: Any) -> LLMRequest:
    return LLMRequest(prompt=prompt, provider="openai", **fields)


# -- happy paths ---------------------------------------------------------------


def test_provider_satisfies_the_protocol() -> None:
    """OpenAICompatibleProvider is a Provider without a key or a network."""
    assert isinstance(OpenAICompatibleProvider(Settings(environ={})), Provider)


def test_text_answer_maps_text_usage_and_model(fake: FakeOpenAI) -> None:
    """A plain answer becomes text, usage, the model and the stop reason; local models cost 0."""
    fake.reply("Hi!", prompt_tokens=1000, completion_tokens=200)
    response = provider_for(fake).complete(ask())
    assert response.text == "Hi!"
    assert (response.provider, response.model, response.stop_reason) == (
        "openai",
        MODEL,
        "end_turn",
    )
    assert (response.usage.input_tokens, response.usage.output_tokens) == (1000, 200)
    assert response.cost_usd == 0.0
    body = fake.requests[0].json()
    assert body["messages"] == [{"role": "user", "content": "Say hi"}]
    assert body["model"] == MODEL


def test_request_maps_system_history_and_sampling(fake: FakeOpenAI) -> None:
    """System first, then history, then the prompt; top_k travels as an extra body field."""
    request = ask(
        "and now?",
        system="Be brief.",
        history=(Message("user", "first"), Message("assistant", "answer")),
        max_tokens=64,
        temperature=0.3,
        options={"top_p": 0.9, "top_k": 40, "verbose": True},
    )
    provider_for(fake).complete(request)
    body = fake.requests[0].json()
    assert [(m["role"], m["content"]) for m in body["messages"]] == [
        ("system", "Be brief."),
        ("user", "first"),
        ("assistant", "answer"),
        ("user", "and now?"),
    ]
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["top_k"]) == (
        64,
        0.3,
        0.9,
        40,
    )
    assert "verbose" not in body


def test_unset_sampling_parameters_are_not_sent(fake: FakeOpenAI) -> None:
    """Without max_tokens, temperature or top_p the body carries none of them."""
    provider_for(fake).complete(ask())
    body = fake.requests[0].json()
    assert set(body) == {"model", "messages"}


def test_max_completion_tokens_field_can_be_chosen(fake: FakeOpenAI) -> None:
    """OpenAI's reasoning models take max_completion_tokens instead of max_tokens."""
    provider_for(fake, max_tokens_field="max_completion_tokens").complete(ask(max_tokens=9))
    body = fake.requests[0].json()
    assert body["max_completion_tokens"] == 9 and "max_tokens" not in body


def test_sdk_sends_the_key_as_bearer_without_retries(fake: FakeOpenAI) -> None:
    """The SDK sends Authorization: Bearer and, with max_retries=0, retry count 0."""
    provider_for(fake).complete(ask())
    headers = fake.requests[0].headers
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["x-stainless-retry-count"] == "0"


def test_local_server_without_key_gets_the_dummy_key(fake: FakeOpenAI) -> None:
    """With a base URL and no OPENAI_API_KEY the provider sends the not-needed dummy."""
    provider_for(fake, key=None).complete(ask())
    assert fake.requests[0].headers["authorization"] == f"Bearer {NO_KEY}"


def test_missing_key_without_base_url_is_an_auth_error() -> None:
    """Without a key and without a base URL (so OpenAI itself) the provider refuses."""
    provider = OpenAICompatibleProvider(Settings(environ={}))
    with pytest.raises(AuthError, match="OPENAI_API_KEY is not set"):
        provider.complete(ask())


def test_schema_uses_json_schema_response_format_and_parses_data(fake: FakeOpenAI) -> None:
    """A schema goes out as response_format json_schema; the answer comes back as data."""
    fake.reply(json.dumps({"label": "positive", "score": 0.9}))
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string"}, "score": {"type": "number"}},
        "required": ["label", "score"],
    }
    request = ask("classify", schema=schema, options={"schema_name": "sentiment", "strict": True})
    response = provider_for(fake).complete(request)
    assert response.data == {"label": "positive", "score": 0.9}
    sent = fake.requests[0].json()["response_format"]
    assert sent == {
        "type": "json_schema",
        "json_schema": {"name": "sentiment", "schema": schema, "strict": True},
    }


def test_json_mode_without_schema_uses_json_object_and_an_instruction(fake: FakeOpenAI) -> None:
    """JSON mode sends json_object and mentions JSON in the system prompt; prose gives None."""
    fake.reply('```json\n{"a": 1}\n```')
    fake.reply("not json at all")
    provider = provider_for(fake)
    assert provider.complete(ask(output_format=OutputFormat.JSON)).data == {"a": 1}
    assert provider.complete(ask(output_format=OutputFormat.JSON)).data is None
    body = fake.requests[0].json()
    assert body["response_format"] == {"type": "json_object"}
    assert "JSON" in body["messages"][0]["content"]


def test_functions_become_tools_and_tool_calls_become_function_calls(fake: FakeOpenAI) -> None:
    """Function specs go out as tools; tool_calls come back with parsed arguments."""
    fake.reply(None, ToolCall("get_weather", {"city": "Paris"}))
    spec = FunctionSpec(
        "get_weather",
        "Weather for a city",
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    )
    response = provider_for(fake).complete(ask("weather in Paris?", functions=(spec,)))
    assert response.stop_reason == "tool_use"
    assert response.text == ""
    assert [(c.name, dict(c.arguments)) for c in response.function_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    tool = fake.requests[0].json()["tools"][0]
    assert tool["type"] == "function"
    assert (tool["function"]["name"], tool["function"]["parameters"]["required"]) == (
        "get_weather",
        ["city"],
    )


def test_invalid_tool_arguments_are_a_provider_error(fake: FakeOpenAI) -> None:
    """A model that writes broken JSON arguments raises a (retryable) ProviderError."""
    fake.reply(None, ToolCall("f", "{broken"))
    with pytest.raises(ProviderError, match="not a JSON object") as caught:
        provider_for(fake).complete(ask())
    assert caught.value.retryable


def test_answer_without_usage_counts_zero_tokens(fake: FakeOpenAI) -> None:
    """Servers that leave usage out give zero usage rather than an error."""
    fake.reply("ok", usage=False, finish_reason="length")
    response = provider_for(fake).complete(ask())
    assert response.usage.total_tokens == 0
    assert response.stop_reason == "max_tokens"


def test_stream_yields_content_deltas_until_done(fake: FakeOpenAI) -> None:
    """stream() yields the content deltas of data: chunks up to [DONE]."""
    fake.reply("one two three four five six seven", ToolCall("f", {"x": 1}))
    chunks = list(provider_for(fake).stream(ask()))
    assert len(chunks) > 1
    assert "".join(chunks) == "one two three four five six seven"
    assert fake.requests[0].json()["stream"] is True


def test_stream_error_event_is_classified(fake: FakeOpenAI) -> None:
    """An error object in the middle of a stream maps by its type."""
    fake.script(OpenAIReply(text="a b c d e f", stream_error="overloaded_error"))
    received: list[str] = []
    with pytest.raises(Overloaded):
        for chunk in provider_for(fake).stream(ask()):
            received.append(chunk)
    assert received == ["a b c "]


def test_stream_cut_mid_answer_is_unavailable(fake: FakeOpenAI) -> None:
    """A stream whose connection drops before [DONE] raises Unavailable."""
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "delta": {"content": "par"}, "finish_reason": None}],
    }
    fake.script(Reply.sse([(None, chunk)], drop=True))
    with pytest.raises(Unavailable):
        list(provider_for(fake).stream(ask()))


# -- the fault matrix ----------------------------------------------------------


FAULTS = [
    pytest.param(FakeOpenAI.rate_limited(2.5), RateLimited, 429, id="429-rate-limited"),
    pytest.param(FakeOpenAI.server_error(500), ProviderError, 500, id="500-internal"),
    pytest.param(FakeOpenAI.server_error(502), ProviderError, 502, id="502-bad-gateway"),
    pytest.param(FakeOpenAI.unavailable(), Unavailable, 503, id="503-unavailable"),
    pytest.param(FakeOpenAI.server_error(504), ProviderTimeout, 504, id="504-gateway-timeout"),
    pytest.param(FakeOpenAI.error(529, "busy"), Overloaded, 529, id="529-overloaded"),
    pytest.param(FakeOpenAI.error(400, "bad"), Rejected, 400, id="400-bad-request"),
    pytest.param(FakeOpenAI.error(404, "no model"), Rejected, 404, id="404-not-found"),
    pytest.param(FakeOpenAI.error(422, "bad"), Rejected, 422, id="422-unprocessable"),
    pytest.param(FakeOpenAI.error(409, "busy"), ProviderError, 409, id="409-conflict"),
    pytest.param(FakeOpenAI.error(401, "bad key"), AuthError, 401, id="401-unauthorized"),
    pytest.param(FakeOpenAI.error(403, "forbidden"), AuthError, 403, id="403-forbidden"),
    pytest.param(FakeOpenAI.malformed(), ProviderError, None, id="malformed-json"),
    pytest.param(Reply.text("<html>oops</html>"), ProviderError, None, id="not-json"),
    pytest.param(Reply.json(200, {"unexpected": True}), ProviderError, None, id="wrong-shape"),
    pytest.param(FakeOpenAI.drop(), Unavailable, None, id="dropped-connection"),
    pytest.param(FakeOpenAI.slow(30.0), ProviderTimeout, None, id="slow-past-timeout"),
]


@pytest.mark.parametrize(("fault", "error", "status"), FAULTS)
def test_fault_maps_to_its_error_class(
    fake: FakeOpenAI,
    fault: Reply | OpenAIReply,
    error: type[ProviderError],
    status: int | None,
) -> None:
    """Each fault from the fake raises exactly the taxonomy's class and status, without retry."""
    fake.script(fault)
    timeout_s = 0.25 if error is ProviderTimeout and status is None else 10.0
    with pytest.raises(ProviderError) as caught:
        provider_for(fake).complete(ask(timeout_s=timeout_s))
    assert type(caught.value) is error
    assert caught.value.kind is error.kind
    assert caught.value.status == status
    assert caught.value.provider == "openai"
    assert len(fake.requests) == 1, "the SDK must not retry: max_retries=0"
    assert KEY not in str(caught.value)
    assert KEY not in "".join(traceback.format_exception(caught.value))


STREAM_FAULTS = [
    pytest.param(FakeOpenAI.rate_limited(1), RateLimited, id="429-rate-limited"),
    pytest.param(FakeOpenAI.unavailable(), Unavailable, id="503-unavailable"),
    pytest.param(FakeOpenAI.error(401), AuthError, id="401-unauthorized"),
    pytest.param(FakeOpenAI.drop(), Unavailable, id="dropped-connection"),
    pytest.param(FakeOpenAI.slow(30.0), ProviderTimeout, id="slow-past-timeout"),
]


@pytest.mark.parametrize(("fault", "error"), STREAM_FAULTS)
def test_stream_fault_maps_to_its_error_class(
    fake: FakeOpenAI, fault: Reply | OpenAIReply, error: type[ProviderError]
) -> None:
    """Faults before the first chunk of a stream map the same way as for complete()."""
    fake.script(fault)
    timeout_s = 0.25 if error is ProviderTimeout else 10.0
    with pytest.raises(ProviderError) as caught:
        list(provider_for(fake).stream(ask(timeout_s=timeout_s)))
    assert type(caught.value) is error
    assert len(fake.requests) == 1


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
    fake: FakeOpenAI, headers: dict[str, str], expected: float | None
) -> None:
    """retry-after-ms wins over retry-after; without either retry_after_s is None."""
    fake.script(error_reply(429, "slow down", headers=headers))
    with pytest.raises(RateLimited) as caught:
        provider_for(fake).complete(ask())
    assert caught.value.retry_after_s == expected


def test_connection_refused_is_unavailable() -> None:
    """Nothing listening at the base URL raises Unavailable naming where it tried."""
    with FakeOpenAI() as fake:
        url = fake.base_url
    provider = OpenAICompatibleProvider(Settings(environ={}), base_url=url, default_model=MODEL)
    with pytest.raises(Unavailable, match="OPENAI_BASE_URL") as caught:
        provider.complete(ask(timeout_s=2))
    assert url in str(caught.value)


def test_built_in_tools_are_rejected(fake: FakeOpenAI) -> None:
    """allowed_tools (the anthropic tool loop) is refused rather than silently ignored."""
    with pytest.raises(Rejected, match="built-in tools"):
        provider_for(fake).complete(ask(allowed_tools=("read_file",)))
    assert fake.requests == ()


def test_key_never_reaches_error_messages_or_logs(
    fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    """When the server echoes the key, errors, their tracebacks and debug logs never show it."""
    fake.script(FakeOpenAI.error(401, f"Incorrect API key provided: {KEY}"))
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthError) as caught:
        provider_for(fake).complete(ask())
    assert KEY not in str(caught.value)
    assert "[redacted]" in str(caught.value)
    assert KEY not in "".join(traceback.format_exception(caught.value))
    assert "Sending HTTP Request" in caplog.text, "the SDK's debug log was captured"
    assert KEY not in caplog.text


# -- the fake server itself ----------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"authorization": "Bearer k"}, 200),
        ({"api-key": "k"}, 200),
        ({}, 401),
        ({"authorization": "Basic k"}, 401),
    ],
)
def test_fake_accepts_bearer_and_api_key_headers(
    fake: FakeOpenAI, headers: dict[str, str], status: int
) -> None:
    """The fake accepts Bearer or api-key and answers 401 invalid_api_key without one."""
    import httpx2

    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    response = httpx2.post(
        f"{fake.base_url}/chat/completions", json=body, headers=headers, timeout=5
    )
    assert response.status_code == status
    if status == 401:
        assert response.json()["error"]["code"] == "invalid_api_key"
    else:
        assert response.json()["object"] == "chat.completion"


def test_fake_with_api_keys_refuses_other_keys(fake: FakeOpenAI) -> None:
    """With api_keys set the fake accepts only those keys."""
    with FakeOpenAI(api_keys=("right",)) as strict:
        with pytest.raises(AuthError):
            provider_for(strict, key="wrong").complete(ask())
        assert provider_for(strict, key="right").complete(ask()).text


def test_fake_streams_usage_when_asked(fake: FakeOpenAI) -> None:
    """stream_options.include_usage adds a usage chunk with no choices before [DONE]."""
    import httpx2

    fake.reply("hi there")
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "x"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = httpx2.post(
        f"{fake.base_url}/chat/completions", json=body, headers={"api-key": "k"}, timeout=5
    )
    events = [line[len("data: ") :] for line in response.text.splitlines() if line]
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert (last["choices"], last["usage"]["total_tokens"]) == ([], 15)


def test_importing_the_provider_and_fake_does_not_import_the_sdk() -> None:
    """The openai SDK loads on first use, not with runtime.providers.openai_compatible."""
    code = (
        "import sys, runtime.providers.openai_compatible, runtime.testing.fake_openai; "
        "print('openai' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "False"
