"""The daemon's client: blocking calls and subscriptions over the Unix socket.

``Client.call`` checks a connection out of a small pool, writes one request,
reads its response and puts the connection back, so any number of threads can
call at once without waiting on each other (a long ``wait`` holds only its own
connection) and without a reader thread to manage. ``Client.subscribe`` opens a
connection of its own that lives as long as the ``Subscription``.

Errors: ``DaemonUnavailable`` when nothing answers on the socket (with the hint
to start one), or when the daemon goes quiet past the timeout or hangs up;
``RemoteError`` (``.code``, ``.data``) for an error response.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from runtime.errors import DaemonUnavailable, ProtocolError, RemoteError
from runtime.protocol import (
    MAX_RESPONSE_BYTES,
    ErrorCode,
    Request,
    RequestId,
    Response,
    decode_message,
    encode_request,
)

DEFAULT_TIMEOUT_S = 10.0
_RECV_BYTES = 64 << 10


class _Closed(Exception):
    """The daemon closed the connection."""


class _Line:
    """One connection with a read buffer; used by one thread at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray()
        self._scan = 0

    def send(self, data: bytes, deadline: float | None) -> None:
        self.sock.settimeout(_remaining(deadline))
        self.sock.sendall(data)

    def read_line(self, deadline: float | None) -> bytes:
        """The next line, newline dropped; ``_Closed`` at EOF, ``TimeoutError`` at the deadline."""
        while True:
            newline = self._buf.find(b"\n", self._scan)
            if newline >= 0:
                line = bytes(self._buf[:newline])
                del self._buf[: newline + 1]
                self._scan = 0
                return line
            self._scan = len(self._buf)
            if len(self._buf) > MAX_RESPONSE_BYTES:
                raise ProtocolError(ErrorCode.TOO_LARGE, "the daemon sent a line over the limit")
            self.sock.settimeout(_remaining(deadline))
            data = self.sock.recv(_RECV_BYTES)
            if not data:
                raise _Closed
            self._buf += data

    def usable(self) -> bool:
        """False if the daemon hung up (or sent something unasked) while we were idle."""
        if self._buf:
            return False
        try:
            self.sock.setblocking(False)
            self.sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        return False

    def close(self) -> None:
        self.sock.close()


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


