"""The process at the other end of a Unix socket, and whether it may connect.

The daemon serves only its own user: on accept the socket server reads the
peer's uid with ``peer_credentials`` and refuses anyone ``peer_allowed`` says no
to.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import sys

from runtime.protocol import ErrorCode, encode_error


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


def refuse(sock: socket.socket, code: ErrorCode, message: str) -> None:
    """Send a peer one error line (if it will take it) and close the socket."""
    with contextlib.suppress(OSError):
        sock.send(encode_error(None, code, message))
    sock.close()
