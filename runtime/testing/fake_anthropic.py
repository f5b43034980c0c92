"""A local fake of the Anthropic Messages API, for testing against the real SDK.

``FakeAnthropic`` serves ``POST /v1/messages`` on ``127.0.0.1`` (a free port)
the way the real API does: a JSON ``message`` object, or with ``"stream":
true`` the server-sent events ``message_start``, ``content_block_start``,
``content_block_delta`` (``text_delta`` / ``input_json_delta``),
``content_block_stop``, ``message_delta`` and ``message_stop``, with a
``ping`` after the first block starts.

Requests must carry a key, as ``x-api-key: <key>`` or ``Authorization:
Bearer <key>`` (the SDK sends the latter since 2.x); without one the fake
answers 401 ``authentication_error``. Pass ``api_keys`` to accept only those.

Answers come from a script, in order; when it runs out, ``default`` answers.
Script entries are ``AnthropicReply`` (text, tool_use blocks, stop reason,
usage) or a fault from ``runtime.testing.fake_http.Reply`` (the methods below
build the usual ones: ``rate_limited``, ``overloaded``, ``server_error``,
``malformed``, ``drop``, ``slow``). Every request is recorded.

Example::

    from anthropic import Anthropic
    from runtime.testing.fake_anthropic import AnthropicReply, FakeAnthropic, ToolUse

    with FakeAnthropic() as fake:
        fake.script(
            AnthropicReply(tool_uses=(ToolUse("read_file", {"path": "a.txt"}),)),
            fake.rate_limited(retry_after_s=2),
            AnthropicReply(text="done"),
        )
        client = Anthropic(api_key="test-key", base_url=fake.base_url, max_retries=0)
        ...
        assert fake.requests[0].json()["model"] == "claude-haiku-4-5"
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from runtime.testing.fake_api import Dialect, FakeAPI, pieces
from runtime.testing.fake_http import RecordedRequest, Reply

__all__ = ["AnthropicReply", "FakeAnthropic", "ToolUse", "error_reply"]

_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class ToolUse:
    """A ``tool_use`` content block the fake model emits."""

    name: str
    input: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class AnthropicReply:
    """One scripted assistant message.

    ``stop_reason`` defaults to ``tool_use`` when there are tool uses, else
    ``end_turn``. ``stream_error`` (an error type such as ``overloaded_error``)
    makes a streamed answer end with an ``error`` event after its first delta.
    ``delay_s`` holds the answer back that long (``close`` cuts the wait short).
    """

    text: str = ""
    tool_uses: tuple[ToolUse, ...] = ()
    stop_reason: str | None = None
    input_tokens: int = 10
    output_tokens: int = 5
    model: str | None = None
    stream_error: str | None = None
    delay_s: float = 0.0

    def blocks(self) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        if self.text:
            content.append({"type": "text", "text": self.text})
        for use in self.tool_uses:
            content.append(
                {
                    "type": "tool_use",
                    "id": use.id or f"toolu_fake{next(_ids):06d}",
                    "name": use.name,
                    "input": dict(use.input),
                }
            )
        return content

    def final_stop_reason(self) -> str:
        if self.stop_reason is not None:
            return self.stop_reason
        return "tool_use" if self.tool_uses else "end_turn"


def error_reply(status: int, message: str, *, headers: Mapping[str, str] | None = None) -> Reply:
    """An error response shaped like the API's: ``{"type": "error", "error": {...}}``."""
    error_type = _ERROR_TYPES.get(status, "api_error")
    payload = {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": f"req_fake{next(_ids):06d}",
    }
    return Reply.json(status, payload, headers=headers)


class FakeAnthropic(FakeAPI[AnthropicReply]):
    """The fake Messages API server; use it as a context manager."""

    dialect = Dialect(
        error_reply=error_reply,
        key_header="x-api-key",
        missing_key="x-api-key header or Authorization: Bearer token is required",
        wrong_key="invalid x-api-key",
        not_json="request body is not valid JSON",
        not_object="request body must be a JSON object",
        rate_limited="Number of request tokens has exceeded your rate limit.",
        server_error="Internal server error",
    )

    def __init__(
        self,
        *,
        api_keys: tuple[str, ...] | None = None,
        default: AnthropicReply | Reply | None = None,
    ) -> None:
        greeting = AnthropicReply(text="Hello from the fake API.")
        super().__init__(
            name="fake-anthropic",
            answer_type=AnthropicReply,
            default=greeting if default is None else default,
            api_keys=api_keys,
        )
        self.server.route("POST", "/v1/messages", self._respond)

    def reply(self, text: str = "", *tool_uses: ToolUse, **fields: Any) -> None:
        """Queue one answer; shorthand for ``script(AnthropicReply(...))``."""
        self.script(AnthropicReply(text=text, tool_uses=tool_uses, **fields))

    @staticmethod
    def overloaded() -> Reply:
        return error_reply(529, "Overloaded")

    @staticmethod
    def slow(seconds: float, reply: AnthropicReply | None = None) -> AnthropicReply:
        """An answer (JSON or streamed) that starts ``seconds`` later, or when the fake stops."""
        answer = reply if reply is not None else AnthropicReply(text="slow answer")
        return replace(answer, delay_s=seconds)

    def _refusal(self, body: dict[str, Any]) -> str | None:
        missing = [name for name in ("model", "max_tokens", "messages") if name not in body]
        return f"{', '.join(missing)}: Field required" if missing else None

    def _render(
        self, request: RecordedRequest, body: dict[str, Any], answer: AnthropicReply
    ) -> Reply:
        model = answer.model or str(body["model"])
        if body.get("stream"):
            return Reply.sse(_stream_events(answer, model))
        return Reply.json(200, _message(answer, model, answer.blocks()))


def _message(reply: AnthropicReply, model: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": f"msg_fake{next(_ids):06d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reply.final_stop_reason(),
        "stop_sequence": None,
        "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
    }


def _stream_events(reply: AnthropicReply, model: str) -> Iterator[tuple[str, Any]]:
    start = _message(reply, model, [])
    start["stop_reason"] = None
    start["usage"] = {"input_tokens": reply.input_tokens, "output_tokens": 1}
    yield "message_start", {"type": "message_start", "message": start}
    for index, block in enumerate(reply.blocks()):
        if block["type"] == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in pieces(block["text"])]
        else:
            opening = {**block, "input": {}}
            arguments = json.dumps(block["input"])
            middle = len(arguments) // 2
            deltas = [
                {"type": "input_json_delta", "partial_json": part}
                for part in (arguments[:middle], arguments[middle:])
            ]
        yield (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": opening},
        )
        if index == 0:
            yield "ping", {"type": "ping"}
        for number, delta in enumerate(deltas):
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
            if reply.stream_error is not None and number == 0:
                yield (
                    "error",
                    {"type": "error", "error": {"type": reply.stream_error, "message": "fake"}},
                )
                return
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": reply.final_stop_reason(), "stop_sequence": None},
            "usage": {"output_tokens": reply.output_tokens},
        },
    )
    yield "message_stop", {"type": "message_stop"}
