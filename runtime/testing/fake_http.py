"""A small local HTTP server for faking provider APIs in tests: routes, scripts, faults, SSE.

``FakeHTTPServer`` listens on ``127.0.0.1`` on a free port, serves each
connection on a daemon thread and records every request it receives. It is
generic: a provider fake (``fake_anthropic``, and fakes for other APIs) adds
routes whose responders turn a request and the next scripted item into a
``Reply``.

A ``Reply`` is what goes back on the wire: a status, headers and a body, or a
list of chunks streamed one by one (server-sent events), optionally after a
delay, or nothing at all (a dropped connection). The fault helpers build the
usual ones::

    Reply.json(429, {"error": "slow down"}, headers={"retry-after": "2"})
    Reply.malformed()                # 200, application/json, not JSON
    Reply.dropped()                  # close the socket without a response
    Reply.text("ok").delayed(5.0)    # answer after 5 s (or when the server stops)

Scripted items are kept in one FIFO queue (``enqueue``); a responder takes
the next one with ``next_scripted``. A queued ``Reply`` is sent as it is, so
faults can be scripted between provider-specific answers.

Every wait is bounded: delays wait on an event that ``close`` sets, sockets
have a timeout, and ``close`` joins the server thread with a timeout. Every
response carries ``Connection: close`` so no handler thread lingers on a
keep-alive connection.

Example::

    with FakeHTTPServer() as server:
        server.route("GET", "/ping", lambda request, srv: Reply.json(200, {"pong": True}))
        ...  # call server.url("/ping") with any HTTP client
        assert server.requests[0].path == "/ping"
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType
from typing import Any

__all__ = [
    "FakeHTTPServer",
    "RecordedRequest",
    "Reply",
    "Responder",
    "sse_event",
]

_STOP_TIMEOUT_S = 5.0
_SOCKET_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server received it; header names are lower-cased."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` if it is not JSON)."""
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True, slots=True)
class Reply:
    """What the server sends back for one request.

    With ``chunks`` the body is streamed with chunked transfer encoding, one
    chunk per write, ``chunk_delay_s`` apart. ``drop`` closes the connection:
    before anything is sent when there are no chunks, else after the chunks
    and before the terminating chunk (a stream cut in the middle).
    """

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: tuple[bytes, ...] | None = None
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    drop: bool = False

    @classmethod
    def json(cls, status: int, payload: Any, *, headers: Mapping[str, str] | None = None) -> Reply:
        merged = {"content-type": "application/json", **(headers or {})}
        return cls(status=status, headers=merged, body=json.dumps(payload).encode())

    @classmethod
    def text(cls, text: str, *, status: int = 200, content_type: str = "text/plain") -> Reply:
        return cls(status=status, headers={"content-type": content_type}, body=text.encode())

    @classmethod
    def malformed(cls, status: int = 200) -> Reply:
        """A body that claims to be JSON and is not."""
        return cls(
            status=status,
            headers={"content-type": "application/json"},
            body=b'{"id": "broken", "content": [',
        )

    @classmethod
    def dropped(cls) -> Reply:
        """Close the connection without sending a response."""
        return cls(drop=True)

    @classmethod
    def sse(
        cls,
        events: Iterable[tuple[str | None, Any]],
        *,
        headers: Mapping[str, str] | None = None,
        chunk_delay_s: float = 0.0,
        drop: bool = False,
    ) -> Reply:
        """A ``text/event-stream`` reply: one chunk per ``(event name, data)`` pair."""
        merged = {"content-type": "text/event-stream", "cache-control": "no-cache"}
        merged.update(headers or {})
        return cls(
            status=200,
            headers=merged,
            chunks=tuple(sse_event(name, data) for name, data in events),
            chunk_delay_s=chunk_delay_s,
            drop=drop,
        )

    def delayed(self, seconds: float) -> Reply:
        """The same reply, sent ``seconds`` later (sooner if the server stops)."""
        return replace(self, delay_s=seconds)


