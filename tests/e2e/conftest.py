"""A real daemon process on a temporary state dir, driven through the socket and `elx`."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
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


def write_pipeline(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path
