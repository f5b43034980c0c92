"""`elx` commands that start or talk to the daemon over its Unix socket.

Exit codes: 0 ok, 1 the job failed, 2 usage or bad params, 3 a tree child is
not running (``tree``, ``health``), 4 no daemon answers.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import click

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DOWN = 3
EXIT_NO_DAEMON = 4

FAILED_STATES = ("failed", "cancelled", "budget_exceeded")


def state_dir_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--state-dir",
        envvar="ELX_STATE_DIR",
        default=".elexirion",
        show_default=True,
        help="State directory of the daemon to talk to.",
    )(fn)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(fn)


def _die(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class _Remote:
    """A client that turns daemon errors into one line and an exit code."""

    def __init__(self, state_dir: str, timeout: float = 30.0) -> None:
        from runtime.client import Client

        self.path = Path(state_dir) / "elx.sock"
        self.client = Client(self.path, timeout=timeout)

    def call(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        from runtime.errors import DaemonUnavailable, RemoteError

        try:
            return self.client.call(method, params or {}, **kw)
        except DaemonUnavailable as exc:
            _die(str(exc), EXIT_NO_DAEMON)
        except RemoteError as exc:
            code = EXIT_USAGE if exc.code in ("invalid_params", "not_found", "conflict") else 1
            _die(f"{exc.message} ({exc.code})", code)

    def stream(
        self, params: dict[str, Any], timeout: float | None = None
    ) -> Iterator[dict[str, Any] | None]:
        """Events of a subscription; None when ``timeout`` seconds pass without the end."""
        from runtime.errors import DaemonUnavailable

        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with self.client.subscribe("subscribe", params) as subscription:
                while True:
                    left = None if deadline is None else max(0.0, deadline - time.monotonic())
                    try:
                        event = subscription.next_event(left)
                    except StopIteration:
                        return
                    yield event
                    if event is None:
                        return
        except DaemonUnavailable as exc:
            _die(str(exc), EXIT_NO_DAEMON)


def _print(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    else:
        human(data)


def register(main: click.Group) -> None:
    """Add the daemon commands to the `elx` group."""

    @main.command()
    @state_dir_option
    @click.option(
        "--config",
        "tree_file",
        type=click.Path(dir_okay=False),
        default="supervision.yaml",
        show_default=True,
        help="The supervision tree to boot.",
    )
    @click.option("--drain-timeout", default=30.0, show_default=True, help="Seconds to drain.")
    def daemon(state_dir: str, tree_file: str, drain_timeout: float) -> None:
        """Run the daemon in the foreground (Ctrl-C or `elx shutdown` drains and stops)."""
        from runtime.config import Settings
        from runtime.daemon import Daemon, install_signal_handlers
        from runtime.errors import ConfigError, ValidationError

        settings = Settings.from_env().with_(state_dir=Path(state_dir))
        path = Path(tree_file)
        if not path.exists():
            _die(f"no supervision tree at {path}; pass --config FILE", EXIT_USAGE)
        runner = Daemon(settings, path, drain_timeout_s=drain_timeout)
        install_signal_handlers(runner)
        try:
            runner.run()
        except ValidationError as exc:
            click.echo(str(exc), err=True)
            sys.exit(EXIT_USAGE)
        except ConfigError as exc:
            _die(str(exc), EXIT_USAGE)

    @main.command()
    @click.argument("pipeline")
    @click.option("--input", "-i", "inputs", multiple=True, metavar="NAME=VALUE")
    @click.option("--input-file", type=click.Path(dir_okay=False))
    @click.option("--priority", default=0, show_default=True)
    @click.option("--wait", "wait_", is_flag=True, help="Follow the job until it ends.")
    @state_dir_option
    @json_option
    def submit(
        pipeline: str,
        inputs: tuple[str, ...],
        input_file: str | None,
        priority: int,
        wait_: bool,
        state_dir: str,
        as_json: bool,
    ) -> None:
        """Submit a pipeline (a file, or a name under pipelines/) as a durable job."""
        from runtime.cli import parse_inputs

        given = parse_inputs(inputs, input_file)
        target = str(Path(pipeline).resolve()) if Path(pipeline).exists() else pipeline
        remote = _Remote(state_dir)
        job = remote.call("submit", {"pipeline": target, "inputs": given, "priority": priority})
        if not wait_:
            _print(job, as_json, lambda j: click.echo(j["id"]))
            return
        if not as_json:
            click.echo(f"job {job['id']} accepted", err=True)
        _follow(remote, job["id"], as_json)

    @main.command()
    @click.argument("job")
    @state_dir_option
    @json_option
    def status(job: str, state_dir: str, as_json: bool) -> None:
        """Show a job's state and the step it is on."""
        data = _Remote(state_dir).call("status", {"job": job})
        _print(data, as_json, _show_status)

    @main.command()
    @click.argument("job")
    @click.option("--timeout", default=3600.0, show_default=True, help="Seconds to wait.")
    @state_dir_option
    @json_option
    def wait(job: str, timeout: float, state_dir: str, as_json: bool) -> None:
        """Follow a job's steps until it ends; exit 1 if it did not complete."""
        _follow(_Remote(state_dir, timeout=timeout + 10), job, as_json, timeout=timeout)

    @main.command()
    @click.argument("job")
    @state_dir_option
    @json_option
    def cancel(job: str, state_dir: str, as_json: bool) -> None:
        """Cancel a job; it ends `cancelled` and is never overwritten."""
        data = _Remote(state_dir).call("cancel", {"job": job})
        _print(data, as_json, lambda d: click.echo(f"job {d['id']} {d['status']}"))

    @main.command()
    @click.option("--state", "state", help="Only jobs in this state.")
    @click.option("--limit", default=50, show_default=True)
    @state_dir_option
    @json_option
    def jobs(state: str | None, limit: int, state_dir: str, as_json: bool) -> None:
        """List recent jobs."""
        data = _Remote(state_dir).call("jobs", {"state": state, "limit": limit})
        _print(data, as_json, _show_jobs)

    @main.command()
    @click.argument("job")
    @state_dir_option
    @json_option
    def result(job: str, state_dir: str, as_json: bool) -> None:
        """Print a finished job's result; exit 1 if it did not complete."""
        data = _Remote(state_dir).call("result", {"job": job})
        _print(data, as_json, _show_result)
        if data["status"] in FAILED_STATES:
            sys.exit(EXIT_FAILED)

    @main.command()
    @click.option("--watch", is_flag=True, help="Redraw on every change until Ctrl-C.")
    @state_dir_option
    @json_option
    def tree(watch: bool, state_dir: str, as_json: bool) -> None:
        """Show the live supervision tree; exit 3 if any child is not running."""
        remote = _Remote(state_dir)
        if watch and not as_json:
            _watch_tree(remote)
            return
        data = remote.call("tree")
        _print(data, as_json, _show_tree)
        if _down(data):
            sys.exit(EXIT_DOWN)

    @main.command()
    @click.argument("path")
    @state_dir_option
    def restart(path: str, state_dir: str) -> None:
        """Restart a child of the tree (e.g. providers/mock/w0)."""
        data = _Remote(state_dir).call("restart", {"path": path})
        click.echo(f"restarted {data['restarted']}")

    @main.command()
    @click.argument("path")
    @state_dir_option
    def terminate(path: str, state_dir: str) -> None:
        """Stop a child of the tree; `elx restart PATH` starts it again."""
        data = _Remote(state_dir).call("terminate", {"path": path})
        click.echo(f"terminated {data['terminated']}")

    @main.command()
    @click.argument("path")
    @state_dir_option
    def kill(path: str, state_dir: str) -> None:
        """Crash a child of the tree on purpose; its supervisor restarts it (chaos testing)."""
        data = _Remote(state_dir).call("kill", {"path": path})
        click.echo(f"killed {data['killed']}")

    @main.command()
    @state_dir_option
    @json_option
    def health(state_dir: str, as_json: bool) -> None:
        """healthy / degraded / critical, with the checks behind it (exit 3 unless healthy)."""
        data = _Remote(state_dir).call("health")
        _print(data, as_json, _show_health)
        if data["status"] != "healthy":
            sys.exit(EXIT_DOWN)

    @main.command()
    @click.option("--prometheus", is_flag=True, help="The Prometheus text format.")
    @state_dir_option
    @json_option
    def metrics(prometheus: bool, state_dir: str, as_json: bool) -> None:
        """Jobs, steps, provider calls, tokens, cost, breakers, restarts, memory."""
        remote = _Remote(state_dir)
        if prometheus:
            click.echo(remote.call("metrics", {"format": "prometheus"})["text"], nl=False)
            return
        _print(remote.call("metrics"), as_json, _show_metrics)

    @main.command()
    @click.argument("pipeline", required=False)
    @click.option("--since", default="24h", show_default=True, help="Window: 30m, 24h, 7d.")
    @state_dir_option
    @json_option
    def stats(pipeline: str | None, since: str, state_dir: str, as_json: bool) -> None:
        """Success rate, latency percentiles and cost per pipeline over a window."""
        window = _duration_s(since)
        params: dict[str, Any] = {"since_s": window}
        if pipeline:
            params["pipeline"] = pipeline
        _print(_Remote(state_dir).call("stats", params), as_json, _show_stats)

    @main.command()
    @click.argument("text")
    @click.option("--session", "-s", help="Continue this session (see `elx session list`).")
    @click.option("--context", help="Extra context the pipeline sees.")
    @click.option("--async", "async_", is_flag=True, help="Return the job id at once.")
    @click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait.")
    @click.option("--max-tokens", type=int, help="Token budget for this request.")
    @click.option("--max-usd", type=float, help="Cost budget (USD) for this request.")
    @state_dir_option
    @json_option
    def ask(
        text: str,
        session: str | None,
        context: str | None,
        async_: bool,
        timeout: float,
        max_tokens: int | None,
        max_usd: float | None,
        state_dir: str,
        as_json: bool,
    ) -> None:
        """Ask in words; the agent picks a pipeline, runs it and answers."""
        remote = _Remote(state_dir, timeout=timeout + 30)
        answer = _ask(remote, text, session, context, async_, timeout, max_tokens, max_usd)
        _print(answer, as_json, _show_answer)
        if answer["status"] not in ("completed", "accepted", "running"):
            sys.exit(EXIT_FAILED)

    @main.command()
    @click.option("--session", "-s", help="Continue this session; a new one by default.")
    @click.option("--timeout", default=300.0, show_default=True, help="Seconds per answer.")
    @state_dir_option
    def chat(session: str | None, timeout: float, state_dir: str) -> None:
        """Talk to the agent: each line is a request in one session (Ctrl-D ends)."""
        remote = _Remote(state_dir, timeout=timeout + 30)
        name = session or remote.call("session", {"action": "new"})["session"]
        click.echo(
            f"session {name} · Ctrl-D to leave · `elx chat -s {name}` to come back", err=True
        )
        while True:
            try:
                text = click.prompt("you", prompt_suffix="> ", default="", show_default=False)
            except (EOFError, click.Abort):
                click.echo("", err=True)
                return
            if not text.strip():
                continue
            answer = _ask(remote, text, name, None, False, timeout, None, None)
            _show_answer(answer)

    @main.group()
    def session() -> None:
        """List, show or delete the agent's sessions."""

    @session.command("list")
    @state_dir_option
    @json_option
    def session_list(state_dir: str, as_json: bool) -> None:
        """Sessions, most recent first."""
        data = _Remote(state_dir).call("session", {"action": "list"})
        _print(data, as_json, _show_sessions)

    @session.command("show")
    @click.argument("name")
    @state_dir_option
    @json_option
    def session_show(name: str, state_dir: str, as_json: bool) -> None:
        """Every turn of a session, with the pipeline that answered."""
        data = _Remote(state_dir).call("session", {"action": "show", "session": name})
        _print(data, as_json, _show_session)

    @session.command("delete")
    @click.argument("name")
    @state_dir_option
    def session_delete(name: str, state_dir: str) -> None:
        """Forget a session."""
        data = _Remote(state_dir).call("session", {"action": "delete", "session": name})
        click.echo(f"deleted session {name} ({data['deleted_turns']} turns)")

    @main.command()
    @click.argument("job")
    @click.argument("score", type=click.FloatRange(0, 1))
    @click.option("--note", help="Why (kept with the examples).")
    @state_dir_option
    def rate(job: str, score: float, note: str | None, state_dir: str) -> None:
        """Score a job's answers from 0 to 1; the optimizer learns from scored examples."""
        params: dict[str, Any] = {"job": job, "score": score}
        if note:
            params["note"] = note
        data = _Remote(state_dir).call("rate", params)
        click.echo(f"job {job} rated {score:g} ({data['examples']} example(s))")

    @main.command()
    @click.argument("pipeline")
    @click.option("--step", help="Only this step's examples.")
    @state_dir_option
    @json_option
    def examples(pipeline: str, step: str | None, state_dir: str, as_json: bool) -> None:
        """Examples the optimizer can learn from: from runs, rated, and curated."""
        target = str(Path(pipeline).resolve()) if Path(pipeline).exists() else pipeline
        params: dict[str, Any] = {"pipeline": target}
        if step:
            params["step"] = step
        _print(_Remote(state_dir).call("examples", params), as_json, _show_examples)

    @main.command()
    @state_dir_option
    def shutdown(state_dir: str) -> None:
        """Drain and stop the daemon."""
        _Remote(state_dir).call("shutdown")
        click.echo("daemon stopping (running jobs stop at a checkpoint and resume next start)")


