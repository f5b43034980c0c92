"""The socket server's file on disk: bound 0600 in a 0700 directory, removed only if ours.

The socket is created under a umask, so it is never readable by others, not
even for a moment, in a directory that is made 0700 and must belong to this
user. A socket left by a dead server is replaced; one a live server answers on
is left alone and the newcomer fails with a ``ConfigError``. On the way out
the file is unlinked only if it is still the one this server bound, so a
successor's socket survives.
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

from runtime.errors import ConfigError

_PROBE_TIMEOUT_S = 1.0
_MAX_UNIX_PATH = 107


class SocketFile:
    """The path a server listens on, and the inode it bound there."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._inode: tuple[int, int] | None = None

    def bind(self, backlog: int) -> socket.socket:
        """A non-blocking listening socket at ``path``; ConfigError if the path cannot be used."""
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
            listener.listen(backlog)
            listener.setblocking(False)
        except OSError as exc:
            listener.close()
            raise ConfigError(f"cannot listen on {path}: {exc.strerror or exc}") from None
        return listener

    def remove(self) -> None:
        """Unlink the socket file if it is still the one ``bind`` made."""
        try:
            info = self.path.stat()
        except OSError:
            return
        if (info.st_dev, info.st_ino) == self._inode:  # never unlink a successor's socket
            self.path.unlink(missing_ok=True)


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
