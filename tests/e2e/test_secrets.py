"""An API key echoed back by a provider never reaches the log, the store or the socket."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e.conftest import write_pipeline
from runtime.testing.daemon_process import DaemonProcess
from runtime.testing.fake_http import FakeHTTPServer, RecordedRequest, Reply

KEY = "elx-test-key-Qm9vb3RzdHJhcHBpbmc"  # not shaped like any known key

ONE_CLAUDE_STEP = """
    workflow:
      name: leaky
      steps:
        - {name: ask, type: claude, prompt: "hello"}
"""


def echo_the_key(request: RecordedRequest, server: FakeHTTPServer) -> Reply:
    # The SDK sends the key as x-api-key or as a bearer token, depending on its version.
    key = request.header("x-api-key") or (request.header("authorization") or "").split()[-1]
    return Reply.json(
        401,
        {"type": "error", "error": {"type": "authentication_error", "message": f"bad {key}"}},
    )


def test_a_provider_error_that_echoes_the_key_is_stored_and_shown_redacted(
    tmp_path: Path, daemon_env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    with FakeHTTPServer() as server:
        server.route("POST", "/v1/messages", echo_the_key)
        env = {
            **daemon_env,
            "ANTHROPIC_API_KEY": KEY,
            "ANTHROPIC_BASE_URL": server.base_url,
            "ELX_MOCK_FALLBACK": "0",
        }
        daemon = DaemonProcess(tmp_path / "state", env)
        request.addfinalizer(daemon.kill)
        daemon.start()
        pipeline = write_pipeline(tmp_path, "leaky.yaml", ONE_CLAUDE_STEP)
        submitted = daemon.elx("submit", str(pipeline), "--wait")
        assert submitted.returncode == 1
        assert server.requests, "the provider was never called"
        job = daemon.elx_json("jobs")[0]["id"]
        shown = [
            submitted.stdout + submitted.stderr,
            daemon.elx("result", job, "--json").stdout,
            daemon.elx("status", job, "--json").stdout,
        ]
        assert "[redacted]" in shown[1]
        assert daemon.elx("shutdown").returncode == 0
        assert daemon.wait_exit() == 0
    stored = [path.read_bytes() for path in daemon.state_dir.rglob("*") if path.is_file()]
    for text in shown:
        assert KEY not in text
    for data in stored:
        assert KEY.encode() not in data