def sse_event(name: str | None, data: Any) -> bytes:
    """One server-sent event: ``event: name`` then ``data: <json>`` (or the string as is)."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    lines = [f"event: {name}"] if name is not None else []
    lines += [f"data: {line}" for line in payload.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


Responder = Callable[[RecordedRequest, "FakeHTTPServer"], Reply]
"""Turns a request into a reply; it may take the next scripted item from the server."""


class FakeHTTPServer:
    """A threaded HTTP server on 127.0.0.1 with routes, a script queue, faults and a request log.

    ``gate`` runs before routing (an auth check, say); a reply it returns is
    sent instead of routing, without consuming a scripted item. Requests to
    unknown routes get a 404 JSON reply.
    """

    def __init__(
        self,
        *,
        name: str = "fake",
        gate: Callable[[RecordedRequest], Reply | None] | None = None,
    ) -> None:
        self.name = name
        self._gate = gate
        self._routes: dict[tuple[str, str], Responder] = {}
        self._patterns: list[tuple[str, re.Pattern[str], Responder]] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._script: deque[object] = deque()
        self._requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- configuration ------------------------------------------------------

    def route(self, method: str, path: str, responder: Responder) -> None:
        """Answer ``method path`` (query string ignored) with ``responder``."""
        self._routes[(method.upper(), path)] = responder

    def route_pattern(self, method: str, pattern: str, responder: Responder) -> None:
        """Answer ``method`` on paths that fully match the regex ``pattern`` (query ignored).

        For APIs that put names in the path (``/v1beta/models/{model}:generateContent``).
        Exact routes are tried first, then patterns in the order they were added.
        """
        self._patterns.append((method.upper(), re.compile(pattern), responder))

    def enqueue(self, *items: object) -> None:
        """Append scripted items (``Reply`` faults or provider-specific answers) to the queue."""
        with self._lock:
            self._script.extend(items)

    def next_scripted(self) -> object | None:
        """Take the next scripted item, or None when the script is used up."""
        with self._lock:
            return self._script.popleft() if self._script else None

    @property
    def pending(self) -> int:
        """Scripted items not yet consumed."""
        with self._lock:
            return len(self._script)

    # -- observation --------------------------------------------------------

    @property
    def requests(self) -> tuple[RecordedRequest, ...]:
        with self._lock:
            return tuple(self._requests)

    def wait_requests(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` requests were received; False after ``timeout`` s."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._requests) >= count, timeout)

    # -- lifecycle ----------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{self.name} server is not running; use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError(f"{self.name} server is already running")
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _handler_class(self), owner=self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.name}-http",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving: interrupt delays, cut open connections, join every thread started."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        with self._lock:
            connections = dict(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        server.server_close()
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        for worker in [*connections.values(), *([thread] if thread is not None else [])]:
            worker.join(max(0.0, deadline - time.monotonic()))
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeHTTPServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- used by the handler ------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()

    def _respond(self, request: RecordedRequest) -> Reply:
        if self._gate is not None:
            refused = self._gate(request)
            if refused is not None:
                return refused
        path = request.path.split("?", 1)[0]
        responder = self._routes.get((request.method, path))
        if responder is None:
            responder = next(
                (r for m, p, r in self._patterns if m == request.method and p.fullmatch(path)),
                None,
            )
        if responder is None:
            return Reply.json(
                404, {"error": f"{self.name}: no route for {request.method} {request.path}"}
            )
        return responder(request, self)

    def _track(self, connection: socket.socket, worker: threading.Thread) -> None:
        """Called on the server thread before ``worker`` starts, so ``close`` sees every one."""
        with self._lock:
            for done in [c for c, t in self._connections.items() if t.ident and not t.is_alive()]:
                del self._connections[done]
            self._connections[connection] = worker


class _Server(ThreadingHTTPServer):
    """Starts one named daemon thread per connection and registers it with its owner first."""

    daemon_threads = True
    block_on_close = False
    # Benchmarks open hundreds of connections at once; the stdlib default backlog is 5.
    request_queue_size = 1024

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        owner: FakeHTTPServer,
    ) -> None:
        super().__init__(address, handler)
        self.owner = owner

    def process_request(self, request: Any, client_address: Any) -> None:
        worker = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"{self.owner.name}-connection",
            daemon=True,
        )
        self.owner._track(request, worker)
        worker.start()


def _handler_class(owner: FakeHTTPServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        server_owner = owner

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = _SOCKET_TIMEOUT_S
    server_owner: FakeHTTPServer

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request log is the record."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        self.close_connection = True
        owner = self.server_owner
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = MappingProxyType({name.lower(): value for name, value in self.headers.items()})
        request = RecordedRequest(self.command, self.path, headers, body)
        owner._record(request)
        try:
            reply = owner._respond(request)
        except Exception as exc:  # a broken responder must not hang the client
            reply = Reply.json(500, {"error": f"{owner.name} responder failed: {exc!r}"})
        if reply.delay_s > 0 and owner._stopping.wait(reply.delay_s):
            return  # stopped while waiting: drop the connection
        if reply.drop and reply.chunks is None:
            return
        # OSError: the client went away (it timed out, say); there is no one to tell.
        with contextlib.suppress(OSError):
            self._send(reply)

    def _send(self, reply: Reply) -> None:
        owner = self.server_owner
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("connection", "close")
        if reply.chunks is None:
            self.send_header("content-length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
            self.wfile.flush()
            return
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for index, chunk in enumerate(reply.chunks):
            if index and reply.chunk_delay_s > 0 and owner._stopping.wait(reply.chunk_delay_s):
                return
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
        if reply.drop:
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
