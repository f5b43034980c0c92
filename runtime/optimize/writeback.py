"""Writing a promoted prompt into the pipeline's YAML as a minimal diff.

``write_optimized`` loads the file with ruamel.yaml's round-trip loader (which
keeps comments, key order, quoting and flow style), sets the step's
``optimized`` block (adding it at the end of the step, or replacing an earlier
one), checks that the result still loads as a valid pipeline, and only then
replaces the file atomically. The bytes it replaced are kept as a version
(``PromptVersions``), so ``rollback`` restores them exactly.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.errors import ConfigError, ValidationError
from runtime.pipeline.workspace import write_text_atomic


@dataclass(frozen=True)
class WriteResult:
    path: Path
    step: str
    before: bytes
    after: bytes


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 100
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _steps(node: Any) -> Iterator[Any]:
    """Every step mapping in a workflow, nested ones included, in file order."""
    if isinstance(node, Mapping):
        if "name" in node and "type" in node:
            yield node
        for key, value in node.items():
            if key in ("steps", "on_error", "parallel_tasks", "tasks", "cases", "default"):
                yield from _steps(value)
    elif isinstance(node, list):
        for item in node:
            yield from _steps(item)


def render_optimized(path: Path, step: str, block: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """The file's bytes now and with ``block`` as ``step``'s ``optimized`` (nothing written)."""
    return render_step_edit(path, step, {"optimized": block})


def render_step_edit(
    path: Path, step: str, values: Mapping[str, Any], remove: tuple[str, ...] = ()
) -> tuple[bytes, bytes]:
    """The file's bytes now and with ``step``'s keys set to ``values`` and ``remove`` gone."""
    before = path.read_bytes()
    yaml = _yaml()
    document = yaml.load(before.decode("utf-8"))
    workflow = document.get("workflow") if isinstance(document, Mapping) else None
    if workflow is None:
        raise ConfigError(f"{path}: not a pipeline file (no 'workflow:')")
    matches = [s for s in _steps(workflow.get("steps", [])) if s.get("name") == step]
    if not matches:
        names = ", ".join(str(s.get("name")) for s in _steps(workflow.get("steps", [])))
        raise ConfigError(f"{path}: no step named '{step}' (steps: {names})")
    if len(matches) > 1:
        raise ConfigError(f"{path}: more than one step is named '{step}'")
    for key, value in values.items():
        matches[0][key] = _plain(value)
    for key in remove:
        matches[0].pop(key, None)
    out = io.StringIO()
    yaml.dump(document, out)
    return before, out.getvalue().encode("utf-8")


def write_optimized(path: Path, step: str, block: Mapping[str, Any]) -> WriteResult:
    """Set ``step``'s ``optimized`` block; the new file must load, else nothing changes."""
    return write_step_edit(path, step, {"optimized": block})


def write_step_edit(
    path: Path, step: str, values: Mapping[str, Any], remove: tuple[str, ...] = ()
) -> WriteResult:
    """Edit ``step`` in place (a minimal diff); the new file must load, else nothing changes."""
    from runtime.pipeline.loader import load_pipeline

    before, after = render_step_edit(path, step, values, remove)
    candidate = path.with_name(f".{path.name}.candidate")
    candidate.write_bytes(after)
    try:
        load_pipeline(candidate)
    except ValidationError as exc:
        raise ConfigError(
            f"{path}: the change to step '{step}' would not load, so the file was left "
            f"as it is: {exc}"
        ) from None
    finally:
        candidate.unlink(missing_ok=True)
    write_text_atomic(path, after.decode("utf-8"))
    return WriteResult(path, step, before, after)


def _plain(value: Any) -> Any:
    """JSON-like data ruamel can emit readably (tuples → lists, nested mappings → dicts)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
