"""GeminiProvider drives google-genai against the fake Gemini API and maps every failure."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from runtime.config import Settings
from runtime.errors import (
    AuthError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    Rejected,
    Unavailable,
)
from runtime.providers import gemini
from runtime.providers.base import FunctionSpec, LLMRequest, Message, OutputFormat, Provider
from runtime.providers.gemini import GeminiProvider, create
from runtime.testing.fake_gemini import FakeGemini, FunctionCallPart, GeminiReply, error_reply
from runtime.testing.fake_http import Reply

KEY = "AIza-test-SECRET-0123456789abcdef"
MODEL = "gemini-2.5-flash"


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with FakeGemini() as server:
        yield server


def provider_for(fake: FakeGemini, key_name: str = "GEMINI_API_KEY") -> GeminiProvider:
    environ = {key_name: KEY, "GOOGLE_GEMINI_BASE_URL": fake.base_url}
    return GeminiProvider(Settings(environ=environ), default_model=MODEL)


def ask(prompt: str = "Say hi", **fields: Any) -> LLMRequest:
    return LLMRequest(prompt=prompt, provider="gemini", **fields)


# -- happy paths ---------------------------------------------------------------


def test_provider_satisfies_the_protocol() -> None:
    """GeminiProvider is a Provider without a key or a network."""
    assert isinstance(GeminiProvider(Settings(environ={})), Provider)


def test_text_answer_maps_text_usage_cost_and_model(fake: FakeGemini) -> None:
    """A plain answer becomes text, usage, a priced cost, the model and the stop reason."""
    fake.reply("Hi!", prompt_tokens=1000, candidates_tokens=200)
    response = provider_for(fake).complete(ask())
    assert response.text == "Hi!"
    assert (response.provider, response.model, response.stop_reason) == (
        "gemini",
        MODEL,
        "end_turn",
    )
    assert (response.usage.input_tokens, response.usage.output_tokens) == (1000, 200)
    assert response.cost_usd == pytest.approx((1000 * 0.30 + 200 * 2.50) / 1e6)
    request = fake.requests[0]
    assert request.path == f"/v1beta/models/{MODEL}:generateContent"
    assert request.json()["contents"] == [{"role": "user", "parts": [{"text": "Say hi"}]}]


def test_request_maps_system_history_and_generation_config(fake: FakeGemini) -> None:
    """System instruction, history (assistant → model) and sampling reach generationConfig."""
    request = ask(
        "and now?",
        system="Be brief.",
        history=(Message("user", "first"), Message("assistant", "answer")),
        max_tokens=64,
        temperature=0.3,
        options={"top_p": 0.9, "top_k": 20, "verbose": True},
    )
    provider_for(fake).complete(request)
    body = fake.requests[0].json()
    assert body["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    assert [(c["role"], c["parts"][0]["text"]) for c in body["contents"]] == [
        ("user", "first"),
        ("model", "answer"),
        ("user", "and now?"),
    ]
    config = body["generationConfig"]
    assert (config["maxOutputTokens"], config["temperature"], config["topP"]) == (64, 0.3, 0.9)
    assert config["topK"] == 20
    assert "verbose" not in json.dumps(body)


def test_unset_generation_parameters_are_not_sent(fake: FakeGemini) -> None:
    """Without sampling settings or a system prompt the body carries none of them."""
    provider_for(fake).complete(ask())
    body = fake.requests[0].json()
    assert "systemInstruction" not in body and "tools" not in body
    assert body.get("generationConfig", {}) == {}


def test_sdk_sends_the_key_as_x_goog_api_key_never_in_the_url(fake: FakeGemini) -> None:
    """google-genai sends x-goog-api-key, the timeout as X-Server-Timeout, no key in the URL."""
    provider_for(fake).complete(ask(timeout_s=30))
    request = fake.requests[0]
    assert request.headers["x-goog-api-key"] == KEY
    assert "authorization" not in request.headers
    assert KEY not in request.path
    assert request.headers["x-server-timeout"] == "30"


def test_google_api_key_is_used_too(fake: FakeGemini) -> None:
    """GOOGLE_API_KEY works as well as GEMINI_API_KEY."""
    provider_for(fake, key_name="GOOGLE_API_KEY").complete(ask())
    assert fake.requests[0].headers["x-goog-api-key"] == KEY


def test_schema_uses_response_json_schema_and_parses_data(fake: FakeGemini) -> None:
    """A schema goes out raw as responseJsonSchema with the JSON MIME type; data comes back."""
    fake.reply(json.dumps({"label": "positive", "score": 0.9}))
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string"}, "score": {"type": "number"}},
        "required": ["label", "score"],
        "additionalProperties": False,
    }
    response = provider_for(fake).complete(ask("classify", schema=schema))
    assert response.data == {"label": "positive", "score": 0.9}
    config = fake.requests[0].json()["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == schema
    assert "responseSchema" not in config


def test_json_mode_without_schema_sets_the_mime_type_only(fake: FakeGemini) -> None:
    """JSON mode asks for application/json; prose leaves data None."""
    fake.reply('{"a": 1}')
    fake.reply("not json at all")
    provider = provider_for(fake)
    assert provider.complete(ask(output_format=OutputFormat.JSON)).data == {"a": 1}
    assert provider.complete(ask(output_format=OutputFormat.JSON)).data is None
    config = fake.requests[0].json()["generationConfig"]
    assert config == {"responseMimeType": "application/json"}


def test_functions_become_declarations_and_function_calls_come_back(fake: FakeGemini) -> None:
    """Function specs go out as functionDeclarations; functionCall parts come back as calls."""
    fake.reply("Let me look.", FunctionCallPart("get_weather", {"city": "Paris"}))
    spec = FunctionSpec(
        "get_weather",
        "Weather for a city",
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    )
    response = provider_for(fake).complete(ask("weather in Paris?", functions=(spec,)))
    assert response.stop_reason == "tool_use"
    assert response.text == "Let me look."
    assert [(c.name, dict(c.arguments)) for c in response.function_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    body = fake.requests[0].json()
    (declaration,) = body["tools"][0]["functionDeclarations"]
    # The SDK passes declarations through unaliased; the API's JSON parser takes either form.
    parameters = declaration.get("parametersJsonSchema", declaration.get("parameters_json_schema"))
    assert (declaration["name"], parameters) == ("get_weather", dict(spec.parameters))
    assert len(fake.requests) == 1, "automatic function calling must stay off"


def test_max_tokens_finish_reason_maps_to_max_tokens(fake: FakeGemini) -> None:
    """finishReason MAX_TOKENS becomes the stop reason max_tokens."""
    fake.reply("cut", finish_reason="MAX_TOKENS")
    assert provider_for(fake).complete(ask()).stop_reason == "max_tokens"


def test_stream_yields_text_chunks_over_sse(fake: FakeGemini) -> None:
    """stream() uses streamGenerateContent?alt=sse and yields chunks joining to the answer."""
    fake.reply("one two three four five six seven")
    chunks = list(provider_for(fake).stream(ask()))
    assert len(chunks) > 1
    assert "".join(chunks) == "one two three four five six seven"
    assert fake.requests[0].path == f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"


def test_stream_error_chunk_is_classified(fake: FakeGemini) -> None:
    """An error object in the middle of a stream maps by its code."""
    fake.script(GeminiReply(text="a b c d e f", stream_error=503))
    received: list[str] = []
    with pytest.raises(Unavailable):
        for chunk in provider_for(fake).stream(ask()):
            received.append(chunk)
    assert received == ["a b c "]


def test_stream_cut_mid_answer_is_unavailable_and_not_resumed(fake: FakeGemini) -> None:
    """A stream whose connection drops raises Unavailable; automatic continuation stays off."""
    chunk = {"candidates": [{"content": {"role": "model", "parts": [{"text": "par"}]}}]}
    fake.script(Reply.sse([(None, chunk)], drop=True))
    with pytest.raises(Unavailable):
        list(provider_for(fake).stream(ask()))
    assert len(fake.requests) == 1


def test_blocked_prompt_is_rejected(fake: FakeGemini) -> None:
    """An answer without candidates whose prompt was blocked is Rejected, naming the reason."""
    fake.script(Reply.json(200, {"promptFeedback": {"blockReason": "SAFETY"}}))
    with pytest.raises(Rejected, match="SAFETY"):
        provider_for(fake).complete(ask())


# -- the fault matrix ----------------------------------------------------------


FAULTS = [
    pytest.param(FakeGemini.rate_limited(2.5), RateLimited, 429, id="429-resource-exhausted"),
    pytest.param(FakeGemini.server_error(500), ProviderError, 500, id="500-internal"),
    pytest.param(FakeGemini.server_error(502), ProviderError, 502, id="502-bad-gateway"),
    pytest.param(FakeGemini.unavailable(), Unavailable, 503, id="503-unavailable"),
    pytest.param(FakeGemini.server_error(504), ProviderTimeout, 504, id="504-deadline"),
    pytest.param(FakeGemini.error(400, "bad"), Rejected, 400, id="400-invalid-argument"),
    pytest.param(FakeGemini.error(404, "no model"), Rejected, 404, id="404-not-found"),
    pytest.param(FakeGemini.error(409, "aborted"), ProviderError, 409, id="409-aborted"),
    pytest.param(FakeGemini.error(401, "bad key"), AuthError, 401, id="401-unauthenticated"),
    pytest.param(FakeGemini.error(403, "forbidden"), AuthError, 403, id="403-permission-denied"),
    pytest.param(FakeGemini.malformed(), ProviderError, None, id="malformed-json"),
    pytest.param(Reply.text("<html>oops</html>"), ProviderError, None, id="not-json"),
    pytest.param(Reply.text("<html>502</html>", status=502), ProviderError, 502, id="html-502"),
    pytest.param(FakeGemini.drop(), Unavailable, None, id="dropped-connection"),
    pytest.param(FakeGemini.slow(30.0), ProviderTimeout, None, id="slow-past-timeout"),
]


@pytest.mark.parametrize(("fault", "error", "status"), FAULTS)
@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
def test_fault_maps_to_its_error_class(
    fake: FakeGemini,
    fault: Reply | GeminiReply,
    error: type[ProviderError],
    status: int | None,
    streaming: bool,
) -> None:
    """Each fault raises exactly the taxonomy's class and status, once, without retry."""
    fake.script(fault)
    timeout_s = 0.25 if error is ProviderTimeout and status is None else 10.0
    provider = provider_for(fake)
    with pytest.raises(ProviderError) as caught:
        if streaming:
            list(provider.stream(ask(timeout_s=timeout_s)))
        else:
            provider.complete(ask(timeout_s=timeout_s))
    assert type(caught.value) is error
    assert caught.value.kind is error.kind
    assert caught.value.status == status
    assert caught.value.provider == "gemini"
    assert len(fake.requests) == 1, "the SDK must not retry: HttpRetryOptions(attempts=1)"
    assert KEY not in str(caught.value)
    assert KEY not in "".join(traceback.format_exception(caught.value))


