"""One client of the socket server: its buffers, back-pressure and held events.

Output may be queued from any thread: ``send_event`` and responses append to a
per-connection queue (written straight away when the socket takes it), and a
client whose pending output passes the server's ``max_pending_output`` is
dropped. Events of a subscription whose request is still running are held
back and written right after its response, so a client always sees the
response first. The input buffer (cut into request lines; an oversized one is
answered ``too_large`` and discarded), the flushing of output the socket did
not take at once and the selector interest belong to the server's I/O thread.
"""

from __future__ import annotations

import selectors
import socket
import threading
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

import structlog

from runtime.protocol import (
    MAX_MESSAGE_BYTES,
    ErrorCode,
    Event,
    RequestId,
    encode_error,
    encode_event,
)
from runtime.redaction import redact

log = structlog.get_logger("elexirion.socket")

PostKind = Literal["write", "close", "close_flushed", "input", "stop", "close_all"]


class ConnectionOwner(Protocol):
    """What a connection needs of its server: the limits, and a way to reach the I/O thread."""

    max_pending_output: int
    max_in_flight: int

    def _post(self, kind: PostKind, conn: Connection | None) -> None: ...


class Connection:
    """One client. ``send_event``, ``on_close`` and ``close`` are thread-safe."""

    def __init__(
        self,
        server: ConnectionOwner,
        sock: socket.socket,
        number: int,
        *,
        peer_pid: int,
        peer_uid: int,
        now: float,
    ) -> None:
        self._lock = threading.Lock()
        self.number = number
        self.peer_pid = peer_pid
        self.peer_uid = peer_uid
        self._server = server
        self._sock = sock
        # guarded by _lock
        self._out: deque[memoryview] = deque()
        self._out_bytes = 0
        self._held_bytes = 0
        self._refusing = False  # no more output accepted
        self._write_wanted = False
        self._in_flight: dict[RequestId, list[bytes]] = {}
        self._callbacks: list[Callable[[], None]] | None = []
        # touched by the I/O thread only
        self._inbuf = bytearray()
        self._taken = 0  # bytes of _inbuf already handed out as lines
        self._scan = 0
        self._discarding = False
        self._eof = False
        self._close_when_flushed = False
        self._closed = False
        self._registered: int = 0
        self._last_activity = now

    def __repr__(self) -> str:
        return f"<Connection #{self.number} pid={self.peer_pid} uid={self.peer_uid}>"

    @property
    def closed(self) -> bool:
        """True once the connection accepts no more output (closing or closed)."""
        return self._refusing

    @property
    def pending_output(self) -> int:
        """Bytes queued for this client and not yet written."""
        return self._out_bytes + self._held_bytes

    def send_event(self, subscription_id: RequestId, event: Event | Mapping[str, Any]) -> bool:
        """Queue one event of subscription ``subscription_id``; False once the client is gone.

        Raises ``ValueError``/``TypeError`` for an event that cannot be encoded
        and ``ProtocolError(too_large)`` for one over the response limit.
        """
        line = encode_event(subscription_id, event)
        with self._lock:
            if self._refusing:
                return False
            held = self._in_flight.get(subscription_id)
            if held is None:
                return self._write_locked(line)
            if self._out_bytes + self._held_bytes + len(line) > self._server.max_pending_output:
                self._abort_locked("pending output over the limit")
                return False
            held.append(line)
            self._held_bytes += len(line)
            return True

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once when the connection closes (now, if it already has).

        Callbacks run on the server's worker pool; keep them short.
        """
        with self._lock:
            if self._callbacks is not None:
                self._callbacks.append(callback)
                return
        callback()

    def close(self) -> None:
        """Close after what is already queued has been written (bounded by ``stop``)."""
        with self._lock:
            if self._refusing:
                return
            self._refusing = True
        self._server._post("close_flushed", self)

    # -- output (any thread) ----------------------------------------------------------

    def _write_locked(self, data: bytes) -> bool:
        if self._refusing:
            return False
        if self._out_bytes + self._held_bytes + len(data) > self._server.max_pending_output:
            self._abort_locked("pending output over the limit")
            return False
        view = memoryview(data)
        if not self._out:
            try:
                sent = self._sock.send(view)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._abort_locked("send failed")
                return False
            if sent == len(view):
                return True
            view = view[sent:]
        self._out.append(view)
        self._out_bytes += len(view)
        if not self._write_wanted:
            self._write_wanted = True
            self._server._post("write", self)
        return True

    def _abort_locked(self, reason: str) -> None:
        if not self._refusing:
            log.warning("socket_connection_dropped", connection=self.number, reason=reason)
        self._refusing = True
        self._out.clear()
        self._out_bytes = 0
        self._server._post("close", self)

    def _begin(self, request_id: RequestId) -> bool:
        """Mark a request as running; False if one with this id already is."""
        with self._lock:
            if request_id in self._in_flight:
                return False
            self._in_flight[request_id] = []
            return True

    def _finish(self, request_id: RequestId, line: bytes) -> None:
        """Write a response, then any events held back for it."""
        with self._lock:
            held = self._in_flight.pop(request_id, [])
            self._held_bytes -= sum(map(len, held))
            self._write_locked(line)
            for event_line in held:
                self._write_locked(event_line)
            wake = len(self._in_flight) == self._server.max_in_flight - 1 or (
                self._eof and not self._in_flight
            )
        if wake:
            self._server._post("input", self)

    def _take_callbacks(self) -> list[Callable[[], None]]:
        with self._lock:
            self._refusing = True
            callbacks, self._callbacks = self._callbacks or [], None
            self._out.clear()
            self._out_bytes = 0
        return callbacks

    # -- the I/O thread -----------------------------------------------------------------

    def _wanted_mask(self) -> int:
        """The selector events to wait for; the caller holds ``_lock``."""
        mask = 0
        if not self._eof and len(self._in_flight) < self._server.max_in_flight:
            mask |= selectors.EVENT_READ
        if self._out:
            mask |= selectors.EVENT_WRITE
        return mask

    def _flush(self) -> bool:
        """Write what the socket takes of the queued output; False if that dropped the client."""
        with self._lock:
            while self._out:
                chunk = self._out[0]
                try:
                    sent = self._sock.send(chunk)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    self._abort_locked("send failed")
                    return False
                self._out_bytes -= sent
                if sent < len(chunk):
                    self._out[0] = chunk[sent:]
                    break
                self._out.popleft()
            if not self._out:
                self._write_wanted = False
        return True

    def _feed(self, data: bytes) -> bool:
        """Buffer bytes read from the client; False if they all belonged to a discarded line."""
        if self._discarding:
            newline = data.find(b"\n")
            if newline < 0:
                return False
            data = data[newline + 1 :]
            self._discarding = False
        self._inbuf += data
        return True

    def _next_line(self) -> bytes | None:
        """The next whole line of input within the size limit, or None if none is buffered.

        A line over ``MAX_MESSAGE_BYTES`` is answered ``too_large`` and skipped;
        one still arriving is answered as soon as it crosses the limit and the
        rest of it is discarded as it comes in. Call ``_compact`` when done.
        """
        buf = self._inbuf
        while True:
            newline = buf.find(b"\n", max(self._taken, self._scan))
            if newline < 0:
                self._scan = len(buf)
                if len(buf) - self._taken > MAX_MESSAGE_BYTES:
                    self._reply_error(None, ErrorCode.TOO_LARGE, _too_large_message())
                    self._taken = len(buf)
                    self._discarding = True
                return None
            line = bytes(buf[self._taken : newline])
            self._taken = newline + 1
            if len(line) <= MAX_MESSAGE_BYTES:
                return line
            self._reply_error(None, ErrorCode.TOO_LARGE, _too_large_message())

    def _compact(self) -> None:
        """Drop the input ``_next_line`` has handed out."""
        if self._taken:
            del self._inbuf[: self._taken]
            self._scan = max(0, self._scan - self._taken)
            self._taken = 0

    def _reply_error(self, request_id: RequestId | None, code: ErrorCode, message: str) -> None:
        with self._lock:
            self._write_locked(encode_error(request_id, code, message))


def _too_large_message() -> str:
    return f"request line is over {MAX_MESSAGE_BYTES} bytes; it was discarded"


def run_close_callback(callback: Callable[[], None]) -> None:
    """Run one ``on_close`` callback; a failure is logged, never raised into the server."""
    try:
        callback()
    except Exception:
        log.error("socket_on_close_failed", traceback=redact(traceback.format_exc()))
