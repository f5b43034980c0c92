"""The Anthropic provider: the Messages API through the official SDK (2.x), retries left to us.

``AnthropicProvider.complete`` maps an ``LLMRequest`` onto one
``messages.create`` call, or onto a tool-use loop when the request names
``allowed_tools`` or a ``max_turns``; ``stream`` yields text deltas over SSE.

What the SDK (2.x) does and what this module does about it:

* The client is built on first use (``import anthropic`` takes about a
  second), once per provider, with ``max_retries=0``: retries, backoff and
  fallbacks belong to the gateway, which classifies our errors.
* The key comes from the environment only (``ANTHROPIC_API_KEY`` in
  ``Settings.environ``) and is passed explicitly, so the SDK does not go
  looking for profiles or federation files. The SDK sends it as
  ``Authorization: Bearer``. It never appears in an error message: every
  message is scrubbed of it.
* ``base_url``: the constructor argument, else ``ANTHROPIC_BASE_URL``.
* ``temperature`` and ``top_p`` are no longer ``messages.create`` parameters;
  when a request sets them they travel in ``extra_body``.
* JSON with a schema uses structured outputs (``output_config.format`` of
  type ``json_schema``, the schema made strict by ``anthropic.transform_schema``);
  JSON without a schema is asked for in the system prompt. Either way the
  answer is parsed into ``data`` when it is JSON (``None`` otherwise, and the
  step reports the invalid output).
* ``functions`` become tool definitions; ``tool_use`` blocks come back as
  ``function_calls`` for the caller to run.

Every failure is one of ``runtime.errors``' provider errors:

=========================================  =================================
SDK / transport                            ours
=========================================  =================================
429                                        RateLimited (retry_after_s from
                                           ``retry-after-ms``/``retry-after``)
529, ``overloaded_error``                  Overloaded
401, 403                                   AuthError
400, 404, 413, 422 and other 4xx           Rejected
408, 504, SDK or socket timeout            ProviderTimeout
503, connection refused or dropped         Unavailable
500 and other 5xx, malformed body          ProviderError
tool outside allowed_tools                 ToolNotAllowed
tool loop past max_turns                   MaxTurnsExceeded
=========================================  =================================
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.clock import SYSTEM_CLOCK, Clock
from runtime.config import Settings
from runtime.errors import AuthError, MaxTurnsExceeded, ProviderError, Rejected
from runtime.providers.base import FunctionCall, LLMRequest, LLMResponse, Usage
from runtime.providers.http_errors import HTTPErrors, redacted, retry_after
from runtime.providers.price import Price as Price, cost_usd, price_for as price_for
from runtime.providers.tools import BUILTIN_TOOLS, ToolBox, canonical_tool

if TYPE_CHECKING:
    import anthropic

    from runtime.providers.connections import AbortableConnections

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_MAX_TURNS",
    "DEFAULT_MODEL",
    "DEFAULT_PRICES",
    "AnthropicProvider",
    "Price",  # re-exported from runtime.providers.price, like price_for
]

ENV_KEY = "ANTHROPIC_API_KEY"
ENV_BASE_URL = "ANTHROPIC_BASE_URL"
DEFAULT_MODEL = "claude-sonnet-4-6"
DEFAULT_MAX_TOKENS = 4096
DEFAULT_MAX_TURNS = 10
DEFAULT_TIMEOUT_S = 600.0
_JSON_INSTRUCTION = (
    "Answer with one JSON value and nothing else: no prose, no Markdown code fences."
)
_PASSED_OPTIONS = ("top_p", "top_k")
_ERRORS = HTTPErrors(
    key_env=ENV_KEY, base_url_env=ENV_BASE_URL, default_base_url="https://api.anthropic.com"
)

# Matched by longest prefix, so a dated model id finds its family's price.
DEFAULT_PRICES: Mapping[str, Price] = {
    "claude-opus-4-0": Price(15.0, 75.0),
    "claude-opus-4-1": Price(15.0, 75.0),
    "claude-opus-4": Price(5.0, 25.0),
    "claude-sonnet-4": Price(3.0, 15.0),
    "claude-haiku-4": Price(1.0, 5.0),
    "claude-opus": Price(5.0, 25.0),
    "claude-sonnet": Price(3.0, 15.0),
    "claude-haiku": Price(1.0, 5.0),
}


class AnthropicProvider:
    """Claude through the official SDK; raises only ``ProviderError`` subclasses."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        name: str = "anthropic",
        base_url: str | None = None,
        default_model: str = DEFAULT_MODEL,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        default_timeout_s: float = DEFAULT_TIMEOUT_S,
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
        self.prices = dict(DEFAULT_PRICES if prices is None else prices)
        self.clock = clock
        self._key = environ.get(ENV_KEY) or None
        self._lock = threading.Lock()
        self._client: anthropic.Anthropic | None = None
        self._connections: AbortableConnections | None = None

    # -- Provider protocol --------------------------------------------------

    def complete(self, request: LLMRequest) -> LLMResponse:
        started = self.clock.now()
        client = self._get_client()
        params = self._params(request)
        if request.allowed_tools or request.max_turns is not None:
            return self._tool_loop(client, request, params, started)
        message = self._create(client, request, params)
        return self._response(request, message, started, Usage(0, 0))

    def stream(self, request: LLMRequest) -> Iterator[str]:
        """Yield text deltas as they arrive; a tool-loop request yields its final text once."""
        if request.allowed_tools or request.max_turns is not None:
            yield self.complete(request).text
            return
        client = self._get_client()
        params = self._params(request)
        timeout = self._timeout(request)
        try:
            events = client.messages.create(**params, stream=True, timeout=timeout)
            with events:
                for event in events:
                    if event.type == "content_block_delta" and event.delta.type == "text_delta":
                        yield event.delta.text
        except _sdk_failures() as exc:
            raise self._error(exc, request) from exc

    def abort(self) -> None:
        """Cut the request in flight, if any (a cancelled job); the client stays usable."""
        connections = self._connections
        if connections is not None:
            connections.abort()

    # -- the client ---------------------------------------------------------

    def _get_client(self) -> anthropic.Anthropic:
        if self._key is None:
            raise AuthError(
                f"{self.name} provider: {ENV_KEY} is not set in the environment; "
                "set it, or run with TEST_MODE=mock",
                provider=self.name,
                status=None,
            )
        with self._lock:
            if self._client is None:
                import anthropic

                from runtime.providers.connections import AbortableConnections, abortable_client

                self._connections = AbortableConnections()
                self._client = anthropic.Anthropic(
                    api_key=self._key,
                    base_url=self.base_url,
                    max_retries=0,
                    timeout=self.default_timeout_s,
                    http_client=abortable_client(self._connections, timeout=self.default_timeout_s),
                )
            return self._client

    def _timeout(self, request: LLMRequest) -> float:
        return request.timeout_s if request.timeout_s is not None else self.default_timeout_s

    # -- request mapping ----------------------------------------------------

    def _params(self, request: LLMRequest) -> dict[str, Any]:
        messages: list[dict[str, Any]] = [
            {"role": message.role, "content": message.content} for message in request.history
        ]
        messages.append({"role": "user", "content": request.prompt})
        model = self.settings.resolve_model(request.model) or self.default_model
        params: dict[str, Any] = {
            "model": model,
            "max_tokens": request.max_tokens or self.default_max_tokens,
            "messages": messages,
        }
        system = request.system
        if request.schema is not None:
            import anthropic

            schema = anthropic.transform_schema(dict(request.schema))
            params["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        elif request.wants_json:
            system = f"{system}\n\n{_JSON_INSTRUCTION}" if system else _JSON_INSTRUCTION
        if system:
            params["system"] = system
        if request.functions:
            params["tools"] = [
                {
                    "name": spec.name,
                    "description": spec.description,
                    "input_schema": dict(spec.parameters) or {"type": "object", "properties": {}},
                }
                for spec in request.functions
            ]
        extra: dict[str, Any] = {}
        if request.temperature is not None:
            extra["temperature"] = request.temperature
        for option in _PASSED_OPTIONS:
            if request.options.get(option) is not None:
                extra[option] = request.options[option]
        if extra:
            params["extra_body"] = extra
        return params

    def _create(
        self, client: anthropic.Anthropic, request: LLMRequest, params: Mapping[str, Any]
    ) -> anthropic.types.Message:
        import anthropic

        try:
            message = client.messages.create(**params, timeout=self._timeout(request))
        except _sdk_failures() as exc:
            raise self._error(exc, request) from exc
        if not isinstance(message, anthropic.types.Message):
            raise ProviderError(
                f"{self.name} answered with a body that is not a JSON message "
                f"({type(message).__name__}); check ANTHROPIC_BASE_URL points at the "
                "Messages API, then retry",
                provider=self.name,
            )
        return message

    # -- response mapping ---------------------------------------------------

    def _response(
        self,
        request: LLMRequest,
        message: anthropic.types.Message,
        started: float,
        earlier: Usage,
        *,
        calls: Sequence[FunctionCall] | None = None,
    ) -> LLMResponse:
        try:
            text = "".join(block.text for block in message.content if block.type == "text")
            if calls is None:
                calls = [
                    FunctionCall(block.name, dict(block.input))
                    for block in message.content
                    if block.type == "tool_use"
                ]
            usage = Usage(
                earlier.input_tokens + int(message.usage.input_tokens),
                earlier.output_tokens + int(message.usage.output_tokens),
            )
            model = str(message.model)
            stop_reason = str(message.stop_reason or "end_turn")
        except (AttributeError, TypeError, ValueError) as exc:
            raise ProviderError(
                f"{self.name} answered with a message of an unexpected shape ({exc}); "
                "retry, and check ANTHROPIC_BASE_URL if it persists",
                provider=self.name,
            ) from exc
        return LLMResponse(
            text=text,
            provider=self.name,
            model=model,
            data=_json_data(text) if request.wants_json else None,
            function_calls=tuple(calls),
            stop_reason=stop_reason,
            usage=usage,
            cost_usd=cost_usd(model, usage, self.prices),
            latency_s=self.clock.now() - started,
        )

    # -- the tool loop ------------------------------------------------------

    def _tool_loop(
        self,
        client: anthropic.Anthropic,
        request: LLMRequest,
        params: dict[str, Any],
        started: float,
    ) -> LLMResponse:
        box = self._toolbox(request)
        functions = {spec.name for spec in request.functions}
        tools = list(params.get("tools", []))
        tools += [
            {"name": spec.name, "description": spec.description, "input_schema": spec.input_schema}
            for spec in box.specs
        ]
        params = {**params, "messages": list(params["messages"])}
        if tools:
            params["tools"] = tools
        max_turns = request.max_turns if request.max_turns is not None else DEFAULT_MAX_TURNS
        usage = Usage(0, 0)
        for turn in range(1, max_turns + 1):
            message = self._create(client, request, params)
            uses = [block for block in message.content if block.type == "tool_use"]
            if message.stop_reason != "tool_use" or not uses:
                return self._response(request, message, started, usage)
            wanted = [FunctionCall(use.name, dict(use.input)) for use in uses]
            if any(call.name in functions for call in wanted):
                return self._response(request, message, started, usage, calls=wanted)
            box.check(call.name for call in wanted)
            if turn == max_turns:
                raise MaxTurnsExceeded(
                    f"{self.name} model still wanted tools ({', '.join(c.name for c in wanted)}) "
                    f"after {max_turns} turn(s), the step's max_turns; raise max_turns or "
                    "narrow the task",
                    max_turns=max_turns,
                    provider=self.name,
                )
            usage = Usage(
                usage.input_tokens + message.usage.input_tokens,
                usage.output_tokens + message.usage.output_tokens,
            )
            results = []
            for use in uses:
                result = box.run(use.name, dict(use.input))
                results.append(
                    {
                        "type": "tool_result",
                        "tool_use_id": use.id,
                        "content": result.content,
                        "is_error": result.is_error,
                    }
                )
            params["messages"] += [
                {"role": "assistant", "content": [_block_param(b) for b in message.content]},
                {"role": "user", "content": results},
            ]
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _toolbox(self, request: LLMRequest) -> ToolBox:
        workspace = request.workspace
        if workspace is None and self.settings.workspace_dir is not None:
            workspace = str(self.settings.workspace_dir)
        offers_files = any(canonical_tool(n) in BUILTIN_TOOLS for n in request.allowed_tools)
        if workspace is None:
            if offers_files:
                raise Rejected(
                    f"{self.name} step allows tools ({', '.join(request.allowed_tools)}) but has "
                    "no workspace to confine them to; set PIPELINE_WORKSPACE_DIR or the "
                    "request's workspace",
                    provider=self.name,
                )
            workspace = str(Path.cwd())  # no file tool is offered, so nothing is touched
        return ToolBox(workspace, request.allowed_tools, provider=self.name)

    # -- errors -------------------------------------------------------------

    def _error(self, exc: BaseException, request: LLMRequest) -> ProviderError:
        return redacted(_classify(exc, self.name, self._timeout(request), self.base_url), self._key)


def _block_param(block: Any) -> dict[str, Any]:
    """An assistant content block as a request parameter (what the API accepts back)."""
    if block.type == "text":
        return {"type": "text", "text": block.text}
    if block.type == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    result: dict[str, Any] = block.to_dict(mode="json", exclude_none=True)
    return result


def _json_data(text: str) -> Any:
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    try:
        return json.loads(body)
    except ValueError:
        return None


def _sdk_failures() -> tuple[type[BaseException], ...]:
    """What a call into the SDK may raise for reasons outside our code."""
    import anthropic
    import httpx2

    return (anthropic.AnthropicError, httpx2.HTTPError, httpx2.StreamError, ValueError)


_STREAM_ERROR_STATUS: Mapping[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def _classify(
    exc: BaseException, provider: str, timeout_s: float, base_url: str | None
) -> ProviderError:
    import anthropic
    import httpx2

    if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
        return _ERRORS.timeout(provider, timeout_s)
    if isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
        cause = exc.__cause__ if isinstance(exc, anthropic.APIConnectionError) else exc
        return _ERRORS.connection(provider, base_url, cause)
    if isinstance(exc, anthropic.APIStatusError):
        return _classify_status(exc, provider)
    if isinstance(exc, anthropic.APIResponseValidationError):
        return _ERRORS.unvalidated(provider, exc.message, exc.status_code)
    if isinstance(exc, ValueError):
        return _ERRORS.malformed(provider, exc)
    return _ERRORS.unexpected(provider, exc)


def _classify_status(exc: anthropic.APIStatusError, provider: str) -> ProviderError:
    status = exc.status_code
    error_type = exc.type if isinstance(exc.type, str) else None
    if status < 400:  # an ``error`` event inside a 200 stream carries its type only
        status = _STREAM_ERROR_STATUS.get(error_type or "", 500)
    return _ERRORS.status(
        status,
        exc.api_message or (error_type or "no details"),
        provider=provider,
        retry_after=lambda: retry_after(exc.response.headers),
        overloaded=error_type == "overloaded_error",
    )
