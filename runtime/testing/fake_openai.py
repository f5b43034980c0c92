"""A local fake of an OpenAI-compatible Chat Completions API, for testing against the real SDK.

``FakeOpenAI`` serves ``POST /v1/chat/completions`` on ``127.0.0.1`` (a free
port) the way OpenAI, vLLM, Ollama and llama.cpp do: a ``chat.completion``
object (``choices[0].message`` with ``content`` and ``tool_calls``,
``finish_reason``, ``usage``), or with ``"stream": true`` server-sent
``data:`` events carrying ``chat.completion.chunk`` objects (content deltas,
tool-call deltas with the arguments split in two, a last chunk with the
finish reason, a usage chunk when ``stream_options.include_usage`` asks for
it) and ``data: [DONE]``. ``base_url`` ends in ``/v1``, as
``OPENAI_BASE_URL`` does.

Requests must carry a key, as ``Authorization: Bearer <key>`` (what the SDK
sends) or ``api-key: <key>`` (Azure's style); without one the fake answers
401 ``invalid_api_key``. Pass ``api_keys`` to accept only those. Local
servers accept any key: the provider sends ``not-needed`` when none is set.

Answers come from a script, in order; when it runs out, ``default`` answers.
Script entries are ``OpenAIReply`` or a fault from
``runtime.testing.fake_http.Reply`` (the methods below build the usual ones:
``rate_limited``, ``unavailable``, ``server_error``, ``error``,
``malformed``, ``drop``, ``slow``). Every request is recorded.

Example::

    from openai import OpenAI
    from runtime.testing.fake_openai import FakeOpenAI, OpenAIReply, ToolCall

    with FakeOpenAI() as fake:
        fake.script(
            OpenAIReply(tool_calls=(ToolCall("get_weather", {"city": "Paris"}),)),
            fake.rate_limited(retry_after_s=2),
            OpenAIReply(text="done"),
        )
        client = OpenAI(api_key="not-needed", base_url=fake.base_url, max_retries=0)
        ...
        assert fake.requests[0].json()["model"] == "llama3.2"
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from runtime.testing.fake_api import Dialect, FakeAPI, pieces
from runtime.testing.fake_http import RecordedRequest, Reply

__all__ = ["FakeOpenAI", "OpenAIReply", "ToolCall", "error_reply"]

_ERROR_TYPES: Mapping[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    409: ("conflict_error", None),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "timeout"),
}
_CREATED = 1_700_000_000
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function ``tool_call`` the fake model emits; ``arguments`` are sent as a JSON string.

    A ``str`` ``arguments`` is sent as it is (to fake a model writing broken JSON).
    """

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def wire(self) -> dict[str, Any]:
        arguments = self.arguments
        return {
            "id": self.id or f"call_fake{next(_ids):06d}",
            "type": "function",
            "function": {
                "name": self.name,
                "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
            },
        }


@dataclass(frozen=True, slots=True)
class OpenAIReply:
    """One scripted assistant message.

    ``finish_reason`` defaults to ``tool_calls`` when there are tool calls,
    else ``stop``. ``stream_error`` (an error type such as ``server_error``)
    makes a streamed answer end with an ``{"error": ...}`` event after its
    first delta. ``delay_s`` holds the answer back that long (``close`` cuts
    the wait short). ``usage=False`` leaves ``usage`` out, as some local
    servers do.
    """

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    prompt_tokens: int = 10
    completion_tokens: int = 5
    model: str | None = None
    stream_error: str | None = None
    delay_s: float = 0.0
    usage: bool = True

    def final_finish_reason(self) -> str:
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"

    def usage_object(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def error_reply(status: int, message: str, *, headers: Mapping[str, str] | None = None) -> Reply:
    """An error shaped like OpenAI's: ``{"error": {"message", "type", "param", "code"}}``."""
    error_type, code = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "", None))
    payload = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return Reply.json(status, payload, headers=headers)


