"""`elx ask`, sessions and a thousand concurrent requests against a real daemon (mock provider)."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from pathlib import Path

from runtime.testing.daemon_process import DaemonProcess

CONNECTIONS = 20
PER_CONNECTION = 50  # 1,000 requests in flight at once (the server allows 64 per connection)
READ_S = 120.0


def test_elx_ask_analyze_runtime_returns_a_formatted_analysis(daemon: DaemonProcess) -> None:
    daemon.start()
    done = daemon.elx("ask", "analyze runtime/")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# Analysis: analyze runtime/")
    for heading in ("## Summary", "## Findings", "## Recommendations"):
        assert heading in done.stdout
    summary = re.search(r"job ([0-9a-f]{12}) completed · analysis · \d+ ms · mock", done.stderr)
    assert summary, done.stderr
    status = daemon.elx("status", summary.group(1))
    assert "routed to analysis: matched keyword 'analyze'" in status.stdout
    answer = daemon.elx_json("ask", "refactor the store")
    assert answer["pipeline_used"] == "refactor" and answer["status"] == "completed"
    assert answer["fallback_used"] is None and answer["providers"] == ["mock"]


def test_a_session_continues_across_three_requests_and_a_daemon_restart(
    tmp_path: Path, daemon_with: Callable[..., DaemonProcess]
) -> None:
    calls = tmp_path / "calls.jsonl"
    daemon = daemon_with(ELX_MOCK_CALL_LOG=str(calls))
    assert daemon.elx("ask", "what is a supervisor?", "--session", "s1").returncode == 0
    assert daemon.elx("ask", "and a dynamic one?", "--session", "s1").returncode == 0
    assert daemon.elx("shutdown").returncode == 0
    daemon.wait_exit()
    daemon.start()
    third = daemon.elx("ask", "analyze both", "--session", "s1")
    assert third.returncode == 0, third.stderr
    shown = daemon.elx_json("session", "show", "s1")
    assert [t["role"] for t in shown["turns"]] == ["user", "assistant"] * 3
    assert [t["pipeline"] for t in shown["turns"][::2]] == ["general", "general", "analysis"]
    prompts = [json.loads(line)["prompt"] for line in calls.read_text().splitlines()]
    first_of_third = next(p for p in prompts if "analyze both" in p)
    assert "what is a supervisor?" in first_of_third and "and a dynamic one?" in first_of_third
    listed = daemon.elx_json("session", "list")
    assert [(s["session"], s["turns"]) for s in listed] == [("s1", 6)]
    assert daemon.elx("session", "delete", "s1").returncode == 0
    assert daemon.elx("session", "show", "s1").returncode == 2


def test_a_thousand_concurrent_asks_are_all_answered(daemon: DaemonProcess) -> None:
    daemon.start()
    sockets = []
    for c in range(CONNECTIONS):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(READ_S)
        sock.connect(str(daemon.socket))
        lines = [
            json.dumps({"id": i, "method": "ask", "params": {"text": f"question {c}-{i}"}})
            for i in range(PER_CONNECTION)
        ]
        sock.sendall(("\n".join(lines) + "\n").encode())
        sockets.append(sock)
    answered: dict[str, str] = {}
    for c, sock in enumerate(sockets):
        with sock, sock.makefile("rb") as stream:
            for _ in range(PER_CONNECTION):
                message = json.loads(stream.readline())
                assert "result" in message, message
                answer = message["result"]
                answered[f"{c}-{message['id']}"] = answer["status"]
                assert answer["pipeline_used"] == "general"
                assert f"question {c}-{message['id']}" in answer["response"]
    assert len(answered) == CONNECTIONS * PER_CONNECTION
    assert set(answered.values()) == {"completed"}


def test_elx_chat_answers_each_line_in_one_session_and_can_continue_it(
    daemon: DaemonProcess,
) -> None:
    daemon.start()
    first = daemon.elx("chat", input="what is a mailbox?\nanalyze the mailbox\n")
    assert first.returncode == 0, first.stderr
    session = re.search(r"session (s-[0-9a-f]+)", first.stderr)
    assert session, first.stderr
    assert (
        "# what is a mailbox?" in first.stdout and "# Analysis: analyze the mailbox" in first.stdout
    )
    again = daemon.elx("chat", "--session", session.group(1), input="and a supervisor?\n")
    assert again.returncode == 0, again.stderr
    turns = daemon.elx_json("session", "show", session.group(1))["turns"]
    assert [t["content"] for t in turns[::2]] == [
        "what is a mailbox?",
        "analyze the mailbox",
        "and a supervisor?",
    ]
