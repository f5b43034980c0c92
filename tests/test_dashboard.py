"""`elx top`: sparklines, the history's rates, the frame it draws, and the command."""

from __future__ import annotations

import threading
from typing import Any

import click
import pytest
from click.testing import CliRunner
from rich.console import Console

from runtime import cli_top
from runtime.cli_daemon import EXIT_NO_DAEMON, _die
from runtime.dashboard import BLOCKS, DASH, History, Snapshot, render, sparkline

NOW = 1_750_000_000.0


# ---------------------------------------------------------------------------
# Canned daemon answers


def worker(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "path": f"root/providers/mock/w{i}",
        "id": f"w{i}",
        "kind": "worker",
        "state": "running",
        "restart_count": 0,
        "uptime_s": 120.0,
        "mailbox_depth": 0,
        "detail": [["provider", "mock"], ["breaker", "open"], ["busy", "1/8"]],
        "children": [],
        **extra,
    }


def supervisor(name: str, children: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": name,
        "kind": "supervisor",
        "state": "running",
        "strategy": "one_for_one",
        "restart_count": 0,
        "children": children,
        **extra,
    }


def tree() -> dict[str, Any]:
    mock = [worker(i) for i in range(8)]
    mock[3] = worker(3, job="a1b2c3", step="draft")
    job_worker = {
        "id": "worker",
        "kind": "worker",
        "state": "running",
        "restart_count": 0,
        "job": "a1b2c3",
        "step": "each[2]/review",
        "children": [],
    }
    return supervisor(
        "root",
        [
            {"id": "store", "kind": "worker", "state": "running", "restart_count": 0},
            supervisor("providers", [supervisor("mock", mock)]),
            supervisor("pipelines", [supervisor("job-a1b2c3", [job_worker])]),
            {"id": "agent", "kind": "worker", "state": "running", "restart_count": 2},
            {"id": "socket", "kind": "worker", "state": "running", "restart_count": 0},
        ],
    )


def metrics(completed: int, steps: int, step_seconds: float, uptime: float = 3725.0) -> Any:
    return {
        "uptime_s": uptime,
        "jobs": {"completed": completed, "failed": 4, "queued_now": 5, "running_now": 1},
        "threads": 57,
        "rss_kib": 217_088,
        "providers": {
            "mock": {"breaker": "open", "busy": "1/8"},
            "anthropic": {"breaker": "closed", "busy": "0/16"},
        },
        "counters": {
            "jobs_completed_total": completed,
            "jobs_failed_total": 4,
            "steps_total": steps,
            "step_seconds_sum": step_seconds,
            "step_seconds_count": steps,
        },
    }


JOBS = [
    {
        "id": "a1b2c3",
        "status": "running",
        "pipeline": "/srv/elx/pipelines/analysis.yaml",
        "current_step": None,
        "created_at": NOW - 100,
        "started_at": NOW - 65,
    }
]

HEALTH = {
    "status": "degraded",
    "checks": [
        {"name": "store", "value": 1, "threshold": None, "status": "ok", "message": ""},
        {
            "name": "queue_depth",
            "value": 5,
            "threshold": 4,
            "status": "warn",
            "message": "jobs are waiting",
        },
    ],
    "actions": [{"kind": "shed_load", "target": "providers/mock", "reason": "breaker open"}],
}


def snapshot(at: float, completed: int, steps: int, step_seconds: float) -> Snapshot:
    return Snapshot(
        tree=tree(),
        jobs=JOBS,
        metrics=metrics(completed, steps, step_seconds, uptime=3725.0 + at),
        health=HEALTH,
        taken_at=NOW + at,
    )


def realistic_history() -> History:
    history = History()
    for at, completed, steps, seconds in [
        (0.0, 100, 800, 400.0),
        (1.0, 101, 804, 402.0),
        (2.0, 104, 810, 410.0),
        (3.0, 104, 812, 411.0),
    ]:
        history.append(snapshot(at, completed, steps, seconds))
    return history


def frame(history: History) -> str:
    console = Console(record=True, width=120, color_system=None)
    console.print(render(history))
    return console.export_text()


