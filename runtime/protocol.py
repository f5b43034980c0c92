"""The socket wire format, as pure code: no sockets, no threads.

Framing: one JSON object per line (UTF-8, ``\\n``-terminated) in each direction.

* request   ``{"id": 7, "method": "status", "params": {"job": "ab12"}}``
* response  ``{"id": 7, "result": {...}}`` or
  ``{"id": 7, "error": {"code": "not_found", "message": "...", "data": {...}}}``
* event     ``{"id": 3, "event": {"type": "job", ...}}`` on a connection that
  subscribed with request 3; the stream ends with an ``end`` event or when
  either side closes.

``id`` is a string or an integer chosen by the client; a response carries the
id of its request, or ``null`` when the request was too broken to read one.
Error codes (``ErrorCode``) are stable: clients and the CLI dispatch on them,
never on messages. Everything sent passes through ``redact`` first, so values
under secret-looking keys and strings that look like API keys never leave the
daemon. docs/reference/protocol.md is the user-facing description.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeAlias

from runtime.errors import (
    BudgetExceeded,
    CallTimeout,
    Cancelled,
    ChildControlError,
    ChildNotRunning,
    ConditionError,
    ConfigError,
    DaemonUnavailable,
    ElexirionError,
    IllegalTransition,
    ProtocolError,
    ProviderError,
    RemoteError,
    StepError,
    TemplateError,
    ValidationError,
)
from runtime.redaction import redact

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 1 << 20
"""The longest request line accepted, newline excluded."""
MAX_RESPONSE_BYTES = 4 << 20
"""The longest response or event line sent; a longer result becomes a ``too_large`` error."""

RequestId: TypeAlias = str | int


class ErrorCode(StrEnum):
    """Stable, machine-readable error codes of the wire protocol."""

    PARSE_ERROR = "parse_error"
    INVALID_REQUEST = "invalid_request"
    METHOD_NOT_FOUND = "method_not_found"
    INVALID_PARAMS = "invalid_params"
    TOO_LARGE = "too_large"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    SHUTTING_DOWN = "shutting_down"
    OVERLOADED = "overloaded"
    FORBIDDEN = "forbidden"
    JOB_FAILED = "job_failed"
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class Request:
    id: RequestId
    method: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "method": self.method, "params": dict(self.params)}


@dataclass(frozen=True, slots=True)
class ErrorBody:
    code: ErrorCode
    message: str
    data: Any = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.data is not None:
            body["data"] = self.data
        return body


@dataclass(frozen=True, slots=True)
class Response:
    """One answer: exactly one of ``result`` and ``error`` is meaningful."""

    id: RequestId | None
    result: Any = None
    error: ErrorBody | None = None

    @classmethod
    def ok(cls, request_id: RequestId | None, result: Any) -> Response:
        return cls(request_id, result=result)

    @classmethod
    def failure(
        cls, request_id: RequestId | None, code: ErrorCode, message: str, data: Any = None
    ) -> Response:
        return cls(request_id, error=ErrorBody(code, message, data))

    def to_json(self) -> dict[str, Any]:
        if self.error is not None:
            return {"id": self.id, "error": self.error.to_json()}
        return {"id": self.id, "result": self.result}


@dataclass(frozen=True, slots=True)
class Event:
    """One item of a subscription stream; sent flat as ``{"type": ..., **data}``."""

    type: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "type" in self.data:
            raise ValueError("an event's data must not carry its own 'type' key")

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, **self.data}


END_EVENT = Event("end")
"""Sent by a server to close a subscription stream; clients stop iterating."""


def hello_result(server_version: str, **extra: Any) -> dict[str, Any]:
    """What ``hello`` returns: the protocol and server versions (plus anything extra)."""
    return {"protocol": PROTOCOL_VERSION, "server": server_version, **extra}


# -- decoding -------------------------------------------------------------------

_REQUEST_KEYS = frozenset({"id", "method", "params"})


def _valid_id(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def decode_request(line: bytes) -> Request:
    """Parse one request line (with or without its newline) or raise ``ProtocolError``."""
    if len(line.rstrip(b"\r\n")) > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            ErrorCode.TOO_LARGE,
            f"request is {len(line)} bytes; the limit is {MAX_MESSAGE_BYTES} bytes",
        )
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(
            ErrorCode.PARSE_ERROR, f"request is not valid UTF-8 JSON: {exc}"
        ) from None
    if not isinstance(message, dict):
        raise ProtocolError(
            ErrorCode.INVALID_REQUEST,
            f"a request must be a JSON object, not {type(message).__name__}",
        )
    request_id = message.get("id")
    if not _valid_id(request_id):
        raise ProtocolError(
            ErrorCode.INVALID_REQUEST, "a request needs an 'id' that is a string or an integer"
        )
    assert isinstance(request_id, str | int)
    unknown = sorted(set(message) - _REQUEST_KEYS)
    if unknown:
        raise ProtocolError(
            ErrorCode.INVALID_REQUEST,
            f"unknown request field(s) {', '.join(map(repr, unknown))}; "
            "a request has 'id', 'method' and 'params'",
            request_id,
        )
    method = message.get("method")
    if not isinstance(method, str) or not method:
        raise ProtocolError(
            ErrorCode.INVALID_REQUEST, "a request needs a 'method' string", request_id
        )
    params = message.get("params")
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        raise ProtocolError(
            ErrorCode.INVALID_PARAMS,
            f"'params' must be a JSON object, not {type(params).__name__}",
            request_id,
        )
    return Request(request_id, method, params)


def decode_message(line: bytes) -> Response | tuple[RequestId | None, dict[str, Any]]:
    """Client side: parse a response, or an event as ``(subscription_id, event)``.

    Raises ``ProtocolError(parse_error)`` when the line is not a protocol message.
    """
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(ErrorCode.PARSE_ERROR, f"server sent invalid JSON: {exc}") from None
    if not isinstance(message, dict) or not (
        message.get("id") is None or _valid_id(message.get("id"))
    ):
        raise ProtocolError(ErrorCode.PARSE_ERROR, "server sent a message that is not ours")
    request_id = message.get("id")
    if "event" in message and isinstance(message["event"], dict):
        return request_id, message["event"]
    if "error" in message:
        error = message["error"]
        if not isinstance(error, dict):
            raise ProtocolError(ErrorCode.PARSE_ERROR, "server sent a malformed error")
        code_text = str(error.get("code", ErrorCode.INTERNAL))
        code = (
            ErrorCode(code_text)
            if code_text in ErrorCode._value2member_map_
            else ErrorCode.INTERNAL
        )
        return Response.failure(request_id, code, str(error.get("message", "")), error.get("data"))
    if "result" in message:
        return Response.ok(request_id, message["result"])
    raise ProtocolError(ErrorCode.PARSE_ERROR, "server sent a message with no result or error")


# -- encoding -------------------------------------------------------------------

_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def _line(message: Mapping[str, Any]) -> bytes:
    return (_dumps(redact(message)) + "\n").encode("utf-8")


def encode_request(request: Request) -> bytes:
    """A request line; raises ``ProtocolError(too_large)`` when over the limit."""
    line = (_dumps(request.to_json()) + "\n").encode("utf-8")
    if len(line) - 1 > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            ErrorCode.TOO_LARGE,
            f"request is {len(line) - 1} bytes; the limit is {MAX_MESSAGE_BYTES} bytes",
            request.id,
        )
    return line


def encode_response(response: Response) -> bytes:
    """A redacted response line.

    A result that is not JSON-able becomes an ``internal`` error, one over
    ``MAX_RESPONSE_BYTES`` a ``too_large`` error: the client always gets an answer.
    """
    try:
        line = _line(response.to_json())
    except (TypeError, ValueError) as exc:
        return _line(
            Response.failure(
                response.id, ErrorCode.INTERNAL, f"the result is not JSON-serialisable: {exc}"
            ).to_json()
        )
    if len(line) - 1 > MAX_RESPONSE_BYTES:
        return _line(
            Response.failure(
                response.id,
                ErrorCode.TOO_LARGE,
                f"the response is {len(line) - 1} bytes; the limit is {MAX_RESPONSE_BYTES}",
            ).to_json()
        )
    return line


def encode_error(
    request_id: RequestId | None, code: ErrorCode, message: str, data: Any = None
) -> bytes:
    return encode_response(Response.failure(request_id, code, message, data))


def encode_event(subscription_id: RequestId, event: Event | Mapping[str, Any]) -> bytes:
    """A redacted event line ``{"id": <subscribe request id>, "event": {...}}``.

    Raises ``TypeError``/``ValueError`` for an event that is not JSON-able and
    ``ProtocolError(too_large)`` for one over ``MAX_RESPONSE_BYTES``: both are bugs
    in the sender, so they surface there rather than on the wire.
    """
    body = event.to_json() if isinstance(event, Event) else dict(event)
    if not isinstance(body.get("type"), str):
        raise ValueError("an event needs a 'type' string")
    line = _line({"id": subscription_id, "event": body})
    if len(line) - 1 > MAX_RESPONSE_BYTES:
        raise ProtocolError(
            ErrorCode.TOO_LARGE,
            f"event {body['type']!r} is {len(line) - 1} bytes; the limit is {MAX_RESPONSE_BYTES}",
            subscription_id,
        )
    return line


# -- exceptions → error bodies ----------------------------------------------------

_CHILD_CONTROL_CODES: Mapping[str, ErrorCode] = {
    "not_found": ErrorCode.NOT_FOUND,
    "running": ErrorCode.CONFLICT,
    "restarting": ErrorCode.CONFLICT,
    "already_present": ErrorCode.CONFLICT,
    "already_started": ErrorCode.CONFLICT,
    "max_children": ErrorCode.CONFLICT,
    "shutting_down": ErrorCode.SHUTTING_DOWN,
    "invalid_spec": ErrorCode.INVALID_PARAMS,
}

_CONTEXT_ATTRIBUTES = (
    "job",
    "step",
    "provider",
    "attempt",
    "child",
    "supervisor",
    "subject",
    "state",
    "target",
    "timeout_s",
    "retry_after_s",
    "limit",
)
_MAX_INTERNAL_MESSAGE = 500


def error_code_for(exc: BaseException) -> ErrorCode:
    """The wire code for an exception raised by a handler."""
    match exc:
        case ProtocolError() | RemoteError():
            code = exc.code
            return ErrorCode(code) if code in ErrorCode._value2member_map_ else ErrorCode.INTERNAL
        case ChildControlError():
            return _CHILD_CONTROL_CODES.get(exc.code, ErrorCode.CONFLICT)
        case ConfigError():  # ValidationError and InputError included
            return ErrorCode.INVALID_PARAMS
        case CallTimeout() | TimeoutError():
            return ErrorCode.TIMEOUT
        case DaemonUnavailable() | ChildNotRunning():
            return ErrorCode.UNAVAILABLE
        case IllegalTransition():
            return ErrorCode.CONFLICT
        case (
            StepError()
            | ProviderError()
            | BudgetExceeded()
            | Cancelled()
            | TemplateError()
            | ConditionError()
        ):
            return ErrorCode.JOB_FAILED
        case _:
            return ErrorCode.INTERNAL


def error_from_exception(exc: BaseException) -> ErrorBody:
    """The error body for an exception: its code, its message, its context as ``data``.

    Errors of our own tree keep their message (it says what to do next) and put
    ``kind`` plus context attributes in ``data``. Anything else is ``internal``;
    its text is kept, shortened, because redaction runs before it is sent.
    """
    code = error_code_for(exc)
    if isinstance(exc, ProtocolError | RemoteError):
        return ErrorBody(code, exc.message, exc.data)
    if isinstance(exc, ElexirionError):
        data: dict[str, Any] = {"kind": exc.kind.value}
        for name in _CONTEXT_ATTRIBUTES:
            value = getattr(exc, name, None)
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                data[name] = value
        if isinstance(exc, ChildControlError):
            data["reason"] = exc.code
        if isinstance(exc, ValidationError):
            data["problems"] = [str(p) for p in exc.problems]
        return ErrorBody(code, exc.message, data)
    if isinstance(exc, TimeoutError):
        return ErrorBody(code, str(exc) or "timed out")
    text = str(exc)
    if len(text) > _MAX_INTERNAL_MESSAGE:
        text = text[:_MAX_INTERNAL_MESSAGE] + "..."
    message = f"internal error ({type(exc).__name__}: {text})" if text else "internal error"
    return ErrorBody(code, f"{message}; see the daemon log", {"exception": type(exc).__name__})


def response_for_exception(request_id: RequestId | None, exc: BaseException) -> Response:
    return Response(request_id, error=error_from_exception(exc))
