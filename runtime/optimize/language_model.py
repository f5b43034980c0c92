"""A DSPy language model whose every call goes through our ``ProviderGateway``.

DSPy 3.4 runs a ``dspy.LM`` on an *engine*: any object with
``complete(dspy.lm15.Request) -> dspy.lm15.Response`` (and ``stream``,
``close``), passed as ``dspy.LM(name, engine=...)``. DSPy keeps everything
around the call — its response cache, its retry loop, history, usage and
callbacks — and the engine makes one attempt. An adapter (ChatAdapter) first
renders a predictor's signature, demos and inputs as OpenAI-style chat
messages; DSPy converts those to one lm15 ``Request`` (``system`` text, then
``messages``: the demos as user/assistant turns, the live input last) and
calls ``engine.complete``. The engine returns an lm15 ``Response`` whose text
the adapter parses back into fields.

``GatewayEngine`` is that engine. It turns the lm15 request into one
``LLMRequest`` — ``system``, the earlier turns as ``history``, the last user
turn as ``prompt`` — names the asking step (``optimizer`` unless told), and
hands it to ``ProviderGateway.complete``. Rate limits, breakers, fallbacks,
budgets and accounting therefore apply to optimizer calls exactly as to
pipeline steps; with ``telemetry`` (``Telemetry.emit``) each call is also
recorded as a ``ProviderCall`` event, for gateways that do not record calls
themselves (``LocalGateway``; the daemon's pool gateway records its own).

``gateway_lm`` builds the LM with DSPy's response cache off (optimizer runs
must be real calls) and DSPy's retries off (the gateway already retried).

Failures: a gateway error reaches DSPy, which wraps it (``LMUnexpectedError``
raised *from* ours); ``gateway_error`` finds ours again. Errors that no retry
can cure — a budget exceeded, a cancelled run, a missing key, bad
configuration — are also kept on the engine (``failure``), and every later
call fails at once with the same error, because DSPy's optimizers count
failed examples and carry on; the compiler re-raises it when the run ends.

DSPy is imported only through ``load_dspy``, which first makes LiteLLM read
its bundled model-cost map instead of fetching one from the network, and its
settings are touched only through ``using_lm`` (``dspy.context``, never
``dspy.configure``).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

from runtime.clock import SYSTEM_CLOCK, Clock
from runtime.errors import (
    AuthError,
    BudgetExceeded,
    Cancelled,
    ConfigError,
    ElexirionError,
    Rejected,
)
from runtime.providers.base import (
    LLMRequest,
    LLMResponse,
    Message,
    OutputFormat,
    ProviderGateway,
)

__all__ = [
    "DEFAULT_STEP",
    "GatewayEngine",
    "gateway_error",
    "gateway_lm",
    "load_dspy",
    "using_lm",
]

DEFAULT_STEP = "optimizer"
_FATAL = (BudgetExceeded, Cancelled, AuthError, ConfigError)
_FINISH = {"max_tokens": "length", "length": "length"}

Telemetry = Callable[[Any], Any]


def load_dspy() -> Any:
    """The ``dspy`` module, imported on first use without reaching for the network."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import dspy

    return dspy


def using_lm(lm: Any) -> AbstractContextManager[Any]:
    """``with using_lm(lm):`` — DSPy calls in this thread (and its workers) go to ``lm``.

    The one place DSPy's settings are touched: a ``dspy.context`` around the
    caller's own work, never ``dspy.configure``, so optimizers in different
    threads never see each other's model.
    """
    context: AbstractContextManager[Any] = load_dspy().context(lm=lm)
    return context