def counters(at: float, **values: float) -> Snapshot:
    return Snapshot(metrics={"counters": values}, taken_at=at)


# ---------------------------------------------------------------------------
# sparkline


@pytest.mark.parametrize(
    ("values", "width", "expected"),
    [
        ([], 30, ""),
        ([0.0, 0.0, 0.0], 30, "▁▁▁"),
        ([5.0, 5.0], 30, "▄▄"),
        ([0.0, 7.0], 30, "▁█"),
        ([float(v) for v in range(8)], 30, BLOCKS),
        ([-1.0, 1.0], 30, "▁█"),
        ([1.0, None, 3.0], 30, "▁ █"),
        ([None, float("nan")], 30, "  "),
        ([float(v) for v in range(10)], 3, "▁▅█"),
        ([1.0, 2.0], 0, ""),
    ],
)
def test_sparkline_scales_the_last_width_values_to_their_range(
    values: list[float | None], width: int, expected: str
) -> None:
    """Blocks run from min to max of the shown tail; gaps are spaces; flat input is flat."""
    assert sparkline(values, width) == expected


def test_sparkline_is_as_long_as_its_input_up_to_the_width() -> None:
    """A short series is not padded; a long one is cut to the newest ``width`` values."""
    assert len(sparkline([1.0, 2.0, 3.0], 10)) == 3
    assert len(sparkline([float(v) for v in range(100)], 10)) == 10


# ---------------------------------------------------------------------------
# History


def test_throughput_is_completed_jobs_per_second_from_counters() -> None:
    """Each interval's rate is the counter's growth over the seconds between snapshots."""
    history = History()
    for at, done in [(0.0, 10), (2.0, 14), (4.0, 14), (5.0, 17)]:
        history.append(counters(at, jobs_completed_total=done))
    assert history.throughput() == [2.0, 0.0, 3.0]


def test_throughput_falls_back_to_the_completed_count_without_counters() -> None:
    """An older daemon without ``counters`` still shows a rate from ``jobs.completed``."""
    history = History()
    for at, done in [(0.0, 3), (1.0, 5)]:
        history.append(Snapshot(metrics={"jobs": {"completed": done}}, taken_at=at))
    assert history.throughput() == [2.0]


def test_a_state_missing_from_the_job_counts_means_no_job_reached_it_yet() -> None:
    """The daemon counts jobs by state and omits states with none, so missing is zero."""
    history = History()
    history.append(Snapshot(metrics={"jobs": {"running_now": 1}}, taken_at=0.0))
    history.append(Snapshot(metrics={"jobs": {"completed": 3}}, taken_at=2.0))
    assert history.throughput() == [1.5]


def test_latency_is_step_seconds_over_steps_finished_in_each_interval() -> None:
    """Mean step latency per interval; an interval in which no step finished is a gap."""
    history = History()
    for at, total, count in [(0.0, 0.0, 0), (1.0, 3.0, 2), (2.0, 3.0, 2), (3.0, 4.0, 6)]:
        history.append(counters(at, step_seconds_sum=total, step_seconds_count=count))
    assert history.latency() == [1.5, None, 0.25]


def test_a_counter_reset_leaves_a_gap_and_the_rates_resume() -> None:
    """A counter that drops (the daemon restarted) gives no rate for that one interval."""
    history = History()
    for at, done in [(0.0, 10), (1.0, 20), (2.0, 3), (3.0, 5)]:
        history.append(counters(at, jobs_completed_total=done))
    assert history.throughput() == [10.0, None, 2.0]


def test_a_daemon_restart_seen_in_uptime_leaves_a_gap() -> None:
    """Counters that happen to grow across a restart still give no rate for that interval."""
    history = History()
    for at, uptime, done in [(0.0, 500.0, 10), (1.0, 0.5, 12), (2.0, 1.5, 14)]:
        history.append(
            Snapshot(
                metrics={"uptime_s": uptime, "counters": {"jobs_completed_total": done}},
                taken_at=at,
            )
        )
    assert history.throughput() == [None, 2.0]


