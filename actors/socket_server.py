"""The Unix socket server in the tree: started last, stopped first.

On start it serves ``state_dir/elx.sock`` (0600 in a 0700 directory) with the
daemon's ``DaemonApi``; on stop it stops accepting, closes every connection
and removes the socket file. If it crashes, its supervisor starts a new one
on the same path (a stale socket file is replaced).
"""

from __future__ import annotations

from typing import Any

import pykka

from runtime import WorkerStatus, daemon_context


class SocketActor(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self, workers: int = 32, max_connections: int = 1024) -> None:
        super().__init__()
        self.workers = workers
        self.max_connections = max_connections
        self._server: Any = None

    def on_start(self) -> None:
        from runtime.socket_server import SocketServer

        context = daemon_context()
        self._server = SocketServer(
            context.socket_path,
            context.api,
            workers=self.workers,
            max_connections=self.max_connections,
        )
        self._server.start()

    def on_stop(self) -> None:
        if self._server is not None:
            self._server.stop(timeout=5.0)
            self._server = None

    def ping(self) -> str:
        return "pong"

    def supervision_status(self) -> WorkerStatus:
        server = self._server
        count = server.connections if server is not None else 0
        return WorkerStatus(detail=(("connections", str(count)),))
