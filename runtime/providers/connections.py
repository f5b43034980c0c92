"""HTTP clients whose in-flight requests can be abandoned from another thread.

Closing an HTTP client does not interrupt a request blocked reading a slow
response (the socket's ``recv`` keeps waiting). ``AbortableConnections`` is
an httpcore network backend that remembers the sockets it opens;
``abort()`` shuts them down (``SHUT_RDWR``), which wakes the blocked read at
once with a connection error. Each provider worker owns one client, so an
abort ends exactly that worker's call; the pool then drops the broken
connection and the next call opens a fresh one.

``abortable_client`` builds the ``httpx2.Client`` (the HTTP package the SDKs use) handed to an SDK
(``http_client=``). It swaps the transport's connection pool for one with
this backend; httpx2 does not expose the backend, so a test pins the
behaviour against the locked httpx2/httpcore2 versions.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterable
from typing import Any

import httpcore2 as httpcore
import httpx2 as httpx


class AbortableConnections(httpcore.SyncBackend):
    """A network backend whose open sockets ``abort()`` shuts down."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self.aborts = 0

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = super().connect_tcp(host, port, timeout, local_address, socket_options)
        return _Tracked(stream, self)

    def track(self, stream: httpcore.NetworkStream) -> None:
        sock = stream.get_extra_info("socket")
        if isinstance(sock, socket.socket):
            with self._lock:
                self._sockets = {s for s in self._sockets if s.fileno() != -1}
                self._sockets.add(sock)

    def abort(self) -> int:
        """Shut down every open connection; how many there were."""
        with self._lock:
            sockets = [s for s in self._sockets if s.fileno() != -1]
            self._sockets.clear()
            self.aborts += 1
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return len(sockets)


class _Tracked(httpcore.NetworkStream):
    """A stream registered with its backend (again after TLS wraps its socket)."""

    def __init__(self, stream: httpcore.NetworkStream, owner: AbortableConnections) -> None:
        self._stream = stream
        self._owner = owner
        owner.track(stream)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _Tracked(self._stream.start_tls(ssl_context, server_hostname, timeout), self._owner)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


def abortable_client(
    connections: AbortableConnections, *, timeout: float = 600.0, **transport: Any
) -> httpx.Client:
    """An ``httpx2.Client`` whose connections ``connections.abort()`` can cut."""
    http = httpx.HTTPTransport(**transport)
    pool = http._pool
    http._pool = httpcore.ConnectionPool(
        ssl_context=pool._ssl_context,
        max_connections=pool._max_connections,
        max_keepalive_connections=pool._max_keepalive_connections,
        keepalive_expiry=pool._keepalive_expiry,
        http1=pool._http1,
        http2=pool._http2,
        retries=pool._retries,
        network_backend=connections,
    )
    return httpx.Client(transport=http, timeout=timeout)
