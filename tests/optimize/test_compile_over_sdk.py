"""The same optimization through a real SDK: the openai client against a local fake server."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from runtime.config import Settings
from runtime.optimize.compiler import compile_step, split
from runtime.optimize.language_model import gateway_lm
from runtime.optimize.program import Example, StepProgram
from runtime.optimize.scoring import Exact
from runtime.pipeline.loader import load_pipeline
from runtime.providers.base import LLMRequest, Message
from runtime.providers.gateway import LocalGateway
from runtime.providers.openai_compatible import OpenAICompatibleProvider
from runtime.testing.demo_mock import DemoMockProvider, code_for
from runtime.testing.fake_http import RecordedRequest, Reply
from runtime.testing.fake_openai import FakeOpenAI

PIPELINE = textwrap.dedent(
    """\
    workflow:
      name: codes
      inputs:
        key: {type: string, required: true}
      steps:
        - {name: code, type: llm, provider: openai, prompt: "Give the code for {{ inputs.key }}."}
    """
)
FAMILIES = {
    "metal": ("upper", ("silver", "copper", "nickel", "cobalt", "bronze")),
    "river": ("reverse", ("amazon", "danube", "thames", "mekong", "volga")),
}


def answered_by_the_demo_model(request: RecordedRequest, server: Any) -> Reply:
    """The fake API answers a chat completion as the demo model would."""
    body = request.json()
    messages = body["messages"]
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = [m for m in messages if m["role"] != "system"]
    history = tuple(Message(m["role"], m["content"]) for m in turns[:-1])
    answer = DemoMockProvider().complete(
        LLMRequest(prompt=turns[-1]["content"], system=system or None, history=history)
    )
    return Reply.json(
        200,
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
        },
    )


def test_bootstrapping_over_the_openai_sdk_raises_the_dev_score(tmp_path: Path) -> None:
    path = tmp_path / "codes.yaml"
    path.write_text(PIPELINE)
    program = StepProgram.from_pipeline(load_pipeline(path), "code")
    examples = [
        Example({"key": f"{family}:{word}"}, code_for(f"{family}:{word}", rule))
        for index in range(5)
        for family, (rule, words) in FAMILIES.items()
        for word in (words[index],)
    ]
    with FakeOpenAI() as fake:
        fake.server.route("POST", "/v1/chat/completions", answered_by_the_demo_model)
        environ = {"OPENAI_API_KEY": "sk-test-0123456789abcdef", "OPENAI_BASE_URL": fake.base_url}
        settings = Settings.from_env(environ)
        gateway = LocalGateway({"openai": OpenAICompatibleProvider(settings)}, settings)
        train, dev = split(examples, 0.3, seed=3)
        result = compile_step(
            program,
            train,
            dev,
            Exact(),
            settings={"max_labeled_demos": 4, "max_bootstrapped_demos": 4},
            lm=gateway_lm(gateway, "openai", "gpt-test"),
        )
        calls = len(fake.requests)
    print(f"over the openai SDK: dev score {result.before:.2f} → {result.after:.2f}")
    covered = {demo["inputs"]["key"].partition(":")[0] for demo in result.demos}
    share = sum(1 for ex in dev if ex.inputs["key"].partition(":")[0] in covered) / len(dev)
    assert result.before == 0.0 and result.after == share and result.after > 0.5
    assert calls > 2 * len(dev)
