"""The socket server: framing, fairness, limits, security and a clean stop."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from runtime.errors import ConfigError, ProtocolError
from runtime.protocol import MAX_MESSAGE_BYTES, ErrorCode, Event, Request
from runtime.socket_server import Connection, SocketServer, peer_allowed, peer_credentials
from runtime.supervision.registry import wait_threads_back


class Handler:
    """echo, ping, block (until ``gate``), fail, later (a Future), subscribe; else unknown."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.blocked = threading.Event()
        self.unsubscribed = threading.Event()
        self.subscribed = threading.Event()
        self.subscription: tuple[Any, Connection] | None = None
        self.later: Future[Any] = Future()

    def __call__(self, request: Request, connection: Connection) -> Any:
        match request.method:
            case "echo":
                return dict(request.params)
            case "ping":
                return "pong"
            case "block":
                self.blocked.set()
                assert self.gate.wait(5)
                return "unblocked"
            case "fail":
                raise ValueError("boom")
            case "later":
                return self.later
            case "subscribe":
                connection.on_close(self.unsubscribed.set)
                # Sent before the response: the server holds it back until then.
                connection.send_event(request.id, Event("hello", {"n": 0}))
                self.subscription = (request.id, connection)
                self.subscribed.set()
                return {"subscribed": True}
        raise ProtocolError(
            ErrorCode.METHOD_NOT_FOUND, f"unknown method {request.method!r}", request.id
        )


class Raw:
    """A bare client socket speaking lines, for sending what a real client never would."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(str(path))
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, request_id: Any, method: str, params: Any = None) -> None:
        message = {"id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(json.dumps(message).encode() + b"\n")

    def read(self) -> dict[str, Any]:
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            assert data, "server closed the connection"
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    def call(self, request_id: Any, method: str, params: Any = None) -> dict[str, Any]:
        self.request(request_id, method, params)
        return self.read()

    def at_eof(self) -> bool:
        """True when the server has closed (after anything still buffered)."""
        return not self.buf and self.sock.recv(1) == b""

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Every test ends with the thread count back to its baseline."""
    baseline = set(threading.enumerate())
    yield
    left = wait_threads_back(baseline, timeout=5.0)
    assert not left, f"threads still alive after the test: {left}"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: AF_UNIX paths are limited to 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="elx-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def handler() -> Iterator[Handler]:
    made = Handler()
    yield made
    made.gate.set()


@pytest.fixture
def serve(short_dir: Path, handler: Handler) -> Iterator[Callable[..., SocketServer]]:
    """Start a server on ``<short_dir>/run/elx.sock`` (options as keywords); stop it after."""
    servers: list[SocketServer] = []
    clients: list[Raw] = []

    def start(**options: Any) -> SocketServer:
        server = SocketServer(short_dir / "run" / "elx.sock", handler, **options)
        server.start()
        servers.append(server)
        return server

    yield start
    for client in clients:
        client.close()
    for server in servers:
        assert server.stop(5)


@pytest.fixture
def connect(serve: Callable[..., SocketServer]) -> Iterator[Callable[[SocketServer], Raw]]:
    made: list[Raw] = []

    def open_(server: SocketServer) -> Raw:
        raw = Raw(server.path)
        made.append(raw)
        return raw

    yield open_
    for raw in made:
        raw.close()


def test_a_request_gets_its_result_tagged_with_its_id(serve: Any, connect: Any) -> None:
    """One line in, one line out: {"id", "result"}."""
    raw = connect(serve())
    assert raw.call(1, "echo", {"a": [1, 2]}) == {"id": 1, "result": {"a": [1, 2]}}
    assert raw.call("two", "ping") == {"id": "two", "result": "pong"}


