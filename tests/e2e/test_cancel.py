"""Cancelling a job cuts its provider call on the wire; the job ends `cancelled` once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from e2e.conftest import write_pipeline
from runtime.testing.daemon_process import DaemonProcess
from runtime.testing.fake_anthropic import FakeAnthropic

SLOW_S = 60.0  # the fake would answer this late; the test must be done long before
EVENT_S = 15.0

ONE_SLOW_CALL = """
    workflow:
      name: slow_claude
      steps:
        - {name: think, type: claude, prompt: "think for a long time"}
"""


def test_cancel_cuts_the_http_request_in_flight_and_frees_the_provider_worker(
    tmp_path: Path, daemon_env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    with FakeAnthropic() as fake:
        fake.script(fake.slow(SLOW_S))
        env = {
            **daemon_env,
            "ANTHROPIC_API_KEY": "sk-ant-test-0123456789abcdef",
            "ANTHROPIC_BASE_URL": fake.base_url,
            "ELX_MOCK_FALLBACK": "0",
        }
        daemon = DaemonProcess(tmp_path / "state", env)
        request.addfinalizer(daemon.kill)
        daemon.start()
        pipeline = write_pipeline(tmp_path, "slow.yaml", ONE_SLOW_CALL)
        with daemon.client() as client:
            job = client.call("submit", {"pipeline": str(pipeline)})["id"]
            assert fake.server.wait_requests(1, EVENT_S), "the call never reached the API"
            with client.subscribe("subscribe", {"tree": True}, event_timeout=EVENT_S) as events:
                began = time.monotonic()
                assert client.call("cancel", {"job": job})["status"] == "cancelled"
                assert time.monotonic() - began < 1.0
                for event in events:  # the worker returns as soon as its call is cut
                    if event.get("event") == "child_exited" and event.get("child") == f"job-{job}":
                        break
            freed_after = time.monotonic() - began
            assert freed_after < EVENT_S < SLOW_S
            assert client.call("metrics")["providers"]["anthropic"]["busy"] == "0/16"
            final = client.call("result", {"job": job})
            assert final["status"] == "cancelled" and final["error"]["kind"] == "cancelled"