class Client:
    """Calls the daemon at ``path``. Thread-safe; close it (or use ``with``) when done."""

    def __init__(
        self, path: Path | str, timeout: float = DEFAULT_TIMEOUT_S, *, max_idle: int = 16
    ) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.max_idle = max_idle
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._idle: list[_Line] = []
        self._closed = False

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections; calls after this open fresh ones."""
        with self._lock:
            idle, self._idle = self._idle, []
        for line in idle:
            line.close()

    def next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def call(
        self, method: str, params: Mapping[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        """Send one request and return its result; raise ``RemoteError`` for an error response.

        ``timeout`` (default: the client's) bounds the whole call, connecting included.
        """
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        request_id = self.next_id()
        data = encode_request(Request(request_id, method, dict(params or {})))
        line = self._checkout(deadline)
        try:
            line.send(data, deadline)
            response = _read_response(line, request_id, deadline)
        except TimeoutError:
            line.close()
            raise DaemonUnavailable(
                f"the daemon at {self.path} did not answer {method!r} within {limit:g} s"
            ) from None
        except (_Closed, OSError):
            line.close()
            raise DaemonUnavailable(
                f"the daemon at {self.path} closed the connection during {method!r}; "
                "check that it is still running (`elx health`)"
            ) from None
        except BaseException:
            line.close()
            raise
        self._checkin(line)
        return _result(response)

    def subscribe(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        event_timeout: float | None = None,
    ) -> Subscription:
        """Start a subscription on a connection of its own; iterate it for event dicts.

        ``timeout`` bounds connecting and the subscribe response; ``event_timeout``
        (default: none) bounds each wait for the next event while iterating, after
        which iteration raises ``TimeoutError``. ``close()`` ends it from any thread.
        """
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        request_id = self.next_id()
        data = encode_request(Request(request_id, method, dict(params or {})))
        line = self._connect(deadline)
        try:
            line.send(data, deadline)
            response = _read_response(line, request_id, deadline)
            result = _result(response)
        except TimeoutError:
            line.close()
            raise DaemonUnavailable(
                f"the daemon at {self.path} did not answer {method!r} within {limit:g} s"
            ) from None
        except (_Closed, OSError):
            line.close()
            raise DaemonUnavailable(
                f"the daemon at {self.path} closed the connection during {method!r}"
            ) from None
        except BaseException:
            line.close()
            raise
        return Subscription(line, request_id, result, event_timeout)

    # -- the pool ---------------------------------------------------------------------

    def _checkout(self, deadline: float) -> _Line:
        while True:
            with self._lock:
                line = self._idle.pop() if self._idle else None
            if line is None:
                return self._connect(deadline)
            if line.usable():
                return line
            line.close()

    def _checkin(self, line: _Line) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append(line)
                return
        line.close()

    def _connect(self, deadline: float) -> _Line:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            sock.connect(str(self.path))
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise DaemonUnavailable(
                f"no daemon at {self.path}; start one with `elx daemon`"
            ) from None
        except PermissionError:
            sock.close()
            raise DaemonUnavailable(
                f"cannot connect to {self.path}: permission denied "
                "(the daemon belongs to another user)"
            ) from None
        except OSError as exc:
            sock.close()
            raise DaemonUnavailable(
                f"cannot connect to the daemon at {self.path}: {exc.strerror or exc}"
            ) from None
        return _Line(sock)


def _read_response(line: _Line, request_id: RequestId, deadline: float | None) -> Response:
    while True:
        message = decode_message(line.read_line(deadline))
        if isinstance(message, Response):
            if message.id == request_id or (message.id is None and message.error is not None):
                return message  # id None: the server could not tie its error to a request
            raise ProtocolError(
                ErrorCode.INVALID_REQUEST,
                f"the daemon answered request {message.id!r}, expected {request_id!r}",
            )
        # An event on a call connection cannot be ours; skip it.


def _result(response: Response) -> Any:
    if response.error is not None:
        raise RemoteError(response.error.code, response.error.message, response.error.data)
    return response.result


class Subscription(Iterator[dict[str, Any]]):
    """A stream of event dicts; ends at an ``end`` event or when the daemon hangs up.

    ``result`` is what the subscribe request returned. ``close()`` (thread-safe)
    closes the connection, which ends the subscription on the daemon's side.
    """

    def __init__(
        self, line: _Line, request_id: RequestId, result: Any, event_timeout: float | None
    ) -> None:
        self.id = request_id
        self.result = result
        self.event_timeout = event_timeout
        self._line = line
        self._lock = threading.Lock()
        self._closed = False

    def __iter__(self) -> Subscription:
        return self

    def __next__(self) -> dict[str, Any]:
        event = self.next_event(self.event_timeout)
        if event is None:
            raise TimeoutError(f"no event within {self.event_timeout:g} s")
        return event

    def next_event(self, timeout: float | None) -> dict[str, Any] | None:
        """The next event, or None if ``timeout`` passes first; ``StopIteration`` at the end."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._closed:
                raise StopIteration
            try:
                message = decode_message(self._line.read_line(deadline))
            except TimeoutError:
                if self._closed:
                    raise StopIteration from None
                return None
            except (_Closed, OSError):
                self.close()
                raise StopIteration from None
            if isinstance(message, Response):
                if message.error is not None:
                    self.close()
                    _result(message)
                continue
            sub_id, event = message
            if sub_id != self.id:
                continue
            if event.get("type") == "end":
                self.close()
                raise StopIteration
            return event

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(OSError):  # shutdown wakes a reader blocked in recv
            self._line.sock.shutdown(socket.SHUT_RDWR)
        self._line.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
