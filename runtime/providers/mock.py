"""The provider used when no API key is set, and in tests: scripted, fast, and able to fail on cue.

``MockProvider`` answers every request deterministically, choosing the first
of these that applies:

1. an injected failure (``MockFailure``) whose ``match`` occurs in the request
   and that has not yet failed ``times`` times: the matching ``ProviderError``
   subclass is raised, so retries, fallbacks and breakers can be tested;
2. the scripted rule (``MockRule``) whose ``match`` is the longest substring
   of the prompt, system prompt or history (``"*"`` matches everything, with
   the lowest priority); a rule may be limited to one ``step``, and wins a
   tie with a rule that is not;
3. when the request offers functions, a call to the one whose name or
   description best fits the prompt, with arguments made from its
   ``parameters`` schema;
4. when the request wants JSON, a value made from its schema (or a
   ``summary``/``key_points``/``word_count`` object when it has none);
5. otherwise a one-line echo: ``[mock] <first sentence>… (<n> words)``.

Latency is waited on the injected ``Clock``, so tests use a ``FakeClock`` and
never sleep. Every call is counted per step, failed ones included, so a test
can prove that a step ran exactly once.

``MockSettings.from_env`` reads ``ELX_MOCK_SCRIPT`` (a YAML script),
``ELX_MOCK_LATENCY_MS`` and ``ELX_MOCK_CALL_LOG`` (a JSON line per call, so a
test can count calls across daemon restarts); ``mock_requested`` tells whether ``TEST_MODE=mock``.
A script file looks like::

    rules:
      - match: "Summarize"
        response: "A short summary."
      - match: "weather"
        function_call: {name: get_weather, arguments: {city: Paris}}
      - match: "classify"
        step: classify
        response: {label: positive, confidence: 0.9}
    failures:
      - match: "*"
        error: rate_limited
        times: 2
        retry_after_s: 1.5

or, for rules only, a plain mapping of pattern to response.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError as PydanticValidationError,
    model_validator,
)

from runtime.clock import SYSTEM_CLOCK, Clock
from runtime.errors import (
    AuthError,
    ConfigError,
    MaxTurnsExceeded,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    Rejected,
    ToolNotAllowed,
    Unavailable,
)
from runtime.providers.base import FunctionCall, FunctionSpec, LLMRequest, LLMResponse, Usage
from runtime.providers.schema_instance import instance_for

__all__ = [
    "DEFAULT_MODEL",
    "MockFailure",
    "MockFunctionCall",
    "MockProvider",
    "MockRule",
    "MockScript",
    "MockSettings",
    "MockSnapshot",
    "load_mock_file",
    "load_script",
    "mock_requested",
    "parse_script",
]

DEFAULT_MODEL = "mock-1"
WILDCARD = "*"
ENV_TEST_MODE = "TEST_MODE"
ENV_SCRIPT = "ELX_MOCK_SCRIPT"
ENV_LATENCY_MS = "ELX_MOCK_LATENCY_MS"
ENV_CALL_LOG = "ELX_MOCK_CALL_LOG"

MockErrorName = Literal[
    "timeout",
    "rate_limited",
    "overloaded",
    "auth",
    "bad_request",
    "unavailable",
    "max_turns_exceeded",
    "tool_not_allowed",
]

_ERRORS: Mapping[str, tuple[type[ProviderError], int | None]] = {
    "timeout": (ProviderTimeout, None),
    "rate_limited": (RateLimited, 429),
    "overloaded": (Overloaded, 529),
    "auth": (AuthError, 401),
    "bad_request": (Rejected, 400),
    "unavailable": (Unavailable, 503),
    "max_turns_exceeded": (MaxTurnsExceeded, None),
    "tool_not_allowed": (ToolNotAllowed, None),
}
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_WORD = re.compile(r"[a-z0-9]+")
_SUMMARY_CHARS = 120
_HEAD_CHARS = 600
_KEY_POINTS = 3
_KEY_POINT_CHARS = 80
_STREAM_CHUNKS = 4


# -- script: parsed once, at the boundary ------------------------------------


class MockFunctionCall(BaseModel):
    """A scripted function call; without ``arguments`` they are made from the function schema."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    arguments: dict[str, Any] | None = None


