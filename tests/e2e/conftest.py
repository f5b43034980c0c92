"""A real daemon process on a temporary state dir, driven through the socket and `elx`."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ELX = Path(sys.executable).with_name("elx")
READY_S = 30.0


@dataclass
class DaemonProcess:
    """One `elx daemon`: started, waited for, stopped or killed by the test."""

    state_dir: Path
    env: dict[str, str]
    tree_file: Path = ROOT / "supervision.yaml"
    process: subprocess.Popen[str] | None = None
    ready_line: str = ""
    _lines: queue.Queue[str | None] = field(default_factory=queue.Queue)

    @property
    def socket(self) -> Path:
        return self.state_dir / "elx.sock"

    def start(self) -> str:
        self._lines = queue.Queue()
        self.process = subprocess.Popen(
            [
                str(ELX),
                "daemon",
                "--state-dir",
                str(self.state_dir),
                "--config",
                str(self.tree_file),
                "--drain-timeout",
                "10",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=self.env,
            cwd=ROOT,
        )
        reader = threading.Thread(target=self._read, args=(self.process,), daemon=True)
        reader.start()
        try:
            line = self._lines.get(timeout=READY_S)
        except queue.Empty:
            self.kill()
            raise AssertionError(f"the daemon printed no ready line within {READY_S} s") from None
        if line is None:
            raise AssertionError(f"the daemon exited before it was ready ({self.process.wait()})")
        self.ready_line = line
        return line

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._lines.put(line.strip())
        self._lines.put(None)

    def elx(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ELX), *args, "--state-dir", str(self.state_dir)],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=ROOT,
            timeout=timeout,
            check=False,
        )

    def elx_json(self, *args: str, timeout: float = 60) -> Any:
        done = self.elx(*args, "--json", timeout=timeout)
        assert done.returncode in (0, 1, 3), done.stderr
        return json.loads(done.stdout)

    def client(self, timeout: float = 30.0) -> Any:
        from runtime.client import Client

        return Client(self.socket, timeout=timeout)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)


@pytest.fixture
def daemon_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.pop("TEST_MODE", None)
    env["ELX_STATE_DIR"] = str(tmp_path / "state")
    return env


@pytest.fixture
def daemon(tmp_path: Path, daemon_env: dict[str, str]) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path / "state", daemon_env)
    yield proc
    proc.kill()


def write_pipeline(directory: Path, name: str, text: str) -> Path:
    import textwrap

    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path
