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
from urllib.parse import parse_qs, urlsplit

from runtime.testing.fake_http import FakeHTTPServer, RecordedRequest, Reply

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
_DELTA_WORDS = 3
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


class FakeGemini:
    """The fake Gemini API server; use it as a context manager."""

    def __init__(
        self,
        *,
        api_keys: tuple[str, ...] | None = None,
        default: GeminiReply | Reply | None = None,
    ) -> None:
        self.api_keys = api_keys
        self.default: GeminiReply | Reply = (
            default if default is not None else GeminiReply(text="Hello from the fake Gemini.")
        )
        self.server = FakeHTTPServer(name="fake-gemini", gate=self._check_key)
        self.server.route_pattern("POST", _PATH, self._generate)

    # -- lifecycle ----------------------------------------------------------

    def __enter__(self) -> FakeGemini:
        self.server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.close()

    @property
    def base_url(self) -> str:
        return self.server.base_url

    # -- script -------------------------------------------------------------

    def script(self, *items: GeminiReply | Reply) -> None:
        """Queue answers (``GeminiReply``) and faults (``Reply``), used in order."""
        self.server.enqueue(*items)

    def reply(self, text: str = "", *function_calls: FunctionCallPart, **fields: Any) -> None:
        """Queue one answer; shorthand for ``script(GeminiReply(...))``."""
        self.script(GeminiReply(text=text, function_calls=function_calls, **fields))

    @property
    def requests(self) -> tuple[RecordedRequest, ...]:
        return self.server.requests

    def wait_requests(self, count: int, timeout: float) -> bool:
        return self.server.wait_requests(count, timeout)

    # -- faults -------------------------------------------------------------

    @staticmethod
    def rate_limited(retry_after_s: float | None = 1.0) -> Reply:
        """429 ``RESOURCE_EXHAUSTED`` with ``retry-after`` and a ``RetryInfo`` detail."""
        if retry_after_s is None:
            return error_reply(429, "Resource has been exhausted (e.g. check quota).")
        return error_reply(
            429,
            "Resource has been exhausted (e.g. check quota).",
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
    def server_error(status: int = 500) -> Reply:
        return error_reply(status, "An internal error has occurred.")

    @staticmethod
    def error(status: int, message: str = "fake error") -> Reply:
        return error_reply(status, message)

    @staticmethod
    def malformed() -> Reply:
        return Reply.malformed()

    @staticmethod
    def drop() -> Reply:
        return Reply.dropped()

    @staticmethod
    def slow(seconds: float, reply: GeminiReply | None = None) -> GeminiReply:
        """An answer (JSON or streamed) that starts ``seconds`` later, or when the fake stops."""
        answer = reply if reply is not None else GeminiReply(text="slow answer")
        return replace(answer, delay_s=seconds)

    # -- serving ------------------------------------------------------------

    def _check_key(self, request: RecordedRequest) -> Reply | None:
        key = request.header("x-goog-api-key")
        if key is None:
            key = next(iter(_query(request).get("key", [])), None)
        authorization = request.header("authorization") or ""
        if key is None and authorization.lower().startswith("bearer "):
            key = authorization[len("bearer ") :].strip()
        if not key:
            return error_reply(
                401,
                "Method doesn't allow unregistered callers. Please use an API key: the "
                "x-goog-api-key header, the key query parameter or Authorization: Bearer.",
            )
        if self.api_keys is not None and key not in self.api_keys:
            return error_reply(403, "The caller does not have permission (API key not valid).")
        return None

    def _generate(self, request: RecordedRequest, server: FakeHTTPServer) -> Reply:
        path = urlsplit(request.path).path
        model_name, _, method = path.rsplit("/", 1)[-1].partition(":")
        try:
            body = request.json()
        except ValueError:
            return error_reply(400, "Invalid JSON payload received.")
        if not isinstance(body, dict):
            return error_reply(400, "Invalid JSON payload: expected an object.")
        if not body.get("contents"):
            return error_reply(400, "* GenerateContentRequest.contents: contents is not specified")
        item = server.next_scripted()
        if item is None:
            item = self.default
        if isinstance(item, Reply):
            return item
        if not isinstance(item, GeminiReply):
            return error_reply(500, f"fake script holds a {type(item).__name__}, not a reply")
        model = item.model_version or model_name
        if method == "streamGenerateContent":
            chunks = list(_chunks(item, model))
            if _query(request).get("alt") == ["sse"]:
                reply = Reply.sse((None, chunk) for chunk in chunks)
            else:
                reply = Reply.json(200, chunks)
        else:
            reply = Reply.json(200, _response(item, model, item.parts(), item.finish_reason))
        return reply.delayed(item.delay_s) if item.delay_s > 0 else reply


def _query(request: RecordedRequest) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.path).query)


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


def _pieces(text: str) -> Iterator[str]:
    words = text.split(" ")
    for start in range(0, len(words), _DELTA_WORDS):
        piece = " ".join(words[start : start + _DELTA_WORDS])
        yield piece if start + _DELTA_WORDS >= len(words) else piece + " "


def _chunks(reply: GeminiReply, model: str) -> Iterator[dict[str, Any]]:
    pieces = list(_pieces(reply.text)) if reply.text else []
    calls = [part for part in reply.parts() if "functionCall" in part]
    for number, piece in enumerate(pieces):
        last = number == len(pieces) - 1 and not calls
        yield _response(reply, model, [{"text": piece}], reply.finish_reason if last else None)
        if reply.stream_error is not None and number == 0:
            error = json.loads(error_reply(reply.stream_error, "stream failed").body)
            yield error
            return
    if calls or not pieces:
        yield _response(reply, model, calls, reply.finish_reason)
