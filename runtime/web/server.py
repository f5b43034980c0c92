"""uvicorn on one thread of the daemon, on a socket bound before it starts.

Binding first means a taken port is a clear error at once (not a log line on
another thread), and port 0 gives the real port before the first request.
uvicorn installs no signal handlers off the main thread: the daemon keeps
SIGTERM and stops the server through ``stop``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from runtime.errors import ConfigError

START_TIMEOUT_S = 10.0


class WebServer:
    """One uvicorn server for ``app`` on ``host:port``."""

    def __init__(
        self, app: Any, host: str, port: int, on_exit: Callable[[BaseException | None], None]
    ) -> None:
        self.app = app
        self.on_exit = on_exit
        self.host = host
        self._socket = _bind(host, port)
        self.port: int = self._socket.getsockname()[1]
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._failed: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        import uvicorn

        config = uvicorn.Config(
            self.app,
            log_config=None,  # uvicorn's records go to the daemon's log
            access_log=False,
            server_header=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            ws="none",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="web-gateway", daemon=True)
        self._thread.start()
        # uvicorn offers no start callback; its flag is the signal.
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                break
            self._thread.join(0.01)
        if not self._server.started:
            self.stop()
            raise ConfigError(f"the web gateway did not start on {self.url}: {self._failed}")

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # reported by start() and to on_exit
            self._failed = exc
        if not self._server.should_exit:  # it ended by itself: the owner crashes and restarts
            self.on_exit(self._failed)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._socket.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"the web gateway cannot listen on {host}:{port} ({exc.strerror}); pick another "
            "port with ELX_WEB_PORT or the 'web' args in supervision.yaml"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
