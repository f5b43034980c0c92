"""The gateway's bearer token: ``state_dir/web.token``, 0600, made on first use.

``elx web token`` prints it (``--rotate`` replaces it); the running gateway
notices a rotated file by its modification time, so no restart is needed.
The token's value is handed to the redactor, so it never reaches a log.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import stat
import threading
from pathlib import Path

from runtime.errors import ConfigError
from runtime.redaction import remember_secrets

TOKEN_FILE = "web.token"
_MIN_CHARS = 32


class TokenFile:
    """The token on disk and a cached copy checked in constant time."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / TOKEN_FILE
        self._lock = threading.Lock()
        self._cached: tuple[tuple[int, int], str] | None = None

    def ensure(self) -> str:
        """The token, made (0600, atomically) if the file does not exist yet."""
        with contextlib.suppress(FileNotFoundError):
            return self.read()
        with contextlib.suppress(FileExistsError):
            self._write(secrets.token_urlsafe(32), exclusive=True)
        return self.read()

    def rotate(self) -> str:
        """A new token; the old one stops working at the gateway's next request."""
        self._write(secrets.token_urlsafe(32), exclusive=False)
        return self.read()

    def read(self) -> str:
        info = self.path.stat()
        if stat.S_IMODE(info.st_mode) & 0o077:
            raise ConfigError(
                f"{self.path} is readable by others (mode {stat.S_IMODE(info.st_mode):o}); "
                f"run `chmod 600 {self.path}` or `elx web token --rotate`"
            )
        token = self.path.read_text().strip()
        if len(token) < _MIN_CHARS:
            raise ConfigError(
                f"{self.path} holds a token shorter than {_MIN_CHARS} characters; "
                "make a new one with `elx web token --rotate`"
            )
        remember_secrets({"ELX_WEB_TOKEN": token})
        return token

    def matches(self, presented: str) -> bool:
        """Whether ``presented`` is the current token (re-read when the file changed)."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return False
        version = (info.st_ino, info.st_mtime_ns)
        with self._lock:
            if self._cached is None or self._cached[0] != version:
                try:
                    self._cached = (version, self.read())
                except (OSError, ConfigError):
                    return False
            current = self._cached[1]
        return hmac.compare_digest(presented.encode(), current.encode())

    def _write(self, token: str, *, exclusive: bool) -> None:
        """Write whole, then move into place: a reader never sees half a token.
        ``exclusive`` links instead of replacing, so two first starts agree on one token."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temp = self.path.with_name(f".{TOKEN_FILE}.{os.getpid()}.{threading.get_ident()}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(token + "\n")
            if exclusive:
                os.link(temp, self.path)
            else:
                temp.replace(self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
