"""The daemon's Unix-socket server: framing, fairness and security, no methods.

One I/O thread multiplexes every connection with ``selectors``: non-blocking
reads into per-connection buffers, non-blocking writes from per-connection
output queues. Requests run on a bounded worker pool, so a slow handler never
stalls I/O and a slow or silent client never stalls anyone else:

* a line over ``MAX_MESSAGE_BYTES`` gets a ``too_large`` error as soon as it
  crosses the limit, and the rest of it is discarded unread into memory;
* a client that does not read its responses is dropped once its pending
  output passes ``max_pending_output`` (8 MiB);
* a client with ``max_in_flight`` requests running is not read from until
  one finishes (back-pressure instead of an unbounded queue);
* responses go out in the order handlers finish, tagged with the request id.

A handler returns a JSON-able result, raises (mapped to an error code by
``runtime.protocol.error_from_exception``), or returns a
``concurrent.futures.Future`` whose outcome becomes the response later, which
frees the worker for long waits. Subscriptions are plain requests whose
handler keeps the ``Connection`` and calls ``send_event``; events sent while
the subscribe request is still running are held back until its response is
written, so a client always sees the response first. ``on_close`` callbacks
end the subscription when the client goes away.

Security: the socket is created 0600 (under a umask, so there is no window)
in a directory that is made 0700 and must belong to this user; on accept the
peer's uid is read with ``SO_PEERCRED`` and any other uid gets one
``forbidden`` error line and is closed.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import threading
import traceback
from pathlib import Path

import structlog

from runtime.clock import SYSTEM_CLOCK, Clock
from runtime.connection import Connection, PostKind, run_close_callback
from runtime.errors import ProtocolError
from runtime.handler import Handler, run_request
from runtime.io_inbox import IoInbox
from runtime.peer import peer_allowed, peer_credentials, refuse
from runtime.protocol import ErrorCode, decode_request, encode_error
from runtime.redaction import redact
from runtime.socket_file import SocketFile
from runtime.worker_pool import WorkerPool

__all__ = [
    "MAX_IN_FLIGHT",
    "MAX_PENDING_OUTPUT",
    "Connection",
    "Handler",
    "SocketServer",
    "peer_allowed",
    "peer_credentials",
]

log = structlog.get_logger("elexirion.socket")

MAX_PENDING_OUTPUT = 8 << 20
MAX_IN_FLIGHT = 64
_RECV_BYTES = 64 << 10
_ACCEPT_BATCH = 64
_SELECT_MAX_S = 1.0


class SocketServer:
    """A Unix-socket server of newline-delimited JSON requests; see the module doc."""

    def __init__(
        self,
        path: Path,
        handler: Handler,
        *,
        max_connections: int = 1024,
        idle_timeout_s: float | None = None,
        workers: int = 16,
        max_pending_output: int = MAX_PENDING_OUTPUT,
        max_in_flight: int = MAX_IN_FLIGHT,
        allowed_uid: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.path = Path(path)
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.max_pending_output = max_pending_output
        self.max_in_flight = max_in_flight
        self._handler = handler
        self._uid = os.getuid() if allowed_uid is None else allowed_uid
        self._clock = clock
        self._conns: dict[int, Connection] = {}
        self._numbers = 0
        self._inbox = IoInbox()
        self._pool = WorkerPool(workers, "elx-socket-worker")
        self._state = "new"
        self._state_lock = threading.Lock()
        self._socket_file = SocketFile(self.path)
        self._listener: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._io_thread: threading.Thread | None = None
        self._accepting = True
        self._closing_all_by: float | None = None

    # -- public -----------------------------------------------------------------------

    @property
    def address(self) -> str:
        return str(self.path)

    @property
    def connections(self) -> int:
        return len(self._conns)

    def start(self) -> None:
        """Create the socket and start serving; ConfigError if the path cannot be used."""
        with self._state_lock:
            if self._state != "new":
                raise RuntimeError(f"socket server is {self._state}; start it only once")
            self._listener = self._socket_file.bind(min(self.max_connections, socket.SOMAXCONN))
            self._selector = selectors.DefaultSelector()
            wake = self._inbox.open()
            self._selector.register(self._listener, selectors.EVENT_READ, "listener")
            self._selector.register(wake, selectors.EVENT_READ, "wake")
            self._pool.start()
            self._io_thread = threading.Thread(target=self._io_loop, name="elx-socket-io")
            self._state = "running"
            self._io_thread.start()
        log.info("socket_listening", path=str(self.path))

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop accepting, let running handlers finish and their output flush, close all.

        Bounded by ``timeout``; returns False if some handler or thread was still
        busy when it ran out (those threads are left to finish on their own).
        Must not be called from a handler: signal another thread instead.
        """
        if self._pool.in_worker:
            raise RuntimeError("stop() called from a request handler; call it from another thread")
        with self._state_lock:
            if self._state != "running":
                return True
            self._state = "stopping"
        deadline = self._clock.now() + timeout
        self._post("stop", None)
        self._pool.wait_idle(max(0.0, deadline - self._clock.now()))
        self._closing_all_by = deadline
        self._post("close_all", None)
        assert self._io_thread is not None
        self._io_thread.join(max(0.0, deadline - self._clock.now()))
        io_done = not self._io_thread.is_alive()
        self._pool.shutdown(wait=False)  # queued work still runs: counts must drain
        handlers_done = self._pool.wait_idle(max(0.0, deadline - self._clock.now()))
        if handlers_done:
            self._pool.shutdown(wait=True)
        self._inbox.close()
        with self._state_lock:
            self._state = "stopped"
        log.info("socket_stopped", path=str(self.path), clean=handlers_done and io_done)
        return handlers_done and io_done

    def __enter__(self) -> SocketServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- cross-thread requests to the I/O thread ----------------------------------------

    def _post(self, kind: PostKind, conn: Connection | None) -> None:
        self._inbox.post(kind, conn)

    # -- the I/O thread -----------------------------------------------------------------

    def _io_loop(self) -> None:
        assert self._selector is not None
        try:
            while True:
                for key, mask in self._selector.select(self._select_timeout()):
                    if key.data == "listener":
                        self._accept()
                    elif key.data == "wake":
                        self._inbox.drain_wake()
                    else:
                        self._on_ready(key.data, mask)
                self._drain_posts()
                if self._closing_all_by is not None and self._finish_closing():
                    break
                if self.idle_timeout_s is not None:
                    self._close_idle()
        except Exception:  # pragma: no cover - a bug here must not hang stop()
            log.error("socket_io_loop_failed", traceback=redact(traceback.format_exc()))
        finally:
            for conn in list(self._conns.values()):
                self._close(conn)
            self._close_listener()
            self._selector.close()

    def _select_timeout(self) -> float:
        timeout = _SELECT_MAX_S
        if self.idle_timeout_s is not None:
            timeout = min(timeout, max(self.idle_timeout_s / 4, 0.01))
        if self._closing_all_by is not None:
            timeout = min(timeout, 0.05)
        return timeout

    def _drain_posts(self) -> None:
        for kind, conn in self._inbox.take():
            if kind == "stop":
                self._accepting = False
                self._close_listener()
                for each in self._conns.values():
                    each._eof = True  # read no more requests
                    self._update_interest(each)
                continue
            if kind == "close_all" or conn is None or conn._closed:
                continue
            if kind == "write":
                self._update_interest(conn)
            elif kind == "close":
                self._close(conn)
            elif kind == "close_flushed":
                conn._close_when_flushed = True
                conn._eof = True
                self._maybe_finish(conn)
            elif kind == "input":
                self._process_input(conn)
                self._maybe_finish(conn)

    def _accept(self) -> None:
        assert self._listener is not None
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: try again on the next turn
                log.warning("socket_accept_failed", error=exc.strerror)
                return
            sock.setblocking(False)
            try:
                pid, uid, _gid = peer_credentials(sock)
            except OSError:
                sock.close()
                continue
            if not peer_allowed(uid, self._uid):
                log.warning("socket_peer_refused", peer_uid=uid, peer_pid=pid)
                refuse(
                    sock,
                    ErrorCode.FORBIDDEN,
                    f"connections from uid {uid} are refused; the daemon serves uid {self._uid}",
                )
                continue
            if not self._accepting:
                refuse(sock, ErrorCode.SHUTTING_DOWN, "the daemon is shutting down")
                continue
            if len(self._conns) >= self.max_connections:
                refuse(
                    sock,
                    ErrorCode.UNAVAILABLE,
                    f"too many connections ({self.max_connections}); try again later",
                )
                continue
            self._numbers += 1
            conn = Connection(
                self, sock, self._numbers, peer_pid=pid, peer_uid=uid, now=self._clock.now()
            )
            self._conns[sock.fileno()] = conn
            self._update_interest(conn)

    def _on_ready(self, conn: Connection, mask: int) -> None:
        try:
            if mask & selectors.EVENT_WRITE and conn._flush():
                self._update_interest(conn)
            if mask & selectors.EVENT_READ and not conn._closed:
                self._read(conn)
            if not conn._closed:
                self._maybe_finish(conn)
        except Exception:  # pragma: no cover - one bad connection must not stop the loop
            log.error("socket_connection_failed", traceback=redact(traceback.format_exc()))
            self._close(conn)

    def _update_interest(self, conn: Connection) -> None:
        assert self._selector is not None
        if conn._closed:
            return
        with conn._lock:
            mask = conn._wanted_mask()
        if mask == conn._registered:
            return
        if conn._registered == 0:
            self._selector.register(conn._sock, mask, conn)
        elif mask == 0:
            self._selector.unregister(conn._sock)
        else:
            self._selector.modify(conn._sock, mask, conn)
        conn._registered = mask

    def _read(self, conn: Connection) -> None:
        try:
            data = conn._sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            conn._eof = True  # half-closed: answer what is running, then close
            self._update_interest(conn)
            return
        conn._last_activity = self._clock.now()
        if conn._feed(data):
            self._process_input(conn)

    def _process_input(self, conn: Connection) -> None:
        while len(conn._in_flight) < self.max_in_flight and self._accepting and not conn._closed:
            line = conn._next_line()
            if line is None:
                break
            self._handle_line(conn, line)
        conn._compact()
        self._update_interest(conn)

    def _handle_line(self, conn: Connection, line: bytes) -> None:
        if not line.strip():
            return  # blank lines are allowed between requests
        try:
            request = decode_request(line)
        except ProtocolError as exc:
            conn._reply_error(exc.request_id, ErrorCode(exc.code), exc.message)
            return
        if not conn._begin(request.id):
            conn._reply_error(
                request.id,
                ErrorCode.INVALID_REQUEST,
                f"request id {request.id!r} is already in flight on this connection",
            )
            return
        if not self._pool.submit(run_request, self._handler, conn, request):
            conn._finish(
                request.id,
                encode_error(request.id, ErrorCode.SHUTTING_DOWN, "the daemon is shutting down"),
            )

    def _maybe_finish(self, conn: Connection) -> None:
        """Close a half-closed or closing connection once nothing is left to say."""
        if conn._closed or not conn._eof:
            return
        with conn._lock:
            done = not conn._in_flight and not conn._out
        if done:
            self._close(conn)

    def _close(self, conn: Connection) -> None:
        if conn._closed:
            return
        conn._closed = True
        if conn._registered and self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(conn._sock)
        conn._registered = 0
        self._conns.pop(conn._sock.fileno(), None)
        callbacks = conn._take_callbacks()
        with conn._lock:
            conn._sock.close()
        for callback in callbacks:
            if not self._pool.submit(run_close_callback, callback):
                run_close_callback(callback)

    def _close_idle(self) -> None:
        assert self.idle_timeout_s is not None
        cutoff = self._clock.now() - self.idle_timeout_s
        for conn in list(self._conns.values()):
            if conn._last_activity > cutoff:
                continue
            with conn._lock:
                busy = bool(conn._in_flight or conn._out or conn._callbacks)
            if not busy:
                self._close(conn)

    def _finish_closing(self) -> bool:
        """During stop: close connections as their output drains; True when all are gone."""
        assert self._closing_all_by is not None
        out_of_time = self._clock.now() >= self._closing_all_by
        for conn in list(self._conns.values()):
            with conn._lock:
                drained = not conn._out
            if drained or out_of_time:
                self._close(conn)
        return not self._conns

    def _close_listener(self) -> None:
        if self._listener is None:
            return
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(self._listener)
        self._listener.close()
        self._listener = None
        self._socket_file.remove()
