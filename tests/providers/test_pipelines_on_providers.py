"""Pipelines from the examples run on real SDKs against local fake servers, via `elx run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from runtime.testing.fake_anthropic import AnthropicReply, FakeAnthropic, ToolUse

ELX = Path(sys.executable).with_name("elx")

PIPELINE = """
workflow:
  name: review
  steps:
    - name: draft
      type: claude
      claude_options: {model: haiku}
      prompt: "Review this change: add retries."
    - name: verdict
      type: claude
      prompt:
        - "Give a verdict on:"
        - {type: previous_response, step: draft}
"""


def run_elx(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "review.yaml"
    path.write_text(textwrap.dedent(PIPELINE).lstrip())
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    clean.pop("TEST_MODE", None)
    return subprocess.run(
        [str(ELX), "run", str(path), "--json", "--state-dir", str(tmp_path / ".s"), *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


def test_a_pipeline_runs_on_the_anthropic_sdk_against_the_fake_api(tmp_path: Path) -> None:
    """Both claude steps reach the fake API; the result records anthropic, not the mock."""
    with FakeAnthropic() as fake:
        fake.script(AnthropicReply(text="looks fine"), AnthropicReply(text="ship it"))
        done = run_elx(
            tmp_path,
            {"ANTHROPIC_API_KEY": "sk-test-secret-123", "ANTHROPIC_BASE_URL": fake.base_url},
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["result"] == "ship it"
        assert report["providers"] == ["anthropic"]
        assert report["notices"] == []
        second = fake.requests[1].json()
        assert "looks fine" in json.dumps(second["messages"])
        assert fake.requests[0].json()["model"] == "claude-haiku-4-5"
    assert "sk-test-secret-123" not in done.stdout + done.stderr


def test_a_provider_error_fails_the_run_with_its_kind_and_no_secret(tmp_path: Path) -> None:
    """A 401 from the API is an auth failure: exit 1, the key never printed."""
    with FakeAnthropic(api_keys=("the-right-key",)) as fake:
        done = run_elx(
            tmp_path,
            {"ANTHROPIC_API_KEY": "sk-wrong-secret-456", "ANTHROPIC_BASE_URL": fake.base_url},
        )
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["status"] == "failed"
    assert report["error"]["kind"] == "auth"
    assert "sk-wrong-secret-456" not in done.stdout + done.stderr


TOOLS_PIPELINE = """
workflow:
  name: tools
  workspace_dir: ./ws
  steps:
    - name: inspect
      type: claude
      claude_options: {allowed_tools: [Read], max_turns: 3}
      prompt: "Read notes.txt and summarize it."
"""


def test_a_claude_step_with_tools_reads_only_inside_its_workspace(tmp_path: Path) -> None:
    """The tool loop runs read_file in the pipeline's workspace and refuses escapes."""
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "notes.txt").write_text("the quarterly numbers are up")
    (tmp_path / "secret.txt").write_text("do not read me")
    path = tmp_path / "tools.yaml"
    path.write_text(textwrap.dedent(TOOLS_PIPELINE).lstrip())
    with FakeAnthropic() as fake:
        fake.script(
            AnthropicReply(tool_uses=(ToolUse("read_file", {"path": "notes.txt"}),)),
            AnthropicReply(tool_uses=(ToolUse("read_file", {"path": "../secret.txt"}),)),
            AnthropicReply(text="numbers are up"),
        )
        clean = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        clean.pop("TEST_MODE", None)
        done = subprocess.run(
            [str(ELX), "run", str(path), "--json", "--state-dir", str(tmp_path / ".s")],
            capture_output=True,
            text=True,
            env={**clean, "ANTHROPIC_API_KEY": "sk-t", "ANTHROPIC_BASE_URL": fake.base_url},
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["result"] == "numbers are up"
        second, third = (json.dumps(r.json()["messages"]) for r in fake.requests[1:3])
    assert "the quarterly numbers are up" in second
    assert "do not read me" not in third


MIXED_PIPELINE = """
workflow:
  name: mixed
  gemini_functions:
    route_ticket:
      description: Route a ticket to a team
      parameters: {type: object, properties: {team: {type: string}}, required: [team]}
  steps:
    - name: triage
      type: gemini_structured
      schema:
        type: object
        properties: {severity: {type: integer}}
        required: [severity]
      prompt: "Rate this ticket: the login page is down."
    - name: route
      type: gemini
      functions: [route_ticket]
      prompt: "Route it (severity {{ steps.triage.severity }})."
    - name: reply
      type: llm
      provider: openai
      model: llama3
      prompt: "Write a reply for team {{ steps.route.function_calls[0].arguments.team }}."
"""


def test_a_pipeline_runs_on_the_gemini_and_openai_sdks_against_their_fakes(
    tmp_path: Path,
) -> None:
    """Structured output and a function call from Gemini feed an OpenAI-compatible call."""
    from runtime.testing.fake_gemini import FakeGemini, FunctionCallPart, GeminiReply
    from runtime.testing.fake_openai import FakeOpenAI, OpenAIReply

    path = tmp_path / "mixed.yaml"
    path.write_text(textwrap.dedent(MIXED_PIPELINE).lstrip())
    with FakeGemini() as gemini, FakeOpenAI() as openai:
        gemini.script(
            GeminiReply(text='{"severity": 4}'),
            GeminiReply(function_calls=(FunctionCallPart("route_ticket", {"team": "auth"}),)),
        )
        openai.script(OpenAIReply(text="Team auth is on it."))
        clean = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        clean.pop("TEST_MODE", None)
        env = {
            **clean,
            "GEMINI_API_KEY": "g-secret-789",
            "GOOGLE_GEMINI_BASE_URL": gemini.base_url,
            "OPENAI_API_KEY": "o-secret-012",
            "OPENAI_BASE_URL": openai.base_url,
        }
        done = subprocess.run(
            [str(ELX), "run", str(path), "--json", "--state-dir", str(tmp_path / ".s")],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["result"] == "Team auth is on it."
        assert report["providers"] == ["gemini", "openai"]
        assert report["steps"]["triage"]["result"] == {"severity": 4}
        sent = json.dumps(openai.requests[0].json())
        assert "team auth" in sent
        assert openai.requests[0].json()["model"] == "llama3"
    for secret in ("g-secret-789", "o-secret-012"):
        assert secret not in done.stdout + done.stderr