@pytest.mark.parametrize(
    ("headers", "details", "expected"),
    [
        ({"retry-after": "7"}, None, 7.0),
        ({"retry-after-ms": "250", "retry-after": "9"}, None, 0.25),
        ({}, [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}], 12.0),
        ({}, [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.5s"}], 0.5),
        ({}, None, None),
    ],
)
def test_rate_limit_retry_after_is_parsed(
    fake: FakeGemini,
    headers: dict[str, str],
    details: list[dict[str, Any]] | None,
    expected: float | None,
) -> None:
    """retry-after-ms, else retry-after, else the RetryInfo retryDelay; without any, None."""
    fake.script(error_reply(429, "quota", headers=headers, details=details))
    with pytest.raises(RateLimited) as caught:
        provider_for(fake).complete(ask())
    assert caught.value.retry_after_s == expected


def test_connection_refused_is_unavailable() -> None:
    """Nothing listening at the base URL raises Unavailable naming where it tried."""
    with FakeGemini() as fake:
        url = fake.base_url
    provider = GeminiProvider(
        Settings(environ={"GEMINI_API_KEY": KEY}), base_url=url, default_model=MODEL
    )
    with pytest.raises(Unavailable, match="GOOGLE_GEMINI_BASE_URL") as caught:
        provider.complete(ask(timeout_s=2))
    assert url in str(caught.value)


def test_missing_key_is_an_auth_error_before_any_request(fake: FakeGemini) -> None:
    """Without GEMINI_API_KEY or GOOGLE_API_KEY the provider refuses and names both."""
    provider = GeminiProvider(Settings(environ={}), base_url=fake.base_url)
    with pytest.raises(AuthError, match="GEMINI_API_KEY") as caught:
        provider.complete(ask())
    assert "GOOGLE_API_KEY" in str(caught.value)
    assert fake.requests == ()


def test_built_in_tools_are_rejected(fake: FakeGemini) -> None:
    """allowed_tools (the anthropic tool loop) is refused rather than silently ignored."""
    with pytest.raises(Rejected, match="built-in tools"):
        provider_for(fake).complete(ask(allowed_tools=("read_file",)))
    assert fake.requests == ()


def test_key_never_reaches_error_messages_or_logs(
    fake: FakeGemini, caplog: pytest.LogCaptureFixture
) -> None:
    """When the server echoes the key, errors, their tracebacks and debug logs never show it."""
    fake.script(FakeGemini.error(400, f"API key not valid: {KEY}"))
    with caplog.at_level(logging.DEBUG), pytest.raises(Rejected) as caught:
        provider_for(fake).complete(ask())
    assert KEY not in str(caught.value)
    assert "[redacted]" in str(caught.value)
    assert KEY not in "".join(traceback.format_exception(caught.value))
    assert "HTTP Request: POST" in caplog.text, "the transport's log was captured"
    assert KEY not in caplog.text


# -- the alias and the factory -------------------------------------------------


def test_legacy_name_is_served_by_google_genai_with_one_notice(
    fake: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    """create() serves google-generativeai with the gemini provider and notes it only once."""
    monkeypatch.setattr(gemini, "_noticed", set())
    settings = Settings(environ={"GEMINI_API_KEY": KEY, "GOOGLE_GEMINI_BASE_URL": fake.base_url})
    with structlog.testing.capture_logs() as logs:
        first = create(settings, "google-generativeai")
        create(settings, "google-generativeai")
        create(settings, "gemini")
    assert isinstance(first, GeminiProvider)
    notices = [entry for entry in logs if entry["event"] == "provider_alias"]
    assert len(notices) == 1
    assert "end of support" in notices[0]["notice"]
    assert first.complete(ask()).provider == "gemini"


def test_create_refuses_names_of_other_providers() -> None:
    """create() only builds the gemini provider."""
    with pytest.raises(ValueError, match="anthropic"):
        create(Settings(environ={}), "anthropic")


# -- the fake server itself ----------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        ({"x-goog-api-key": "k"}, "", 200),
        ({}, "?key=k", 200),
        ({"authorization": "Bearer k"}, "", 200),
        ({}, "", 401),
        ({"authorization": "Basic k"}, "", 401),
    ],
)
def test_fake_accepts_header_query_and_bearer_keys(
    fake: FakeGemini, headers: dict[str, str], query: str, status: int
) -> None:
    """The fake takes x-goog-api-key, ?key= or Bearer, and answers 401 UNAUTHENTICATED without."""
    import httpx2

    body = {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}
    url = f"{fake.base_url}/v1beta/models/{MODEL}:generateContent{query}"
    response = httpx2.post(url, json=body, headers=headers, timeout=5)
    assert response.status_code == status
    if status == 401:
        assert response.json()["error"]["status"] == "UNAUTHENTICATED"
    else:
        assert response.json()["candidates"][0]["content"]["parts"][0]["text"]