def test_the_socket_is_0600_in_a_0700_directory(short_dir: Path, serve: Any) -> None:
    """An existing, too-open directory is tightened; the socket is private from birth."""
    (short_dir / "run").mkdir(mode=0o755)
    (short_dir / "run").chmod(0o755)
    server = serve()
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(server.path.parent.stat().st_mode) == 0o700
    assert stat.S_ISSOCK(server.path.stat().st_mode)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to hand a directory to another uid")
def test_a_directory_owned_by_another_user_is_refused(short_dir: Path, handler: Handler) -> None:
    """The server will not put its socket where another user controls the directory."""
    other = short_dir / "other"
    other.mkdir(mode=0o700)
    os.chown(other, 12345, 12345)
    with pytest.raises(ConfigError, match="belongs to uid 12345"):
        SocketServer(other / "elx.sock", handler).start()


def test_a_stale_socket_file_is_replaced(short_dir: Path, serve: Any, connect: Any) -> None:
    """A socket file left by a dead server is removed and the new server listens."""
    (short_dir / "run").mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(short_dir / "run" / "elx.sock"))
    dead.close()  # the file stays; nobody listens
    server = serve()
    assert connect(server).call(1, "ping")["result"] == "pong"


def test_a_second_server_on_a_live_socket_is_refused(
    serve: Any, connect: Any, handler: Handler
) -> None:
    """A live server keeps its socket; the newcomer fails with a clear message."""
    first = serve()
    with pytest.raises(ConfigError, match="already listening"):
        SocketServer(first.path, handler).start()
    assert connect(first).call(1, "ping")["result"] == "pong"


def test_a_path_that_is_not_a_socket_is_refused(short_dir: Path, handler: Handler) -> None:
    (short_dir / "elx.sock").write_text("not a socket")
    with pytest.raises(ConfigError, match="not a socket"):
        SocketServer(short_dir / "elx.sock", handler).start()
    assert (short_dir / "elx.sock").read_text() == "not a socket"


@pytest.mark.parametrize(
    ("line", "code", "request_id"),
    [
        (b"\x00\xffgarbage\x13", "parse_error", None),
        (b"{not json", "parse_error", None),
        (b'"just a string"', "invalid_request", None),
        (b'{"id": 5}', "invalid_request", 5),
        (b'{"id": 6, "method": "echo", "params": [1, 2]}', "invalid_params", 6),
        (b'{"id": 7, "method": "no_such_method"}', "method_not_found", 7),
        (b'{"id": 8, "method": "fail"}', "internal", 8),
    ],
)
def test_a_bad_request_gets_an_error_and_the_connection_survives(
    serve: Any, connect: Any, line: bytes, code: str, request_id: Any
) -> None:
    """Garbage, bad JSON, bad shapes, unknown methods and handler bugs: an error line each."""
    raw = connect(serve())
    raw.send(line + b"\n")
    answer = raw.read()
    assert answer["id"] == request_id
    assert answer["error"]["code"] == code
    assert raw.call(99, "ping") == {"id": 99, "result": "pong"}


def test_a_line_over_one_mib_is_refused_and_discarded(serve: Any, connect: Any) -> None:
    """The error comes as soon as the limit is crossed; the rest of the line is dropped."""
    raw = connect(serve())
    raw.send(b'{"id": 1, "method": "echo", "params": {"x": "' + b"a" * MAX_MESSAGE_BYTES)
    answer = raw.read()  # before the line is even finished
    assert answer["id"] is None
    assert answer["error"]["code"] == "too_large"
    raw.send(b"b" * (3 * MAX_MESSAGE_BYTES) + b'"}}\n')  # the rest is discarded unparsed
    assert raw.call(2, "ping") == {"id": 2, "result": "pong"}


def test_a_slow_handler_does_not_block_a_ping_on_another_connection(
    serve: Any, connect: Any, handler: Handler
) -> None:
    server = serve()
    slow, fast = connect(server), connect(server)
    slow.request(1, "block")
    assert handler.blocked.wait(5)
    assert fast.call(2, "ping")["result"] == "pong"
    handler.gate.set()
    assert slow.read() == {"id": 1, "result": "unblocked"}


