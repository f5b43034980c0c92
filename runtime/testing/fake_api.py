"""What the fakes of provider APIs share: the key check, the script of answers and faults.

``FakeAPI`` wraps a ``FakeHTTPServer``. A fake of one API (``FakeAnthropic``,
``FakeGemini``, ``FakeOpenAI``) subclasses it, states how its API words
refusals in a ``Dialect``, routes its endpoints to ``_respond`` and renders
its own scripted answers; everything else is here:

* the key check, run before routing: the API's own header, then a query
  parameter if the API takes one, then ``Authorization: Bearer``. No key is
  a 401; with ``api_keys`` set, a key not in it is refused too;
* the body check: JSON, an object, the fields the API requires;
* the script: ``script`` queues answers and faults (``Reply``), used in
  order; when it runs out, ``default`` answers. A fault goes out as it is;
  an answer is rendered by the subclass, then held back ``delay_s``;
* the usual faults, worded by the API: ``rate_limited``, ``server_error``,
  ``error``, ``malformed``, ``drop``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar
from urllib.parse import parse_qs, urlsplit

from runtime.testing.fake_http import FakeHTTPServer, RecordedRequest, Reply

__all__ = ["Answer", "Dialect", "ErrorReply", "FakeAPI", "pieces", "query"]

_DELTA_WORDS = 3


class Answer(Protocol):
    """A scripted answer of one API; it may be held back ``delay_s`` seconds."""

    @property
    def delay_s(self) -> float: ...


AnswerT = TypeVar("AnswerT", bound=Answer)


class ErrorReply(Protocol):
    """Builds an error response shaped like one API's (each fake module's ``error_reply``)."""

    def __call__(
        self, status: int, message: str, *, headers: Mapping[str, str] | None = None
    ) -> Reply: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one API refuses: its error shape, where it takes the key, and the words it uses."""

    error_reply: ErrorReply
    key_header: str
    missing_key: str
    wrong_key: str
    not_json: str
    not_object: str
    rate_limited: str
    server_error: str
    wrong_key_status: int = 401
    key_query: str | None = None


class FakeAPI(ABC, Generic[AnswerT]):
    """The fake server of one API; use it as a context manager.

    A subclass sets ``dialect``, routes its endpoints to ``_respond`` and
    implements ``_refusal`` (what is missing from a body) and ``_render``
    (an answer as a ``Reply``).
    """

    dialect: ClassVar[Dialect]

    def __init__(
        self,
        *,
        name: str,
        answer_type: type[AnswerT],
        default: AnswerT | Reply,
        api_keys: tuple[str, ...] | None,
    ) -> None:
        self.api_keys = api_keys
        self.default: AnswerT | Reply = default
        self._answer_type = answer_type
        self.server = FakeHTTPServer(name=name, gate=self._check_key)

    # -- lifecycle ----------------------------------------------------------

    def __enter__(self) -> Self:
        self.server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.close()

    @property
    def base_url(self) -> str:
        return self.server.base_url

    # -- script -------------------------------------------------------------

    def script(self, *items: AnswerT | Reply) -> None:
        """Queue answers and faults (``Reply``), used in order."""
        self.server.enqueue(*items)

    @property
    def requests(self) -> tuple[RecordedRequest, ...]:
        return self.server.requests

    def wait_requests(self, count: int, timeout: float) -> bool:
        return self.server.wait_requests(count, timeout)

    # -- faults -------------------------------------------------------------

    @classmethod
    def rate_limited(cls, retry_after_s: float | None = 1.0) -> Reply:
        headers = {} if retry_after_s is None else {"retry-after": f"{retry_after_s:g}"}
        return cls.dialect.error_reply(429, cls.dialect.rate_limited, headers=headers)

    @classmethod
    def server_error(cls, status: int = 500) -> Reply:
        return cls.dialect.error_reply(status, cls.dialect.server_error)

    @classmethod
    def error(cls, status: int, message: str = "fake error") -> Reply:
        return cls.dialect.error_reply(status, message)

    @staticmethod
    def malformed() -> Reply:
        return Reply.malformed()

    @staticmethod
    def drop() -> Reply:
        return Reply.dropped()

    # -- serving ------------------------------------------------------------

    def _check_key(self, request: RecordedRequest) -> Reply | None:
        dialect = self.dialect
        key = request.header(dialect.key_header)
        if key is None and dialect.key_query is not None:
            key = next(iter(query(request).get(dialect.key_query, [])), None)
        authorization = request.header("authorization") or ""
        if key is None and authorization.lower().startswith("bearer "):
            key = authorization[len("bearer ") :].strip()
        if not key:
            return dialect.error_reply(401, dialect.missing_key)
        if self.api_keys is not None and key not in self.api_keys:
            return dialect.error_reply(dialect.wrong_key_status, dialect.wrong_key)
        return None

    def _respond(self, request: RecordedRequest, server: FakeHTTPServer) -> Reply:
        """Check the body, then send the next scripted item: a fault as is, an answer rendered."""
        dialect = self.dialect
        try:
            body = request.json()
        except ValueError:
            return dialect.error_reply(400, dialect.not_json)
        if not isinstance(body, dict):
            return dialect.error_reply(400, dialect.not_object)
        refusal = self._refusal(body)
        if refusal is not None:
            return dialect.error_reply(400, refusal)
        item = server.next_scripted()
        if item is None:
            item = self.default
        if isinstance(item, Reply):
            return item
        if not isinstance(item, self._answer_type):
            return dialect.error_reply(
                500, f"fake script holds a {type(item).__name__}, not a reply"
            )
        reply = self._render(request, body, item)
        return reply.delayed(item.delay_s) if item.delay_s > 0 else reply

    @abstractmethod
    def _refusal(self, body: dict[str, Any]) -> str | None:
        """Why the API would refuse this request body (a 400), or None."""

    @abstractmethod
    def _render(self, request: RecordedRequest, body: dict[str, Any], answer: AnswerT) -> Reply:
        """The answer as the API sends it: one JSON body, or a stream when the request asks."""


def query(request: RecordedRequest) -> dict[str, list[str]]:
    """The request's query parameters."""
    return parse_qs(urlsplit(request.path).query)


def pieces(text: str) -> Iterator[str]:
    """``text`` in pieces of a few words, as a streamed answer sends it."""
    words = text.split(" ")
    for start in range(0, len(words), _DELTA_WORDS):
        piece = " ".join(words[start : start + _DELTA_WORDS])
        yield piece if start + _DELTA_WORDS >= len(words) else piece + " "
