"""The Gemini provider: ``generateContent`` through google-genai, retries left to us.

``GeminiProvider.complete`` maps an ``LLMRequest`` onto one
``models.generate_content`` call; ``stream`` yields text as it arrives over
``streamGenerateContent?alt=sse``. The older google-generativeai library
reached end of support on 2025-11-30, so the provider name
``google-generativeai`` is an alias served here: ``create`` builds the
provider for any of its names and notes the alias once.

What the SDK (google-genai 3.x) does and what this module does about it:

* The client is built on first use (``from google import genai`` takes about
  half a second), once per provider, with ``vertexai=False`` so that
  ``GOOGLE_GENAI_USE_VERTEXAI`` in the process environment cannot switch it
  to Vertex AI.
* Retries: ``HttpOptions.retry_options`` of ``None`` means one attempt for
  the tenacity loop, but the async aiohttp path then adds an implicit
  retry of its own after a 1-10 s sleep. An explicit
  ``HttpRetryOptions(attempts=1)`` turns both off; retries, backoff and
  fallbacks belong to the gateway.
* Automatic continuation (on by default: the SDK follows continuation tokens
  with more requests, and re-opens dropped streams) and automatic function
  calling are switched off per request: one call here is one HTTP request.
* The key comes from the environment only (``GOOGLE_API_KEY``, else
  ``GEMINI_API_KEY``, in ``Settings.environ``: the SDK's own precedence) and
  is passed explicitly. The SDK sends it as ``x-goog-api-key``, never in the
  URL. It never appears in an error message: every message is scrubbed of it,
  and an SDK error that quotes it is not chained.
* ``base_url``: the constructor argument, else ``GOOGLE_GEMINI_BASE_URL``
  (the variable the SDK itself reads, but from ``Settings.environ``), else
  the public endpoint, always passed explicitly in ``HttpOptions``.
  ``api_version`` is ``v1beta`` (the SDK's default is ``v1``, which lacks
  some JSON-schema features).
* The per-request timeout travels in ``GenerateContentConfig.http_options``
  as whole milliseconds (``HttpOptions.timeout``; at least 1, since 0 would
  mean none); the SDK also sends it as ``X-Server-Timeout``.
* JSON with a schema sets ``response_mime_type`` ``application/json`` and
  ``response_json_schema`` (raw JSON Schema, passed through untouched;
  ``response_schema`` would convert it to the API's OpenAPI subset). JSON
  without a schema sets the MIME type only. The answer is parsed into
  ``data`` when it is JSON.
* ``functions`` become ``FunctionDeclaration``\\ s with
  ``parameters_json_schema``; ``functionCall`` parts come back as
  ``function_calls`` for the caller to run.
* Generation config: ``max_output_tokens`` from ``max_tokens``,
  ``temperature``, and ``top_p``/``top_k`` from ``options``.

Every failure is one of ``runtime.errors``' provider errors. Transport
failures escape the SDK raw (it wraps nothing): from httpx2 by default,
httpx when ``GOOGLE_GENAI_HTTP_CLIENT=httpx``, aiohttp on async paths,
requests for Vertex mTLS. Each is classified from whichever of those modules
is loaded.

=========================================  =================================
SDK / transport                            ours
=========================================  =================================
429 ``RESOURCE_EXHAUSTED``                 RateLimited (retry_after_s from
                                           ``retry-after-ms``/``retry-after``,
                                           else the ``RetryInfo`` detail)
401, 403                                   AuthError
400, 404, 413, 422 and other 4xx; a        Rejected
blocked prompt; a request the SDK refuses
408, 504, transport timeout                ProviderTimeout
503, connection refused or dropped         Unavailable
529                                        Overloaded
500 and other 5xx, 409, malformed body     ProviderError
=========================================  =================================
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import structlog

from runtime.clock import SYSTEM_CLOCK, Clock
from runtime.config import Settings, canonical_provider
from runtime.errors import AuthError, ProviderError, Rejected
from runtime.providers.anthropic import _json_data
from runtime.providers.base import FunctionCall, LLMRequest, LLMResponse, Usage
from runtime.providers.http_errors import HTTPErrors, cause_to_chain, redacted, retry_after
from runtime.providers.price import Price, cost_usd

if TYPE_CHECKING:
    from google import genai
    from google.genai import errors as genai_errors, types

    from runtime.providers.connections import AbortableConnections

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_PRICES",
    "GeminiProvider",
    "create",
]

ENV_KEYS = ("GOOGLE_API_KEY", "GEMINI_API_KEY")
ENV_BASE_URL = "GOOGLE_GEMINI_BASE_URL"
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/"
DEFAULT_API_VERSION = "v1beta"
DEFAULT_MODEL = "gemini-2.5-flash"
DEFAULT_TIMEOUT_S = 600.0
LEGACY_NAME = "google-generativeai"
_PASSED_OPTIONS = ("top_p", "top_k")
_STOP_REASONS: Mapping[str, str] = {
    "STOP": "end_turn",
    "MAX_TOKENS": "max_tokens",
    "FINISH_REASON_UNSPECIFIED": "end_turn",
}
_ERRORS = HTTPErrors(
    key_env=" or ".join(ENV_KEYS),
    base_url_env=ENV_BASE_URL,
    default_base_url=DEFAULT_BASE_URL,
    rate_limited="rate limited or out of quota",
    retryable_4xx=frozenset({409, 499}),  # aborted, cancelled
)

# Per million tokens, prompts up to 200k tokens; matched by longest prefix. Pass
# ``prices`` to the provider for newer models or other tiers.
DEFAULT_PRICES: Mapping[str, Price] = {
    "gemini-2.5-pro": Price(1.25, 10.0),
    "gemini-2.5-flash": Price(0.30, 2.50),
    "gemini-2.5-flash-lite": Price(0.10, 0.40),
    "gemini-2.0-flash": Price(0.10, 0.40),
    "gemini-2.0-flash-lite": Price(0.075, 0.30),
}

_log = structlog.get_logger("elexirion.providers")
_noticed: set[str] = set()
_notice_lock = threading.Lock()


def create(settings: Settings | None = None, name: str = "gemini") -> GeminiProvider:
    """The provider for any of its names; ``google-generativeai`` logs a notice once."""
    if canonical_provider(name) != "gemini":
        raise ValueError(f"'{name}' is not a name of the gemini provider")
    if name.strip().lower() == LEGACY_NAME and _first_time(LEGACY_NAME):
        _log.warning(
            "provider_alias",
            provider=LEGACY_NAME,
            served_by="gemini",
            notice="the google-generativeai library reached end of support on 2025-11-30; "
            "this provider name is served by google-genai: rename it to 'gemini'",
        )
    return GeminiProvider(settings)


def _first_time(key: str) -> bool:
    with _notice_lock:
        first = key not in _noticed
        _noticed.add(key)
        return first


class GeminiProvider:
    """Gemini through google-genai; raises only ``ProviderError`` subclasses."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        name: str = "gemini",
        base_url: str | None = None,
        api_version: str = DEFAULT_API_VERSION,
        default_model: str = DEFAULT_MODEL,
        default_max_tokens: int | None = None,
        default_timeout_s: float = DEFAULT_TIMEOUT_S,
        prices: Mapping[str, Price] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.name = name
        self.settings = settings if settings is not None else Settings(environ=dict(os.environ))
        environ = self.settings.environ
        self.base_url = base_url or environ.get(ENV_BASE_URL) or None
        self.api_version = api_version
        self.default_model = default_model
        self.default_max_tokens = default_max_tokens
        self.default_timeout_s = default_timeout_s
        self.prices = dict(DEFAULT_PRICES if prices is None else prices)
        self.clock = clock
        self._key = next((environ[n].strip() for n in ENV_KEYS if environ.get(n)), None) or None
        self._lock = threading.Lock()
        self._client: genai.Client | None = None
        self._connections: AbortableConnections | None = None

    # -- Provider protocol --------------------------------------------------

    def complete(self, request: LLMRequest) -> LLMResponse:
        started = self.clock.now()
        client = self._get_client()
        model, contents, config = self._params(request)
        try:
            response = client.models.generate_content(model=model, contents=contents, config=config)
        except _sdk_failures() as exc:
            raise self._error(exc, request) from self._cause(exc)
        return self._response(request, response, model, started)

    def stream(self, request: LLMRequest) -> Iterator[str]:
        """Yield the text of each streamed chunk as it arrives."""
        client = self._get_client()
        model, contents, config = self._params(request)
        try:
            for chunk in client.models.generate_content_stream(
                model=model, contents=contents, config=config
            ):
                text = "".join(_texts(chunk))
                if text:
                    yield text
        except _sdk_failures() as exc:
            raise self._error(exc, request) from self._cause(exc)

    def abort(self) -> None:
        """Cut the request in flight, if any (a cancelled job); the client stays usable."""
        connections = self._connections
        if connections is not None:
            connections.abort()

    # -- the client ---------------------------------------------------------

    def _get_client(self) -> genai.Client:
        if self._key is None:
            raise AuthError(
                f"{self.name} provider: neither {' nor '.join(ENV_KEYS)} is set in the "
                "environment; set one, or run with TEST_MODE=mock",
                provider=self.name,
            )
        with self._lock:
            if self._client is None:
                from google import genai
                from google.genai import types

                from runtime.providers.connections import AbortableConnections, abortable_client

                self._connections = AbortableConnections()
                self._client = genai.Client(
                    api_key=self._key,
                    vertexai=False,
                    http_options=types.HttpOptions(
                        base_url=self.base_url or DEFAULT_BASE_URL,
                        api_version=self.api_version,
                        timeout=_milliseconds(self.default_timeout_s),
                        retry_options=types.HttpRetryOptions(attempts=1),
                        httpx_client=abortable_client(
                            self._connections, timeout=self.default_timeout_s
                        ),
                    ),
                )
            return self._client

    def _timeout(self, request: LLMRequest) -> float:
        return request.timeout_s if request.timeout_s is not None else self.default_timeout_s

    # -- request mapping ----------------------------------------------------

    def _params(
        self, request: LLMRequest
    ) -> tuple[str, list[types.Content], types.GenerateContentConfig]:
        from google.genai import types

        if request.allowed_tools:
            raise Rejected(
                f"{self.name} provider does not run built-in tools "
                f"({', '.join(request.allowed_tools)}); declare them as functions, or use "
                "the anthropic provider for this step",
                provider=self.name,
            )
        contents = [
            types.Content(
                role="model" if message.role == "assistant" else "user",
                parts=[types.Part(text=message.content)],
            )
            for message in request.history
        ]
        contents.append(types.Content(role="user", parts=[types.Part(text=request.prompt)]))
        config = types.GenerateContentConfig(
            http_options=types.HttpOptions(timeout=_milliseconds(self._timeout(request))),
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            automatic_continuation=False,
            system_instruction=request.system or None,
            max_output_tokens=request.max_tokens or self.default_max_tokens,
            temperature=request.temperature,
            top_p=request.options.get("top_p"),
            top_k=request.options.get("top_k"),
        )
        if request.wants_json:
            config.response_mime_type = "application/json"
        if request.schema is not None:
            config.response_json_schema = dict(request.schema)
        if request.functions:
            config.tools = [
                types.Tool(
                    function_declarations=[
                        types.FunctionDeclaration(
                            name=spec.name,
                            description=spec.description or None,
                            parameters_json_schema=dict(spec.parameters) or None,
                        )
                        for spec in request.functions
                    ]
                )
            ]
        model = self.settings.resolve_model(request.model) or self.default_model
        return model, contents, config

    # -- response mapping ---------------------------------------------------

    def _response(
        self,
        request: LLMRequest,
        response: types.GenerateContentResponse,
        model: str,
        started: float,
    ) -> LLMResponse:
        try:
            if not response.candidates:
                feedback = response.prompt_feedback
                reason = feedback.block_reason if feedback is not None else None
                if reason is not None:
                    raise Rejected(
                        f"{self.name} blocked the prompt ({_enum_name(reason)}); rephrase it "
                        "— retrying the same prompt will not help",
                        provider=self.name,
                    )
            text = "".join(_texts(response))
            calls = tuple(_calls(response))
            finish = response.candidates[0].finish_reason if response.candidates else None
            usage = _usage(response.usage_metadata)
            answered_by = str(response.model_version or model)
        except (AttributeError, TypeError, ValueError) as exc:
            raise ProviderError(
                f"{self.name} answered with a response of an unexpected shape ({exc}); "
                f"retry, and check {ENV_BASE_URL} if it persists",
                provider=self.name,
            ) from exc
        return LLMResponse(
            text=text,
            provider=self.name,
            model=answered_by,
            data=_json_data(text) if request.wants_json else None,
            function_calls=calls,
            stop_reason=_stop_reason(finish, calls),
            usage=usage,
            cost_usd=cost_usd(answered_by.removeprefix("models/"), usage, self.prices),
            latency_s=self.clock.now() - started,
        )

    # -- errors -------------------------------------------------------------

    def _error(self, exc: BaseException, request: LLMRequest) -> ProviderError:
        return redacted(_classify(exc, self.name, self._timeout(request), self.base_url), self._key)

    def _cause(self, exc: BaseException) -> BaseException | None:
        """The exception to chain, or None when any exception in its chain quotes the key."""
        return cause_to_chain(exc, self._key, "details")