def test_missing_keys_and_stalled_clocks_give_gaps_not_errors() -> None:
    """No metrics, odd types or two snapshots at the same instant: every value is None."""
    history = History()
    history.append(Snapshot(taken_at=1.0))
    history.append(Snapshot(metrics={"jobs": "?", "counters": None}, taken_at=2.0))
    history.append(counters(2.0, jobs_completed_total=5))
    history.append(counters(2.0, jobs_completed_total=9))
    assert history.throughput() == [None, None, None]
    assert history.latency() == [None, None, None]
    assert history.running() == [None, None, None, None]


def test_running_and_queued_are_read_at_each_snapshot() -> None:
    """The gauges are per snapshot, not per interval."""
    history = History()
    for running, queued in [(1, 0), (3, 5)]:
        history.append(Snapshot(metrics={"jobs": {"running_now": running, "queued_now": queued}}))
    assert history.running() == [1.0, 3.0]
    assert history.queued() == [0.0, 5.0]


def test_history_keeps_only_the_newest_snapshots() -> None:
    """Past ``size`` snapshots the oldest are dropped."""
    history = History(size=3)
    for at in range(5):
        history.append(Snapshot(taken_at=float(at)))
    assert [s.taken_at for s in history.snapshots] == [2.0, 3.0, 4.0]
    assert history.latest is not None
    assert history.latest.taken_at == 4.0


def test_snapshot_from_answers_drops_answers_of_the_wrong_shape() -> None:
    """A non-object answer counts as empty rather than failing later in rendering."""
    snap = Snapshot.from_answers(
        tree=None, jobs=[{"id": "x"}, 3], metrics=[], health="?", taken_at=1.0
    )
    assert snap == Snapshot(jobs=[{"id": "x"}], taken_at=1.0)


# ---------------------------------------------------------------------------
# render


def test_a_realistic_frame_shows_health_tree_jobs_trends_providers_and_actions() -> None:
    """Everything an operator looks for is in one frame of plain text."""
    history = realistic_history()
    text = frame(history)
    assert "degraded" in text
    assert "up 1h02m" in text
    assert "rss 212.0 MiB" in text
    assert "threads 57" in text
    assert "mock running · w0..w7: 8/8 up, 1 busy · breaker open" in text
    assert "breaker open" in text
    assert "agent running restarts 2" in text
    assert "worker running job a1b2c3 @ each[2]/review" in text
    job_line = next(line for line in text.splitlines() if "a1b2c3" in line and "analysis" in line)
    assert "each[2]/review" in job_line
    assert "1m08s" in job_line  # started 65 s before the first of four snapshots, 1 s apart
    provider_line = next(line for line in text.splitlines() if "mock" in line and "1/8" in line)
    assert "open" in provider_line
    assert sparkline(history.throughput()) in text
    assert sparkline(history.latency()) in text
    assert "0.00/s" in text
    assert "500 ms" in text
    assert "queue_depth: warn · 5 (limit 4) · jobs are waiting" in text
    assert "store:" not in text
    assert "shed_load providers/mock: breaker open" in text


def test_a_narrow_terminal_gets_the_panels_stacked_without_wrapping_the_pool_line() -> None:
    """Below the wide layout's width the tree takes the full width, above the activity."""
    console = Console(record=True, width=80, color_system=None)
    console.print(render(realistic_history()))
    text = console.export_text()
    assert "mock running · w0..w7: 8/8 up, 1 busy · breaker open" in text
    assert text.index("╭─ tree") < text.index("╭─ activity")


def test_health_checks_given_as_a_mapping_show_only_the_failing_ones() -> None:
    """The daemon's current shape: name → text, with "ok" for a passing check."""
    history = History()
    history.append(
        Snapshot(
            health={
                "status": "critical",
                "checks": {"store": "failed: disk I/O error", "tree": "ok"},
                "down": ["root/agent"],
            }
        )
    )
    text = frame(history)
    assert "critical" in text
    assert "store: failed: disk I/O error" in text
    assert "tree: ok" not in text
    assert "down: root/agent" in text


