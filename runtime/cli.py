"""`elx`: the command line.

Exit codes: 0 ok, 1 the pipeline failed, 2 usage, configuration or input
error, 3 a supervision tree child is down, 4 no daemon. Heavy modules are
imported inside commands so that ``elx --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from runtime.config import Settings
    from runtime.pipeline.events import RunEvent

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class _State:
    debug: bool = False


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _guard(fn: Callable[..., None]) -> Callable[..., None]:
    """Turn our errors into one clear line and an exit code; tracebacks only with --debug."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from runtime.errors import ConfigError, ElexirionError

        try:
            fn(*args, **kwargs)
        except ConfigError as exc:
            if _State.debug:
                raise
            click.echo(str(exc) if "\n" in str(exc) else f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        except ElexirionError as exc:
            if _State.debug:
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_FAILED)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="elexirion", prog_name="elx")
def main(debug: bool) -> None:
    """Elexirion: multi-step LLM pipelines in YAML under OTP-style supervision.

    \b
    Quick start:
      elx validate pipelines/examples/demo.yaml
      elx run pipelines/examples/demo.yaml --input topic="actor models"
    """
    _State.debug = debug


def _settings(
    state_dir: str | None,
    provider: str | None,
    workspace: str | None = None,
    output_dir: str | None = None,
) -> Settings:
    from runtime.config import Settings

    settings = Settings.from_env()
    changes: dict[str, Any] = {}
    if state_dir:
        changes["state_dir"] = Path(state_dir)
    if provider:
        changes["force_provider"] = provider
    if workspace:
        changes["workspace_dir"] = Path(workspace)
    if output_dir:
        changes["output_dir"] = Path(output_dir)
    return settings.with_(**changes) if changes else settings


def parse_inputs(pairs: Sequence[str], input_file: str | None) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    if input_file:
        try:
            data = json.loads(Path(input_file).read_text(encoding="utf-8"))
        except FileNotFoundError:
            _fail(f"--input-file {input_file}: no such file")
        except json.JSONDecodeError as exc:
            _fail(f"--input-file {input_file}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}")
        if not isinstance(data, dict):
            _fail(f"--input-file {input_file}: must hold a JSON object of input names to values")
        inputs.update(data)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            _fail(f"--input {pair!r}: expected NAME=VALUE")
        inputs[name.strip()] = value
    return inputs


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
@_guard
def validate(files: tuple[str, ...], as_json: bool) -> None:
    """Check pipeline files; report every problem as file:line:col: message."""
    from runtime.errors import ValidationError
    from runtime.pipeline.loader import load_pipeline

    report: list[dict[str, Any]] = []
    failed = False
    for name in files:
        try:
            loaded = load_pipeline(name)
        except ValidationError as exc:
            failed = True
            report.append({"file": name, "ok": False, "problems": [str(p) for p in exc.problems]})
            if not as_json:
                for problem in exc.problems:
                    click.echo(str(problem), err=True)
            continue
        report.append({"file": name, "ok": True, "steps": len(loaded.workflow.steps)})
        if not as_json:
            click.echo(f"ok: {name} ({loaded.workflow.name}, {len(loaded.workflow.steps)} steps)")
    if as_json:
        click.echo(json.dumps(report, indent=2))
    elif failed:
        count = sum(len(r.get("problems", [])) for r in report)
        click.echo(f"{count} problem{'s' if count != 1 else ''} found", err=True)
    sys.exit(EXIT_USAGE if failed else EXIT_OK)


