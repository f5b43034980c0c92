"""The OpenAI-compatible provider: Chat Completions through the official SDK, retries left to us.

Any server that speaks ``/v1/chat/completions`` works: OpenAI itself, or a
local model behind Ollama, vLLM or llama.cpp. ``complete`` maps an
``LLMRequest`` onto one ``chat.completions.create`` call; ``stream`` yields
content deltas from the ``data:`` events up to ``[DONE]``.

What the SDK (openai 3.x, on httpx2) does and what this module does about it:

* The client is built on first use, once per provider, with
  ``max_retries=0`` (the SDK retries twice by default, honouring
  ``retry-after``): retries, backoff and fallbacks belong to the gateway.
* ``base_url``: the constructor argument, else ``OPENAI_BASE_URL`` in
  ``Settings.environ``, else ``https://api.openai.com/v1``; always passed
  explicitly, so the SDK does not read ``OPENAI_BASE_URL`` from the process.
* The key: ``OPENAI_API_KEY`` from ``Settings.environ``, passed explicitly
  (the SDK sends ``Authorization: Bearer``). Local servers need none: when it
  is unset and a base URL is configured, the dummy ``not-needed`` is sent
  (the SDK refuses to build a client without some key). It never appears in
  an error message. The SDK still reads ``OPENAI_ORG_ID``,
  ``OPENAI_PROJECT_ID`` and ``OPENAI_CUSTOM_HEADERS`` from the process
  environment for extra headers.
* JSON with a schema is ``response_format`` ``json_schema`` (named
  ``options["schema_name"]`` or ``response``; ``options["strict"]`` sets
  ``strict``). JSON without a schema is ``json_object`` plus an instruction
  in the system prompt (OpenAI requires the word JSON in the messages). The
  answer is parsed into ``data`` when it is JSON.
* ``functions`` become ``tools`` of type ``function``; ``tool_calls`` come
  back as ``function_calls`` with their JSON arguments parsed.
* ``max_tokens`` (the field every compatible server knows; pass
  ``max_tokens_field="max_completion_tokens"`` for OpenAI's reasoning
  models), ``temperature``, ``options["top_p"]``; ``options["top_k"]`` is not
  an OpenAI parameter and travels in ``extra_body`` for the servers that
  take it.

Every failure is one of ``runtime.errors``' provider errors:

=========================================  =================================
SDK / transport                            ours
=========================================  =================================
RateLimitError (429)                       RateLimited (retry_after_s from
                                           ``retry-after-ms``/``retry-after``)
AuthenticationError, PermissionDenied      AuthError
BadRequest, NotFound, UnprocessableEntity  Rejected
and other 4xx
APITimeoutError, 408, 504                  ProviderTimeout
APIConnectionError (refused, dropped), 503 Unavailable
529                                        Overloaded
InternalServerError (500, other 5xx), 409  ProviderError
malformed body, invalid tool arguments     ProviderError
an error event inside a stream             by its ``type`` or ``code``
=========================================  =================================
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from runtime.clock import SYSTEM_CLOCK, Clock
from runtime.config import Settings
from runtime.errors import AuthError, ProviderError, Rejected
from runtime.providers.anthropic import _json_data
from runtime.providers.base import FunctionCall, LLMRequest, LLMResponse, Usage
from runtime.providers.http_errors import HTTPErrors, cause_to_chain, redacted, retry_after
from runtime.providers.price import Price, cost_usd

if TYPE_CHECKING:
    import openai
    from openai.types.chat import ChatCompletion

    from runtime.providers.connections import AbortableConnections

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MODEL", "NO_KEY", "OpenAICompatibleProvider"]

ENV_KEY = "OPENAI_API_KEY"
ENV_BASE_URL = "OPENAI_BASE_URL"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_TIMEOUT_S = 600.0
NO_KEY = "not-needed"
_JSON_INSTRUCTION = (
    "Answer with one JSON value and nothing else: no prose, no Markdown code fences."
)
_STOP_REASONS: Mapping[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
}
_STREAM_ERROR_STATUS: Mapping[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "requests": 429,
    "tokens": 429,
    "server_error": 500,
    "service_unavailable": 503,
    "overloaded_error": 529,
}
_ERRORS = HTTPErrors(
    key_env=ENV_KEY,
    base_url_env=ENV_BASE_URL,
    default_base_url=DEFAULT_BASE_URL,
    connection_hint=" (is the server running?)",
    unavailable="the service is unavailable (a local server may still be loading the model)",
)


class OpenAICompatibleProvider:
    """An OpenAI-compatible endpoint through the official SDK; raises only ``ProviderError``."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        name: str = "openai",
        base_url: str | None = None,
        default_model: str = DEFAULT_MODEL,
        default_max_tokens: int | None = None,
        default_timeout_s: float = DEFAULT_TIMEOUT_S,
        max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens",
        prices: Mapping[str, Price] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.name = name
        self.settings = settings if settings is not None else Settings(environ=dict(os.environ))
        environ = self.settings.environ
        self.base_url = base_url or environ.get(ENV_BASE_URL) or None
        self.default_model = default_model
        self.default_max_tokens = default_max_tokens
        self.default_timeout_s = default_timeout_s
        self.max_tokens_field = max_tokens_field
        self.prices = dict(prices or {})
        self.clock = clock
        self._key = environ.get(ENV_KEY) or None
        self._lock = threading.Lock()
        self._client: openai.OpenAI | None = None
        self._connections: AbortableConnections | None = None

    # -- Provider protocol --------------------------------------------------

    def complete(self, request: LLMRequest) -> LLMResponse:
        import openai.types.chat

        started = self.clock.now()
        client = self._get_client()
        params = self._params(request)
        try:
            completion = client.chat.completions.create(**params, timeout=self._timeout(request))
        except _sdk_failures() as exc:
            raise self._error(exc, request) from self._cause(exc)
        if not isinstance(completion, openai.types.chat.ChatCompletion):
            raise ProviderError(
                f"{self.name} answered with a body that is not a JSON chat completion "
                f"({type(completion).__name__}); check {ENV_BASE_URL} points at an "
                "OpenAI-compatible /v1 API, then retry",
                provider=self.name,
            )
        return self._response(request, completion, params["model"], started)

    def stream(self, request: LLMRequest) -> Iterator[str]:
        """Yield content deltas as they arrive."""
        client = self._get_client()
        params = self._params(request)
        try:
            chunks = client.chat.completions.create(
                **params, stream=True, timeout=self._timeout(request)
            )
            with chunks:
                for chunk in chunks:
                    for choice in chunk.choices[:1]:
                        if choice.delta.content:
                            yield choice.delta.content
        except _sdk_failures() as exc:
            raise self._error(exc, request) from self._cause(exc)

    def abort(self) -> None:
        """Cut the request in flight, if any (a cancelled job); the client stays usable."""
        connections = self._connections
        if connections is not None:
            connections.abort()

    # -- the client ---------------------------------------------------------

    def _get_client(self) -> openai.OpenAI:
        key = self._key
        if key is None and self.base_url is None:
            raise AuthError(
                f"{self.name} provider: {ENV_KEY} is not set in the environment; set it, or "
                f"set {ENV_BASE_URL} to a local server that needs no key, or run with "
                "TEST_MODE=mock",
                provider=self.name,
            )
        with self._lock:
            if self._client is None:
                import openai

                from runtime.providers.connections import AbortableConnections, abortable_client

                self._connections = AbortableConnections()
                self._client = openai.OpenAI(
                    api_key=key or NO_KEY,
                    base_url=self.base_url or DEFAULT_BASE_URL,
                    max_retries=0,
                    timeout=self.default_timeout_s,
                    http_client=abortable_client(self._connections, timeout=self.default_timeout_s),
                )
            return self._client

    def _timeout(self, request: LLMRequest) -> float:
        return request.timeout_s if request.timeout_s is not None else self.default_timeout_s

    # -- request mapping ----------------------------------------------------

    def _params(self, request: LLMRequest) -> dict[str, Any]:
        if request.allowed_tools:
            raise Rejected(
                f"{self.name} provider does not run built-in tools "
                f"({', '.join(request.allowed_tools)}); declare them as functions, or use "
                "the anthropic provider for this step",
                provider=self.name,
            )
        system = request.system
        params: dict[str, Any] = {
            "model": self.settings.resolve_model(request.model) or self.default_model,
        }
        if request.schema is not None:
            json_schema: dict[str, Any] = {
                "name": str(request.options.get("schema_name") or "response"),
                "schema": dict(request.schema),
            }
            if request.options.get("strict") is not None:
                json_schema["strict"] = bool(request.options["strict"])
            params["response_format"] = {"type": "json_schema", "json_schema": json_schema}
        elif request.wants_json:
            params["response_format"] = {"type": "json_object"}
            system = f"{system}\n\n{_JSON_INSTRUCTION}" if system else _JSON_INSTRUCTION
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        messages += [{"role": m.role, "content": m.content} for m in request.history]
        messages.append({"role": "user", "content": request.prompt})
        params["messages"] = messages
        max_tokens = request.max_tokens or self.default_max_tokens
        if max_tokens is not None:
            params[self.max_tokens_field] = max_tokens
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.options.get("top_p") is not None:
            params["top_p"] = request.options["top_p"]
        if request.options.get("top_k") is not None:
            params["extra_body"] = {"top_k": request.options["top_k"]}
        if request.functions:
            params["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": spec.name,
                        "description": spec.description,
                        "parameters": dict(spec.parameters) or {"type": "object", "properties": {}},
                    },
                }
                for spec in request.functions
            ]
        return params

    # -- response mapping ---------------------------------------------------

    def _response(
        self, request: LLMRequest, completion: ChatCompletion, model: str, started: float
    ) -> LLMResponse:
        try:
            choice = completion.choices[0]
            message = choice.message
            text = message.content or ""
            calls = tuple(self._calls(message.tool_calls or ()))
            usage = (
                Usage(
                    int(completion.usage.prompt_tokens or 0),
                    int(completion.usage.completion_tokens or 0),
                )
                if completion.usage is not None
                else Usage(0, 0)
            )
            answered_by = str(completion.model or model)
            finish = str(choice.finish_reason or "stop")
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise ProviderError(
                f"{self.name} answered with a completion of an unexpected shape "
                f"({type(exc).__name__}: {exc}); retry, and check {ENV_BASE_URL} if it persists",
                provider=self.name,
            ) from exc
        return LLMResponse(
            text=text,
            provider=self.name,
            model=answered_by,
            data=_json_data(text) if request.wants_json else None,
            function_calls=calls,
            stop_reason="tool_use" if calls else _STOP_REASONS.get(finish, finish),
            usage=usage,
            cost_usd=cost_usd(answered_by, usage, self.prices),
            latency_s=self.clock.now() - started,
        )

    def _calls(self, tool_calls: Any) -> Iterator[FunctionCall]:
        for call in tool_calls:
            function = getattr(call, "function", None)
            if function is None:  # a custom (non-function) tool call: not ours to run
                continue
            try:
                arguments = json.loads(function.arguments or "{}")
            except ValueError:
                arguments = None
            if not isinstance(arguments, dict):
                raise ProviderError(
                    f"{self.name} model called {function.name} with arguments that are not a "
                    f"JSON object ({str(function.arguments)[:80]!r}); retry",
                    provider=self.name,
                )
            yield FunctionCall(str(function.name), arguments)

    # -- errors -------------------------------------------------------------

    def _error(self, exc: BaseException, request: LLMRequest) -> ProviderError:
        return redacted(_classify(exc, self.name, self._timeout(request), self.base_url), self._key)

    def _cause(self, exc: BaseException) -> BaseException | None:
        """The exception to chain, or None when any exception in its chain quotes the key."""
        return cause_to_chain(exc, self._key, "body")


