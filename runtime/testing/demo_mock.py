"""A provider that knows nothing but what the demonstrations in its prompt teach it.

The optimizer's test subject. The task: give the *code* of a key
``family:word`` (``metal:silver``). Every family has a secret rule, one of
``RULES``, that makes the code from the word (``metal`` might be ``upper``:
``SILVER``; ``river`` might be ``reverse``: ``mekong`` → ``gnokem``). The
provider knows no family's rule. To answer it reads the demonstrations in
the request, in any of three shapes:

- DSPy's ChatAdapter turns: a user turn ending in a key
  (``[[ ## key ## ]]\\nmetal:copper``) followed by an assistant turn
  ``[[ ## answer ## ]]\\nCOPPER``;
- DSPy's JSONAdapter turns: the same user turn, then ``{"answer": "COPPER"}``;
- the runtime's promoted examples (``runtime.pipeline.prompts.with_optimized``):
  ``Input: key: metal:copper`` then ``Answer: COPPER``.

If a demonstration has a key of the query's family, the provider infers the
family's rule — the first rule in ``RULES`` that turns the demo's word into
the demo's answer — and applies it to the query's word. Otherwise it answers
``UNKNOWN`` (always wrong). A prompt without demos therefore scores 0 on
every key, and a prompt's score is exactly the share of keys whose family
its demos cover: an optimizer has to pick useful demos to raise it, and the
result never depends on chance.

The query is the last ``family:word`` in the last user turn. The answer comes
in the shape the request asks for: DSPy's field markers
(``[[ ## answer ## ]]\\n...\\n\\n[[ ## completed ## ]]``) when the request uses
them, a JSON object ``{"answer": ...}`` when it wants JSON, else the bare code.
Calls are counted per step, like ``MockProvider``'s.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType

from runtime.providers.base import LLMRequest, LLMResponse, Usage

__all__ = ["RULES", "UNKNOWN_ANSWER", "DemoMockProvider", "code_for", "rule_for"]

UNKNOWN_ANSWER = "UNKNOWN"

RULES: Mapping[str, Callable[[str], str]] = MappingProxyType(
    {
        "upper": str.upper,
        "reverse": lambda word: word[::-1],
        "prefix": lambda word: word[:3].upper(),
        "double": lambda word: word + word,
        "length": lambda word: str(len(word)),
    }
)

_KEY = r"[a-z]+:[a-z]+"
_KEY_TOKEN = re.compile(rf"(?<![\w:])({_KEY})(?![\w:])")
_MARKER = re.compile(r"\[\[ ## (\w+) ## \]\]")
_ASKED_FIELD = re.compile(r"starting with the field `\[\[ ## (\w+) ## \]\]`")


def code_for(key: str, rule: str) -> str:
    """The code of ``key`` (``family:word``) under ``rule``: how a dataset is made."""
    return RULES[rule](key.partition(":")[2])


def rule_for(word: str, answer: str) -> str | None:
    """The first rule that turns ``word`` into ``answer``: what one demonstration teaches."""
    return next((name for name, rule in RULES.items() if rule(word) == answer), None)


class DemoMockProvider:
    """Answers a key's code only by a rule learned from a same-family demonstration."""

    def __init__(self, *, name: str = "mock", output_field: str = "answer") -> None:
        self.name = name
        self.output_field = output_field
        marker = re.escape(f"[[ ## {output_field} ## ]]")
        field = re.escape(json.dumps(output_field))
        # A key, then (only whitespace between) an answer in one of the three shapes.
        self._demo = re.compile(
            rf"(?<![\w:])(?P<key>{_KEY})\s*"
            rf"(?:(?:{marker}|Answer:)[ \t]*\n?[ \t]*(?P<line>[^\n]+)"
            rf'|\{{\s*{field}\s*:\s*"(?P<json>[^"\n]*)")'
        )
        self._lock = threading.Lock()
        self._total = 0
        self._by_step: dict[str | None, int] = {}

    # Provider protocol

    def complete(self, request: LLMRequest) -> LLMResponse:
        with self._lock:
            self._total += 1
            self._by_step[request.step] = self._by_step.get(request.step, 0) + 1
        answer = self.answer(request)
        text = self._shape(request, answer)
        chars = len(request.prompt) + len(request.system or "")
        chars += sum(len(message.content) for message in request.history)
        return LLMResponse(
            text=text,
            provider=self.name,
            model=request.model or "demo-mock-1",
            data={self.output_field: answer} if request.wants_json else None,
            usage=Usage(input_tokens=(chars + 3) // 4, output_tokens=(len(text) + 3) // 4),
        )

    def stream(self, request: LLMRequest) -> Iterator[str]:
        yield self.complete(request).text

    # Observation

    def call_count(self, step: str | None = None) -> int:
        """Calls so far: all of them, or those made for ``step``."""
        with self._lock:
            return self._total if step is None else self._by_step.get(step, 0)

    # The "model"

    def answer(self, request: LLMRequest) -> str:
        """The code for the request's key, or ``UNKNOWN_ANSWER`` without a relevant demo."""
        keys = _KEY_TOKEN.findall(request.prompt)
        if not keys:
            return UNKNOWN_ANSWER
        family, _, word = keys[-1].partition(":")
        for demo_key, demo_answer in self.demonstrations(request):
            demo_family, _, demo_word = demo_key.partition(":")
            if demo_family != family:
                continue
            rule = rule_for(demo_word, demo_answer)
            if rule is not None:
                return RULES[rule](word)
        return UNKNOWN_ANSWER

    def demonstrations(self, request: LLMRequest) -> list[tuple[str, str]]:
        """Every (key, answer) pair shown in the request, in order."""
        history = [message.content for message in request.history]
        transcript = "\n".join([request.system or "", *history, request.prompt])
        return [
            (match["key"], (match["line"] or match["json"] or "").strip())
            for match in self._demo.finditer(transcript)
        ]

    def _shape(self, request: LLMRequest, answer: str) -> str:
        if request.wants_json:
            return json.dumps({self.output_field: answer})
        if _MARKER.search(request.prompt) or _MARKER.search(request.system or ""):
            asked = _ASKED_FIELD.search(request.prompt)
            field = asked.group(1) if asked else self.output_field
            return f"[[ ## {field} ## ]]\n{answer}\n\n[[ ## completed ## ]]"
        return answer
