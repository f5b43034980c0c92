"""What `elx top` draws: snapshots of the daemon, their history, and a rich frame.

Pure rendering: nothing here talks to the daemon or reads a clock. `elx top`
(``runtime.cli_top``) fetches a ``Snapshot`` each refresh, appends it to a
``History`` and hands the history to ``render``.

Every field of the daemon's answers is optional here: an older daemon lacks
``counters``, a daemon that is still starting has no tree, and a check list
may be a mapping or a list of records. What is missing is drawn as an en dash.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

DASH = "\u2013"  # en dash: what a missing value is drawn as
BLOCKS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 24
WIDE = 110  # columns from which the tree and the side panels sit side by side
SIDE_WIDTH = 50

_WORKER_ID = re.compile(r"w\d+")
_OK_WORDS = frozenset({"ok", "pass", "passed", "passing", "healthy"})
_HEALTH_STYLE = {"healthy": "bold green", "degraded": "bold yellow", "critical": "bold red"}
_BREAKER_STYLE = {"closed": "green", "half_open": "yellow", "open": "bold red"}


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one refresh fetched from the daemon.

    ``taken_at`` is wall-clock seconds (``time.time()``) because job ages are
    measured against the daemon's wall-clock ``created_at``/``started_at``.
    """

    tree: dict[str, Any] = field(default_factory=dict)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    health: dict[str, Any] = field(default_factory=dict)
    taken_at: float = 0.0

    @classmethod
    def from_answers(
        cls, tree: Any, jobs: Any, metrics: Any, health: Any, taken_at: float
    ) -> Snapshot:
        """A snapshot from raw JSON answers; an answer of the wrong shape counts as empty."""
        return cls(
            tree=dict(tree) if isinstance(tree, Mapping) else {},
            jobs=[dict(j) for j in jobs if isinstance(j, Mapping)]
            if isinstance(jobs, list)
            else [],
            metrics=dict(metrics) if isinstance(metrics, Mapping) else {},
            health=dict(health) if isinstance(health, Mapping) else {},
            taken_at=taken_at,
        )


class History:
    """The last ``size`` snapshots and the per-interval series derived from them.

    A cumulative value that goes down (the daemon restarted, its counters
    reset) leaves a gap (``None``) for that interval rather than a bogus rate.
    """

    def __init__(self, size: int = 60) -> None:
        if size < 2:
            raise ValueError(f"a history needs at least 2 snapshots to show a trend, not {size}")
        self._snapshots: deque[Snapshot] = deque(maxlen=size)

    def append(self, snapshot: Snapshot) -> None:
        self._snapshots.append(snapshot)

    def __len__(self) -> int:
        return len(self._snapshots)

    @property
    def snapshots(self) -> tuple[Snapshot, ...]:
        return tuple(self._snapshots)

    @property
    def latest(self) -> Snapshot | None:
        return self._snapshots[-1] if self._snapshots else None

    def throughput(self) -> list[float | None]:
        """Jobs completed per second in each interval between consecutive snapshots."""
        series: list[float | None] = []
        for prev, cur in self._pairs():
            elapsed = cur.taken_at - prev.taken_at
            done = _delta(prev, cur, _counter("jobs_completed_total"))
            if done is None:
                done = _delta(prev, cur, lambda s: _job_count(s.metrics, "completed"))
            series.append(done / elapsed if done is not None and elapsed > 0 else None)
        return series

    def latency(self) -> list[float | None]:
        """Mean seconds per step finished in each interval (None when none finished)."""
        series: list[float | None] = []
        for prev, cur in self._pairs():
            seconds = _delta(prev, cur, _counter("step_seconds_sum"))
            steps = _delta(prev, cur, _counter("step_seconds_count"))
            series.append(seconds / steps if seconds is not None and steps else None)
        return series

    def running(self) -> list[float | None]:
        """Jobs running at each snapshot."""
        return [_number(_get(s.metrics, "jobs", "running_now")) for s in self._snapshots]

    def queued(self) -> list[float | None]:
        """Jobs waiting in the queue at each snapshot."""
        return [_number(_get(s.metrics, "jobs", "queued_now")) for s in self._snapshots]

    def _pairs(self) -> Iterator[tuple[Snapshot, Snapshot]]:
        return itertools.pairwise(self._snapshots)