def gateway_lm(
    gateway: ProviderGateway,
    provider: str = "mock",
    model: str | None = None,
    *,
    step: str = DEFAULT_STEP,
    telemetry: Telemetry | None = None,
    fallbacks: tuple[str, ...] = (),
    timeout_s: float | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Any:
    """A ``dspy.LM`` that sends every call to ``gateway`` as an ``LLMRequest`` for ``step``.

    ``model`` goes out as given: resolve aliases first (``Settings.resolve_model``).
    """
    dspy = load_dspy()
    engine = GatewayEngine(
        gateway,
        provider,
        model,
        step=step,
        telemetry=telemetry,
        fallbacks=fallbacks,
        timeout_s=timeout_s,
        clock=clock,
    )
    return dspy.LM(engine.name, engine=engine, cache=False, num_retries=0)


def gateway_error(exc: BaseException) -> ElexirionError | None:
    """Our error behind ``exc`` (``exc`` itself, or what DSPy wrapped), if there is one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ElexirionError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class GatewayEngine:
    """DSPy's engine protocol (``complete``, ``stream``, ``close``) over a ``ProviderGateway``."""

    # Capability hints DSPy's adapters read from a custom engine: the gateway carries
    # JSON output with a schema (JSONAdapter's structured outputs), not tools.
    supports_function_calling = False
    supports_reasoning = False
    supports_response_schema = True
    supported_params = frozenset({"max_tokens", "temperature", "response_format"})

    def __init__(
        self,
        gateway: ProviderGateway,
        provider: str = "mock",
        model: str | None = None,
        *,
        step: str = DEFAULT_STEP,
        telemetry: Telemetry | None = None,
        fallbacks: tuple[str, ...] = (),
        timeout_s: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not provider.strip():
            raise ConfigError("gateway_lm needs a provider name (anthropic, gemini, openai, mock)")
        self.gateway = gateway
        self.provider = provider
        self.model = model
        self.step = step
        self.fallbacks = tuple(fallbacks)
        self.timeout_s = timeout_s
        self._telemetry = telemetry
        self._clock = clock
        self._lock = threading.Lock()
        self._failure: ElexirionError | None = None
        self._calls = 0

    @property
    def name(self) -> str:
        """The model string DSPy knows this LM by (its history and cache keys use it)."""
        return f"elexirion/{self.provider}" + (f"/{self.model}" if self.model else "")

    @property
    def failure(self) -> ElexirionError | None:
        """The error that ended this engine's usefulness (a budget, a cancel, a key), if any."""
        with self._lock:
            return self._failure

    @property
    def calls(self) -> int:
        """Calls handed to the gateway so far (not those refused after a ``failure``)."""
        with self._lock:
            return self._calls

    # -- DSPy's engine protocol ------------------------------------------------------------

    def complete(self, request: Any) -> Any:
        """One attempt: the lm15 ``Request`` as an ``LLMRequest``, the answer as a ``Response``."""
        failure = self.failure
        if failure is not None:
            raise failure.with_traceback(None)
        ours = self.llm_request(request)
        with self._lock:
            self._calls += 1
        started = self._clock.now()
        try:
            response = self.gateway.complete(ours)
        except ElexirionError as exc:
            self._record(started, None, exc)
            if isinstance(exc, _FATAL):
                with self._lock:
                    self._failure = self._failure or exc
            raise
        self._record(started, response, None)
        return self.lm15_response(response)

    def stream(self, request: Any) -> Iterator[Any]:
        """The whole answer as one stream of events (the gateway answers in one piece)."""
        from dspy.lm15 import response_to_events

        yield from response_to_events(self.complete(request))

    def close(self) -> None:
        """Nothing to release: the gateway belongs to whoever made it."""

    # -- conversion ------------------------------------------------------------------------

    def llm_request(self, request: Any) -> LLMRequest:
        """Our request for an lm15 ``Request``: system, earlier turns as history, last user turn."""
        turns = [(_role(message), _message_text(message)) for message in request.messages]
        role, prompt = turns[-1]
        if role != "user":
            raise Rejected(
                "the gateway bridge needs the conversation to end with a user turn, "
                f"got {role!r}; DSPy adapters always end with the live input",
                provider=self.provider,
                status=400,
            )
        if request.tools:
            raise Rejected(
                "the gateway bridge does not carry DSPy tools; use an adapter without "
                "native function calling",
                provider=self.provider,
                status=400,
            )
        config = request.config
        schema, json_mode = _json_format(config.response_format)
        return LLMRequest(
            prompt=prompt,
            provider=self.provider,
            fallbacks=self.fallbacks,
            model=self.model,
            system=_system_text(request.system),
            history=tuple(Message(role, text) for role, text in turns[:-1]),
            output_format=OutputFormat.JSON if json_mode else OutputFormat.TEXT,
            schema=schema,
            max_tokens=config.max_tokens,
            temperature=config.temperature,
            timeout_s=self.timeout_s,
            step=self.step,
        )

    def lm15_response(self, response: LLMResponse) -> Any:
        """An lm15 ``Response`` with the answer's text, usage, and who answered."""
        from dspy.lm15 import Message as Lm15Message, Response, TextPart, Usage

        text = response.text
        if not text and response.data is not None:
            text = json.dumps(response.data, ensure_ascii=False, default=str)
        return Response(
            id=None,
            model=response.model or self.model or self.provider,
            message=Lm15Message.assistant(TextPart(text)),
            finish_reason=_FINISH.get(response.stop_reason, "stop"),
            usage=Usage(
                input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens,
            ),
            provider_data={"provider": response.provider, "cost_usd": response.cost_usd},
        )

    # -- telemetry -------------------------------------------------------------------------

    def _record(
        self, started: float, response: LLMResponse | None, error: ElexirionError | None
    ) -> None:
        if self._telemetry is None:
            return
        from runtime.telemetry import provider_call_event

        provider = getattr(error, "provider", None) or self.provider
        duration = max(0.0, self._clock.now() - started)
        self._telemetry(
            provider_call_event(
                provider, duration, response, error, cancelled=isinstance(error, Cancelled)
            )
        )


def _role(message: Any) -> str:
    role = str(message.role)
    if role in ("user", "assistant"):
        return role
    if role == "developer":  # instructions mid-conversation: a user turn, as lm15 does
        return "user"
    raise Rejected(
        f"the gateway bridge carries user and assistant turns only, got a {role!r} turn",
        status=400,
    )


def _message_text(message: Any) -> str:
    text = message.text
    if text is None:
        kinds = sorted({str(part.type) for part in message.parts})
        raise Rejected(
            f"the gateway bridge carries text only, got {', '.join(kinds)} content",
            status=400,
        )
    prefix = "[developer] " if message.role == "developer" else ""
    return prefix + str(text)


def _system_text(system: Any) -> str | None:
    if system is None:
        return None
    if isinstance(system, str):
        return system
    texts = [getattr(part, "text", None) for part in system]
    if any(not isinstance(text, str) for text in texts):
        raise Rejected("the gateway bridge carries a text system prompt only", status=400)
    return "\n".join(str(text) for text in texts)


def _json_format(
    response_format: Mapping[str, Any] | None,
) -> tuple[Mapping[str, Any] | None, bool]:
    if not response_format:
        return None, False
    schema = response_format.get("schema")
    if response_format.get("type") == "json_schema" and isinstance(schema, Mapping):
        return dict(schema), True
    return None, True
