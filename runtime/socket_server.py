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
import errno
import functools
import os
import selectors
import socket
import stat
import struct
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, Protocol

import structlog

from runtime.clock import SYSTEM_CLOCK, Clock
from runtime.errors import ConfigError, ProtocolError
from runtime.protocol import (
    MAX_MESSAGE_BYTES,
    ErrorCode,
    Event,
    Request,
    RequestId,
    Response,
    decode_request,
    encode_error,
    encode_event,
    encode_response,
    response_for_exception,
)
from runtime.redaction import redact

log = structlog.get_logger("elexirion.socket")

MAX_PENDING_OUTPUT = 8 << 20
MAX_IN_FLIGHT = 64
_RECV_BYTES = 64 << 10
_ACCEPT_BATCH = 64
_PROBE_TIMEOUT_S = 1.0
_MAX_UNIX_PATH = 107
_SELECT_MAX_S = 1.0


class Handler(Protocol):
    def __call__(self, request: Request, connection: Connection) -> Any:
        """Return the result (JSON-able, or a Future of it) or raise."""
        ...


# -- peer credentials -------------------------------------------------------------


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """``(pid, uid, gid)`` of the process at the other end of a Unix socket.

    Linux reads ``SO_PEERCRED``; macOS and the BSDs ``LOCAL_PEERCRED`` (no pid: -1).
    """
    if hasattr(socket, "SO_PEERCRED"):
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, gid = struct.unpack("3i", raw)
        return pid, uid, gid
    if sys.platform == "darwin" or "bsd" in sys.platform:  # pragma: no cover - not Linux
        local_peercred = 0x001
        # struct xucred { u_int cr_version; uid_t cr_uid; short cr_ngroups; gid_t cr_groups[16]; }
        raw = sock.getsockopt(0, local_peercred, 4 + 4 + 4 + 16 * 4)
        _version, uid, _ngroups, gid = struct.unpack_from("IIhxxI", raw)
        return -1, uid, gid
    raise OSError(errno.ENOTSUP, "peer credentials are not available on this platform")


def peer_allowed(peer_uid: int, server_uid: int) -> bool:
    """Only the daemon's own user may connect (root included only if the daemon is root)."""
    return peer_uid == server_uid


# -- a connection -------------------------------------------------------------------


class Connection:
    """One client. ``send_event``, ``on_close`` and ``close`` are thread-safe."""

    def __init__(
        self,
        server: SocketServer,
        sock: socket.socket,
        number: int,
        *,
        peer_pid: int,
        peer_uid: int,
        now: float,
    ) -> None:
        self.number = number
        self.peer_pid = peer_pid
        self.peer_uid = peer_uid
        self._server = server
        self._sock = sock
        self._lock = threading.Lock()
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


