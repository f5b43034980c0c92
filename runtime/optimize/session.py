"""One optimization of one step, end to end: examples → compile → compare → write back.

``optimize_step`` loads the pipeline and the step's program, reads the
examples (a ``--trainset`` JSONL file, else the pipeline's curated
``<name>.examples.jsonl``), splits them train/dev, compiles with DSPy through
the provider gateway, and promotes the result only when its dev score beats
the current prompt's by ``threshold``. A promoted result is written into the
step as an ``optimized`` block (a minimal diff) and recorded as a version, so
``elx prompts rollback`` can undo it byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runtime.errors import ConfigError
from runtime.optimize.compiler import CompileResult, compile_step, promote, split
from runtime.optimize.examples import curated_examples, read_jsonl
from runtime.optimize.program import Example, StepProgram
from runtime.optimize.scoring import metric_from
from runtime.optimize.versions import PromptVersions, Version


@dataclass(frozen=True)
class Outcome:
    result: CompileResult
    promoted: bool
    version: Version | None
    train: int
    dev: int

    def to_json(self) -> dict[str, Any]:
        r = self.result
        return {
            "step": r.step,
            "before": r.before,
            "after": r.after,
            "promoted": self.promoted,
            "version": self.version.number if self.version else None,
            "demos": len(r.demos),
            "optimizer": r.optimizer,
            "settings": dict(r.settings),
            "dataset": r.dataset_hash,
            "train": self.train,
            "dev": self.dev,
        }


def load_trainset(path: Path) -> list[Example]:
    """``{"inputs": {...}, "answer": ...}`` per line; errors name the file and line."""
    examples = []
    for number, data in read_jsonl(path):
        if not isinstance(data, dict) or "answer" not in data:
            raise ConfigError(f"{path}:{number}: an example needs 'inputs' and 'answer'")
        examples.append(Example(dict(data.get("inputs") or {}), data["answer"]))
    return examples


def optimize_step(
    path: Path,
    step: str,
    *,
    gateway: Any,
    state_dir: Path,
    trainset: Path | None = None,
    metric: Any = None,
    optimizer: str = "bootstrap",
    settings: Mapping[str, Any] | None = None,
    threshold: float = 0.05,
    dev_fraction: float = 0.3,
    seed: int = 0,
    provider: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Outcome:
    from runtime.optimize.language_model import gateway_lm
    from runtime.optimize.writeback import write_optimized
    from runtime.pipeline.loader import load_pipeline

    loaded = load_pipeline(path)
    program = StepProgram.from_pipeline(loaded, step)
    if metric is None:  # the step's own metric, else exact
        declared = [s for s in loaded.workflow.steps if s.name == step]
        metric = getattr(declared[0], "metric", None) if declared else None
        metric = metric or "exact"
    if trainset is not None:
        examples = load_trainset(trainset)
    else:
        examples = [Example(dict(r["inputs"]), r["output"]) for r in curated_examples(path, step)]
    if len(examples) < 4:
        raise ConfigError(
            f"{path}: step '{step}' has {len(examples)} example(s); give at least 4 with "
            f"--trainset FILE.jsonl or {path.stem}.examples.jsonl next to the pipeline"
        )
    train, dev = split(examples, dev_fraction, seed)
    progress(f"{len(train)} training and {len(dev)} dev examples; compiling with {optimizer}")
    lm = gateway_lm(gateway, provider or program.provider, program.model)
    result = compile_step(
        program,
        train,
        dev,
        metric_from(metric, gateway=gateway, where="--metric"),
        optimizer=optimizer,  # type: ignore[arg-type]
        settings=settings,
        lm=lm,
        current_demos=_current_demos(loaded, step),
    )
    progress(f"dev score {result.before:.2f} → {result.after:.2f} with {len(result.demos)} demos")
    if not promote(result, threshold):
        progress(f"not promoted: the gain is under {threshold:g}")
        return Outcome(result, False, None, len(train), len(dev))
    versions = PromptVersions(state_dir)
    number = sum(1 for v in versions.history(path) if v.kind == "optimized") + 1
    block: dict[str, Any] = {
        "version": number,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "demos": [dict(d) for d in result.demos],
        "metric": metric if isinstance(metric, str) else json.dumps(metric, sort_keys=True),
        "score_before": round(result.before, 4),
        "score_after": round(result.after, 4),
        "dataset": result.dataset_hash,
        "optimizer": result.optimizer,
        "settings": dict(result.settings),
    }
    if result.instructions.strip() != program.instructions.strip():
        block["instructions"] = result.instructions
    written = write_optimized(path, step, block)
    meta = {k: block[k] for k in ("score_before", "score_after", "dataset", "optimizer")}
    version = versions.record(path, step, written.before, written.after, meta)
    progress(f"promoted: wrote version {version.number} into {path}")
    return Outcome(result, True, version, len(train), len(dev))


def _current_demos(loaded: Any, step: str) -> list[dict[str, Any]]:
    """The demonstrations the step's promoted ``optimized`` block already gives it."""
    for found in loaded.workflow.steps:
        optimized = getattr(found, "optimized", None)
        if found.name == step and optimized is not None:
            return [{"inputs": dict(d.inputs), "answer": d.answer} for d in optimized.demos]
    return []
