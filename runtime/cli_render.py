"""How the daemon commands print what the daemon answers (rich is imported lazily)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from runtime.cli_remote import EXIT_NO_DAEMON, EXIT_USAGE, _die, _Remote


def _show_step(event: dict[str, Any]) -> None:
    marks = {
        "step_finished": "✓",
        "step_skipped": "-",
        "step_restored": "↺",
        "step_retry": "…",
        "step_failed": "✗",
    }
    mark = marks.get(str(event.get("event")))
    if mark is None:
        return
    line = f"{mark} {event.get('step')} ({event.get('step_type')})"
    if event.get("event") == "step_finished":
        line += f" {event.get('duration_ms', 0):.1f} ms"
    elif event.get("message"):
        line += f" {event['message']}"
    click.echo(line, err=True)


def _show_status(data: dict[str, Any]) -> None:
    step = f" at {data['current_step']}" if data.get("current_step") else ""
    click.echo(f"job {data['id']} {data['status']}{step} ({Path(data['pipeline']).name})")
    meta = data.get("meta") or {}
    decision = (meta.get("agent") or {}).get("decision")
    if decision:
        click.echo(f"  routed to {decision['pipeline']}: {decision['reason']}")
    if meta.get("fallback"):
        fallback = meta["fallback"]
        click.echo(
            f"  {fallback['kind']} fallback of job {meta.get('fallback_of')}: {fallback['reason']}"
        )
    error = data.get("error") or {}
    if error.get("message"):
        click.echo(f"  error: {error['message']}")


def _show_answer(answer: dict[str, Any]) -> None:
    if answer["status"] == "completed":
        click.echo(answer["response"])
    else:
        color = "yellow" if answer["status"] in ("running", "accepted") else "red"
        click.secho(answer["response"] or answer["status"], fg=color, err=True)
    parts = [
        f"job {answer['job_id']} {answer['status']}",
        f"{answer['pipeline_used']}",
        f"{answer['execution_time_ms']:.0f} ms",
    ]
    if answer.get("providers"):
        parts.append(", ".join(answer["providers"]))
    if answer.get("cost_usd"):
        parts.append(f"${answer['cost_usd']:.4f}")
    fallback = answer.get("fallback_used")
    if fallback:
        parts.append(f"{fallback['kind']} fallback: {fallback['reason']}")
    click.secho(
        " · ".join(parts), fg="green" if answer["status"] == "completed" else None, err=True
    )


def _duration_s(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    raw = text.strip().lower()
    try:
        if raw and raw[-1] in units:
            return float(raw[:-1]) * units[raw[-1]]
        return float(raw)
    except ValueError:
        _die(f"--since {text!r}: use a number of seconds or 30m, 24h, 7d", EXIT_USAGE)


def _table(title: str, columns: list[str], rows: list[list[str]]) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def _labels(series: str) -> str:
    """`{provider="mock",outcome="ok"}` → `mock ok`."""
    return " ".join(
        part.split("=", 1)[1].strip('"') for part in series.strip("{}").split(",") if "=" in part
    )


def _show_metrics(data: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console()
    jobs = data.get("jobs", {})
    console.print(
        f"up {data.get('uptime_s', 0):.0f} s · {data.get('threads', 0)} threads · "
        f"RSS {data.get('rss_kib', 0) / 1024:.0f} MB · "
        f"running {jobs.get('running_now', 0)} · queued {jobs.get('queued_now', 0)}"
    )
    counters = data.get("counters") or {}
    job_rows = [[state, str(n)] for state, n in sorted(jobs.items()) if not state.endswith("_now")]
    console.print(_table("jobs by state", ["state", "jobs"], job_rows))
    provider_rows = []
    calls = counters.get("provider_calls", {})
    for name, pool in sorted((data.get("providers") or {}).items()):
        ok = sum(v for k, v in calls.items() if f'provider="{name}"' in k and 'outcome="ok"' in k)
        failed = sum(
            v for k, v in calls.items() if f'provider="{name}"' in k and 'outcome="error"' in k
        )
        tokens = sum(v for k, v in counters.get("tokens", {}).items() if f'provider="{name}"' in k)
        cost = sum(v for k, v in counters.get("cost_usd", {}).items() if f'provider="{name}"' in k)
        provider_rows.append(
            [
                name,
                pool.get("breaker", "?"),
                pool.get("busy", "?"),
                f"{ok:.0f}",
                f"{failed:.0f}",
                f"{tokens:.0f}",
                f"${cost:.4f}",
            ]
        )
    console.print(
        _table(
            "providers",
            ["provider", "breaker", "busy", "calls ok", "errors", "tokens", "cost"],
            provider_rows,
        )
    )
    steps = counters.get("step_seconds", {})
    if steps.get("count"):
        mean_ms = steps["sum"] / steps["count"] * 1000
        console.print(f"steps: {steps['count']:.0f} finished, mean {mean_ms:.1f} ms")
    restarts = counters.get("restarts", {})
    if restarts:
        rows = [[_labels(k), f"{v:.0f}"] for k, v in sorted(restarts.items())]
        console.print(_table("restarts by supervisor", ["supervisor", "restarts"], rows))
    telemetry = counters.get("telemetry") or {}
    if telemetry:
        applied, dropped = telemetry.get("applied", 0), telemetry.get("dropped", 0)
        console.print(f"telemetry: {applied} events, {dropped} dropped")


def _show_stats(data: dict[str, Any]) -> None:
    from rich.console import Console

    rows = [
        [
            p["pipeline"],
            str(p["runs"]),
            f"{p['success_rate'] * 100:.1f}%",
            f"{p['p50_ms']:.0f}",
            f"{p['p95_ms']:.0f}",
            f"{p['p99_ms']:.0f}",
            str(p["tokens"]),
            f"${p['cost_usd']:.4f}",
            f"${p['cost_per_run_usd']:.4f}",
        ]
        for p in data["pipelines"]
    ]
    if not rows:
        click.echo(f"no finished jobs in the last {data['since_s']:.0f} s")
        return
    Console().print(
        _table(
            f"pipelines, last {data['since_s']:.0f} s",
            [
                "pipeline",
                "runs",
                "success",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "tokens",
                "cost",
                "per run",
            ],
            rows,
        )
    )


def _show_examples(data: dict[str, Any]) -> None:
    rows = data["examples"]
    if not rows:
        click.echo(f"{data['pipeline']}: no examples yet (run it, or add a curated file)")
        return
    for row in rows:
        score = "-" if row.get("score") is None else f"{row['score']:.2f}"
        inputs = json.dumps(row["inputs"], ensure_ascii=False)[:60]
        output = str(row["output"]).replace("\n", " ")[:50]
        click.echo(f"{row['source']:<8} {row['step']:<16} {score:>5}  {inputs}  → {output}")


def _show_sessions(rows: list[dict[str, Any]]) -> None:
    if not rows:
        click.echo("no sessions")
    for row in rows:
        click.echo(f"{row['session']}  {row['turns']} turns")


def _show_session(data: dict[str, Any]) -> None:
    for turn in data["turns"]:
        who = "you" if turn["role"] == "user" else f"{turn.get('pipeline') or 'agent'}"
        click.secho(f"{who}:", bold=True)
        click.echo(turn["content"])


def _show_jobs(rows: list[dict[str, Any]]) -> None:
    if not rows:
        click.echo("no jobs")
        return
    for row in rows:
        click.echo(f"{row['id']}  {row['status']:<16} {Path(row['pipeline']).name}")


def _show_result(data: dict[str, Any]) -> None:
    from runtime.cli import print_run

    run = data.get("result")
    if isinstance(run, dict) and "steps" in run:
        print_run(run, what=f"job {data['job']}")
        return
    error = data.get("error") or {}  # ended before its run began (cancelled in the queue ...)
    click.secho(
        f"job {data['job']} {data['status']}: {error.get('message', 'no details')}",
        fg="red",
        err=True,
    )


def _show_health(data: dict[str, Any]) -> None:
    from rich.console import Console

    color = {"healthy": "green", "degraded": "yellow"}.get(data["status"], "red")
    console = Console()
    console.print(f"[bold {color}]{data['status']}[/]")
    checks = data.get("checks") or []
    rows = []
    for check in checks:
        mark = {"ok": "[green]ok[/]", "degraded": "[yellow]degraded[/]"}.get(
            check["status"], "[red]critical[/]"
        )
        rows.append([check["name"], str(check["value"]), check["threshold"], mark])
    if rows:
        console.print(_table("checks", ["check", "value", "threshold", "status"], rows))
    for check in checks:
        if check["status"] != "ok":
            console.print(f"  {check['name']}: {check['message']}")
    for action in data.get("actions") or []:
        target = f" {action['target']}" if action.get("target") else ""
        console.print(f"[bold]action[/] {action['kind']}{target}: {action['reason']}")
    for alert in data.get("alerts") or []:
        console.print(f"[bold red]alert[/] {alert['name']} {alert['state']}: {alert['summary']}")
    for path in data.get("down", []):
        console.print(f"  down: {path}")


def _down(node: dict[str, Any]) -> bool:
    if node.get("state") != "running" and not str(node.get("id", "")).startswith("job-"):
        return True
    return any(_down(child) for child in node.get("children", []))


def _label(node: dict[str, Any]) -> str:
    state = node["state"]
    color = "green" if state == "running" else "red"
    parts = [f"[bold]{node['id']}[/bold]", f"[{color}]{state}[/{color}]"]
    if node.get("strategy"):
        parts.append(
            f"{node['strategy']} {node.get('restarts_in_window')}/{node.get('intensity')}"
            f" in {node.get('period_s')}s"
        )
    if node.get("restart_count"):
        parts.append(f"restarts {node['restart_count']}")
    if node.get("uptime_s") is not None:
        parts.append(f"up {node['uptime_s']:.0f}s")
    if node.get("mailbox_depth"):
        parts.append(f"mailbox {node['mailbox_depth']}")
    if node.get("job"):
        parts.append(f"job {node['job']}" + (f" @ {node['step']}" if node.get("step") else ""))
    for key, value in node.get("detail") or []:
        parts.append(f"{key}={value}")
    return " ".join(parts)


def _rich_tree(data: dict[str, Any]) -> Any:
    from rich.tree import Tree

    def add(branch: Any, node: dict[str, Any]) -> None:
        children = node.get("children", [])
        workers = [c for c in children if not c.get("children") and c["id"].startswith("w")]
        if len(workers) > 4 and len(workers) == len(children):
            busy = sum(1 for w in workers if w.get("step"))
            running = sum(1 for w in workers if w["state"] == "running")
            restarts = sum(int(w.get("restart_count") or 0) for w in workers)
            detail = " ".join(
                f"{k}={v}" for k, v in (workers[0].get("detail") or []) if k != "provider"
            )
            line = f"{len(workers)} workers: {running} running, {busy} busy"
            if restarts:
                line += f", {restarts} restart{'s' if restarts != 1 else ''}"
            branch.add(f"{line} {detail}".strip())
            for worker in workers:  # the odd ones out are shown in full
                if worker["state"] != "running":
                    branch.add(_label(worker))
            return
        for child in children:
            add(branch.add(_label(child)), child)

    root = Tree(_label(data))
    add(root, data)
    return root


def _show_tree(data: dict[str, Any]) -> None:
    from rich.console import Console

    Console().print(_rich_tree(data))


def _watch_tree(remote: _Remote, redraw_s: float = 0.25) -> None:
    """Redraw the tree in place on every change (at most every ``redraw_s``) and each second."""
    from rich.live import Live

    from runtime.errors import DaemonUnavailable

    try:
        subscription = remote.client.subscribe("subscribe", {"tree": True})
    except DaemonUnavailable as exc:
        _die(str(exc), EXIT_NO_DAEMON)
    with subscription, Live(_rich_tree(remote.call("tree")), refresh_per_second=4) as live:
        drawn = time.monotonic()
        try:
            while True:
                try:
                    event = subscription.next_event(1.0)
                except StopIteration:  # the daemon went away
                    _die("the daemon stopped", EXIT_NO_DAEMON)
                if event is None or time.monotonic() - drawn >= redraw_s:
                    live.update(_rich_tree(remote.call("tree")))
                    drawn = time.monotonic()
        except KeyboardInterrupt:
            return