class MockRule(BaseModel):
    """When ``match`` occurs in the request (and ``step`` fits), answer with this."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    match: str = WILDCARD
    response: str | bool | int | float | dict[str, Any] | list[Any] | None = None
    function_call: MockFunctionCall | None = None
    step: str | None = None

    @model_validator(mode="after")
    def _answers_something(self) -> MockRule:
        if self.response is None and self.function_call is None:
            raise ValueError("a rule needs a 'response' or a 'function_call'")
        return self


class MockFailure(BaseModel):
    """Fail the first ``times`` calls whose request contains ``match`` with ``error``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    match: str = WILDCARD
    error: MockErrorName
    times: int = Field(default=1, ge=0)
    retry_after_s: float | None = Field(default=None, ge=0)
    step: str | None = None


class MockScript(BaseModel):
    """The contents of a mock script file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: tuple[MockRule, ...] = ()
    failures: tuple[MockFailure, ...] = ()


def load_script(path: str | Path) -> list[MockRule]:
    """Read the rules of a YAML mock script; raises ConfigError naming the file and entry."""
    return list(load_mock_file(path).rules)


def load_mock_file(path: str | Path) -> MockScript:
    """Read a whole YAML mock script: its rules and its injected failures."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"mock script {path} does not exist; point {ENV_SCRIPT} at a YAML file "
            "with a 'rules' list"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"mock script {path} cannot be read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"mock script {path}{where} is not valid YAML: {problem}") from None
    return parse_script(data, source=str(path))


def parse_script(data: Any, *, source: str = "<script>") -> MockScript:
    """YAML data as a MockScript: ``{rules: [...], failures: [...]}`` or ``{match: response}``."""
    if data is None:
        return MockScript()
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"mock script {source}: expected a mapping with a 'rules' list "
            f"(or pattern: response pairs), got {type(data).__name__}"
        )
    structured = any(isinstance(data.get(key), list) for key in ("rules", "failures"))
    patterns: list[str] = []
    payload: Any = data
    if not structured:
        patterns = [str(key) for key in data]
        payload = {
            "rules": [
                {"match": pattern, "response": response}
                for pattern, response in zip(patterns, data.values(), strict=True)
            ]
        }
    try:
        return MockScript.model_validate(payload)
    except PydanticValidationError as exc:
        problems = [
            f"  {_entry_name(error['loc'], payload, patterns)}: {error['msg']}"
            for error in exc.errors()
        ]
        count = len(problems)
        raise ConfigError(
            f"mock script {source} has {count} problem{'s' if count != 1 else ''}:\n"
            + "\n".join(problems)
        ) from None


def _entry_name(loc: tuple[int | str, ...], payload: Any, patterns: list[str]) -> str:
    if len(loc) >= 2 and loc[0] in ("rules", "failures") and isinstance(loc[1], int):
        section, index = str(loc[0]), loc[1]
        if patterns:
            name = f"entry {patterns[index]!r}"
        else:
            name = f"{section}[{index}]"
            entry = payload[section][index]
            if isinstance(entry, Mapping) and isinstance(entry.get("match"), str):
                name += f" (match {entry['match']!r})"
        rest = ".".join(str(part) for part in loc[2:] if not str(part).startswith("function-"))
        return f"{name}.{rest}" if rest else name
    return ".".join(str(part) for part in loc) or "top level"


def mock_requested(environ: Mapping[str, str]) -> bool:
    """True when ``TEST_MODE=mock``: every provider call goes to the mock."""
    return environ.get(ENV_TEST_MODE, "").strip().lower() == "mock"


