"""Requests from any thread to the socket server's I/O thread, and the wake-up behind them.

Only the I/O thread registers sockets with the selector and closes
connections. Other threads append a request here and write one byte to a
socketpair the loop also selects on, so a sleeping ``select`` returns at once;
until the loop drains the wake-up end, further requests need no byte of their
own.
"""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Iterator

from runtime.connection import Connection, PostKind


class IoInbox:
    """A queue of ``(kind, connection)`` requests for the I/O thread, with its wake-up pair."""

    def __init__(self) -> None:
        self._posts: deque[tuple[PostKind, Connection | None]] = deque()
        self._woken = False
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None

    def open(self) -> socket.socket:
        """Create the wake-up pair; returns the end the I/O thread selects on."""
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        return self._wake_r

    def post(self, kind: PostKind, conn: Connection | None) -> None:
        """Queue a request and wake the I/O thread (any thread)."""
        self._posts.append((kind, conn))
        if not self._woken and self._wake_w is not None:
            self._woken = True
            try:
                self._wake_w.send(b"\0")
            except (BlockingIOError, InterruptedError):
                pass  # the loop already has wake-up bytes to read
            except OSError:
                pass  # stopped: nobody is listening any more

    def drain_wake(self) -> None:
        """Read the wake-up bytes (the I/O thread, when the wake-up end is readable)."""
        assert self._wake_r is not None
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        self._woken = False

    def take(self) -> Iterator[tuple[PostKind, Connection | None]]:
        """The queued requests in order, including any posted while they are handled."""
        while self._posts:
            yield self._posts.popleft()

    def close(self) -> None:
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
