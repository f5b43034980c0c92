"""What the socket server calls for each request, and how its outcome becomes the response.

A handler returns a JSON-able result, raises (mapped to an error code by
``runtime.protocol.error_from_exception``), or returns a
``concurrent.futures.Future`` whose outcome becomes the response later, which
frees the worker for long waits. Unexpected failures (``internal``) are logged
with a redacted traceback.
"""

from __future__ import annotations

import functools
import traceback
from concurrent.futures import Future
from typing import Any, Protocol

import structlog

from runtime.connection import Connection
from runtime.protocol import ErrorCode, Request, Response, encode_response, response_for_exception
from runtime.redaction import redact

log = structlog.get_logger("elexirion.socket")


class Handler(Protocol):
    def __call__(self, request: Request, connection: Connection) -> Any:
        """Return the result (JSON-able, or a Future of it) or raise."""
        ...


def run_request(handler: Handler, conn: Connection, request: Request) -> None:
    """Call ``handler`` on a worker thread and answer ``request`` on ``conn``."""
    try:
        result = handler(request, conn)
    except Exception as exc:
        response = _failure(request, exc)
    else:
        if isinstance(result, Future):
            result.add_done_callback(functools.partial(_future_done, conn, request))
            return
        response = Response.ok(request.id, result)
    conn._finish(request.id, encode_response(response))


def _future_done(conn: Connection, request: Request, future: Future[Any]) -> None:
    if future.cancelled():
        response = Response.failure(
            request.id, ErrorCode.SHUTTING_DOWN, "the request was cancelled"
        )
    elif (exc := future.exception()) is not None:
        response = _failure(request, exc)
    else:
        response = Response.ok(request.id, future.result())
    conn._finish(request.id, encode_response(response))


def _failure(request: Request, exc: BaseException) -> Response:
    response = response_for_exception(request.id, exc)
    if response.error is not None and response.error.code is ErrorCode.INTERNAL:
        log.error(
            "socket_handler_failed",
            method=request.method,
            traceback=redact("".join(traceback.format_exception(exc))),
        )
    return response