def _sdk_failures() -> tuple[type[BaseException], ...]:
    """What a call into the SDK may raise for reasons outside our code."""
    import httpx2
    import openai

    return (openai.OpenAIError, httpx2.HTTPError, httpx2.StreamError, ValueError)


def _classify(
    exc: BaseException, provider: str, timeout_s: float, base_url: str | None
) -> ProviderError:
    import httpx2
    import openai

    if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException):
        return _ERRORS.timeout(provider, timeout_s)
    if isinstance(exc, openai.APIConnectionError | httpx2.TransportError):
        cause = exc.__cause__ if isinstance(exc, openai.APIConnectionError) else exc
        return _ERRORS.connection(provider, base_url, cause)
    if isinstance(exc, openai.APIResponseValidationError):
        return _ERRORS.unvalidated(provider, exc.message, exc.status_code)
    if isinstance(exc, openai.APIStatusError):
        return _classify_status(exc.status_code, exc, provider)
    if isinstance(exc, openai.APIError):  # an error event inside a 200 stream
        code = exc.body.get("code") if isinstance(exc.body, dict) else None
        status = code if isinstance(code, int) else _STREAM_ERROR_STATUS.get(exc.type or "", 500)
        return _classify_status(status, exc, provider)
    if isinstance(exc, ValueError):
        return _ERRORS.malformed(provider, exc)
    return _ERRORS.unexpected(provider, exc)


def _classify_status(status: int, exc: openai.APIError, provider: str) -> ProviderError:
    import openai

    body = exc.body if isinstance(exc.body, dict) else {}
    headers = exc.response.headers if isinstance(exc, openai.APIStatusError) else {}
    return _ERRORS.status(
        status,
        body.get("message") or exc.type or exc.code or "no details",
        provider=provider,
        retry_after=lambda: retry_after(headers),
        overloaded=exc.type == "overloaded_error",
    )
