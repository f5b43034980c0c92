"""From a YAML file to a validated ``Workflow``, with every problem located.

``load_pipeline`` parses the file with positions kept, dispatches each step on
its ``type`` through the registry, validates with pydantic, then runs the
semantic checks in ``runtime.pipeline.validation``. All problems are gathered
and raised together as one ``ValidationError`` whose lines read
``file:line:col: message``. Loaded pipelines are cached by path and content
hash, so a daemon re-reads a file only when it changed.
"""

from __future__ import annotations

import hashlib
import threading
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel

from runtime.errors import Problem, ValidationError
from runtime.pipeline.models import PipelineDocument, StepSpec, Workflow
from runtime.pipeline.registry import STEP_REGISTRY, StepRegistry
from runtime.pipeline.templates import suggest
from runtime.pipeline.yaml_source import Marks, PathKey, YamlDocument, load_yaml, parse_yaml


@dataclass(frozen=True, slots=True)
class LoadedPipeline:
    """A validated pipeline and where it came from."""

    workflow: Workflow
    path: Path
    digest: str
    marks: Marks

    @property
    def directory(self) -> Path:
        return self.path.parent


class _Parser:
    def __init__(self, marks: Marks, registry: StepRegistry) -> None:
        self.marks = marks
        self.registry = registry
        self.problems: list[Problem] = []

    def problem(self, path: Sequence[str | int], message: str) -> None:
        self.problems.append(self.marks.problem(path, message))

    # -- steps -------------------------------------------------------------

    def steps(self, raw: Any, path: PathKey) -> tuple[StepSpec, ...] | None:
        if not isinstance(raw, list):
            self.problem(path, f"'{path[-1]}' must be a list of steps, got {_kind(raw)}")
            return None
        parsed = [self.step(item, (*path, i)) for i, item in enumerate(raw)]
        if any(p is None for p in parsed):
            return None
        return tuple(p for p in parsed if p is not None)

    def step(self, raw: Any, path: PathKey) -> StepSpec | None:
        if not isinstance(raw, dict):
            self.problem(path, f"a step must be a mapping with name and type, got {_kind(raw)}")
            return None
        label = f"step '{raw['name']}'" if isinstance(raw.get("name"), str) else "a step"
        type_name = raw.get("type")
        if type_name is None:
            self.problem(path, f"{label} has no 'type'")
            return None
        if not isinstance(type_name, str):
            self.problem((*path, "type"), f"{label}: 'type' must be a string")
            return None
        step_type = self.registry.get(type_name)
        if step_type is None:
            self.problem(
                (*path, "type"),
                f"{label}: unknown step type '{type_name}'"
                + suggest(type_name, self.registry.names()),
            )
            return None
        model = self.model(step_type.model, raw, path, label)
        return typing.cast("StepSpec | None", model)

    # -- any model ---------------------------------------------------------

    def model(self, cls: type[BaseModel], raw: dict[str, Any], path: PathKey, label: str) -> Any:
        data = dict(raw)
        failed_nested: set[str] = set()
        nested: dict[str, str] = getattr(cls, "nested", {})
        for field, kind in nested.items():
            if field not in data or data[field] is None:
                continue
            value = data[field]
            fpath = (*path, field)
            converted: Any
            if kind == "list":
                converted = self.steps(value, fpath)
            elif kind == "map":
                converted = self.step_map(value, fpath)
            else:
                converted = self.workflow(value, fpath)
            if converted is None:
                failed_nested.add(field)
                data.pop(field)
            else:
                data[field] = converted
        try:
            return cls.model_validate(data)
        except pydantic.ValidationError as exc:
            for error in exc.errors(include_url=False):
                loc = error["loc"]
                if loc and loc[0] in failed_nested:
                    continue
                if error["type"] == "missing" and loc and loc[0] in failed_nested:
                    continue
                self.pydantic_problem(cls, raw, path, label, error, failed_nested)
            return None

    def step_map(self, raw: Any, path: PathKey) -> dict[str, tuple[StepSpec, ...]] | None:
        if not isinstance(raw, dict):
            self.problem(path, f"'{path[-1]}' must map values to step lists, got {_kind(raw)}")
            return None
        result: dict[str, tuple[StepSpec, ...]] = {}
        ok = True
        for key, value in raw.items():
            steps = self.steps(value, (*path, key))
            if steps is None:
                ok = False
            else:
                result[str(key)] = steps
        return result if ok else None

    def workflow(self, raw: Any, path: PathKey) -> Workflow | None:
        if not isinstance(raw, dict):
            self.problem(path, f"an inline pipeline must be a mapping, got {_kind(raw)}")
            return None
        label = f"pipeline '{raw['name']}'" if isinstance(raw.get("name"), str) else "workflow"
        return typing.cast("Workflow | None", self.model(Workflow, raw, path, label))

    def pydantic_problem(
        self,
        cls: type[BaseModel],
        raw: Any,
        path: PathKey,
        label: str,
        error: Any,
        failed: set[str],
    ) -> None:
        loc, shown = _yaml_path(raw, error["loc"])
        where = ".".join(str(p) for p in shown)
        kind = error["type"]
        if kind == "extra_forbidden":
            field = str(shown[-1]) if shown else "?"
            owner = _model_at(cls, error["loc"][:-1])
            known = [f.alias or n for n, f in owner.model_fields.items()] if owner else []
            message = f"{label}: unknown field '{where}'" + suggest(field, known)
        elif kind == "missing":
            message = f"{label}: missing required field '{where}'"
        elif kind in ("value_error", "assertion_error"):
            text = str(error["msg"]).removeprefix("Value error, ")
            message = f"{label}: {where + ': ' if where else ''}{text}"
        else:
            value = error.get("input")
            shown_value = "" if isinstance(value, (dict, list)) else f" (got {value!r})"
            message = f"{label}: field '{where}': {error['msg']}{shown_value}"
        self.problem((*path, *loc), message)