@main.command()
def schema() -> None:
    """Print the JSON Schema of the pipeline format (for editors)."""
    from runtime.pipeline.schema import pipeline_json_schema

    click.echo(json.dumps(pipeline_json_schema(), indent=2))


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--input", "-i", "inputs", multiple=True, metavar="NAME=VALUE", help="An input.")
@click.option("--input-file", type=click.Path(dir_okay=False), help="A JSON object of inputs.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@click.option("--provider", help="Send every LLM call to this provider (e.g. mock).")
@click.option("--resume", "resume", metavar="RUN_ID", help="Continue an earlier run.")
@click.option("--state-dir", envvar="ELX_STATE_DIR", help="State directory [.elexirion].")
@click.option("--workspace", help="Workspace directory for file steps.")
@click.option("--output-dir", help="Directory for output_to_file.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
@_guard
def run(
    file: str,
    inputs: tuple[str, ...],
    input_file: str | None,
    as_json: bool,
    provider: str | None,
    resume: str | None,
    state_dir: str | None,
    workspace: str | None,
    output_dir: str | None,
    quiet: bool,
) -> None:
    """Run a pipeline once, here, without a daemon."""
    from runtime.pipeline.executor import run_pipeline
    from runtime.pipeline.loader import load_pipeline
    from runtime.providers.gateway import default_gateway
    from runtime.state_dir import open_state

    settings = _settings(state_dir, provider, workspace, output_dir)
    given = parse_inputs(inputs, input_file)
    if resume and given:
        _fail("--resume reuses the inputs of the earlier run; drop --input/--input-file")
    loaded = load_pipeline(file)
    store = open_state(settings)
    if resume:
        row = store.get_run(resume)
        if row is None:
            _fail(f"no run '{resume}' in {store.path}")
        if Path(row.pipeline) != loaded.path:
            _fail(f"run '{resume}' ran {row.pipeline}, not {loaded.path}")
        if row.status == "completed":
            _fail(f"run '{resume}' already completed; nothing to resume")
    progress = None if (quiet or as_json) else _Progress(sys.stderr.isatty())
    result = run_pipeline(
        loaded,
        given,
        gateway=default_gateway(settings),
        settings=settings,
        store=store,
        run_id=resume,
        resume=resume is not None,
        events=progress.on_event if progress else None,
    )
    if progress:
        progress.close()
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False, default=str))
    else:
        _print_result(result)
    sys.exit(EXIT_OK if result.ok else EXIT_FAILED)


def _print_result(result: Any) -> None:
    print_run(result.to_json(), what=f"run {result.run_id}")
    if result.status == "failed":
        click.echo(
            f"fix the problem, then continue with: elx run <file> --resume {result.run_id}",
            err=True,
        )


def print_run(run: Mapping[str, Any], what: str) -> None:
    """A run's result on stdout and a one-line summary on stderr (`elx run`, `elx wait`)."""
    for text in run.get("notices", ()):
        click.secho(f"notice: {text}", fg="yellow", err=True)
    if run["status"] == "completed":
        value = run.get("result")
        if value is not None:
            click.echo(
                value
                if isinstance(value, str)
                else json.dumps(value, indent=2, ensure_ascii=False, default=str)
            )
        calls = (run.get("usage") or {}).get("calls", 0)
        click.secho(
            f"{what} completed in {run['duration_ms']:.0f} ms · {len(run['steps'])} steps · "
            f"{calls} LLM calls ({', '.join(run.get('providers', ())) or 'none'}) · "
            f"outputs in {run['outputs_dir']}",
            fg="green",
            err=True,
        )
        return
    error = run.get("error") or {}
    click.secho(
        f"{what} {run['status']}: {error.get('message', 'unknown error')}", fg="red", err=True
    )


class _Progress:
    """Step progress: a spinner with the step name on a TTY, plain lines otherwise."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self._status: Any = None
        if tty:
            from rich.console import Console

            self.console = Console(stderr=True)
            self._status = self.console.status("starting")
            self._status.start()

    def on_event(self, event: RunEvent) -> None:
        from runtime.pipeline.events import EventKind

        kind = event.kind
        label = f"{event.path} ({event.step_type})"
        if kind is EventKind.STEP_STARTED:
            if self._status is not None:
                self._status.update(f"{label} …")
            return
        if kind is EventKind.STEP_FINISHED:
            line = f"✓ {label} {event.duration_ms:.1f} ms"
        elif kind is EventKind.STEP_SKIPPED:
            line = f"- {label} skipped (condition false)"
        elif kind is EventKind.STEP_RESTORED:
            line = f"↺ {label} restored from checkpoint"
        elif kind is EventKind.STEP_RETRY:
            line = f"… {label} attempt {event.attempt} failed: {event.message}"
        elif kind is EventKind.STEP_FAILED:
            line = f"✗ {label} {event.message}"
        else:
            return
        if self.tty:
            self.console.print(line, highlight=False, markup=False)
        else:
            click.echo(line, err=True)

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()


def _register_daemon_commands() -> None:
    from runtime import cli_daemon, cli_prompts, cli_top, cli_web

    cli_daemon.register(main)
    cli_top.register(main)
    cli_prompts.register(main)
    cli_prompts.register_optimize(main)
    cli_web.register(main)


_register_daemon_commands()
