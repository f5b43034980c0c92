"""A local fake of the Gemini API (``generateContent``), for testing against the real SDK.

``FakeGemini`` serves, on ``127.0.0.1`` (a free port)::

    POST /v1beta/models/{model}:generateContent          one JSON response
    POST /v1beta/models/{model}:streamGenerateContent    ?alt=sse: server-sent events,
                                                         else one JSON array of chunks

(``/v1/...`` is served the same way.) A response carries ``candidates``
(``content.parts`` with ``text`` and ``functionCall`` parts, ``finishReason``),
``usageMetadata`` (``promptTokenCount``, ``candidatesTokenCount``,
``totalTokenCount``) and ``modelVersion``. A streamed answer splits its text
over several chunks; function calls come whole, in the last chunk, with the
finish reason and usage.

Requests must carry a key: the ``x-goog-api-key`` header (what google-genai
sends), a ``?key=`` query parameter, or ``Authorization: Bearer``. Without
one the fake answers 401 ``UNAUTHENTICATED``; with ``api_keys`` set, a key not
in it gets 403 ``PERMISSION_DENIED``.

Answers come from a script, in order; when it runs out, ``default`` answers.
Script entries are ``GeminiReply`` or a fault from
``runtime.testing.fake_http.Reply``; the methods below build the usual ones
(``rate_limited`` with ``retry-after`` and a ``RetryInfo`` detail,
``unavailable``, ``server_error``, ``error``, ``malformed``, ``drop``,
``slow``). Every request is recorded; ``requests[i].json()`` is the body the
SDK sent (``contents``, ``systemInstruction``, ``generationConfig``,
``tools``).

Example::

    from google import genai
    from runtime.testing.fake_gemini import FakeGemini, FunctionCallPart, GeminiReply

    with FakeGemini() as fake:
        fake.script(
            GeminiReply(function_calls=(FunctionCallPart("get_weather", {"city": "Paris"}),)),
            fake.rate_limited(retry_after_s=2),
            GeminiReply(text="done"),
        )
        client = genai.Client(
            api_key="test-key",
            http_options={"base_url": fake.base_url, "api_version": "v1beta"},
        )
        ...
        assert fake.requests[0].path.startswith("/v1beta/models/gemini-2.5-flash:")
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from runtime.testing.fake_api import Dialect, FakeAPI, pieces, query
from runtime.testing.fake_http import RecordedRequest, Reply

__all__ = ["FakeGemini", "FunctionCallPart", "GeminiReply", "error_reply"]

_STATUS_NAMES: Mapping[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_PATH = r"/v1(?:beta)?/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)"
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class FunctionCallPart:
    """A ``functionCall`` part the fake model emits."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GeminiReply:
    """One scripted model answer.

    ``stream_error`` (an HTTP status such as 503) makes a streamed answer end
    with an ``{"error": ...}`` chunk after its first piece of text, as the API
    does when it fails mid-stream. ``delay_s`` holds the answer back that long
    (``close`` cuts the wait short).
    """

    text: str = ""
    function_calls: tuple[FunctionCallPart, ...] = ()
    finish_reason: str = "STOP"
    prompt_tokens: int = 10
    candidates_tokens: int = 5
    model_version: str | None = None
    stream_error: int | None = None
    delay_s: float = 0.0

    def parts(self) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        if self.text:
            parts.append({"text": self.text})
        parts += [
            {"functionCall": {"name": call.name, "args": dict(call.args)}}
            for call in self.function_calls
        ]
        return parts