def test_fake_with_api_keys_refuses_other_keys_with_403() -> None:
    """With api_keys set the fake answers 403 PERMISSION_DENIED to any other key."""
    with FakeGemini(api_keys=("right",)) as strict:
        provider = GeminiProvider(
            Settings(environ={"GEMINI_API_KEY": "wrong"}), base_url=strict.base_url
        )
        with pytest.raises(AuthError) as caught:
            provider.complete(ask())
    assert caught.value.status == 403


def test_fake_streams_a_json_array_without_alt_sse(fake: FakeGemini) -> None:
    """streamGenerateContent without ?alt=sse answers one JSON array of chunks."""
    import httpx2

    fake.reply("one two three four")
    body = {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}
    url = f"{fake.base_url}/v1beta/models/{MODEL}:streamGenerateContent"
    response = httpx2.post(url, json=body, headers={"x-goog-api-key": "k"}, timeout=5)
    chunks = response.json()
    assert [c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks] == [
        "one two three ",
        "four",
    ]
    assert chunks[-1]["usageMetadata"]["totalTokenCount"] == 15


def test_importing_the_provider_and_fake_does_not_import_the_sdk() -> None:
    """google-genai loads on first use, not with runtime.providers.gemini."""
    code = (
        "import sys, runtime.providers.gemini, runtime.testing.fake_gemini; "
        "print('google.genai' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "False"
