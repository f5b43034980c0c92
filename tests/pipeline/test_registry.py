"""Step types come from a registry that other packages extend through entry points."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any, Literal

import pytest
from conftest import Harness

from runtime.errors import ConfigError
from runtime.pipeline import registry as registry_module
from runtime.pipeline.context import StepContext
from runtime.pipeline.models import StepSpec
from runtime.pipeline.registry import StepRegistry, StepType
from runtime.pipeline.schema import pipeline_json_schema


class WordCountStep(StepSpec):
    type: Literal["word_count"]
    text: str


def run_word_count(step: WordCountStep, ctx: StepContext) -> int:
    return len(ctx.render_text(step.text).split())


WORD_COUNT = StepType(WordCountStep, run_word_count, "count words")


def plugin_registry(monkeypatch: pytest.MonkeyPatch, target: str) -> StepRegistry:
    point = EntryPoint(name="word_count", value=target, group=registry_module.ENTRY_POINT_GROUP)

    def fake_entry_points(*, group: str) -> list[EntryPoint]:
        return [point] if group == registry_module.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(registry_module, "entry_points", fake_entry_points)
    fresh = StepRegistry()
    monkeypatch.setattr(registry_module, "STEP_REGISTRY", fresh)
    return fresh


def test_a_plugin_step_type_is_validated_and_run_like_a_core_one(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry point adds `word_count`; pipelines use it without touching the core."""
    fresh = plugin_registry(monkeypatch, f"{__name__}:WORD_COUNT")
    assert "word_count" in fresh.names()
    monkeypatch.setattr("runtime.pipeline.loader.STEP_REGISTRY", fresh)
    monkeypatch.setattr("runtime.pipeline.executor.STEP_REGISTRY", fresh)
    harness.write(
        "p.yaml",
        """
        workflow:
          name: plugin
          steps:
            - {name: count, type: word_count, text: "{{ inputs.words }}"}
        """,
    )
    from runtime.pipeline.executor import run_pipeline
    from runtime.pipeline.loader import load_pipeline
    from runtime.providers.gateway import LocalGateway

    loaded = load_pipeline(harness.root / "p.yaml", registry=fresh)
    result = run_pipeline(
        loaded,
        {"words": "one two three"},
        gateway=LocalGateway({"mock": harness.mock}, harness.settings),
        settings=harness.settings,
        store=harness.store,
    )
    assert result.ok, result.error
    assert result.result == 3
    schema: dict[str, Any] = pipeline_json_schema(fresh)
    assert "WordCountStep" in schema["$defs"]


def test_a_broken_plugin_is_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin that fails to import gives a ConfigError naming it and what to do."""
    fresh = plugin_registry(monkeypatch, "no_such_module_xyz:THING")
    with pytest.raises(ConfigError, match=r"step plugin 'word_count' .* failed to load"):
        fresh.names()


def test_registering_a_type_twice_is_refused() -> None:
    """Two packages cannot silently fight over one type name."""
    fresh = StepRegistry()
    fresh.register(WORD_COUNT)
    with pytest.raises(ConfigError, match="already registered"):
        fresh.register(WORD_COUNT)


def test_threads_that_ask_a_fresh_registry_at_once_all_see_the_core_types() -> None:
    """The first lookups race (a restarted daemon resumes many jobs at once); none may miss."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    fresh = StepRegistry()
    barrier = threading.Barrier(16)

    def look() -> bool:
        barrier.wait(10)
        return fresh.get("llm") is not None and fresh.get("claude") is not None

    with ThreadPoolExecutor(16) as pool:
        seen = list(pool.map(lambda _: look(), range(16)))
    assert all(seen)
