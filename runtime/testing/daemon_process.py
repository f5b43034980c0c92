"""A real `elx daemon` process on a state directory, for end-to-end tests and benchmarks.

``DaemonProcess.start()`` spawns the daemon and waits for its ready line (an
event on a reader thread, never a sleep); ``elx(...)`` runs the CLI against
it; ``terminate``/``kill`` stop it the way an operator or a crash would.
``tree_file`` writes a copy of a supervision tree with other sizes.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.client import Client

ROOT = Path(__file__).resolve().parents[2]
ELX = Path(sys.executable).with_name("elx")
TREE = ROOT / "supervision.yaml"
READY_S = 30.0
_MOCK_POOL = 'pool: {size: 8, actor: "actors.provider:ProviderWorker", args: {provider: mock}}'


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without API keys or TEST_MODE, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.pop("TEST_MODE", None)
    env.update(extra)
    return env


def tree_file(directory: Path, *, max_jobs: int = 64, mock_workers: int = 8) -> Path:
    """A copy of supervision.yaml with room for ``max_jobs`` jobs and a mock pool of that size."""
    text = TREE.read_text(encoding="utf-8")
    for old, new in (
        ("max_children: 64", f"max_children: {max_jobs}"),
        (_MOCK_POOL, _MOCK_POOL.replace("size: 8", f"size: {mock_workers}")),
    ):
        if old not in text:
            raise ValueError(f"{TREE} no longer contains {old!r}; update tree_file()")
        text = text.replace(old, new)
    path = directory / "supervision.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class DaemonProcess:
    """One `elx daemon`: started, waited for, stopped or killed by its owner."""

    state_dir: Path
    env: dict[str, str]
    tree: Path = TREE
    drain_timeout_s: float = 10.0
    process: subprocess.Popen[str] | None = None
    ready_line: str = ""
    ready_s: float = 0.0
    _lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _reader: threading.Thread | None = None

    @property
    def socket(self) -> Path:
        return self.state_dir / "elx.sock"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> str:
        """Spawn the daemon and return its ready line (AssertionError if none comes)."""
        self._lines = queue.Queue()
        began = time.perf_counter()
        self.process = subprocess.Popen(
            [
                str(ELX),
                "daemon",
                "--state-dir",
                str(self.state_dir),
                "--config",
                str(self.tree),
                "--drain-timeout",
                str(self.drain_timeout_s),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=self.env,
            cwd=ROOT,
        )
        self._reader = threading.Thread(target=self._read, args=(self.process,), daemon=True)
        self._reader.start()
        try:
            line = self._lines.get(timeout=READY_S)
        except queue.Empty:
            self.kill()
            raise AssertionError(f"the daemon printed no ready line within {READY_S} s") from None
        if line is None:
            raise AssertionError(f"the daemon exited before it was ready ({self.process.wait()})")
        self.ready_s = time.perf_counter() - began
        self.ready_line = line
        return line

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._lines.put(line.strip())
        self._lines.put(None)

    def elx(
        self, *args: str, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `elx ARGS --state-dir STATE` (``input`` on stdin); what it printed, its code."""
        return subprocess.run(
            [str(ELX), *args, "--state-dir", str(self.state_dir)],
            input=input,
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

    def client(self, timeout: float = 30.0) -> Client:
        return Client(self.socket, timeout=timeout)

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would; a no-op once the daemon has exited."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        if self.process is not None:
            self.wait_exit(10)

    def wait_exit(self, timeout: float = 30.0) -> int:
        """Wait for the process to end, then close its output pipe; its exit code."""
        assert self.process is not None
        code = self.process.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
            self._reader = None
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code