# -- helpers ---------------------------------------------------------------


def _milliseconds(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _parts(response: types.GenerateContentResponse) -> list[types.Part]:
    if not response.candidates:
        return []
    content = response.candidates[0].content
    return list(content.parts or []) if content is not None else []


def _texts(response: types.GenerateContentResponse) -> Iterator[str]:
    """Text parts of the first candidate, without thoughts (not ``.text``: it logs warnings)."""
    for part in _parts(response):
        if isinstance(part.text, str) and not part.thought:
            yield part.text


def _calls(response: types.GenerateContentResponse) -> Iterator[FunctionCall]:
    for part in _parts(response):
        call = part.function_call
        if call is not None:
            yield FunctionCall(str(call.name or ""), dict(call.args or {}))


def _usage(metadata: types.GenerateContentResponseUsageMetadata | None) -> Usage:
    if metadata is None:
        return Usage(0, 0)
    output = (metadata.candidates_token_count or 0) + (metadata.thoughts_token_count or 0)
    return Usage(int(metadata.prompt_token_count or 0), int(output))


def _enum_name(value: object) -> str:
    return str(getattr(value, "value", value))


def _stop_reason(finish: object, calls: tuple[FunctionCall, ...]) -> str:
    if calls:
        return "tool_use"
    if finish is None:
        return "end_turn"
    name = _enum_name(finish)
    return _STOP_REASONS.get(name, name.lower())


def _sdk_failures() -> tuple[type[BaseException], ...]:
    """What a call into the SDK may raise for reasons outside our code."""
    from google.genai import errors

    timeouts, connection, other = _transport_errors()
    return (errors.APIError, ValueError, *timeouts, *connection, *other)


def _transport_errors() -> tuple[
    tuple[type[BaseException], ...],
    tuple[type[BaseException], ...],
    tuple[type[BaseException], ...],
]:
    """(timeouts, connection failures, other transport errors) of the HTTP stacks now loaded.

    The SDK raises them as they are. A stack that is not imported cannot have
    raised anything, so nothing is imported here.
    """
    timeouts: list[type[BaseException]] = [TimeoutError]
    connection: list[type[BaseException]] = [OSError]
    other: list[type[BaseException]] = []
    for name in ("httpx2", "httpx"):
        module = sys.modules.get(name)
        if module is not None:
            timeouts.append(module.TimeoutException)
            connection.append(module.TransportError)
            other += [module.HTTPError, module.StreamError]
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None:
        timeouts.append(aiohttp.ServerTimeoutError)
        connection.append(aiohttp.ClientError)
    requests = sys.modules.get("requests")
    if requests is not None:
        timeouts.append(requests.Timeout)
        connection.append(requests.ConnectionError)
        other.append(requests.RequestException)
    auth = sys.modules.get("google.auth.exceptions")
    if auth is not None:
        connection.append(auth.TransportError)
    return tuple(timeouts), tuple(connection), tuple(other)


def _classify(
    exc: BaseException, provider: str, timeout_s: float, base_url: str | None
) -> ProviderError:
    from google.genai import errors

    if isinstance(exc, errors.APIError):
        return _classify_status(exc, provider)
    timeouts, connection, other = _transport_errors()
    if isinstance(exc, timeouts):
        return _ERRORS.timeout(provider, timeout_s)
    if isinstance(exc, connection):
        return _ERRORS.connection(provider, base_url, exc)
    if isinstance(exc, json.JSONDecodeError | errors.UnknownApiResponseError):
        return _ERRORS.malformed(provider, exc)
    if _is_validation_error(exc):
        return _ERRORS.unvalidated(provider, str(exc))
    if isinstance(exc, ValueError):
        return Rejected(
            f"{provider}: the SDK refused the request ({exc}); fix the request or the "
            "provider settings — retrying will not help",
            provider=provider,
        )
    return _ERRORS.unexpected(
        provider, exc, "transport error" if isinstance(exc, other) else "call failed"
    )


def _is_validation_error(exc: BaseException) -> bool:
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(exc, pydantic.ValidationError)


def _classify_status(exc: genai_errors.APIError, provider: str) -> ProviderError:
    return _ERRORS.status(
        exc.code if isinstance(exc.code, int) else 500,
        exc.message or exc.status or "no details",
        provider=provider,
        retry_after=lambda: _retry_after_of(exc),
    )


_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def _retry_after_of(exc: genai_errors.APIError) -> float | None:
    """From ``retry-after-ms``/``retry-after`` headers, else the ``google.rpc.RetryInfo`` detail."""
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    lowered = {str(name).lower(): str(value) for name, value in dict(headers).items()}
    from_headers = retry_after(lowered)
    if from_headers is not None:
        return from_headers
    body = exc.details if isinstance(exc.details, dict) else {}
    error = body.get("error", body)
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            match = _DELAY.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None
