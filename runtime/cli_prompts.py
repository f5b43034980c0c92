"""`elx prompts`: the optimized versions of a pipeline's prompts, their diffs, and rollback.

These commands work on the pipeline file and the state directory directly, so
they need no running daemon; a daemon picks the restored file up on its next
load (pipelines are cached by content hash).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from runtime.cli_daemon import EXIT_USAGE, json_option, state_dir_option


def register(main: click.Group) -> None:
    @main.group()
    def prompts() -> None:
        """History, diff and rollback of optimized prompts (see `elx optimize`)."""

    @prompts.command("history")
    @click.argument("pipeline", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @state_dir_option
    @json_option
    def history(pipeline: Path, state_dir: str, as_json: bool) -> None:
        """Every optimized version and rollback, oldest first."""
        versions = _versions(state_dir).history(pipeline)
        if as_json:
            click.echo(json.dumps([v.to_json() for v in versions], indent=2))
            return
        if not versions:
            click.echo(f"{pipeline}: no optimized versions yet")
        for v in versions:
            scores = ""
            if v.meta.get("score_before") is not None:
                scores = f" {v.meta['score_before']:.2f} → {v.meta.get('score_after', 0):.2f}"
            extra = f" (undoes {v.meta['rolled_back']})" if v.kind == "rollback" else scores
            click.echo(f"{v.number:>4}  {v.date}  {v.kind:<9} step {v.step}{extra}")

    @prompts.command("diff")
    @click.argument("pipeline", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--version", "number", type=int, help="Default: the latest.")
    @state_dir_option
    def diff(pipeline: Path, number: int | None, state_dir: str) -> None:
        """What a version changed in the file."""
        click.echo(_guard(lambda: _versions(state_dir).diff(pipeline, number)), nl=False)

    @prompts.command("rollback")
    @click.argument("pipeline", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--to", "number", type=int, help="Undo this version (default: the latest).")
    @state_dir_option
    def rollback(pipeline: Path, number: int | None, state_dir: str) -> None:
        """Put the file back, byte for byte, as it was before a version."""
        done = _guard(lambda: _versions(state_dir).rollback(pipeline, number))
        click.echo(
            f"{pipeline}: restored the file as it was before version {done.meta['rolled_back']}"
        )


def _versions(state_dir: str) -> Any:
    from runtime.optimize.versions import PromptVersions

    return PromptVersions(Path(state_dir))


def _guard(fn: Any) -> Any:
    from runtime.errors import ConfigError

    try:
        return fn()
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