def _yaml_path(raw: Any, loc: Sequence[Any]) -> tuple[PathKey, PathKey]:
    """Map a pydantic error location onto the YAML path (skipping synthetic levels)."""
    node = raw
    yaml_path: list[str | int] = []
    shown: list[str | int] = []
    for part in loc:
        if node is None:
            shown.append(part)
        elif _contains(node, part):
            node = node[part]
            yaml_path.append(part)
            shown.append(part)
        elif isinstance(node, list) and part == "parts":
            continue  # Prompt wraps the YAML list in `parts`
        elif isinstance(node, dict) and part in (node.get("type"), node.get("operation")):
            continue  # a discriminated union's tag level
        elif isinstance(node, dict) and part == "op" and "operation" in node:
            continue  # file_ops keeps its flat fields in `op`
        else:
            shown.append(part)  # a missing or extra key: name it, locate its parent
            node = None
    return tuple(yaml_path), tuple(shown)


def _contains(node: Any, part: Any) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _model_at(cls: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    current: type[BaseModel] | None = cls
    for part in loc:
        if current is None:
            return None
        if isinstance(part, int):
            continue
        fields = {f.alias or n: f for n, f in current.model_fields.items()}
        if part in fields:
            current = _first_model(fields[part].annotation)
        else:
            candidate = _model_named(part, current)
            if candidate is not None:
                current = candidate
    return current


def _first_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def _model_named(tag: Any, parent: type[BaseModel]) -> type[BaseModel] | None:
    """Resolve a union tag (e.g. a prompt part's type) to its model."""
    from runtime.pipeline.models import PROMPT_PARTS

    return PROMPT_PARTS.get(str(tag)) if isinstance(tag, str) else None


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def parse_document(doc: YamlDocument, registry: StepRegistry = STEP_REGISTRY) -> Workflow:
    """Build the Workflow of a parsed document, or raise every problem at once."""
    parser = _Parser(doc.marks, registry)
    data = doc.data
    if not isinstance(data, dict):
        parser.problem((), f"the root must be a mapping with a 'workflow' key, got {_kind(data)}")
        raise ValidationError(parser.problems)
    if "workflow" not in data:
        import difflib

        near = difflib.get_close_matches("workflow", [str(k) for k in data], n=1, cutoff=0.6)
        hint = f"; found '{near[0]}': did you mean 'workflow'?" if near else ""
        parser.problem((), "missing the 'workflow' key at the root" + hint)
        raise ValidationError(parser.problems)
    for key in data:
        if key != "workflow":
            parser.problem(
                (key,), f"unknown top-level key '{key}'; everything belongs under 'workflow'"
            )
    workflow = parser.workflow(data["workflow"], ("workflow",))
    if parser.problems or workflow is None:
        raise ValidationError(parser.problems)
    PipelineDocument(workflow=workflow)  # the root model: keeps the schema honest
    return workflow


_CACHE: dict[tuple[str, str], LoadedPipeline] = {}
_CACHE_LOCK = threading.Lock()


def load_pipeline(
    path: str | Path, *, registry: StepRegistry = STEP_REGISTRY, check: bool = True
) -> LoadedPipeline:
    """Load, parse and validate a pipeline file (cached by path and content hash)."""
    resolved = Path(path).expanduser().resolve()
    display = str(path)
    try:
        raw = resolved.read_bytes()
    except FileNotFoundError:
        raise ValidationError([Problem(display, 0, 0, "no such pipeline file")]) from None
    except OSError as exc:
        raise ValidationError([Problem(display, 0, 0, f"cannot read: {exc.strerror}")]) from None
    digest = hashlib.sha256(raw).hexdigest()
    key = (str(resolved), digest)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            [Problem(display, 1, 1, f"not UTF-8 text (byte {exc.start})")]
        ) from None
    doc = parse_yaml(text, display)
    workflow = parse_document(doc, registry)
    loaded = LoadedPipeline(workflow, resolved, digest, doc.marks)
    if check:
        from runtime.pipeline.validation import check_pipeline

        check_pipeline(loaded, registry=registry)
    with _CACHE_LOCK:
        if len(_CACHE) > 256:
            _CACHE.clear()
        _CACHE[key] = loaded
    return loaded


__all__ = ["LoadedPipeline", "load_pipeline", "load_yaml", "parse_document"]
