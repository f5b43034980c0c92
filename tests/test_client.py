"""The client: calls, errors, concurrency, timeouts and subscriptions."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from runtime.client import Client
from runtime.errors import DaemonUnavailable, FailureKind, ProtocolError, RemoteError, StepError
from runtime.protocol import END_EVENT, MAX_MESSAGE_BYTES, ErrorCode, Event, Request
from runtime.socket_server import Connection, SocketServer
from runtime.supervision.registry import wait_threads_back


class Handler:
    def __init__(self) -> None:
        self.gate = threading.Event()
        self.unsubscribed = threading.Event()
        self.subscriptions: list[tuple[Any, Connection]] = []
        self.subscribed = threading.Event()

    def __call__(self, request: Request, connection: Connection) -> Any:
        match request.method:
            case "echo":
                return dict(request.params)
            case "block":
                assert self.gate.wait(5)
                return "unblocked"
            case "step_fails":
                raise StepError("step s failed", step="s")
            case "watch":
                connection.on_close(self.unsubscribed.set)
                self.subscriptions.append((request.id, connection))
                for n in range(int(request.params.get("events", 0))):
                    connection.send_event(request.id, Event("tick", {"n": n}))
                if request.params.get("end"):
                    connection.send_event(request.id, END_EVENT)
                self.subscribed.set()
                return {"watching": True}
        raise ProtocolError(ErrorCode.METHOD_NOT_FOUND, f"unknown method {request.method!r}")


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    baseline = set(threading.enumerate())
    yield
    left = wait_threads_back(baseline, timeout=5.0)
    assert not left, f"threads still alive after the test: {left}"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="elx-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def handler() -> Iterator[Handler]:
    made = Handler()
    yield made
    made.gate.set()


@pytest.fixture
def server(short_dir: Path, handler: Handler) -> Iterator[SocketServer]:
    made = SocketServer(short_dir / "elx.sock", handler, idle_timeout_s=None)
    made.start()
    yield made
    assert made.stop(5)


@pytest.fixture
def client(server: SocketServer) -> Iterator[Client]:
    with Client(server.path, timeout=5) as made:
        yield made


def test_call_returns_the_result(client: Client) -> None:
    assert client.call("echo", {"x": [1, "two"]}) == {"x": [1, "two"]}
    assert client.call("echo") == {}


def test_an_error_response_raises_remote_error_with_code_and_data(client: Client) -> None:
    with pytest.raises(RemoteError) as caught:
        client.call("nope")
    assert caught.value.code == "method_not_found"
    with pytest.raises(RemoteError) as caught:
        client.call("step_fails")
    assert caught.value.code == "job_failed"
    assert caught.value.kind is FailureKind.STEP_FAILED
    assert caught.value.data == {"kind": "step_failed", "step": "s"}


def test_no_daemon_raises_daemon_unavailable_with_the_hint(short_dir: Path) -> None:
    """Nothing at the path, or a stale socket file: the message says how to start one."""
    with pytest.raises(
        DaemonUnavailable, match=r"no daemon at .*elx\.sock; start one with `elx daemon`"
    ):
        Client(short_dir / "elx.sock").call("ping")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(short_dir / "elx.sock"))
    stale.close()
    with pytest.raises(DaemonUnavailable, match="start one with `elx daemon`"):
        Client(short_dir / "elx.sock").call("ping")


def test_fifty_threads_can_call_at_once(client: Client) -> None:
    """Concurrent callers each get their own answer; the pool keeps a few connections."""

    def call(n: int) -> Any:
        return [client.call("echo", {"n": n, "i": i})["n"] for i in range(20)]

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(call, range(50)))
    assert results == [[n] * 20 for n in range(50)]
    assert len(client._idle) <= client.max_idle


def test_request_ids_are_unique_across_threads(client: Client) -> None:
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: client.next_id(), range(2000)))
    assert len(set(ids)) == 2000


def test_a_slow_call_does_not_hold_up_other_callers(client: Client, handler: Handler) -> None:
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(client.call, "block")
        assert client.call("echo", {"quick": True}) == {"quick": True}
        handler.gate.set()
        assert slow.result(5) == "unblocked"


def test_a_call_past_its_timeout_raises_daemon_unavailable(
    client: Client, handler: Handler
) -> None:
    with pytest.raises(DaemonUnavailable, match=r"did not answer 'block' within 0\.1 s"):
        client.call("block", timeout=0.1)
    handler.gate.set()
    assert client.call("echo", {"after": 1}) == {"after": 1}


def test_a_connection_closed_by_the_daemon_is_not_reused(short_dir: Path, handler: Handler) -> None:
    """After the daemon restarts, the pooled connection is dead; the next call reconnects."""
    path = short_dir / "elx.sock"
    with Client(path, timeout=5) as client:
        first = SocketServer(path, handler)
        first.start()
        assert client.call("echo", {"n": 1}) == {"n": 1}
        assert first.stop(5)
        second = SocketServer(path, handler)
        second.start()
        try:
            assert client.call("echo", {"n": 2}) == {"n": 2}
        finally:
            assert second.stop(5)


def test_the_daemon_going_away_mid_call_raises_daemon_unavailable(
    short_dir: Path,
) -> None:
    """A daemon that hangs up without answering is reported, not waited on."""
    path = short_dir / "elx.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def hang_up() -> None:
        conn, _ = listener.accept()
        conn.recv(1024)
        conn.close()

    thread = threading.Thread(target=hang_up)
    thread.start()
    try:
        with pytest.raises(DaemonUnavailable, match="closed the connection"):
            Client(path, timeout=5).call("ping")
    finally:
        thread.join(5)
        listener.close()


def test_a_request_over_the_limit_fails_before_it_is_sent(client: Client) -> None:
    with pytest.raises(ProtocolError) as caught:
        client.call("echo", {"x": "a" * MAX_MESSAGE_BYTES})
    assert caught.value.code == "too_large"


def test_a_subscription_yields_events_and_ends_at_the_end_event(client: Client) -> None:
    with client.subscribe("watch", {"events": 3, "end": True}) as subscription:
        assert subscription.result == {"watching": True}
        assert [event["n"] for event in subscription] == [0, 1, 2]


def test_closing_a_subscription_ends_it_on_the_daemon(client: Client, handler: Handler) -> None:
    """The handler's on_close fires when the client closes; later events are refused."""
    subscription = client.subscribe("watch", {"events": 1})
    assert next(subscription) == {"type": "tick", "n": 0}
    sub_id, connection = handler.subscriptions[0]
    assert connection.send_event(sub_id, Event("tick", {"n": 1}))
    assert next(subscription)["n"] == 1
    subscription.close()
    assert handler.unsubscribed.wait(5)
    assert not connection.send_event(sub_id, Event("tick", {"n": 2}))
    with pytest.raises(StopIteration):
        next(subscription)


def test_close_from_another_thread_wakes_a_blocked_reader(client: Client) -> None:
    subscription = client.subscribe("watch")
    with ThreadPoolExecutor(1) as pool:
        reader = pool.submit(list, subscription)
        subscription.close()
        assert reader.result(5) == []


def test_next_event_times_out_with_none(client: Client) -> None:
    with client.subscribe("watch") as subscription:
        assert subscription.next_event(0.05) is None


def test_a_subscribe_error_raises_at_once(client: Client) -> None:
    with pytest.raises(RemoteError) as caught:
        client.subscribe("no_such_stream")
    assert caught.value.code == "method_not_found"


def test_a_stopping_server_ends_the_subscription(short_dir: Path, handler: Handler) -> None:
    server = SocketServer(short_dir / "elx.sock", handler)
    server.start()
    with Client(server.path, timeout=5) as client:
        subscription = client.subscribe("watch")
        assert server.stop(5)
        assert list(subscription) == []
