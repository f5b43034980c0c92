"""The one protocol every LLM provider speaks, and the records it exchanges.

A step never talks to an SDK: it builds an ``LLMRequest`` and hands it to a
``ProviderGateway``, which picks a provider (or a fallback chain), and gets an
``LLMResponse`` back. Providers raise only ``runtime.errors.ProviderError``
subclasses, so retries and fallbacks classify every failure the same way.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class Message:
    """One turn of a conversation."""

    role: str  # "user" | "assistant"
    content: str


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A function the model may call (Gemini functions, tool definitions)."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FunctionCall:
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class CallControl(threading.Event):
    """A cancel flag that also reaches calls in flight.

    It is a ``threading.Event`` (``set``/``is_set``/``wait``); whoever runs a
    call registers ``on_cancel(abort)`` for its duration, and ``set()`` runs
    those callbacks at once, so a provider can cut its HTTP request instead of
    waiting for an answer nobody will read.
    """

    def __init__(self) -> None:
        super().__init__()
        self._callbacks: list[Callable[[], None]] = []
        self._guard = threading.Lock()

    def set(self) -> None:
        with self._guard:
            super().set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            with contextlib.suppress(Exception):  # an abort that fails must not stop the rest
                callback()

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback`` on cancel (now, if already cancelled); returns its remover."""
        with self._guard:
            if not self.is_set():
                self._callbacks.append(callback)

                def remove() -> None:
                    with self._guard:
                        if callback in self._callbacks:
                            self._callbacks.remove(callback)

                return remove
        callback()
        return lambda: None


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """Everything a provider needs for one call.

    ``provider`` is the provider asked for (``anthropic``, ``gemini``,
    ``openai``, ``mock``); ``fallbacks`` are tried in order when it fails;
    ``model`` is already resolved from aliases.
    ``schema`` implies JSON output. ``step`` names the asking step, for logs
    and for scripted mocks. ``workspace`` is the directory that built-in tools
    (``allowed_tools``) are confined to; providers that run a tool loop refuse
    paths outside it.
    """

    prompt: str
    provider: str = "mock"
    fallbacks: tuple[str, ...] = ()
    model: str | None = None
    system: str | None = None
    history: tuple[Message, ...] = ()
    output_format: OutputFormat = OutputFormat.TEXT
    schema: Mapping[str, Any] | None = None
    functions: tuple[FunctionSpec, ...] = ()
    allowed_tools: tuple[str, ...] = ()
    max_turns: int | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    timeout_s: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    step: str | None = None
    workspace: str | None = None
    control: CallControl | None = field(default=None, compare=False, repr=False)

    @property
    def wants_json(self) -> bool:
        return self.output_format is OutputFormat.JSON or self.schema is not None


@dataclass(frozen=True, slots=True)
class LLMResponse:
    """What came back: text, parsed structured output, function calls, usage, cost."""

    text: str
    provider: str
    model: str
    data: Any = None
    function_calls: tuple[FunctionCall, ...] = ()
    stop_reason: str = "end_turn"
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_s: float = 0.0


@runtime_checkable
class Provider(Protocol):
    """A provider answers requests; it raises only ProviderError subclasses."""

    name: str

    def complete(self, request: LLMRequest) -> LLMResponse: ...

    def stream(self, request: LLMRequest) -> Iterator[str]: ...


@runtime_checkable
class ProviderGateway(Protocol):
    """Where steps send LLM calls. In-process today; provider actors plug in later."""

    def complete(self, request: LLMRequest) -> LLMResponse: ...