def sparkline(values: Sequence[float | None], width: int = SPARK_WIDTH) -> str:
    """The last ``width`` values as block characters scaled to their min..max.

    ``None`` (or a non-finite value) is a gap. A constant series is a flat line:
    at the bottom when it is zero, at mid height otherwise.
    """
    if width <= 0:
        return ""
    tail = [v if v is not None and math.isfinite(v) else None for v in values[-width:]]
    known = [v for v in tail if v is not None]
    if not known:
        return " " * len(tail)
    low, high = min(known), max(known)
    top = len(BLOCKS) - 1
    chars = []
    for value in tail:
        if value is None:
            chars.append(" ")
        elif high == low:
            chars.append(BLOCKS[0] if value == 0 else BLOCKS[top // 2])
        else:
            chars.append(BLOCKS[int((value - low) / (high - low) * top + 0.5)])
    return "".join(chars)


def render(history: History) -> RenderableType:
    """One frame of `elx top` for the latest snapshot and the trends behind it."""
    snap = history.latest
    if snap is None:
        return Text("elx top: waiting for the first snapshot", style="dim")
    return _Frame(history, snap)


class _Frame:
    """The panels, side by side on a wide terminal and stacked on a narrow one."""

    def __init__(self, history: History, snap: Snapshot) -> None:
        self.history = history
        self.snap = snap

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        snap = self.snap
        tree = _panel(tree_view(snap.tree), "tree")
        side = Group(
            _panel(_activity(self.history, snap), "activity"),
            _panel(_providers_table(snap.metrics), "providers"),
        )
        yield _header(snap)
        if options.max_width >= WIDE:
            body = Table.grid(expand=True, padding=(0, 1))
            body.add_column(ratio=1)
            body.add_column(width=SIDE_WIDTH)
            body.add_row(tree, side)
            yield body
        else:
            yield tree
            yield side
        yield _panel(_jobs_table(snap), "running jobs")
        yield _panel(_health_view(snap.health), "health")


def _panel(content: RenderableType, title: str) -> Panel:
    return Panel(content, title=title, title_align="left")


# ---------------------------------------------------------------------------
# The header and the activity panel


def _header(snap: Snapshot) -> Text:
    status = snap.health.get("status")
    rss = _number(snap.metrics.get("rss_kib"))
    return Text.assemble(
        ("elx top", "bold"),
        "  ",
        (f"● {status}", _HEALTH_STYLE.get(str(status), "bold red"))
        if status
        else (f"● {DASH}", "dim"),
        f"  up {_duration(_number(snap.metrics.get('uptime_s')))}",
        f"  rss {DASH if rss is None else f'{rss / 1024:.1f} MiB'}",
        f"  threads {_count(snap.metrics.get('threads'))}",
        (f"  at {time.strftime('%H:%M:%S', time.localtime(snap.taken_at))}", "dim")
        if snap.taken_at > 0
        else "",
    )


def _activity(history: History, snap: Snapshot) -> RenderableType:
    rows: list[tuple[str, list[float | None], Callable[[float], str]]] = [
        ("throughput", history.throughput(), lambda v: f"{v:.2f}/s"),
        ("step latency", history.latency(), _seconds),
        ("running", history.running(), lambda v: f"{v:g}"),
        ("queued", history.queued(), lambda v: f"{v:g}"),
    ]
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(style="cyan", no_wrap=True, width=SPARK_WIDTH)
    table.add_column(justify="right", no_wrap=True)
    for name, series, show in rows:
        current = series[-1] if series else None
        line = sparkline(series)
        table.add_row(
            name, line if line.strip() else DASH, DASH if current is None else show(current)
        )
    counters = snap.metrics.get("counters")
    completed = _first(
        _get(counters, "jobs_completed_total"), _job_count(snap.metrics, "completed")
    )
    failed = _first(_get(counters, "jobs_failed_total"), _job_count(snap.metrics, "failed"))
    totals = Text(
        f"completed {_count(completed)} · failed {_count(failed)}"
        f" · steps {_count(_get(counters, 'steps_total'))}",
        style="dim",
    )
    return Group(table, totals)


# ---------------------------------------------------------------------------
# The supervision tree


def tree_view(data: Mapping[str, Any]) -> RenderableType:
    """The tree, compact: each node's state and restarts, pools of workers on one line."""
    if not data.get("id"):
        return Text(f"{DASH} no tree yet", style="dim")
    root = Tree(_node_label(data))
    _add_children(root, data)
    return root


def _add_children(branch: Tree, node: Mapping[str, Any]) -> None:
    for child in _children(node):
        workers = _children(child)
        if _is_pool(workers):
            pool = branch.add(_pool_label(child, workers))
            for worker in workers:  # the odd ones out are shown in full
                if worker.get("state") != "running":
                    pool.add(_node_label(worker))
        else:
            _add_children(branch.add(_node_label(child)), child)


def _is_pool(children: Sequence[Mapping[str, Any]]) -> bool:
    return len(children) >= 2 and all(
        _WORKER_ID.fullmatch(str(c.get("id", ""))) and not _children(c) for c in children
    )


def _node_label(node: Mapping[str, Any]) -> Text:
    label = Text.assemble((str(node.get("id", "?")), "bold"), " ", _state(node.get("state")))
    restarts = _number(node.get("restart_count"))
    if restarts:
        label.append(f" restarts {restarts:g}", style="yellow")
    if _number(node.get("mailbox_depth")):
        label.append(f" mailbox {node['mailbox_depth']}", style="yellow")
    if node.get("job"):
        label.append(f" job {node['job']}")
        if node.get("step"):
            label.append(f" @ {node['step']}", style="cyan")
    if node.get("state") != "running" and node.get("last_exit"):
        label.append(f" ({node['last_exit']})", style="dim")
    return label


def _pool_label(node: Mapping[str, Any], workers: Sequence[Mapping[str, Any]]) -> Text:
    running = sum(1 for w in workers if w.get("state") == "running")
    busy = sum(1 for w in workers if w.get("step") or w.get("job"))
    restarts = sum(_number(w.get("restart_count")) or 0 for w in workers)
    ids = sorted((str(w.get("id")) for w in workers), key=lambda i: int(i[1:]))
    label = _node_label(node)
    label.append(f" · {ids[0]}..{ids[-1]}: {running}/{len(workers)} up, {busy} busy")
    if restarts:
        label.append(f", {restarts:g} restarts", style="yellow")
    breaker = _details(workers[0]).get("breaker")
    if breaker and breaker != "closed":  # the providers panel lists every breaker
        label.append(" · breaker ")
        label.append(breaker, style=_BREAKER_STYLE.get(breaker, "bold red"))
    return label


def _state(state: Any) -> Text:
    if not state:
        return Text(DASH, style="dim")
    style = (
        "green"
        if state == "running"
        else "yellow"
        if state in ("starting", "restarting")
        else "red"
    )
    return Text(str(state), style=style)


def _children(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    children = node.get("children")
    if not isinstance(children, list):
        return []
    return [c for c in children if isinstance(c, Mapping)]


def _details(node: Mapping[str, Any]) -> dict[str, str]:
    """A node's ``detail`` pairs, sent as a list of ``[key, value]`` (or a mapping)."""
    raw = node.get("detail")
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return {str(p[0]): str(p[1]) for p in raw if isinstance(p, list | tuple) and len(p) == 2}
    return {}


def _walk(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield node
    for child in _children(node):
        yield from _walk(child)


# ---------------------------------------------------------------------------
# Jobs, providers, health


def _jobs_table(snap: Snapshot) -> RenderableType:
    if not snap.jobs:
        return Text("no running jobs", style="dim")
    steps = {str(n["job"]): n.get("step") for n in _walk(snap.tree) if n.get("job")}
    table = Table(box=None, expand=True, pad_edge=False)
    for name in ("id", "pipeline", "step", "age"):
        table.add_column(name, no_wrap=True, justify="right" if name == "age" else "left")
    for job in snap.jobs:
        job_id = str(job.get("id") or DASH)
        pipeline = job.get("pipeline")
        step = job.get("current_step") or steps.get(job_id)
        since = _number(job.get("started_at")) or _number(job.get("created_at"))
        age = None if since is None else max(0.0, snap.taken_at - since)
        table.add_row(
            job_id,
            PurePath(str(pipeline)).stem if pipeline else DASH,
            Text(str(step), style="cyan") if step else Text(DASH, style="dim"),
            _duration(age),
        )
    return table


def _providers_table(metrics: Mapping[str, Any]) -> RenderableType:
    providers = metrics.get("providers")
    if not isinstance(providers, Mapping) or not providers:
        return Text("no provider pools", style="dim")
    table = Table(box=None, expand=True, pad_edge=False)
    table.add_column("provider")
    table.add_column("breaker")
    table.add_column("busy", justify="right")
    for name, raw in sorted(providers.items()):
        info = dict(raw) if isinstance(raw, Mapping) else {}
        breaker = str(info.get("breaker") or DASH)
        table.add_row(
            str(name),
            Text(breaker, style=_BREAKER_STYLE.get(breaker, "dim")),
            str(info.get("busy") or DASH),
        )
    return table


def _health_view(health: Mapping[str, Any]) -> RenderableType:
    if not health:
        return Text(f"{DASH} no health answer", style="dim")
    lines = [Text(f"✗ {name}: {text}", style="yellow") for name, text in _failing(health)]
    down = health.get("down")
    if isinstance(down, list) and down:
        lines.append(Text(f"✗ down: {', '.join(str(p) for p in down)}", style="red"))
    actions = health.get("actions")
    for action in actions if isinstance(actions, list) else []:
        if isinstance(action, Mapping):
            lines.append(
                Text(
                    f"→ {action.get('kind', DASH)} {action.get('target', DASH)}:"
                    f" {action.get('reason', DASH)}",
                    style="magenta",
                )
            )
    if not lines:
        return Text("all checks ok", style="green")
    return Group(*lines)


def _failing(health: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """(name, description) of each check that is not ok, in either of the two shapes."""
    checks = health.get("checks")
    if isinstance(checks, Mapping):
        for name, text in checks.items():
            if str(text).strip().lower() not in _OK_WORDS:
                yield str(name), str(text)
    elif isinstance(checks, list):
        for check in checks:
            if not isinstance(check, Mapping):
                continue
            if str(check.get("status", "")).lower() in _OK_WORDS:
                continue
            parts = [str(check.get("status") or DASH)]
            if check.get("value") is not None:
                limit = check.get("threshold")
                parts.append(
                    f"{check['value']}" + (f" (limit {limit})" if limit is not None else "")
                )
            if check.get("message"):
                parts.append(str(check["message"]))
            yield str(check.get("name") or DASH), " · ".join(parts)


# ---------------------------------------------------------------------------
# Values


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _job_count(metrics: Mapping[str, Any], state: str) -> float | None:
    """Jobs ever in ``state``; the daemon leaves out states no job has reached yet."""
    jobs = metrics.get("jobs")
    if not isinstance(jobs, Mapping):
        return None
    return _number(jobs.get(state, 0))


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _counter(name: str) -> Callable[[Snapshot], float | None]:
    return lambda snap: _number(_get(snap.metrics, "counters", name))


def _delta(prev: Snapshot, cur: Snapshot, read: Callable[[Snapshot], float | None]) -> float | None:
    """How much a cumulative value grew; None if unknown or it was reset."""
    before, after = read(prev), read(cur)
    if before is None or after is None or after < before or _restarted(prev, cur):
        return None
    return after - before


def _restarted(prev: Snapshot, cur: Snapshot) -> bool:
    before, after = _number(prev.metrics.get("uptime_s")), _number(cur.metrics.get("uptime_s"))
    return before is not None and after is not None and after < before


def _count(value: Any) -> str:
    number = _number(value)
    return DASH if number is None else f"{number:g}"


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
