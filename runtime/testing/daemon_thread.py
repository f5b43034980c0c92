"""A daemon inside the test process, on a thread: for tests that need its objects, not a socket."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runtime.config import Settings
from runtime.daemon import Daemon, DaemonContext

READY_S = 20.0


def settings_in(directory: Path, environ: dict[str, str] | None = None) -> Settings:
    """Settings whose state, workspace and outputs live under ``directory``."""
    return Settings.from_env(environ).with_(
        state_dir=directory / "state",
        workspace_dir=directory / "workspace",
        output_dir=directory / "outputs",
    )


@contextmanager
def running_daemon(settings: Settings, tree: Path, **options: Any) -> Iterator[DaemonContext]:
    """Start a Daemon on a thread, yield its context once ready, drain and join it after."""
    ready = threading.Event()
    daemon = Daemon(settings, tree, console=None, ready_line=lambda _: ready.set(), **options)
    thread = threading.Thread(target=daemon.run, name="daemon-under-test")
    thread.start()
    try:
        if not ready.wait(READY_S) or daemon.context is None:
            raise AssertionError(f"the daemon was not ready within {READY_S} s")
        yield daemon.context
    finally:
        daemon.request_stop()
        thread.join(READY_S)
    if thread.is_alive():
        raise AssertionError("the daemon did not stop")