# ---------------------------------------------------------------------------
# Rendering


def _follow(remote: _Remote, job_id: str, as_json: bool, timeout: float = 3600.0) -> None:
    """Print step progress from the event stream until the job ends, then its result.

    The daemon sends the job's current state first, so a job that has already
    ended stops the loop at once.
    """
    remote.call("status", {"job": job_id})  # a clear "no job" error before streaming
    for event in remote.stream({"jobs": [job_id], "tree": False}, timeout):
        if event is None:
            status = remote.call("status", {"job": job_id})
            _print(status, as_json, _show_status)
            _die(f"job {job_id} did not end within {timeout:g} s; it keeps running", EXIT_FAILED)
        if event.get("type") == "step" and not as_json:
            _show_step(event)
        if event.get("type") == "job" and event.get("status") not in ("accepted", "running"):
            break
        if event.get("type") == "end":
            break
    _finish(remote, job_id, as_json)


def _finish(remote: _Remote, job_id: str, as_json: bool) -> None:
    data = remote.call("result", {"job": job_id})
    _print(data, as_json, _show_result)
    if data["status"] in FAILED_STATES:
        sys.exit(EXIT_FAILED)


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


def _ask(
    remote: _Remote,
    text: str,
    session: str | None,
    context: str | None,
    async_: bool,
    timeout: float,
    max_tokens: int | None,
    max_usd: float | None,
) -> dict[str, Any]:
    params: dict[str, Any] = {"text": text, "async": async_, "timeout": timeout}
    if session:
        params["session"] = session
    if context:
        params["context"] = context
    budget = {k: v for k, v in (("max_tokens", max_tokens), ("max_usd", max_usd)) if v is not None}
    if budget:
        params["budget"] = budget
    answer: dict[str, Any] = remote.call("ask", params)
    return answer


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