@pytest.mark.parametrize(
    "snap",
    [
        Snapshot(),
        Snapshot(tree={"id": "root"}, metrics={"jobs": {}, "providers": {}}, health={"checks": {}}),
        Snapshot.from_answers(tree=[], jobs=None, metrics=None, health=None, taken_at=0.0),
    ],
    ids=["empty", "minimal", "wrong-shapes"],
)
def test_an_empty_or_minimal_snapshot_renders_with_dashes(snap: Snapshot) -> None:
    """Missing data is drawn as an en dash or a short note, never an error."""
    history = History()
    history.append(snap)
    text = frame(history)
    assert f"up {DASH}" in text
    assert f"threads {DASH}" in text
    assert "no running jobs" in text
    assert "no provider pools" in text


def test_a_history_without_snapshots_renders_a_waiting_line() -> None:
    """Before the first answer there is still something to draw."""
    assert "waiting" in frame(History())


# ---------------------------------------------------------------------------
# elx top


class FakeRemote:
    """Answers like the daemon from canned dicts; ``fail_on`` makes the n-th tree call fail."""

    def __init__(self, fail_on: int | None = None, error: BaseException | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any] | None]] = []
        self.fail_on = fail_on
        self.error = error
        self.trees = 0
        self.after_tree: threading.Event | None = None

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self.calls.append((method, params))
        if method == "tree":
            self.trees += 1
            if self.fail_on is not None and self.trees >= self.fail_on:
                if self.error is not None:
                    raise self.error
                _die("no daemon at .elexirion/elx.sock; start one with `elx daemon`", 4)
            return tree()
        if method == "jobs":
            return JOBS
        if method == "metrics":
            return metrics(100 + self.trees, 800, 400.0)
        return HEALTH


def elx(monkeypatch: pytest.MonkeyPatch, remote: FakeRemote, *args: str) -> Any:
    monkeypatch.setattr(cli_top, "_Remote", lambda state_dir, timeout=30.0: remote)

    @click.group()
    def main() -> None:
        pass

    cli_top.register(main)
    return CliRunner().invoke(main, ["top", *args], catch_exceptions=False)


def test_elx_top_once_prints_one_frame_and_exits_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--once` fetches tree, running jobs, metrics and health once and prints the frame."""
    remote = FakeRemote()
    result = elx(monkeypatch, remote, "--once")
    assert result.exit_code == 0, result.output
    assert "degraded" in result.stdout
    assert "w0..w7" in result.stdout
    assert [method for method, _ in remote.calls] == ["tree", "jobs", "metrics", "health"]
    assert ("jobs", {"state": "running", "limit": 20}) in remote.calls


def test_elx_top_exits_four_when_no_daemon_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The remote's no-daemon exit passes through with its one-line message."""
    result = elx(monkeypatch, FakeRemote(fail_on=1), "--once")
    assert result.exit_code == EXIT_NO_DAEMON
    assert "no daemon at" in result.stderr


def test_elx_top_exits_four_when_the_daemon_goes_away(monkeypatch: pytest.MonkeyPatch) -> None:
    """A live dashboard whose daemon stops answering ends with exit 4, not a traceback."""
    result = elx(monkeypatch, FakeRemote(fail_on=3), "--interval", "0.1")
    assert result.exit_code == EXIT_NO_DAEMON


def test_ctrl_c_ends_elx_top_with_exit_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while refreshing stops the dashboard quietly."""
    remote = FakeRemote(fail_on=2, error=KeyboardInterrupt())
    result = elx(monkeypatch, remote, "--interval", "0.1")
    assert result.exit_code == 0
    assert remote.trees == 2


def test_watch_refreshes_every_interval_until_stopped() -> None:
    """Each refresh fetches a new snapshot and redraws; setting ``stop`` ends the loop."""
    stop = threading.Event()

    class Stopping(FakeRemote):
        def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
            if method == "health" and self.trees == 3:
                stop.set()
            return super().call(method, params)

    remote = Stopping()
    console = Console(record=True, width=120, color_system=None)
    cli_top.watch(remote, console, 0.01, stop)
    assert remote.trees == 3
    assert "degraded" in console.export_text()
