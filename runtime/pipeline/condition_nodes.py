"""The parsed tree of a condition: an abstract ``Node``, one class a construct, each
evaluating itself under a mapping of names; and ``Condition``, a parsed condition.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from runtime.errors import ConditionError
from runtime.pipeline.condition_functions import _Function
from runtime.pipeline.condition_names import (
    _MISSING,
    _explain_missing,
    _explain_unknown,
    _lookup,
    _path_text,
    _resolve_first,
)
from runtime.pipeline.condition_values import _described, _Failure, _is_number, _prefix


class Node(ABC):
    """A node of a parsed condition. ``text`` is its slice of the source."""

    __slots__ = ()
    text: str

    @abstractmethod
    def evaluate(self, names: Mapping[str, Any]) -> Any:
        """The node's value under ``names``."""

    def children(self) -> tuple[Node, ...]:
        return ()

    def collect(self, paths: list[tuple[str, ...]]) -> None:
        """Append every name path this node uses to ``paths``."""
        for child in self.children():
            child.collect(paths)


@dataclass(frozen=True, slots=True)
class _Literal(Node):
    text: str
    value: Any

    def evaluate(self, names: Mapping[str, Any]) -> Any:
        return self.value


@dataclass(frozen=True, slots=True)
class _List(Node):
    text: str
    items: tuple[Node, ...]

    def evaluate(self, names: Mapping[str, Any]) -> Any:
        return [item.evaluate(names) for item in self.items]

    def children(self) -> tuple[Node, ...]:
        return self.items


@dataclass(frozen=True, slots=True)
class _Path(Node):
    """A name with static segments: ``steps.review.items[0]['k']``."""

    text: str
    parts: tuple[str | int, ...]

    def evaluate(self, names: Mapping[str, Any]) -> Any:
        parts = self.parts
        value = _resolve_first(names, parts[0])  # type: ignore[arg-type]
        if value is _MISSING:
            raise _Failure(_explain_unknown(names, parts[0]))  # type: ignore[arg-type]
        for index in range(1, len(parts)):
            found = _lookup(value, parts[index])
            if found is _MISSING:
                raise _Failure(_explain_missing(value, parts[index], _path_text(parts[:index])))
            value = found
        return value

    def collect(self, paths: list[tuple[str, ...]]) -> None:
        path: list[str] = []
        for part in self.parts:
            if not isinstance(part, str):
                break
            path.append(part)
        paths.append(tuple(path))


@dataclass(frozen=True, slots=True)
class _Member(Node):
    """A static segment on a computed value: ``(a or b).score``, ``[1, 2].length``."""

    text: str
    target: Node
    key: str | int

    def evaluate(self, names: Mapping[str, Any]) -> Any:
        value = self.target.evaluate(names)
        found = _lookup(value, self.key)
        if found is _MISSING:
            raise _Failure(_explain_missing(value, self.key, self.target.text))
        return found

    def children(self) -> tuple[Node, ...]:
        return (self.target,)


@dataclass(frozen=True, slots=True)
class _Index(Node):
    """A computed index: ``steps[state.current].result``."""

    text: str
    target: Node
    key: Node

    def evaluate(self, names: Mapping[str, Any]) -> Any:
        value = self.target.evaluate(names)
        key = self.key.evaluate(names)
        if not isinstance(key, str | int) or isinstance(key, bool):
            raise _Failure(
                f"index '{self.key.text}' of '{self.target.text}' must be a string or "
                f"integer, got {_described(key)}"
            )
        found = _lookup(value, key)
        if found is _MISSING:
            raise _Failure(_explain_missing(value, key, self.target.text))
        return found

    def children(self) -> tuple[Node, ...]:
        return (self.target, self.key)


@dataclass(frozen=True, slots=True)
class _Call(Node):
    text: str
    function: _Function
    args: tuple[Node, ...]

    def evaluate(self, names: Mapping[str, Any]) -> Any:
        return self.function.call(*[arg.evaluate(names) for arg in self.args])

    def children(self) -> tuple[Node, ...]:
        return self.args


@dataclass(frozen=True, slots=True)
class _Binary(Node):
    text: str
    op: str
    left: Node
    right: Node
    apply: Callable[[Any, Any], Any]

    def evaluate(self, names: Mapping[str, Any]) -> Any:
        return self.apply(self.left.evaluate(names), self.right.evaluate(names))

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


@dataclass(frozen=True, slots=True)
class _Negate(Node):
    text: str
    operand: Node

    def evaluate(self, names: Mapping[str, Any]) -> Any:
        value = self.operand.evaluate(names)
        if not _is_number(value):
            raise _Failure(f"cannot negate {_described(value)}")
        return -value

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


@dataclass(frozen=True, slots=True)
class _Not(Node):
    text: str
    operand: Node

    def evaluate(self, names: Mapping[str, Any]) -> Any:
        return not self.operand.evaluate(names)

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


@dataclass(frozen=True, slots=True)
class _Junction(Node):
    """``and``/``or``: the first operand whose truth is ``stops_on``, else the last."""

    text: str
    operands: tuple[Node, ...]
    stops_on: ClassVar[bool]

    def evaluate(self, names: Mapping[str, Any]) -> Any:
        value: Any = not self.stops_on
        for operand in self.operands:
            value = operand.evaluate(names)
            if bool(value) is self.stops_on:
                return value
        return value

    def children(self) -> tuple[Node, ...]:
        return self.operands


@dataclass(frozen=True, slots=True)
class _All(_Junction):
    """``and``: the first falsy operand, else the last (Python's ``and``)."""

    stops_on: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class _Any(_Junction):
    """``or``: the first truthy operand, else the last (Python's ``or``)."""

    stops_on: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class _Expression(Node):
    """The root of one string expression: turns failures into a located ConditionError."""

    text: str
    where: str
    body: Node

    def evaluate(self, names: Mapping[str, Any]) -> Any:
        try:
            return self.body.evaluate(names)
        except (_Failure, ArithmeticError) as failure:  # ArithmeticError: e.g. float overflow
            raise ConditionError(
                f"{_prefix(self.where)}cannot evaluate {self.text!r}: {failure}",
                expression=self.text,
            ) from None

    def children(self) -> tuple[Node, ...]:
        return (self.body,)


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed condition. Immutable and safe to share; evaluation is a tree walk."""

    source: str
    root: Node

    def evaluate(self, names: Mapping[str, Any]) -> bool:
        return bool(self.root.evaluate(names))

    def references(self) -> tuple[tuple[str, ...], ...]:
        """Every name path used, as written (shorthand unresolved), without repeats.

        A path stops at its first integer or computed index: ``a.b[0].c`` is ``('a', 'b')``.
        """
        paths: list[tuple[str, ...]] = []
        self.root.collect(paths)
        return tuple(dict.fromkeys(paths))

    def __str__(self) -> str:
        return self.source