def test_responses_go_out_in_the_order_handlers_finish(
    serve: Any, connect: Any, handler: Handler
) -> None:
    """On one connection a quick request overtakes a slow one sent before it."""
    raw = connect(serve())
    raw.request(1, "block")
    assert handler.blocked.wait(5)
    assert raw.call(2, "ping") == {"id": 2, "result": "pong"}
    handler.gate.set()
    assert raw.read() == {"id": 1, "result": "unblocked"}


def test_a_silent_client_with_half_a_line_does_not_block_others(serve: Any, connect: Any) -> None:
    server = serve()
    silent = connect(server)
    silent.send(b'{"id": 1, "method": "pi')
    assert connect(server).call(1, "ping")["result"] == "pong"


def test_the_server_answers_with_200_idle_connections_open(serve: Any, connect: Any) -> None:
    server = serve()
    idle = [connect(server) for _ in range(200)]
    assert connect(server).call(1, "ping")["result"] == "pong"
    assert idle[-1].call(2, "ping")["result"] == "pong"
    assert server.connections == 201


def test_past_max_connections_a_newcomer_is_told_to_retry(serve: Any, connect: Any) -> None:
    server = serve(max_connections=2)
    first, second = connect(server), connect(server)
    assert first.call(1, "ping")["result"] == "pong"
    assert second.call(1, "ping")["result"] == "pong"  # both registered before the third
    third = connect(server)
    assert third.read()["error"]["code"] == "unavailable"
    assert third.at_eof()


def test_a_peer_with_another_uid_is_refused(serve: Any, connect: Any) -> None:
    """With the allowed uid set to someone else, we are that other user: forbidden, closed."""
    raw = connect(serve(allowed_uid=os.getuid() + 1))
    answer = raw.read()
    assert answer["id"] is None
    assert answer["error"]["code"] == "forbidden"
    assert raw.at_eof()


def test_peer_credentials_name_this_process_and_only_the_same_uid_is_allowed() -> None:
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        pid, uid, _gid = peer_credentials(left)
    assert (pid, uid) == (os.getpid(), os.getuid())
    assert peer_allowed(1000, 1000)
    assert not peer_allowed(1001, 1000)
    assert not peer_allowed(0, 1000)


def test_a_subscription_streams_events_until_the_client_closes(
    serve: Any, connect: Any, handler: Handler
) -> None:
    """The response comes first, then events; closing the client fires on_close."""
    raw = connect(serve())
    assert raw.call(3, "subscribe") == {"id": 3, "result": {"subscribed": True}}
    assert raw.read() == {"id": 3, "event": {"type": "hello", "n": 0}}
    assert handler.subscription is not None
    sub_id, connection = handler.subscription
    for n in range(1, 4):
        assert connection.send_event(sub_id, Event("tick", {"n": n}))
    assert [raw.read()["event"]["n"] for _ in range(3)] == [1, 2, 3]
    assert raw.call(4, "ping")["result"] == "pong"  # the connection still takes requests
    raw.close()
    assert handler.unsubscribed.wait(5)
    assert not connection.send_event(sub_id, Event("tick", {"n": 9}))
    late = threading.Event()
    connection.on_close(late.set)  # registered after the close: runs at once
    assert late.is_set()


def test_a_client_that_does_not_read_is_dropped_and_others_carry_on(
    serve: Any, connect: Any, handler: Handler
) -> None:
    """Pending output past the cap drops that connection only."""
    server = serve(max_pending_output=256 << 10)
    reader = connect(server)
    reader.request(1, "subscribe")
    assert handler.subscribed.wait(5)
    assert handler.subscription is not None
    sub_id, connection = handler.subscription
    event = Event("chunk", {"data": "x" * 8192})
    sent = 0
    while connection.send_event(sub_id, event):
        sent += 1
        assert sent < 10_000, "the slow reader was never dropped"
    assert handler.unsubscribed.wait(5)
    assert connect(server).call(1, "ping")["result"] == "pong"


