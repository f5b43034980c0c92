"""The optional HTTP gateway in the tree: the web API and the chat page (runtime/web/).

Off unless its args say ``enabled: true`` or the daemon runs with ``ELX_WEB=1``
(``elx daemon --web``). It binds 127.0.0.1 by default, makes the bearer token
file on first start, and shows its URL in `elx tree`. A port that is taken
does not crash-loop the daemon: the child stays up, says why in `elx tree`
and in the log, and `elx restart web` tries again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pykka
import structlog

from runtime import WorkerStatus, daemon_context
from runtime.errors import ConfigError

log = structlog.get_logger("elexirion.web")


@dataclass(frozen=True)
class _ServerEnded:
    error: BaseException | None


class WebActor(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self, **args: Any) -> None:
        super().__init__()
        from runtime.web.config import WebConfig, web_config

        self._server: Any = None
        self.problem: str | None = None
        try:
            self.config = web_config(args, os.environ)
        except ConfigError as exc:  # an optional part: it says why, the daemon serves on
            self.config = WebConfig()
            self.problem = str(exc)
            log.error("web_gateway_failed", error=self.problem)

    def on_start(self) -> None:
        if not self.config.enabled:
            return
        from runtime.web.app import create_app
        from runtime.web.server import WebServer
        from runtime.web.token import TokenFile

        context = daemon_context()
        tokens = TokenFile(context.settings.state_dir)
        tokens.ensure()
        holder: dict[str, int] = {}
        app = create_app(
            daemon_context,
            self.config,
            token_matches=tokens.matches,
            port=lambda: holder["port"],
        )
        try:
            server = WebServer(app, self.config.host, self.config.port, self._server_ended)
        except ConfigError as exc:
            self.problem = str(exc)
            log.error("web_gateway_failed", error=self.problem)
            return
        holder["port"] = server.port
        server.start()
        self._server = server
        context.web_url = server.url
        log.info("web_gateway", url=server.url, token_file=str(tokens.path))

    def on_stop(self) -> None:
        if self._server is not None:
            daemon_context().web_url = None
            self._server.stop()
            self._server = None

    def _server_ended(self, error: BaseException | None) -> None:
        """From the server's thread: it stopped without being asked; crash, so the
        supervisor starts a new gateway."""
        self.actor_ref.tell(_ServerEnded(error))

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _ServerEnded):
            raise RuntimeError(f"the web gateway's server stopped by itself: {message.error!r}")
        return super().on_receive(message)

    def ping(self) -> str:
        return "pong"

    def url(self) -> str | None:
        return self._server.url if self._server is not None else None

    def supervision_status(self) -> WorkerStatus:
        if self._server is not None:
            return WorkerStatus(detail=(("url", self._server.url),))
        if self.problem is not None:
            return WorkerStatus(detail=(("error", self.problem),))
        return WorkerStatus(detail=(("disabled", "elx daemon --web, or ELX_WEB=1"),))
