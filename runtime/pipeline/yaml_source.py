"""YAML read with its positions kept, so every problem can name its line.

``load_yaml`` returns plain Python data plus a ``Marks`` table from a key path
(``("workflow", "steps", 3, "prompt")``) to the line and column of that key
(or of the item, for sequence entries). Duplicate keys, which PyYAML silently
collapses, are reported as problems.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runtime.errors import Problem, ValidationError

try:  # libyaml is bundled with PyYAML's wheels; fall back to pure Python when absent.
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on the wheel
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

PathKey = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass(slots=True)
class Marks:
    """Positions of keys and items by their path in the document."""

    file: str
    positions: dict[PathKey, Position] = field(default_factory=dict)

    def locate(self, path: Sequence[str | int]) -> Position:
        """The position of ``path``, or of its nearest ancestor that has one."""
        key = tuple(path)
        while key:
            found = self.positions.get(key)
            if found is not None:
                return found
            key = key[:-1]
        return self.positions.get((), Position(1, 1))

    def problem(self, path: Sequence[str | int], message: str) -> Problem:
        pos = self.locate(path)
        return Problem(self.file, pos.line, pos.column, message)

    def child(self, prefix: Sequence[str | int], file: str | None = None) -> Marks:
        """Marks re-rooted at ``prefix`` (for a nested pipeline given inline)."""
        n = len(prefix)
        pre = tuple(prefix)
        sub = {k[n:]: v for k, v in self.positions.items() if k[:n] == pre}
        return Marks(file or self.file, sub)


@dataclass(frozen=True, slots=True)
class YamlDocument:
    data: Any
    marks: Marks
    text: str


def _position(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def _construct(
    loader: Any,
    node: yaml.Node,
    path: PathKey,
    marks: Marks,
    problems: list[Problem],
) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                pos = _position(key_node)
                problems.append(
                    Problem(marks.file, pos.line, pos.column, "a mapping key must be a scalar")
                )
                continue
            # Keys are names: keep their text, so YAML 1.1 does not turn `on:` into True.
            key_str: str = key_node.value
            child_path = (*path, key_str)
            if key_str in result:
                pos = _position(key_node)
                problems.append(
                    Problem(
                        marks.file,
                        pos.line,
                        pos.column,
                        f"duplicate key '{key_str}' (the earlier value would be silently lost)",
                    )
                )
                continue
            marks.positions[child_path] = _position(key_node)
            result[key_str] = _construct(loader, value_node, child_path, marks, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item_node in enumerate(node.value):
            child_path = (*path, index)
            marks.positions[child_path] = _position(item_node)
            items.append(_construct(loader, item_node, child_path, marks, problems))
        return items
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse one YAML document, raising ValidationError with positions on any problem."""
    loader = _Loader(text)
    marks = Marks(file)
    problems: list[Problem] = []
    try:
        node = loader.get_single_node()
        if node is None:
            raise ValidationError([Problem(file, 1, 1, "the file is empty")])
        marks.positions[()] = _position(node)
        data = _construct(loader, node, (), marks, problems)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = exc.problem or exc.context or "malformed YAML"
        raise ValidationError([Problem(file, line, col, f"malformed YAML: {reason}")]) from None
    except yaml.YAMLError as exc:
        raise ValidationError([Problem(file, 1, 1, f"malformed YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if problems:
        raise ValidationError(problems)
    return YamlDocument(data, marks, text)


def load_yaml(path: Path) -> YamlDocument:
    """Read and parse ``path``; a missing or unreadable file is a ValidationError too."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError([Problem(str(path), 0, 0, "no such file")]) from None
    except UnicodeDecodeError as exc:
        raise ValidationError(
            [Problem(str(path), 1, 1, f"not UTF-8 text (byte {exc.start})")]
        ) from None
    except OSError as exc:
        raise ValidationError([Problem(str(path), 0, 0, f"cannot read: {exc.strerror}")]) from None
    return parse_yaml(text, str(path))
