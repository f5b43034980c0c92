"""The state directory: created private (0700), holding the database and the socket."""

from __future__ import annotations

import os
import stat

from runtime.config import Settings
from runtime.errors import ConfigError
from runtime.store import Store


def ensure_state_dir(settings: Settings) -> None:
    path = settings.state_dir
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"cannot create the state directory {path}: {exc.strerror}") from None
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077 and path.stat().st_uid == os.getuid():
        path.chmod(0o700)


def open_state(settings: Settings) -> Store:
    """Create the state directory if needed and open its store."""
    ensure_state_dir(settings)
    return Store(settings.database, durable=settings.durable_store)
