"""Fallbacks against the real SDKs: a provider refuses, the agent reruns the pipeline elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.testing.daemon_process import DaemonProcess
from runtime.testing.fake_anthropic import FakeAnthropic
from runtime.testing.fake_gemini import FakeGemini, GeminiReply


def test_a_provider_that_refuses_the_key_is_replaced_by_a_healthy_one(
    tmp_path: Path, daemon_env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    with FakeAnthropic(api_keys=("a-key-we-do-not-have",)) as claude, FakeGemini() as gemini:
        gemini.script(
            GeminiReply(text="A breaker stops calls to a failing service for a while."),
            GeminiReply(
                text=json.dumps(
                    {
                        "tldr": "It fails fast while the service recovers.",
                        "key_points": ["closed", "open", "half open"],
                        "follow_ups": ["How long does it stay open?"],
                    }
                )
            ),
        )
        env = {
            **daemon_env,
            "ANTHROPIC_API_KEY": "sk-ant-test-0123456789abcdef",
            "ANTHROPIC_BASE_URL": claude.base_url,
            "GEMINI_API_KEY": "AIza-test-0123456789abcdef0123456789",
            "GOOGLE_GEMINI_BASE_URL": gemini.base_url,
            "ELX_MOCK_FALLBACK": "0",
        }
        daemon = DaemonProcess(tmp_path / "state", env)
        request.addfinalizer(daemon.kill)
        daemon.start()
        answer = daemon.elx_json("ask", "what does a circuit breaker do?")
    assert answer["status"] == "completed", answer["error"]
    fallback = answer["fallback_used"]
    assert fallback["kind"] == "alternative_provider" and fallback["provider"] == "gemini"
    assert fallback["failure"] == "auth" and "anthropic failed (auth)" in fallback["reason"]
    assert answer["providers"] == ["gemini"]
    assert "It fails fast while the service recovers." in answer["response"]
    assert len(claude.requests) == 1  # refused once, not retried
    saved = list((daemon.state_dir / "fallbacks").glob("*-general_on_gemini.yaml"))
    assert len(saved) == 1
