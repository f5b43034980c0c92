"""`elx top`: a live dashboard of the daemon, redrawn in place every ``--interval`` seconds.

Each refresh asks the daemon for ``tree``, the running ``jobs``, ``metrics`` and
``health``; ``runtime.dashboard`` turns the snapshots into a frame. Exit codes:
0 on Ctrl-C or after ``--once``, 4 when no daemon answers (or it goes away).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

import click

from runtime.cli_daemon import _Remote, state_dir_option

if TYPE_CHECKING:
    from rich.console import Console

    from runtime.dashboard import History, Snapshot

JOBS_SHOWN = 20


class Caller(Protocol):
    """What `elx top` needs of a daemon client (``cli_daemon._Remote`` or a fake)."""

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any: ...


def register(main: click.Group) -> None:
    """Add `elx top` to the `elx` group."""

    @main.command()
    @click.option(
        "--interval",
        default=1.0,
        show_default=True,
        type=click.FloatRange(min=0.1),
        help="Seconds between refreshes.",
    )
    @click.option("--once", is_flag=True, help="Print one frame and exit (for scripts).")
    @state_dir_option
    def top(interval: float, once: bool, state_dir: str) -> None:
        """Live dashboard: tree, running jobs, throughput, latency, providers, health."""
        from rich.console import Console

        remote = _Remote(state_dir, timeout=max(10.0, 3 * interval))
        console = Console()
        if once:
            show_once(remote, console)
        else:
            watch(remote, console, interval)


def fetch(remote: Caller) -> Snapshot:
    """One snapshot of the daemon; a call that fails exits through ``remote`` (4: no daemon)."""
    from runtime.dashboard import Snapshot

    return Snapshot.from_answers(
        tree=remote.call("tree"),
        jobs=remote.call("jobs", {"state": "running", "limit": JOBS_SHOWN}),
        metrics=remote.call("metrics"),
        health=remote.call("health"),
        taken_at=time.time(),  # wall clock: job ages compare with the daemon's timestamps
    )


def show_once(remote: Caller, console: Console) -> History:
    """Fetch one snapshot and print its frame."""
    from runtime.dashboard import History, render

    history = History()
    history.append(fetch(remote))
    console.print(render(history))
    return history


def watch(
    remote: Caller, console: Console, interval: float, stop: threading.Event | None = None
) -> None:
    """Redraw in place every ``interval`` seconds until Ctrl-C (or ``stop`` is set)."""
    from rich.live import Live

    from runtime.dashboard import History, render

    stop = stop or threading.Event()
    history = History()
    try:
        history.append(fetch(remote))
        with Live(render(history), console=console, auto_refresh=False, screen=False) as live:
            while not stop.wait(interval):
                history.append(fetch(remote))
                live.update(render(history), refresh=True)
    except KeyboardInterrupt:
        return