def error_reply(
    status: int,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> Reply:
    """An error shaped like Google's: ``{"error": {"code", "message", "status"}}``."""
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": _STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if details:
        error["details"] = details
    return Reply.json(status, {"error": error}, headers=headers)


class FakeGemini(FakeAPI[GeminiReply]):
    """The fake Gemini API server; use it as a context manager."""

    dialect = Dialect(
        error_reply=error_reply,
        key_header="x-goog-api-key",
        key_query="key",
        missing_key="Method doesn't allow unregistered callers. Please use an API key: the "
        "x-goog-api-key header, the key query parameter or Authorization: Bearer.",
        wrong_key_status=403,
        wrong_key="The caller does not have permission (API key not valid).",
        not_json="Invalid JSON payload received.",
        not_object="Invalid JSON payload: expected an object.",
        rate_limited="Resource has been exhausted (e.g. check quota).",
        server_error="An internal error has occurred.",
    )

    def __init__(
        self,
        *,
        api_keys: tuple[str, ...] | None = None,
        default: GeminiReply | Reply | None = None,
    ) -> None:
        greeting = GeminiReply(text="Hello from the fake Gemini.")
        super().__init__(
            name="fake-gemini",
            answer_type=GeminiReply,
            default=greeting if default is None else default,
            api_keys=api_keys,
        )
        self.server.route_pattern("POST", _PATH, self._respond)

    def reply(self, text: str = "", *function_calls: FunctionCallPart, **fields: Any) -> None:
        """Queue one answer; shorthand for ``script(GeminiReply(...))``."""
        self.script(GeminiReply(text=text, function_calls=function_calls, **fields))

    @classmethod
    def rate_limited(cls, retry_after_s: float | None = 1.0) -> Reply:
        """429 ``RESOURCE_EXHAUSTED`` with ``retry-after`` and a ``RetryInfo`` detail."""
        if retry_after_s is None:
            return error_reply(429, cls.dialect.rate_limited)
        return error_reply(
            429,
            cls.dialect.rate_limited,
            headers={"retry-after": f"{retry_after_s:g}"},
            details=[
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{retry_after_s:g}s",
                }
            ],
        )

    @staticmethod
    def unavailable() -> Reply:
        return error_reply(503, "The model is overloaded. Please try again later.")

    @staticmethod
    def slow(seconds: float, reply: GeminiReply | None = None) -> GeminiReply:
        """An answer (JSON or streamed) that starts ``seconds`` later, or when the fake stops."""
        answer = reply if reply is not None else GeminiReply(text="slow answer")
        return replace(answer, delay_s=seconds)

    def _refusal(self, body: dict[str, Any]) -> str | None:
        if not body.get("contents"):
            return "* GenerateContentRequest.contents: contents is not specified"
        return None

    def _render(self, request: RecordedRequest, body: dict[str, Any], answer: GeminiReply) -> Reply:
        model_name, _, method = urlsplit(request.path).path.rsplit("/", 1)[-1].partition(":")
        model = answer.model_version or model_name
        if method != "streamGenerateContent":
            return Reply.json(200, _response(answer, model, answer.parts(), answer.finish_reason))
        chunks = list(_chunks(answer, model))
        if query(request).get("alt") == ["sse"]:
            return Reply.sse((None, chunk) for chunk in chunks)
        return Reply.json(200, chunks)


def _usage(reply: GeminiReply) -> dict[str, int]:
    return {
        "promptTokenCount": reply.prompt_tokens,
        "candidatesTokenCount": reply.candidates_tokens,
        "totalTokenCount": reply.prompt_tokens + reply.candidates_tokens,
    }


def _response(
    reply: GeminiReply, model: str, parts: list[dict[str, Any]], finish_reason: str | None
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    response: dict[str, Any] = {
        "candidates": [candidate],
        "modelVersion": model,
        "responseId": f"fake-{next(_ids):06d}",
    }
    if finish_reason is not None:
        candidate["finishReason"] = finish_reason
        response["usageMetadata"] = _usage(reply)
    return response


def _chunks(reply: GeminiReply, model: str) -> Iterator[dict[str, Any]]:
    texts = list(pieces(reply.text)) if reply.text else []
    calls = [part for part in reply.parts() if "functionCall" in part]
    for number, piece in enumerate(texts):
        last = number == len(texts) - 1 and not calls
        yield _response(reply, model, [{"text": piece}], reply.finish_reason if last else None)
        if reply.stream_error is not None and number == 0:
            error = json.loads(error_reply(reply.stream_error, "stream failed").body)
            yield error
            return
    if calls or not texts:
        yield _response(reply, model, calls, reply.finish_reason)
