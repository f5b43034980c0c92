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

    _ab_command(prompts)

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


def _ab_command(prompts: click.Group) -> None:
    @prompts.command("ab")
    @click.argument("pipeline", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--apply", is_flag=True, help="Promote or retire candidates as decided.")
    @state_dir_option
    @json_option
    def ab(pipeline: Path, apply: bool, state_dir: str, as_json: bool) -> None:
        """A/B tests of candidate prompts: each arm's runs and successes, and the verdict."""
        from runtime.cli_daemon import _Remote

        data = _Remote(state_dir).call("ab", {"pipeline": str(pipeline.resolve()), "apply": apply})
        if as_json:
            click.echo(json.dumps(data, indent=2))
            return
        if not data["steps"]:
            click.echo(f"{pipeline.name}: no step has a candidate prompt")
        for step in data["steps"]:
            done = " (applied)" if step["applied"] else ""
            click.echo(
                f"{step['step']}: {step['action']}{done} — {step['reason']} "
                f"(z {step['z']:.2f}, candidate share {step['fraction']:.0%})"
            )


def register_optimize(main: click.Group) -> None:
    @main.command()
    @click.argument("pipeline", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--step", help="The LLM step to optimize (default: the first LLM step).")
    @click.option(
        "--optimizer",
        type=click.Choice(["bootstrap", "random_search", "mipro"]),
        default="bootstrap",
        show_default=True,
    )
    @click.option(
        "--trainset",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="JSONL of {inputs, answer}; default: <pipeline>.examples.jsonl.",
    )
    @click.option("--metric", help="exact, contains, ... (default: the step's metric, else exact)")
    @click.option("--threshold", default=0.05, show_default=True, help="Least dev-score gain.")
    @click.option("--dev-fraction", default=0.3, show_default=True)
    @click.option("--seed", default=0, show_default=True)
    @click.option(
        "--max-demos", type=int, help="Demonstrations to keep (labelled and bootstrapped)."
    )
    @click.option(
        "--provider", help="Send the optimizer's calls to this provider ('demo': the demo model)."
    )
    @click.option("--local", is_flag=True, help="Compile in this process, without the daemon.")
    @click.option("--wait", "wait_", is_flag=True, help="Follow the daemon's compile to its end.")
    @state_dir_option
    @json_option
    def optimize(
        pipeline: Path,
        step: str | None,
        optimizer: str,
        trainset: Path | None,
        metric: str | None,
        threshold: float,
        dev_fraction: float,
        seed: int,
        max_demos: int | None,
        provider: str | None,
        local: bool,
        wait_: bool,
        state_dir: str,
        as_json: bool,
    ) -> None:
        """Compile a better prompt for a step with DSPy; write it back if it scores better.

        By default the daemon's optimizer runs it off to the side and this command
        shows its progress; --local compiles here, without a daemon.
        """
        if step is None:
            step = _first_llm_step(pipeline)
        if not local:
            _remote_optimize(
                state_dir,
                {
                    "pipeline": str(pipeline.resolve()),
                    "step": step,
                    "optimizer": optimizer,
                    "trainset": str(trainset.resolve()) if trainset else None,
                    "metric": metric,
                    "threshold": threshold,
                    "dev_fraction": dev_fraction,
                    "seed": seed,
                    "max_demos": max_demos,
                    "provider": provider,
                    "wait": wait_,
                },
                as_json,
            )
            return
        from runtime.config import Settings
        from runtime.optimize.session import optimize_step

        settings = Settings.from_env().with_(state_dir=Path(state_dir))
        if provider == "demo":
            from runtime.providers.gateway import LocalGateway
            from runtime.testing.demo_mock import DemoMockProvider

            gateway: Any = LocalGateway({"mock": DemoMockProvider()}, settings)
            provider = "mock"
        else:
            from runtime.providers.gateway import default_gateway

            gateway = default_gateway(settings)
        options = (
            {"max_labeled_demos": max_demos, "max_bootstrapped_demos": max_demos}
            if max_demos is not None
            else None
        )
        outcome = _guard(
            lambda: optimize_step(
                pipeline,
                step,
                gateway=gateway,
                state_dir=Path(state_dir),
                trainset=trainset,
                metric=metric,
                optimizer=optimizer,
                settings=options,
                threshold=threshold,
                dev_fraction=dev_fraction,
                seed=seed,
                provider=provider,
                progress=lambda line: click.echo(line, err=True),
            )
        )
        if as_json:
            click.echo(json.dumps(outcome.to_json(), indent=2))
        else:
            verdict = (
                f"promoted as version {outcome.version.number}"
                if outcome.promoted
                else "kept the current prompt"
            )
            click.echo(
                f"{pipeline.name} step {step}: {outcome.result.before:.2f} → "
                f"{outcome.result.after:.2f}; {verdict}"
            )


def _first_llm_step(pipeline: Path) -> str:
    from runtime.pipeline.loader import load_pipeline

    steps = _guard(lambda: load_pipeline(pipeline)).workflow.steps
    for found in steps:
        if getattr(found, "llm", False):
            return str(found.name)
    click.echo(f"error: {pipeline} has no LLM step to optimize", err=True)
    sys.exit(EXIT_USAGE)


def _remote_optimize(state_dir: str, params: dict[str, Any], as_json: bool) -> None:
    from runtime.cli_daemon import _Remote

    remote = _Remote(state_dir, timeout=3600)
    done = remote.call("optimize", {k: v for k, v in params.items() if v is not None})
    if not params.get("wait"):
        if as_json:
            click.echo(json.dumps(done, indent=2))
        else:
            click.echo(done["id"])
            click.echo(
                f"compiling step {done['step']} off to the side; see `elx optimize ... --wait` "
                "or the socket's optimizations method",
                err=True,
            )
        return
    if as_json:
        click.echo(json.dumps(done, indent=2))
    else:
        for line in done.get("progress", []):
            click.echo(line, err=True)
        result = done.get("result") or {}
        if done["status"] in ("promoted", "kept"):
            verdict = (
                f"promoted as version {result.get('version')}"
                if done["status"] == "promoted"
                else "kept the current prompt"
            )
            click.echo(
                f"{Path(done['pipeline']).name} step {done['step']}: "
                f"{result.get('before', 0):.2f} → {result.get('after', 0):.2f}; {verdict}"
            )
    if done["status"] not in ("promoted", "kept"):
        click.echo(f"error: the compile {done['status']}: {done.get('error')}", err=True)
        sys.exit(1)


def _versions(state_dir: str) -> Any:
    from runtime.optimize.versions import PromptVersions

    return PromptVersions(Path(state_dir))


def _guard(fn: Any) -> Any:
    from runtime.errors import ConfigError, ElexirionError

    try:
        return fn()
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except ElexirionError as exc:  # a provider or budget failure during the compile
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
