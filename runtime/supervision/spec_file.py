"""``supervision.yaml``: the tree's shape, parsed once into frozen specs.

::

    version: 1
    name: root                      # the root supervisor's path
    root:                           # supervisor flags + children
      strategy: one_for_one
      intensity: 3
      period_s: 10
      children:
        - id: store
          actor: actors.placeholder:PlaceholderActor
          args: {role: store}
          shutdown: 10
        - id: pipelines
          dynamic_supervisor: {max_children: 64}

Every problem is reported at once as ``file:line:col: key.path: message; got
value``, with the allowed values, through ``runtime.errors.ValidationError``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml
from pydantic import Field

from runtime.errors import Problem, ValidationError
from runtime.supervision.child_spec import (
    ID_PATTERN,
    BackoffSpec,
    ChildSpec,
    DynamicSupervisorSpec,
    PoolSpec,
    SupervisorSpec,
    _Frozen,
)

KeyPath = tuple[str | int, ...]


class TreeSpec(_Frozen):
    """The whole file: a named root supervisor."""

    version: Literal[1] = 1
    name: str = Field(default="root", pattern=ID_PATTERN)
    root: SupervisorSpec


_MODELS_BY_KEY: dict[str, type[pydantic.BaseModel]] = {
    "root": SupervisorSpec,
    "supervisor": SupervisorSpec,
    "dynamic_supervisor": DynamicSupervisorSpec,
    "backoff": BackoffSpec,
    "pool": PoolSpec,
}


def load_tree_spec(path: str | Path) -> TreeSpec:
    """Read and validate a supervision file; raise ValidationError listing every problem."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError([Problem(file, 0, 0, f"cannot read the file: {exc}")]) from exc
    return parse_tree_spec(text, file)


def parse_tree_spec(text: str, file: str = "<string>") -> TreeSpec:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise ValidationError(
            [Problem(file, line, column, f"not valid YAML: {exc.problem}")]
        ) from exc
    if node is None:
        raise ValidationError([Problem(file, 1, 1, "the file is empty; expected a 'root' mapping")])
    marks: dict[KeyPath, tuple[int, int]] = {}
    problems: list[Problem] = []
    data = _to_data(node, (), marks, problems, file)
    if problems:
        raise ValidationError(problems)
    try:
        return TreeSpec.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationError(
            [_problem(error, data, marks, file) for error in exc.errors()]
        ) from None


def _to_data(
    node: yaml.Node,
    path: KeyPath,
    marks: dict[KeyPath, tuple[int, int]],
    problems: list[Problem],
    file: str,
) -> Any:
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if not isinstance(key, str):
                line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                problems.append(
                    Problem(
                        file, line, column, f"{_render(path)}: keys must be strings, got {key!r}"
                    )
                )
                continue
            if key in result:
                line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                problems.append(
                    Problem(file, line, column, f"{_render((*path, key))}: duplicate key")
                )
            result[key] = _to_data(value_node, (*path, key), marks, problems, file)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _to_data(item, (*path, i), marks, problems, file) for i, item in enumerate(node.value)
        ]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def _problem(error: Any, data: Any, marks: dict[KeyPath, tuple[int, int]], file: str) -> Problem:
    path: list[str | int] = []
    current = data
    for part in error["loc"]:
        step = _step(current, part)
        if step is not _MISSING:
            current = step
        elif error["type"] in ("extra_forbidden", "missing") and isinstance(part, str):
            path.append(part)
            break
        else:
            continue
        path.append(part)
    key_path: KeyPath = tuple(path)
    located = key_path
    while located not in marks and located:
        located = located[:-1]
    line, column = marks.get(located, (1, 1))
    message = re.sub(r"^(Value error|Assertion failed), ", "", error["msg"])
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(key_path[:-1])
        message = f"unknown key; allowed keys: {', '.join(allowed)}" if allowed else "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing"
    got = error.get("input")
    suffix = "" if isinstance(got, dict | list) or error["type"] == "missing" else f"; got {got!r}"
    return Problem(file, line, column, f"{_render(key_path) or '<top>'}: {message}{suffix}")


_MISSING = object()


def _step(current: Any, part: str | int) -> Any:
    """``current[part]`` when the data has it, else ``_MISSING`` (pydantic adds union tags)."""
    if isinstance(current, dict) and isinstance(part, str) and part in current:
        return current[part]
    if isinstance(current, list) and isinstance(part, int) and part < len(current):
        return current[part]
    return _MISSING


def _allowed_keys(parent: KeyPath) -> list[str]:
    model: type[pydantic.BaseModel] = TreeSpec
    if parent:
        last = parent[-1]
        model = ChildSpec if isinstance(last, int) else _MODELS_BY_KEY.get(last, TreeSpec)
    return sorted(model.model_fields)


def _render(path: KeyPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text