class FakeOpenAI(FakeAPI[OpenAIReply]):
    """The fake Chat Completions server; use it as a context manager."""

    dialect = Dialect(
        error_reply=error_reply,
        key_header="api-key",
        missing_key="You didn't provide an API key: use Authorization: Bearer <key> or api-key.",
        wrong_key="Incorrect API key provided.",
        not_json="We could not parse the JSON body of your request.",
        not_object="The request body must be a JSON object.",
        rate_limited="Rate limit reached for requests.",
        server_error="The server had an error while processing your request.",
    )

    def __init__(
        self,
        *,
        api_keys: tuple[str, ...] | None = None,
        default: OpenAIReply | Reply | None = None,
    ) -> None:
        greeting = OpenAIReply(text="Hello from the fake API.")
        super().__init__(
            name="fake-openai",
            answer_type=OpenAIReply,
            default=greeting if default is None else default,
            api_keys=api_keys,
        )
        self.server.route("POST", "/v1/chat/completions", self._respond)

    @property
    def base_url(self) -> str:
        """The server's URL with ``/v1``, the form ``OPENAI_BASE_URL`` takes."""
        return self.server.base_url + "/v1"

    def reply(self, text: str | None = None, *tool_calls: ToolCall, **fields: Any) -> None:
        """Queue one answer; shorthand for ``script(OpenAIReply(...))``."""
        self.script(OpenAIReply(text=text, tool_calls=tool_calls, **fields))

    @staticmethod
    def unavailable() -> Reply:
        return error_reply(503, "The server is overloaded or not ready yet.")

    @staticmethod
    def slow(seconds: float, reply: OpenAIReply | None = None) -> OpenAIReply:
        """An answer (JSON or streamed) that starts ``seconds`` later, or when the fake stops."""
        answer = reply if reply is not None else OpenAIReply(text="slow answer")
        return replace(answer, delay_s=seconds)

    def _refusal(self, body: dict[str, Any]) -> str | None:
        missing = [name for name in ("model", "messages") if not body.get(name)]
        return f"Missing required parameter: '{missing[0]}'." if missing else None

    def _render(self, request: RecordedRequest, body: dict[str, Any], answer: OpenAIReply) -> Reply:
        model = answer.model or str(body["model"])
        if not body.get("stream"):
            return Reply.json(200, _completion(answer, model))
        options = body.get("stream_options")
        with_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        events: list[tuple[str | None, Any]] = [
            (None, chunk) for chunk in _chunks(answer, model, with_usage=with_usage)
        ]
        if answer.stream_error is None:
            events.append((None, "[DONE]"))
        return Reply.sse(events)


def _completion(reply: OpenAIReply, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.tool_calls:
        message["tool_calls"] = [call.wire() for call in reply.tool_calls]
    completion: dict[str, Any] = {
        "id": f"chatcmpl-fake{next(_ids):06d}",
        "object": "chat.completion",
        "created": _CREATED,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": reply.final_finish_reason(),
            }
        ],
    }
    if reply.usage:
        completion["usage"] = reply.usage_object()
    return completion


def _chunks(reply: OpenAIReply, model: str, *, with_usage: bool) -> Iterator[dict[str, Any]]:
    ident = f"chatcmpl-fake{next(_ids):06d}"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": _CREATED,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    yield chunk({"role": "assistant", "content": ""})
    for number, piece in enumerate(pieces(reply.text) if reply.text else ()):
        yield chunk({"content": piece})
        if reply.stream_error is not None and number == 0:
            yield {"error": {"message": "fake stream failure", "type": reply.stream_error}}
            return
    for index, call in enumerate(reply.tool_calls):
        wire = call.wire()
        arguments = wire["function"]["arguments"]
        middle = len(arguments) // 2
        opening = {**wire, "function": {"name": call.name, "arguments": arguments[:middle]}}
        yield chunk({"tool_calls": [{"index": index, **opening}]})
        yield chunk(
            {"tool_calls": [{"index": index, "function": {"arguments": arguments[middle:]}}]}
        )
    yield chunk({}, reply.final_finish_reason())
    if with_usage and reply.usage:
        yield {**chunk({}), "choices": [], "usage": reply.usage_object()}
