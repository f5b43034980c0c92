"""A real daemon process on a temporary state dir, driven through the socket and `elx`."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from runtime.testing.daemon_process import DaemonProcess, clean_env


@pytest.fixture
def daemon_env(tmp_path: Path) -> dict[str, str]:
    return clean_env(
        ELX_STATE_DIR=str(tmp_path / "state"),
        PIPELINE_WORKSPACE_DIR=str(tmp_path / "workspace"),
        PIPELINE_OUTPUT_DIR=str(tmp_path / "outputs"),
    )


@pytest.fixture
def daemon(tmp_path: Path, daemon_env: dict[str, str]) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path / "state", daemon_env)
    yield proc
    proc.kill()


@pytest.fixture
def daemon_with(
    tmp_path: Path, daemon_env: dict[str, str]
) -> Iterator[Callable[..., DaemonProcess]]:
    """A factory: a started daemon whose environment has these extra variables."""
    made: list[DaemonProcess] = []

    def make(**extra: str) -> DaemonProcess:
        proc = DaemonProcess(tmp_path / "state", {**daemon_env, **extra})
        made.append(proc)
        proc.start()
        return proc

    yield make
    for proc in made:
        proc.kill()


THREE_STEPS = """
    workflow:
      name: three
      inputs:
        n: {type: integer}
      steps:
        - {name: one, type: llm, provider: mock, prompt: "one of job {{ inputs.n }}"}
        - {name: two, type: llm, provider: mock, prompt: "two of job {{ inputs.n }}"}
        - {name: three, type: llm, provider: mock, prompt: "three of job {{ inputs.n }}"}
"""


def write_pipeline(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


@dataclass(frozen=True)
class WebGateway:
    """A daemon serving the web gateway on a free port, and what a client needs."""

    daemon: DaemonProcess
    url: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def start_web_gateway(base: Path, **extra: str) -> WebGateway:
    env = clean_env(
        ELX_STATE_DIR=str(base / "state"),
        PIPELINE_WORKSPACE_DIR=str(base / "workspace"),
        PIPELINE_OUTPUT_DIR=str(base / "outputs"),
        ELX_WEB="1",
        ELX_WEB_PORT="0",
        **extra,
    )
    daemon = DaemonProcess(base / "state", env)
    daemon.start()
    done = daemon.elx("web", "url", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    token = answer["open"].split("#token=", 1)[1]
    return WebGateway(daemon, answer["url"].rstrip("/"), token)


@pytest.fixture(scope="module")
def web_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebGateway]:
    """One gateway for a module's tests; the mock answers after 200 ms per call, so a job
    runs long enough to be watched and cancelled."""
    gateway = start_web_gateway(tmp_path_factory.mktemp("web"), ELX_MOCK_LATENCY_MS="200")
    yield gateway
    gateway.daemon.kill()