def test_a_handler_may_answer_later_with_a_future(
    serve: Any, connect: Any, handler: Handler
) -> None:
    """A Future result frees the worker; its outcome becomes the response."""
    raw = connect(serve(workers=1))
    raw.request(1, "later")
    assert raw.call(2, "ping")["result"] == "pong"  # the one worker is free again
    handler.later.set_result({"done": True})
    assert raw.read() == {"id": 1, "result": {"done": True}}


def test_many_pipelined_requests_are_all_answered(serve: Any, connect: Any) -> None:
    """More requests than max_in_flight in one write: back-pressure, nothing lost."""
    raw = connect(serve(max_in_flight=4))
    raw.send(b"".join(b'{"id": %d, "method": "ping"}\n' % i for i in range(300)))
    answers = {raw.read()["id"] for _ in range(300)}
    assert answers == set(range(300))


def test_a_duplicate_id_in_flight_is_an_invalid_request(
    serve: Any, connect: Any, handler: Handler
) -> None:
    raw = connect(serve())
    raw.request(1, "block")
    assert handler.blocked.wait(5)
    assert raw.call(1, "ping")["error"]["code"] == "invalid_request"
    handler.gate.set()
    assert raw.read() == {"id": 1, "result": "unblocked"}


def test_a_half_closed_client_still_gets_its_answers(serve: Any, connect: Any) -> None:
    """`printf '...\\n' | nc -U` style: the request, then EOF, then the response."""
    raw = connect(serve())
    raw.request(1, "echo", {"q": 1})
    raw.sock.shutdown(socket.SHUT_WR)
    assert raw.read() == {"id": 1, "result": {"q": 1}}
    assert raw.at_eof()


def test_an_idle_connection_is_closed_after_the_idle_timeout(serve: Any, connect: Any) -> None:
    raw = connect(serve(idle_timeout_s=0.2))
    assert raw.call(1, "ping")["result"] == "pong"
    assert raw.at_eof()  # recv returns b"" well within the 5 s socket timeout


def test_secrets_never_leave_in_a_response(serve: Any, connect: Any) -> None:
    raw = connect(serve())
    answer = raw.call(1, "echo", {"api_key": "hunter2", "text": "key sk-" + "z" * 30})
    assert answer["result"] == {"api_key": "[redacted]", "text": "key [redacted]"}


def test_stop_answers_running_requests_then_removes_the_socket(
    short_dir: Path, handler: Handler
) -> None:
    """A request in a handler is answered before the close; no file or thread is left."""
    server = SocketServer(short_dir / "elx.sock", handler)
    server.start()
    raw = Raw(server.path)
    try:
        raw.request(1, "block")
        assert handler.blocked.wait(5)
        stopped: list[bool] = []
        stopper = threading.Thread(target=lambda: stopped.append(server.stop(5)))
        stopper.start()
        handler.gate.set()
        assert raw.read() == {"id": 1, "result": "unblocked"}
        assert raw.at_eof()
        stopper.join(5)
        assert stopped == [True]
    finally:
        raw.close()
    assert not server.path.exists()
    assert server.connections == 0
    assert server.stop(1)  # a second stop is a no-op


def test_stop_from_inside_a_handler_is_refused(short_dir: Path) -> None:
    """stop() waits for handlers, so calling it from one is a mistake reported at once."""
    errors: list[BaseException] = []

    def handler(request: Request, connection: Connection) -> Any:
        try:
            server.stop(1)
        except RuntimeError as exc:
            errors.append(exc)
        return None

    server = SocketServer(short_dir / "elx.sock", handler)
    server.start()
    raw = Raw(server.path)
    try:
        assert raw.call(1, "x") == {"id": 1, "result": None}
    finally:
        raw.close()
        assert server.stop(5)
    assert len(errors) == 1