# -- settings ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MockSettings:
    """How the mock behaves: its script, its latency, its injected failures, its clock."""

    script: Sequence[MockRule] = ()
    latency_s: float = 0.0
    failures: Sequence[MockFailure] = ()
    clock: Clock = SYSTEM_CLOCK
    call_log: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "script", tuple(self.script))
        object.__setattr__(self, "failures", tuple(self.failures))
        if not self.latency_s >= 0:
            raise ConfigError(f"mock latency must be zero or more seconds, got {self.latency_s}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str], clock: Clock = SYSTEM_CLOCK) -> MockSettings:
        """Settings from ``ELX_MOCK_SCRIPT`` (a YAML script), ``ELX_MOCK_LATENCY_MS`` and
        ``ELX_MOCK_CALL_LOG`` (a file that gets one JSON line per call, across processes)."""
        script = MockScript()
        path = environ.get(ENV_SCRIPT, "").strip()
        if path:
            script = load_mock_file(path)
        raw = environ.get(ENV_LATENCY_MS, "").strip()
        latency_ms = 0.0
        if raw:
            try:
                latency_ms = float(raw)
            except ValueError:
                latency_ms = -1.0
            if not latency_ms >= 0:
                raise ConfigError(
                    f"{ENV_LATENCY_MS} must be a number of milliseconds, zero or more; got {raw!r}"
                )
        return cls(
            script=script.rules,
            latency_s=latency_ms / 1000.0,
            failures=script.failures,
            clock=clock,
            call_log=Path(log) if (log := environ.get(ENV_CALL_LOG, "").strip()) else None,
        )


@dataclass(frozen=True, slots=True)
class MockSnapshot:
    """Calls seen so far: in total, per step name (None for calls without one), and failed."""

    total_calls: int
    calls_by_step: Mapping[str | None, int] = field(default_factory=dict)
    failures_injected: int = 0


# -- the provider ------------------------------------------------------------


class _Rule:
    """A MockRule prepared for fast matching: JSON encoded once, never deep-copied."""

    __slots__ = ("arguments_json", "data_json", "function", "pattern", "step", "structured", "text")

    def __init__(self, rule: MockRule) -> None:
        self.pattern = "" if rule.match == WILDCARD else rule.match
        self.step = rule.step
        response = rule.response
        self.data_json: str | None = None
        self.structured = response is not None and not isinstance(response, str)
        if response is None:
            self.text = ""
        elif isinstance(response, str):
            self.text = response
            try:
                json.loads(response)
            except ValueError:
                pass
            else:
                self.data_json = response
        else:
            self.text = json.dumps(response, ensure_ascii=False)
            self.data_json = self.text
        call = rule.function_call
        self.function = call.name if call is not None else None
        self.arguments_json = (
            json.dumps(call.arguments) if call is not None and call.arguments is not None else None
        )


class MockProvider:
    """A deterministic provider: scripted answers, echo summaries, schema-shaped JSON, faults."""

    def __init__(self, settings: MockSettings | None = None, *, name: str = "mock") -> None:
        self.name = name
        self.settings = settings if settings is not None else MockSettings()
        rules = [_Rule(rule) for rule in self.settings.script]
        # Longest pattern first, then step-specific before generic; sorted() is stable,
        # so script order breaks the remaining ties.
        self._rules = tuple(sorted(rules, key=lambda rule: (-len(rule.pattern), rule.step is None)))
        self._failures = tuple(self.settings.failures)
        self._failed = [0] * len(self._failures)
        self._lock = threading.Lock()
        self._total = 0
        self._by_step: dict[str | None, int] = {}
        self._injected = 0

    # Provider protocol

    def complete(self, request: LLMRequest) -> LLMResponse:
        clock = self.settings.clock
        started = clock.now()
        haystack = _haystack(request)
        with self._lock:
            self._total += 1
            self._by_step[request.step] = self._by_step.get(request.step, 0) + 1
            fault = self._take_fault(haystack, request.step) if self._failures else None
            if self.settings.call_log is not None:
                _append_call(self.settings.call_log, request)
        latency = self.settings.latency_s
        if latency:
            limit = request.timeout_s
            if limit is not None and latency > limit:
                clock.sleep(limit)
                raise ProviderTimeout(
                    f"mock answer takes {latency:.3f} s, over the {limit:.3f} s timeout",
                    provider=self.name,
                )
            if request.control is not None and clock is SYSTEM_CLOCK:
                if request.control.wait(latency):  # cancelled: cut the "call" short
                    raise Unavailable(f"{self.name} provider: the call was cut", provider=self.name)
            else:
                clock.sleep(latency)
        if fault is not None:
            raise fault
        text, data, calls = self._answer(request, haystack)
        output_chars = len(text)
        for call in calls:
            output_chars += len(call.name) + len(json.dumps(call.arguments))
        return LLMResponse(
            text=text,
            provider=self.name,
            model=request.model or DEFAULT_MODEL,
            data=data,
            function_calls=calls,
            stop_reason="tool_use" if calls else "end_turn",
            usage=Usage(
                input_tokens=_tokens(_input_chars(request)),
                output_tokens=_tokens(output_chars),
            ),
            cost_usd=0.0,
            latency_s=clock.now() - started,
        )

    def stream(self, request: LLMRequest) -> Iterator[str]:
        """Yield the answer's text in a few chunks that join back to ``complete``'s text."""
        yield from _chunks(self.complete(request).text, _STREAM_CHUNKS)

    # Observation

    def call_count(self, step: str | None = None) -> int:
        """Calls so far, failed ones included: all of them, or those made for ``step``."""
        with self._lock:
            return self._total if step is None else self._by_step.get(step, 0)

    def snapshot(self) -> MockSnapshot:
        with self._lock:
            return MockSnapshot(
                total_calls=self._total,
                calls_by_step=MappingProxyType(dict(self._by_step)),
                failures_injected=self._injected,
            )

    # Internals

    def _take_fault(self, haystack: str, step: str | None) -> ProviderError | None:
        """Called with the lock held: count down the first failure that applies."""
        for index, failure in enumerate(self._failures):
            if self._failed[index] >= failure.times:
                continue
            if failure.step is not None and failure.step != step:
                continue
            if failure.match != WILDCARD and failure.match not in haystack:
                continue
            self._failed[index] += 1
            self._injected += 1
            return self._error(failure, self._failed[index])
        return None

    def _error(self, failure: MockFailure, nth: int) -> ProviderError:
        error_type, status = _ERRORS[failure.error]
        message = (
            f"{self.name} provider: injected {failure.error} failure {nth} of {failure.times} "
            f"(match {failure.match!r}); later calls succeed"
        )
        if failure.error == "max_turns_exceeded":
            return MaxTurnsExceeded(message, max_turns=1, provider=self.name)
        if failure.error == "tool_not_allowed":
            return ToolNotAllowed(message, tool="Bash", provider=self.name)
        if error_type is RateLimited:
            return RateLimited(
                message, provider=self.name, status=status, retry_after_s=failure.retry_after_s
            )
        return error_type(message, provider=self.name, status=status)

    def _answer(
        self, request: LLMRequest, haystack: str
    ) -> tuple[str, Any, tuple[FunctionCall, ...]]:
        for rule in self._rules:
            if rule.pattern in haystack and (rule.step is None or rule.step == request.step):
                return self._scripted(rule, request)
        if request.functions:
            spec = _best_function(request.functions, request.prompt)
            return "", None, (FunctionCall(spec.name, self._arguments(spec, request)),)
        if request.wants_json:
            if request.schema is not None:
                text = self._instance_text(request.schema, request)
                return text, json.loads(text), ()
            data = _default_json(request.prompt)
            return json.dumps(data, ensure_ascii=False), data, ()
        return _summary(request.prompt), None, ()

    def _scripted(
        self, rule: _Rule, request: LLMRequest
    ) -> tuple[str, Any, tuple[FunctionCall, ...]]:
        data = None
        if rule.data_json is not None and (rule.structured or request.wants_json):
            data = json.loads(rule.data_json)
        if rule.function is None:
            return rule.text, data, ()
        if rule.arguments_json is not None:
            arguments = json.loads(rule.arguments_json)
        else:
            spec = next((f for f in request.functions if f.name == rule.function), None)
            arguments = self._arguments(spec, request) if spec is not None else {}
        return rule.text, data, (FunctionCall(rule.function, arguments),)

    def _arguments(self, spec: FunctionSpec, request: LLMRequest) -> dict[str, Any]:
        if not spec.parameters:
            return {}
        arguments = json.loads(self._instance_text(spec.parameters, request))
        if not isinstance(arguments, dict):
            raise Rejected(
                f"{self.name} provider: parameters of function {spec.name!r} must describe "
                f"an object, got a schema for {type(arguments).__name__}",
                provider=self.name,
                status=400,
            )
        return arguments

    def _instance_text(self, schema: Mapping[str, Any], request: LLMRequest) -> str:
        """JSON text of a value for ``schema``; parse it again for a fresh, unshared copy."""
        try:
            schema_json = json.dumps(schema, sort_keys=True, default=repr)
            return _instance_json(schema_json, _digest(request.prompt))
        except ValueError as exc:
            raise Rejected(
                f"{self.name} provider cannot produce a value for this schema: {exc}",
                provider=self.name,
                status=400,
            ) from None


@functools.lru_cache(maxsize=512)
def _instance_json(schema_json: str, seed: str) -> str:
    return json.dumps(instance_for(json.loads(schema_json), seed=seed), ensure_ascii=False)


def _digest(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()[:8]


def _haystack(request: LLMRequest) -> str:
    if request.system is None and not request.history:
        return request.prompt
    parts = [request.prompt, request.system or ""]
    parts += [message.content for message in request.history]
    # A NUL separator keeps a pattern from matching across two texts.
    return "\x00".join(parts)


def _input_chars(request: LLMRequest) -> int:
    chars = len(request.prompt) + len(request.system or "")
    for message in request.history:
        chars += len(message.content)
    return chars


def _tokens(chars: int) -> int:
    return (chars + 3) // 4


def _first_sentence(text: str) -> str:
    end = _SENTENCE_END.search(text)
    return text[: end.end()] if end is not None else text


def _summary(prompt: str) -> str:
    words = len(prompt.split())
    unit = "word" if words == 1 else "words"
    if not words:
        return "[mock] empty prompt (0 words)"
    head = _first_sentence(" ".join(prompt[:_HEAD_CHARS].split()))
    if len(head) > _SUMMARY_CHARS:
        head = head[:_SUMMARY_CHARS].rstrip()
    # A cut inside a word or sentence always leaves fewer (whole) words than the prompt has.
    ellipsis = "…" if len(head.split()) < words else ""
    return f"[mock] {head}{ellipsis} ({words} {unit})"


def _default_json(prompt: str) -> dict[str, Any]:
    points: list[str] = []
    rest = " ".join(prompt[: _HEAD_CHARS * 2].split())
    while rest and len(points) < _KEY_POINTS:
        sentence = _first_sentence(rest)
        rest = rest[len(sentence) :].lstrip()
        if len(sentence) > _KEY_POINT_CHARS:
            sentence = sentence[:_KEY_POINT_CHARS].rstrip() + "…"
        points.append(sentence)
    return {"summary": _summary(prompt), "key_points": points, "word_count": len(prompt.split())}


def _best_function(functions: Sequence[FunctionSpec], prompt: str) -> FunctionSpec:
    """The function named in the prompt, else the one whose description shares most words."""
    lowered = prompt.lower()
    words = set(_WORD.findall(lowered))
    best, best_score = functions[0], 0
    for spec in functions:
        name = spec.name.lower()
        if name in lowered or name.replace("_", " ") in lowered:
            score = 10_000 + len(name)
        else:
            described = {word for word in _WORD.findall(spec.description.lower()) if len(word) > 3}
            score = len(described & words)
        if score > best_score:
            best, best_score = spec, score
    return best


def _chunks(text: str, parts: int) -> Iterator[str]:
    """Split at spaces into about ``parts`` pieces; joining them gives ``text`` back."""
    size = max(1, -(-len(text) // parts))
    start = 0
    while start < len(text):
        end = start + size
        if end < len(text):
            space = text.find(" ", end)
            end = len(text) if space == -1 else space + 1
        yield text[start:end]
        start = end


def _append_call(path: Path, request: LLMRequest) -> None:
    """One JSON line per call, written with O_APPEND so several processes can share the file."""
    line = json.dumps({"step": request.step, "prompt": request.prompt}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
