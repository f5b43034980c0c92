"""`elx` commands that start or talk to the daemon over its Unix socket.

Exit codes: 0 ok, 1 the job failed, 2 usage or bad params, 3 a tree child is
not running (``tree``, ``health``), 4 no daemon answers. The client and the
options live in `runtime.cli_remote`, the printing in `runtime.cli_render`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from runtime.cli_remote import (
    EXIT_DOWN as EXIT_DOWN,
    EXIT_FAILED as EXIT_FAILED,
    EXIT_NO_DAEMON as EXIT_NO_DAEMON,
    EXIT_OK as EXIT_OK,
    EXIT_USAGE as EXIT_USAGE,
    FAILED_STATES as FAILED_STATES,
    _die as _die,
    _print as _print,
    _Remote as _Remote,
    json_option as json_option,
    state_dir_option as state_dir_option,
)
from runtime.cli_render import (
    _down,
    _duration_s,
    _show_answer,
    _show_examples,
    _show_health,
    _show_jobs,
    _show_metrics,
    _show_result,
    _show_session,
    _show_sessions,
    _show_stats,
    _show_status,
    _show_step,
    _show_tree,
    _watch_tree,
)


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
    @click.option(
        "--web/--no-web",
        default=None,
        help="Serve the web API and chat page (127.0.0.1:8765); overrides supervision.yaml.",
    )
    @click.option(
        "--web-port",
        type=click.IntRange(0, 65535),
        help="Port of the web gateway (0: any free port).",
    )
    def daemon(
        state_dir: str, tree_file: str, drain_timeout: float, web: bool | None, web_port: int | None
    ) -> None:
        """Run the daemon in the foreground (Ctrl-C or `elx shutdown` drains and stops)."""
        import os

        from runtime.config import Settings

        if web is not None:
            os.environ["ELX_WEB"] = "1" if web else "0"
        if web_port is not None:
            os.environ["ELX_WEB_PORT"] = str(web_port)
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

    for name, done, summary in (
        ("restart", "restarted", "Restart a child of the tree (e.g. providers/mock/w0)."),
        (
            "terminate",
            "terminated",
            "Stop a child; `elx restart PATH` starts it again.",
        ),
        ("kill", "killed", "Crash a child on purpose; its supervisor restarts it (chaos testing)."),
    ):
        main.command(name=name, help=summary)(
            click.argument("path")(state_dir_option(_child_control(name, done)))
        )

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


def _child_control(method: str, done: str) -> Callable[[str, str], None]:
    """The body of `elx restart/terminate/kill PATH`: one socket call, one line."""

    def command(path: str, state_dir: str) -> None:
        data = _Remote(state_dir).call(method, {"path": path})
        click.echo(f"{done} {data[done]}")

    return command


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
