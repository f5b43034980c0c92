"""Bad clients against a real daemon: each gets an error or is ignored; everyone else is served."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from runtime.client import Client
from runtime.testing.daemon_process import DaemonProcess

READ_S = 10.0


def raw(daemon: DaemonProcess) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(READ_S)
    sock.connect(str(daemon.socket))
    return sock


def read_message(sock: socket.socket) -> dict[str, object]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        assert chunk, f"the daemon closed the connection; got {data!r}"
        data += chunk
    message = json.loads(data.split(b"\n", 1)[0])
    assert isinstance(message, dict)
    return message


@pytest.fixture
def served(daemon: DaemonProcess) -> Iterator[tuple[DaemonProcess, Client]]:
    daemon.start()
    with daemon.client(timeout=READ_S) as client:
        yield daemon, client


def test_garbage_gets_a_parse_error_and_the_same_connection_still_works(
    served: tuple[DaemonProcess, Client],
) -> None:
    daemon, client = served
    with raw(daemon) as sock:
        sock.sendall(b"\x00\xffnot json at all\n")
        assert read_message(sock)["error"]["code"] == "parse_error"  # type: ignore[index]
        sock.sendall(b'{"id": 7, "method": "ping"}\n')
        assert read_message(sock) == {"id": 7, "result": "pong"}
    assert client.call("ping") == "pong"


def test_unknown_methods_and_bad_params_get_errors_that_name_them(
    served: tuple[DaemonProcess, Client],
) -> None:
    daemon, _ = served
    with raw(daemon) as sock:
        sock.sendall(b'{"id": 1, "method": "launch_missiles"}\n')
        error = read_message(sock)["error"]
        assert error["code"] == "method_not_found"  # type: ignore[index]
        assert "launch_missiles" in error["message"]  # type: ignore[index]
        sock.sendall(b'{"id": 2, "method": "wait", "params": {"job": 12}}\n')
        error = read_message(sock)["error"]
        assert error["code"] == "invalid_params"  # type: ignore[index]
        assert "'job'" in error["message"]  # type: ignore[index]
        sock.sendall(b'{"id": 3, "method": "submit", "params": {}}\n')
        assert "'pipeline'" in read_message(sock)["error"]["message"]  # type: ignore[index]


def test_a_line_over_one_mebibyte_gets_too_large_and_the_daemon_serves_on(
    served: tuple[DaemonProcess, Client],
) -> None:
    daemon, client = served
    with raw(daemon) as sock:
        sock.sendall(b'{"id": 1, "method": "ping", "params": {"x": "' + b"a" * (2 << 20) + b'"}}\n')
        assert read_message(sock)["error"]["code"] == "too_large"  # type: ignore[index]
        sock.sendall(b'{"id": 2, "method": "ping"}\n')
        assert read_message(sock) == {"id": 2, "result": "pong"}
    assert client.call("ping") == "pong"


def test_half_a_line_then_silence_and_two_hundred_idle_connections_block_no_one(
    served: tuple[DaemonProcess, Client],
) -> None:
    daemon, client = served
    idle = [raw(daemon) for _ in range(200)]
    try:
        idle[0].sendall(b'{"id": 1, "method": "pi')  # and never the rest
        for _ in range(20):
            assert client.call("ping") == "pong"
        assert client.call("tree")["state"] == "running"
        submitted = daemon.elx("jobs")
        assert submitted.returncode == 0, submitted.stderr
    finally:
        for sock in idle:
            sock.close()
    assert client.call("ping") == "pong"
