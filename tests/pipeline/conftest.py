"""Helpers for pipeline tests: write a pipeline, run it in-process with the mock provider."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runtime.config import Settings
from runtime.pipeline.executor import RunResult, run_pipeline
from runtime.pipeline.loader import load_pipeline
from runtime.providers.gateway import LocalGateway
from runtime.providers.mock import MockProvider, MockSettings
from runtime.state_dir import open_state
from runtime.store import Store
from runtime.testing import FakeClock


class Harness:
    """A temp project: pipelines written into it, runs with a fake clock and a mock provider."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.clock = FakeClock()
        self.settings = Settings.from_env({}).with_(
            state_dir=root / ".elexirion",
            workspace_dir=root / "workspace",
            output_dir=root / "outputs",
        )
        self.mock = MockProvider(MockSettings(clock=self.clock))
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_state(self.settings)
        return self._store

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    def use_mock(self, settings: MockSettings) -> MockProvider:
        self.mock = MockProvider(settings)
        return self.mock

    def run(self, name: str, inputs: dict[str, Any] | None = None, **kwargs: Any) -> RunResult:
        loaded = load_pipeline(self.root / name)
        gateway = LocalGateway({"mock": self.mock}, self.settings)
        return run_pipeline(
            loaded,
            inputs or {},
            gateway=gateway,
            settings=self.settings,
            store=self.store,
            clock=self.clock,
            **kwargs,
        )


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


Write = Callable[[str, str], Path]
