"""Examples the optimizer learns from: collected from runs, rated by users, or curated.

Completed jobs leave one example per LLM step in the store (inputs, the
rendered prompt, the output, the provider; duplicates collapse); `elx rate JOB
SCORE` scores them. Curated examples live next to the pipeline as
``<name>.examples.jsonl``, one JSON object per line::

    {"step": "answer", "inputs": {"country": "France"}, "answer": "Paris"}

A curated example is taken as correct (score 1.0).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runtime.errors import ConfigError


def curated_path(pipeline: Path) -> Path:
    return pipeline.with_name(f"{pipeline.stem}.examples.jsonl")


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each JSON line; blank and ``#`` lines skipped; bad JSON
    is an error naming the file and line."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number}: not JSON: {exc.msg}") from None


def curated_examples(pipeline: Path, step: str | None = None) -> list[dict[str, Any]]:
    """The pipeline's curated examples (for ``step`` only, if given); errors name the line."""
    path = curated_path(pipeline)
    if not path.exists():
        return []
    rows = []
    for number, data in read_jsonl(path):
        if not isinstance(data, dict) or "answer" not in data or "step" not in data:
            raise ConfigError(f"{path}:{number}: an example needs 'step', 'inputs' and 'answer'")
        inputs = data.get("inputs", {})
        if not isinstance(inputs, dict):
            raise ConfigError(f"{path}:{number}: 'inputs' must be an object")
        if step is not None and data["step"] != step:
            continue
        rows.append(
            {
                "step": data["step"],
                "job": None,
                "inputs": inputs,
                "prompt": None,
                "output": data["answer"],
                "provider": None,
                "score": 1.0,
                "note": data.get("note"),
                "source": "curated",
            }
        )
    return rows