_PostKind = Literal["write", "close", "close_flushed", "input", "stop", "close_all"]


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
        self._workers = workers
        self._uid = os.getuid() if allowed_uid is None else allowed_uid
        self._clock = clock
        self._conns: dict[int, Connection] = {}
        self._numbers = 0
        self._posts: deque[tuple[_PostKind, Connection | None]] = deque()
        self._woken = False
        self._running = 0
        self._idle = threading.Condition()
        self._local = threading.local()
        self._state = "new"
        self._state_lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._inode: tuple[int, int] | None = None
        self._selector: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._executor: ThreadPoolExecutor | None = None
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
            self._listener = self._bind()
            self._selector = selectors.DefaultSelector()
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
            self._selector.register(self._listener, selectors.EVENT_READ, "listener")
            self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
            self._executor = ThreadPoolExecutor(self._workers, "elx-socket-worker")
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
        if getattr(self._local, "worker", False):
            raise RuntimeError("stop() called from a request handler; call it from another thread")
        with self._state_lock:
            if self._state != "running":
                return True
            self._state = "stopping"
        deadline = self._clock.now() + timeout
        self._post("stop", None)
        with self._idle:
            handlers_done = self._idle.wait_for(
                lambda: self._running == 0, max(0.0, deadline - self._clock.now())
            )
        self._closing_all_by = deadline
        self._post("close_all", None)
        assert self._io_thread is not None and self._executor is not None
        self._io_thread.join(max(0.0, deadline - self._clock.now()))
        io_done = not self._io_thread.is_alive()
        self._executor.shutdown(wait=False)  # queued work still runs: counts must drain
        with self._idle:
            handlers_done = self._idle.wait_for(
                lambda: self._running == 0, max(0.0, deadline - self._clock.now())
            )
        if handlers_done:
            self._executor.shutdown(wait=True)
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        with self._state_lock:
            self._state = "stopped"
        log.info("socket_stopped", path=str(self.path), clean=handlers_done and io_done)
        return handlers_done and io_done

    def __enter__(self) -> SocketServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- binding ----------------------------------------------------------------------

    def _bind(self) -> socket.socket:
        path = self.path
        if len(os.fsencode(path)) > _MAX_UNIX_PATH:
            raise ConfigError(
                f"socket path {path} is longer than {_MAX_UNIX_PATH} bytes; "
                "use a shorter --state-dir"
            )
        _private_directory(path.parent)
        _clear_stale_socket(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            old_umask = os.umask(0o177)  # the socket is born 0600: no window
            try:
                listener.bind(str(path))
            finally:
                os.umask(old_umask)
            path.chmod(0o600)
            info = path.stat()
            self._inode = (info.st_dev, info.st_ino)
            listener.listen(min(self.max_connections, socket.SOMAXCONN))
            listener.setblocking(False)
        except OSError as exc:
            listener.close()
            raise ConfigError(f"cannot listen on {path}: {exc.strerror or exc}") from None
        return listener

    def _remove_socket_file(self) -> None:
        try:
            info = self.path.stat()
        except OSError:
            return
        if (info.st_dev, info.st_ino) == self._inode:  # never unlink a successor's socket
            self.path.unlink(missing_ok=True)

    # -- cross-thread requests to the I/O thread ----------------------------------------

    def _post(self, kind: _PostKind, conn: Connection | None) -> None:
        self._posts.append((kind, conn))
        if not self._woken and self._wake_w is not None:
            self._woken = True
            try:
                self._wake_w.send(b"\0")
            except (BlockingIOError, InterruptedError):
                pass  # the loop already has wake-up bytes to read
            except OSError:
                pass  # stopped: nobody is listening any more

    # -- the I/O thread -----------------------------------------------------------------

    def _io_loop(self) -> None:
        assert self._selector is not None
        try:
            while True:
                for key, mask in self._selector.select(self._select_timeout()):
                    if key.data == "listener":
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wake()
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

    def _drain_wake(self) -> None:
        assert self._wake_r is not None
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        self._woken = False

    def _drain_posts(self) -> None:
        while self._posts:
            kind, conn = self._posts.popleft()
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
                _refuse(
                    sock,
                    ErrorCode.FORBIDDEN,
                    f"connections from uid {uid} are refused; the daemon serves uid {self._uid}",
                )
                continue
            if not self._accepting:
                _refuse(sock, ErrorCode.SHUTTING_DOWN, "the daemon is shutting down")
                continue
            if len(self._conns) >= self.max_connections:
                _refuse(
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
            if mask & selectors.EVENT_WRITE:
                self._flush(conn)
            if mask & selectors.EVENT_READ and not conn._closed:
                self._read(conn)
            if not conn._closed:
                self._maybe_finish(conn)
        except Exception:  # pragma: no cover - one bad connection must not stop the loop
            log.error("socket_connection_failed", traceback=redact(traceback.format_exc()))
            self._close(conn)

    def _wanted_mask(self, conn: Connection) -> int:
        mask = 0
        if not conn._eof and len(conn._in_flight) < self.max_in_flight:
            mask |= selectors.EVENT_READ
        if conn._out:
            mask |= selectors.EVENT_WRITE
        return mask

    def _update_interest(self, conn: Connection) -> None:
        assert self._selector is not None
        if conn._closed:
            return
        with conn._lock:
            mask = self._wanted_mask(conn)
        if mask == conn._registered:
            return
        if conn._registered == 0:
            self._selector.register(conn._sock, mask, conn)
        elif mask == 0:
            self._selector.unregister(conn._sock)
        else:
            self._selector.modify(conn._sock, mask, conn)
        conn._registered = mask

    def _flush(self, conn: Connection) -> None:
        with conn._lock:
            while conn._out:
                chunk = conn._out[0]
                try:
                    sent = conn._sock.send(chunk)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    conn._abort_locked("send failed")
                    return
                conn._out_bytes -= sent
                if sent < len(chunk):
                    conn._out[0] = chunk[sent:]
                    break
                conn._out.popleft()
            if not conn._out:
                conn._write_wanted = False
        self._update_interest(conn)

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
        if conn._discarding:
            newline = data.find(b"\n")
            if newline < 0:
                return
            data = data[newline + 1 :]
            conn._discarding = False
        conn._inbuf += data
        self._process_input(conn)

    def _process_input(self, conn: Connection) -> None:
        buf = conn._inbuf
        start = 0
        while len(conn._in_flight) < self.max_in_flight and self._accepting and not conn._closed:
            newline = buf.find(b"\n", max(start, conn._scan))
            if newline < 0:
                conn._scan = len(buf)
                if len(buf) - start > MAX_MESSAGE_BYTES:
                    self._reply_error(conn, None, ErrorCode.TOO_LARGE, _too_large_message())
                    start = len(buf)
                    conn._discarding = True
                break
            line = bytes(buf[start:newline])
            start = newline + 1
            if len(line) > MAX_MESSAGE_BYTES:
                self._reply_error(conn, None, ErrorCode.TOO_LARGE, _too_large_message())
                continue
            self._handle_line(conn, line)
        if start:
            del buf[:start]
            conn._scan = max(0, conn._scan - start)
        self._update_interest(conn)

    def _handle_line(self, conn: Connection, line: bytes) -> None:
        if not line.strip():
            return  # blank lines are allowed between requests
        try:
            request = decode_request(line)
        except ProtocolError as exc:
            self._reply_error(conn, exc.request_id, ErrorCode(exc.code), exc.message)
            return
        with conn._lock:
            duplicate = request.id in conn._in_flight
            if not duplicate:
                conn._in_flight[request.id] = []
        if duplicate:
            self._reply_error(
                conn,
                request.id,
                ErrorCode.INVALID_REQUEST,
                f"request id {request.id!r} is already in flight on this connection",
            )
            return
        if not self._submit(self._run, conn, request):
            conn._finish(
                request.id,
                encode_error(request.id, ErrorCode.SHUTTING_DOWN, "the daemon is shutting down"),
            )

    def _reply_error(
        self, conn: Connection, request_id: RequestId | None, code: ErrorCode, message: str
    ) -> None:
        with conn._lock:
            conn._write_locked(encode_error(request_id, code, message))

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
            if not self._submit(_run_callback, callback):
                _run_callback(callback)

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
        self._remove_socket_file()

    # -- the worker pool ------------------------------------------------------------------

    def _submit(self, fn: Callable[..., None], *args: Any) -> bool:
        assert self._executor is not None
        with self._idle:
            self._running += 1
        try:
            self._executor.submit(self._counted, fn, *args)
        except RuntimeError:  # the pool is shut down
            self._done_one()
            return False
        return True

    def _counted(self, fn: Callable[..., None], *args: Any) -> None:
        self._local.worker = True
        try:
            fn(*args)
        finally:
            self._local.worker = False
            self._done_one()

    def _done_one(self) -> None:
        with self._idle:
            self._running -= 1
            if self._running == 0:
                self._idle.notify_all()

    def _run(self, conn: Connection, request: Request) -> None:
        try:
            result = self._handler(request, conn)
        except Exception as exc:
            response = self._failure(request, exc)
        else:
            if isinstance(result, Future):
                result.add_done_callback(functools.partial(self._future_done, conn, request))
                return
            response = Response.ok(request.id, result)
        conn._finish(request.id, encode_response(response))

    def _future_done(self, conn: Connection, request: Request, future: Future[Any]) -> None:
        if future.cancelled():
            response = Response.failure(
                request.id, ErrorCode.SHUTTING_DOWN, "the request was cancelled"
            )
        elif (exc := future.exception()) is not None:
            response = self._failure(request, exc)
        else:
            response = Response.ok(request.id, future.result())
        conn._finish(request.id, encode_response(response))

    def _failure(self, request: Request, exc: BaseException) -> Response:
        response = response_for_exception(request.id, exc)
        if response.error is not None and response.error.code is ErrorCode.INTERNAL:
            log.error(
                "socket_handler_failed",
                method=request.method,
                traceback=redact("".join(traceback.format_exception(exc))),
            )
        return response


# -- helpers ----------------------------------------------------------------------------


def _too_large_message() -> str:
    return f"request line is over {MAX_MESSAGE_BYTES} bytes; it was discarded"


def _refuse(sock: socket.socket, code: ErrorCode, message: str) -> None:
    with contextlib.suppress(OSError):
        sock.send(encode_error(None, code, message))
    sock.close()


def _run_callback(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:
        log.error("socket_on_close_failed", traceback=redact(traceback.format_exc()))


def _private_directory(directory: Path) -> None:
    """Create ``directory`` 0700, or make it 0700; refuse one that another user owns."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = directory.stat()
    except OSError as exc:
        raise ConfigError(f"cannot create {directory}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{directory} is not a directory; choose another --state-dir")
    if info.st_uid != os.getuid():
        raise ConfigError(
            f"{directory} belongs to uid {info.st_uid}, not to you (uid {os.getuid()}); "
            "choose a state directory of your own"
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        directory.chmod(0o700)


def _clear_stale_socket(path: Path) -> None:
    """Remove a socket left by a dead server; refuse if a live one answers there."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ConfigError(f"{path} exists and is not a socket; move it away first")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(_PROBE_TIMEOUT_S)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)
        return
    except OSError as exc:  # a timeout means a live server with a full backlog
        raise ConfigError(
            f"a server is already listening on {path} ({exc.strerror or exc}); "
            "stop it with `elx shutdown` first"
        ) from None
    finally:
        probe.close()
    raise ConfigError(f"a daemon is already listening on {path}; stop it with `elx shutdown` first")
