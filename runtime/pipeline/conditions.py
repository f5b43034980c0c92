"""Conditions: the expression language of ``condition:``, ``switch: on:`` and loop tests.

A condition is one of::

    "steps.review.score > 7 and review.passed"    a string expression
    {and: [c1, c2]}  {or: [c1, c2]}  {not: c}     c is again any form
    [c1, c2]                                      a list means all of them
    true / false                                  a literal

Expressions are read by the tokenizer and recursive-descent parser below, never
by ``eval``. Precedence, loosest first::

    or ||   <   and &&   <   not !   <   == != > < >= <= contains matches in not_in (not in)
        <   + -   <   * / %   <   unary -   <   postfix .name [index] call

Literals: ints, floats, 'single' or "double" quoted strings (``\\n \\t \\r \\\\ \\' \\"
\\uXXXX``; any other backslash is kept, so ``'\\d+'`` is a regex), ``true false null
none`` in any case, lists ``[1, 'a']``. Comparisons do not chain.

Names: a dotted path ``a.b[0]['k']`` walks mappings by key and lists by integer
index (only through the Mapping protocol; never attributes). ``x.length`` is
``len(x)`` unless ``x`` is a mapping with a ``length`` key. The first segment is
looked up in the top-level names, then, as pipeline_ex's shorthand, among
``steps``, ``state``, ``inputs`` and ``global_vars`` in that order, so
``review.score`` is ``steps.review.score``. Names starting with ``_`` are
rejected when parsing.

Semantics: ``==``/``!=`` compare any values (a bool never equals a number);
ordering needs two numbers or two strings; ``+`` adds numbers or joins two
strings or two lists; ``matches`` is ``re.search`` with a pattern of at most
``MAX_PATTERN_LENGTH`` characters. Every failure, at parse or evaluation, is a
``ConditionError`` naming the expression, and for a name the closest existing one.
"""

from __future__ import annotations

import difflib
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence, Sized
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from runtime.errors import ConditionError

__all__ = [
    "FUNCTIONS",
    "MAX_PATTERN_LENGTH",
    "SHORTHAND_SCOPES",
    "Condition",
    "Node",
    "evaluate_expression",
    "parse_condition",
]

MAX_PATTERN_LENGTH: Final = 500
SHORTHAND_SCOPES: Final = ("steps", "state", "inputs", "global_vars")
_MAX_DEPTH: Final = 32  # nesting of parentheses, lists and not; keeps recursion bounded
_MAX_HEIGHT: Final = 200  # levels in the finished tree, e.g. a long chain of `+`
_MAX_SOURCE: Final = 10_000
_MAX_LISTED_KEYS: Final = 12


class _Failure(Exception):
    """An evaluation failure; the root node adds the expression and ``where``."""


# --- values -------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float | str):
        return type(value).__name__
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, Sequence):
        return "list"
    return type(value).__name__


def _preview(value: Any) -> str:
    """Describe a value without calling anything on user objects."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, Mapping):
        return f"mapping with {len(value)} keys"
    if isinstance(value, Sequence):
        return f"list of {len(value)} items"
    return f"a {type(value).__name__}"


def _described(value: Any) -> str:
    name, preview = _type_name(value), _preview(value)
    return f"{name} {preview}" if name in ("bool", "int", "float", "str") else preview


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def _closest_first(word: str, candidates: list[str]) -> list[str]:
    return difflib.get_close_matches(word, candidates, n=len(candidates), cutoff=0.0)


def _suggestion(word: str, candidates: list[str]) -> str:
    """``"did you mean 'x'?"`` for the closest candidate, or ``""``."""
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


def _listing(words: list[str]) -> str:
    shown = ", ".join(words[:_MAX_LISTED_KEYS])
    more = len(words) - _MAX_LISTED_KEYS
    return f"{shown}, ... ({more} more)" if more > 0 else shown


def _string_keys(mapping: Mapping[Any, Any]) -> list[str]:
    return [key for key in mapping if isinstance(key, str)]


# --- operators ----------------------------------------------------------------------


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, bool) is not isinstance(right, bool):
        return False
    return bool(left == right)


def _ordered(left: Any, right: Any, op: str) -> tuple[Any, Any]:
    if (_is_number(left) and _is_number(right)) or (
        isinstance(left, str) and isinstance(right, str)
    ):
        return left, right
    raise _Failure(
        f"cannot compare {_described(left)} with {_described(right)} using '{op}'; "
        "ordering needs two numbers or two strings"
    )


def _contains(container: Any, item: Any, op: str) -> bool:
    if isinstance(container, str):
        if not isinstance(item, str):
            raise _Failure(f"'{op}' on a string needs a string to look for, got {_described(item)}")
        return item in container
    if isinstance(container, Mapping):
        return isinstance(item, str | int) and item in container
    if isinstance(container, Sequence):
        return any(_equal(element, item) for element in container)
    raise _Failure(
        f"'{op}' needs a string, list or mapping to look in, got {_described(container)}"
    )


def _compile_pattern(pattern: Any) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise _Failure(f"'matches' needs a string pattern, got {_described(pattern)}")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise _Failure(
            f"regex pattern is {len(pattern)} characters; the limit is {MAX_PATTERN_LENGTH}"
        )
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise _Failure(f"bad regex {pattern!r}: {exc}") from None


def _matches(text: Any, pattern: Any) -> bool:
    if not isinstance(text, str):
        raise _Failure(f"'matches' needs a string on the left, got {_described(text)}")
    compiled = pattern if isinstance(pattern, re.Pattern) else _compile_pattern(pattern)
    return compiled.search(text) is not None


def _greater(left: Any, right: Any) -> bool:
    left, right = _ordered(left, right, ">")
    return bool(left > right)


def _less(left: Any, right: Any) -> bool:
    left, right = _ordered(left, right, "<")
    return bool(left < right)


def _greater_or_equal(left: Any, right: Any) -> bool:
    left, right = _ordered(left, right, ">=")
    return bool(left >= right)


def _less_or_equal(left: Any, right: Any) -> bool:
    left, right = _ordered(left, right, "<=")
    return bool(left <= right)


_COMPARISONS: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "==": _equal,
    "!=": lambda left, right: not _equal(left, right),
    ">": _greater,
    "<": _less,
    ">=": _greater_or_equal,
    "<=": _less_or_equal,
    "contains": lambda left, right: _contains(left, right, "contains"),
    "in": lambda left, right: _contains(right, left, "in"),
    "not_in": lambda left, right: not _contains(right, left, "not_in"),
    "matches": _matches,
}


def _numbers(left: Any, right: Any, verb: str) -> None:
    if not (_is_number(left) and _is_number(right)):
        raise _Failure(f"cannot {verb} {_described(left)} and {_described(right)}")


def _add(left: Any, right: Any) -> Any:
    if isinstance(left, str) and isinstance(right, str):
        return left + right
    if _is_list(left) and _is_list(right):
        return [*left, *right]
    _numbers(left, right, "add")
    return left + right


def _subtract(left: Any, right: Any) -> Any:
    _numbers(left, right, "subtract")
    return left - right


def _multiply(left: Any, right: Any) -> Any:
    _numbers(left, right, "multiply")
    return left * right


def _divide(left: Any, right: Any) -> Any:
    _numbers(left, right, "divide")
    if right == 0:
        raise _Failure(f"division by zero: {_described(left)} / {_described(right)}")
    return left / right


def _modulo(left: Any, right: Any) -> Any:
    _numbers(left, right, "take the remainder of")
    if right == 0:
        raise _Failure(f"division by zero: {_described(left)} % {_described(right)}")
    return left % right


_ARITHMETIC: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "+": _add,
    "-": _subtract,
    "*": _multiply,
    "/": _divide,
    "%": _modulo,
}


# --- functions ----------------------------------------------------------------------


def _sized(name: str, value: Any) -> Sized:
    if isinstance(value, str | Mapping | Sequence):
        return value
    raise _Failure(f"{name}() needs a string, list or mapping, got {_described(value)}")


def _list_arg(name: str, value: Any) -> Sequence[Any]:
    if _is_list(value):
        return value  # type: ignore[no-any-return]
    raise _Failure(f"{name}() needs a list, got {_described(value)}")


def _items(name: str, args: tuple[Any, ...]) -> Sequence[Any]:
    """``f([a, b])`` and ``f(a, b)`` mean the same."""
    return _list_arg(name, args[0]) if len(args) == 1 else args


def _number_items(name: str, args: tuple[Any, ...]) -> Sequence[Any]:
    items = _items(name, args)
    for item in items:
        if not _is_number(item):
            raise _Failure(f"{name}() needs numbers, got {_described(item)}")
    return items


def _fn_length(value: Any) -> int:
    return len(_sized("length", value))


def _fn_contains(container: Any, item: Any) -> bool:
    return _contains(container, item, "contains")


def _affix(name: str, text: Any, affix: Any) -> tuple[str, str]:
    if isinstance(text, str) and isinstance(affix, str):
        return text, affix
    raise _Failure(f"{name}() needs two strings, got {_described(text)} and {_described(affix)}")


def _fn_starts_with(text: Any, prefix: Any) -> bool:
    return str.startswith(*_affix("startsWith", text, prefix))


def _fn_ends_with(text: Any, suffix: Any) -> bool:
    return str.endswith(*_affix("endsWith", text, suffix))


def _fn_is_empty(value: Any) -> bool:
    if value is None:
        return True
    return isinstance(value, str | Mapping | Sequence) and len(value) == 0


def _fn_any(*args: Any) -> bool:
    return any(_items("any", args))


def _fn_all(*args: Any) -> bool:
    return all(_items("all", args))


def _fn_count(items: Any, *value: Any) -> int:
    if not value:
        return len(_sized("count", items))
    if isinstance(items, str) and isinstance(value[0], str):
        return items.count(value[0])
    return sum(1 for item in _list_arg("count", items) if _equal(item, value[0]))


def _fn_sum(*args: Any) -> Any:
    return sum(_number_items("sum", args))


def _fn_average(*args: Any) -> float:
    items = _number_items("average", args)
    if not items:
        raise _Failure("average() of an empty list")
    return float(sum(items)) / len(items)


def _extreme(name: str, pick: Callable[[Sequence[Any]], Any], args: tuple[Any, ...]) -> Any:
    items = _items(name, args)
    if not items:
        raise _Failure(f"{name}() of an empty list")
    if all(_is_number(item) for item in items) or all(isinstance(item, str) for item in items):
        return pick(items)
    kinds = ", ".join(sorted({_type_name(item) for item in items}))
    raise _Failure(f"{name}() needs all numbers or all strings, got {kinds}")


def _fn_min(*args: Any) -> Any:
    return _extreme("min", min, args)


def _fn_max(*args: Any) -> Any:
    return _extreme("max", max, args)


def _fn_abs(value: Any) -> Any:
    if not _is_number(value):
        raise _Failure(f"abs() needs a number, got {_described(value)}")
    return abs(value)


def _fn_round(value: Any, *digits: Any) -> Any:
    """Half away from zero, as people round: round(2.5) is 3, round(2.675, 2) is 2.68."""
    if not _is_number(value):
        raise _Failure(f"round() needs a number, got {_described(value)}")
    places = digits[0] if digits else 0
    if not isinstance(places, int) or isinstance(places, bool):
        raise _Failure(f"round() needs an integer number of digits, got {_described(places)}")
    if isinstance(value, float) and not math.isfinite(value):
        return value
    try:
        rounded = Decimal(str(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    except ArithmeticError:  # more digits than Decimal's precision holds
        raise _Failure(f"round() cannot round {_described(value)} to {places} digits") from None
    return int(rounded) if not digits else float(rounded)


def _fn_now() -> str:
    return datetime.now(UTC).isoformat()


class _Function(NamedTuple):
    call: Callable[..., Any]
    min_args: int
    max_args: int  # -1: any number


FUNCTIONS: Final[Mapping[str, _Function]] = MappingProxyType(
    {
        "length": _Function(_fn_length, 1, 1),
        "contains": _Function(_fn_contains, 2, 2),
        "startsWith": _Function(_fn_starts_with, 2, 2),
        "endsWith": _Function(_fn_ends_with, 2, 2),
        "isEmpty": _Function(_fn_is_empty, 1, 1),
        "any": _Function(_fn_any, 1, -1),
        "all": _Function(_fn_all, 1, -1),
        "count": _Function(_fn_count, 1, 2),
        "sum": _Function(_fn_sum, 1, -1),
        "average": _Function(_fn_average, 1, -1),
        "min": _Function(_fn_min, 1, -1),
        "max": _Function(_fn_max, 1, -1),
        "abs": _Function(_fn_abs, 1, 1),
        "round": _Function(_fn_round, 1, 2),
        "now": _Function(_fn_now, 0, 0),
    }
)


# --- name lookup --------------------------------------------------------------------

_MISSING: Final = object()


def _lookup(value: Any, key: str | int) -> Any:
    """One path step, or ``_MISSING``; ``_explain_missing`` says why afterwards."""
    if type(value) is dict or isinstance(value, Mapping):
        if key in value:
            return value[key]
        if key == "length":
            return len(value)
        return _MISSING
    if type(key) is int:
        if isinstance(value, Sequence):
            try:
                return value[key]
            except IndexError:
                return _MISSING
        return _MISSING
    if key == "length" and isinstance(value, str | Sequence):
        return len(value)
    return _MISSING


def _segment(key: str | int) -> str:
    if isinstance(key, int):
        return f"[{key}]"
    return f".{key}" if key.isidentifier() else f"[{key!r}]"


def _path_text(parts: Sequence[str | int]) -> str:
    return str(parts[0]) + "".join(_segment(key) for key in parts[1:])


def _explain_missing(value: Any, key: str | int, prefix: str) -> str:
    full = prefix + _segment(key)
    if value is None:
        return f"cannot read {key!r} of '{prefix}': it is null"
    if isinstance(value, Mapping):
        keys = _string_keys(value)
        if isinstance(key, int):
            return f"'{full}' does not exist: '{prefix}' is a mapping with no key {key}"
        available = _listing(_closest_first(key, keys)) if keys else "none"
        hint = f" ({suggestion})" if (suggestion := _suggestion(key, keys)) else ""
        return (
            f"'{full}' does not exist: '{prefix}' has no key {key!r}{hint}; "
            f"available keys (closest first): {available}"
        )
    if isinstance(value, str | Sequence) and isinstance(key, int):
        unit = "characters" if isinstance(value, str) else "items"
        return f"'{full}' does not exist: index {key} is out of range for {len(value)} {unit}"
    if _is_list(value):
        return (
            f"cannot read {key!r} of '{prefix}': it is a list of {len(value)} items; "
            "use an integer index like [0], or .length"
        )
    return f"cannot read {key!r} of '{prefix}': it is {_described(value)}, not a mapping or list"


def _resolve_first(names: Mapping[str, Any], first: str) -> Any:
    if first in names:
        return names[first]
    for scope_name in SHORTHAND_SCOPES:
        if scope_name in names:
            scope = names[scope_name]
            if isinstance(scope, Mapping) and first in scope:
                return scope[first]
    return _MISSING


def _explain_unknown(names: Mapping[str, Any], first: str) -> str:
    candidates = _string_keys(names)
    for scope_name in SHORTHAND_SCOPES:
        scope = names.get(scope_name)
        if isinstance(scope, Mapping):
            candidates += [key for key in _string_keys(scope) if key not in candidates]
    known = f"known top-level names: {_listing(sorted(_string_keys(names)))}"
    return (
        f"unknown name '{first}': it is not a top-level name, step, state variable, "
        f"input or global var; {_suggestion(first, candidates) or known}"
    )


# --- the tree -----------------------------------------------------------------------


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
class _All(Node):
    """``and``: the first falsy operand, else the last (Python's ``and``)."""

    text: str
    operands: tuple[Node, ...]

    def evaluate(self, names: Mapping[str, Any]) -> Any:
        value: Any = True
        for operand in self.operands:
            value = operand.evaluate(names)
            if not value:
                return value
        return value

    def children(self) -> tuple[Node, ...]:
        return self.operands


@dataclass(frozen=True, slots=True)
class _Any(Node):
    """``or``: the first truthy operand, else the last (Python's ``or``)."""

    text: str
    operands: tuple[Node, ...]

    def evaluate(self, names: Mapping[str, Any]) -> Any:
        value: Any = False
        for operand in self.operands:
            value = operand.evaluate(names)
            if value:
                return value
        return value

    def children(self) -> tuple[Node, ...]:
        return self.operands


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


def _prefix(where: str) -> str:
    return f"{where}: " if where else ""


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


# --- tokenizer ----------------------------------------------------------------------

_KEYWORDS: Final = frozenset({"and", "or", "not", "in", "not_in"})
_LITERALS: Final[Mapping[str, Any]] = {"true": True, "false": False, "null": None, "none": None}
_COMPARISON_WORDS: Final = frozenset({"contains", "matches", "in", "not_in"})
_COMPARISON_SYMBOLS: Final = frozenset({"==", "!=", ">", "<", ">=", "<="})
_ESCAPES: Final = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0"}
_TOKEN_RE: Final = re.compile(
    r"""(?P<space>\s+)
    |(?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    |(?P<name>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<quote>['"])
    |(?P<op>==|!=|>=|<=|&&|\|\||[-+*/%<>!()\[\],.])
    """,
    re.VERBOSE,
)
_INTEGER_RE: Final = re.compile(r"\d+")
_MISTAKES: Final = {
    "=": "use '==' to compare",
    "&": "use 'and' or '&&'",
    "|": "use 'or' or '||'",
}


class _Token(NamedTuple):
    kind: str  # number, name, string, op, end
    value: Any
    start: int
    end: int


def _syntax_error(
    source: str, where: str, position: int, message: str, detail: str = ""
) -> ConditionError:
    """``<where>: unexpected ')' at column 7 in 'a > b)'; <detail>`` and a caret line."""
    line_start = source.rfind("\n", 0, position) + 1
    line_end = source.find("\n", position)
    line = source[line_start : line_end if line_end >= 0 else len(source)]
    column = position - line_start + 1
    at = f"column {column}"
    if "\n" in source:
        at = f"line {source.count(chr(10), 0, position) + 1} {at}"
    caret = f"\n    {line}\n    {' ' * (column - 1)}^"
    return ConditionError(
        f"{_prefix(where)}{message} at {at} in {source!r}{'; ' if detail else ''}{detail}{caret}",
        expression=source,
    )


def _read_string(source: str, where: str, start: int) -> tuple[str, int]:
    quote, index = source[start], start + 1
    out: list[str] = []
    while index < len(source):
        char = source[index]
        if char == quote:
            return "".join(out), index + 1
        if char == "\\" and index + 1 < len(source):
            escaped = source[index + 1]
            if escaped == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", source[index + 2 : index + 6]):
                out.append(chr(int(source[index + 2 : index + 6], 16)))
                index += 6
                continue
            out.append(_ESCAPES.get(escaped, "\\" + escaped))
            index += 2
            continue
        out.append(char)
        index += 1
    raise _syntax_error(source, where, start, "unterminated string")


def _tokenize(source: str, where: str) -> list[_Token]:
    if len(source) > _MAX_SOURCE:
        raise ConditionError(
            f"{_prefix(where)}condition is {len(source)} characters; the limit is {_MAX_SOURCE}",
            expression=source[:100],
        )
    tokens: list[_Token] = []
    index = 0
    while index < len(source):
        after_dot = bool(tokens) and tokens[-1].value == "." and tokens[-1].kind == "op"
        integer = _INTEGER_RE.match(source, index) if after_dot else None
        if integer:  # `a.0.1` is two indexes, not the float 0.1
            tokens.append(_Token("number", int(integer.group()), index, integer.end()))
            index = integer.end()
            continue
        match = _TOKEN_RE.match(source, index)
        if match is None:
            char = source[index]
            raise _syntax_error(
                source, where, index, f"unexpected character {char!r}", _MISTAKES.get(char, "")
            )
        kind, text, end = match.lastgroup or "", match.group(), match.end()
        if kind == "number":
            if len(text) > 100:  # int() refuses very long digit strings anyway
                raise _syntax_error(source, where, index, "number too long")
            number = float(text) if any(c in text for c in ".eE") else int(text)
            tokens.append(_Token("number", number, index, end))
        elif kind == "name":
            if text.startswith("_"):
                raise _syntax_error(
                    source,
                    where,
                    index,
                    f"name {text!r}",
                    "names starting with '_' are not allowed",
                )
            tokens.append(_Token("name", text, index, end))
        elif kind == "quote":
            value, end = _read_string(source, where, index)
            tokens.append(_Token("string", value, index, end))
        elif kind == "op":
            tokens.append(_Token("op", text, index, end))
        index = end
    tokens.append(_Token("end", None, len(source), len(source)))
    return tokens


# --- parser -------------------------------------------------------------------------


def _height(root: Node) -> int:
    """The tree's height, found without recursion so that a huge tree cannot overflow."""
    tallest, pending = 0, [(root, 1)]
    while pending:
        node, level = pending.pop()
        tallest = max(tallest, level)
        pending.extend((child, level + 1) for child in node.children())
    return tallest


class _Parser:
    def __init__(self, source: str, where: str) -> None:
        self.source = source
        self.where = where
        self.tokens = _tokenize(source, where)
        self.index = 0
        self.depth = 0

    # helpers

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at(self, kind: str, *values: str) -> bool:
        token = self.tokens[self.index]
        return token.kind == kind and (not values or token.value in values)

    def text_from(self, start: int) -> str:
        return self.source[start : self.tokens[self.index - 1].end].strip()

    def error(self, token: _Token, message: str, detail: str = "") -> ConditionError:
        return _syntax_error(self.source, self.where, token.start, message, detail)

    def unexpected(self, token: _Token, expected: str = "") -> ConditionError:
        if token.kind == "end":
            what = "unexpected end of expression"
        else:
            what = f"unexpected {self.source[token.start : token.end]!r}"
        detail = f"expected {expected}" if expected else ""
        if token.kind == "name" and token.value.lower() in _KEYWORDS | _COMPARISON_WORDS:
            detail += f"; did you mean '{token.value.lower()}'?"
        return self.error(token, what, detail.removeprefix("; "))

    def expect(self, value: str) -> _Token:
        if not self.at("op", value):
            raise self.unexpected(self.token, f"'{value}'")
        return self.advance()

    def nested(self) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.error(
                self.token, "nesting too deep", f"the limit is {_MAX_DEPTH} levels of (), [] or not"
            )

    # grammar

    def parse(self) -> Node:
        if self.at("end"):
            raise self.error(self.token, "empty condition")
        node = self.expression()
        if not self.at("end"):
            raise self.unexpected(self.token, "an operator or the end of the expression")
        if _height(node) > _MAX_HEIGHT:
            raise self.error(
                self.tokens[0], "expression too deep", f"the limit is {_MAX_HEIGHT} levels"
            )
        return node

    def expression(self) -> Node:
        self.nested()
        node = self.disjunction()
        self.depth -= 1
        return node

    def disjunction(self) -> Node:
        start = self.token.start
        operands = [self.conjunction()]
        while self.at("name", "or") or self.at("op", "||"):
            self.advance()
            operands.append(self.conjunction())
        return operands[0] if len(operands) == 1 else _Any(self.text_from(start), tuple(operands))

    def conjunction(self) -> Node:
        start = self.token.start
        operands = [self.negation()]
        while self.at("name", "and") or self.at("op", "&&"):
            self.advance()
            operands.append(self.negation())
        return operands[0] if len(operands) == 1 else _All(self.text_from(start), tuple(operands))

    def negation(self) -> Node:
        if self.at("name", "not") or self.at("op", "!"):
            start = self.advance().start
            self.nested()
            operand = self.negation()
            self.depth -= 1
            return _Not(self.text_from(start), operand)
        return self.comparison()

    def comparison_operator(self) -> str | None:
        token = self.token
        if token.kind == "op" and token.value in _COMPARISON_SYMBOLS:
            self.advance()
            return str(token.value)
        if token.kind == "name" and token.value in _COMPARISON_WORDS:
            self.advance()
            return str(token.value)
        if token.kind == "name" and token.value == "not":
            following = self.tokens[self.index + 1]
            if following.kind == "name" and following.value == "in":
                self.index += 2
                return "not_in"
        return None

    def comparison(self) -> Node:
        start = self.token.start
        left = self.additive()
        op = self.comparison_operator()
        if op is None:
            return left
        right_token = self.token
        right = self.additive()
        apply = _COMPARISONS[op]
        if op == "matches" and isinstance(right, _Literal):
            try:
                pattern = _compile_pattern(right.value)
            except _Failure as failure:
                raise self.error(right_token, "invalid pattern", str(failure)) from None
            apply = _matches
            right = _Literal(right.text, pattern)
        chained = self.token
        if self.comparison_operator() is not None:
            raise self.error(
                chained, "chained comparison", "comparisons cannot be chained; join them with 'and'"
            )
        return _Binary(self.text_from(start), op, left, right, apply)

    def additive(self) -> Node:
        start = self.token.start
        node = self.multiplicative()
        while self.at("op", "+", "-"):
            op = self.advance().value
            right = self.multiplicative()
            node = _Binary(self.text_from(start), op, node, right, _ARITHMETIC[op])
        return node

    def multiplicative(self) -> Node:
        start = self.token.start
        node = self.unary()
        while self.at("op", "*", "/", "%"):
            op = self.advance().value
            right = self.unary()
            node = _Binary(self.text_from(start), op, node, right, _ARITHMETIC[op])
        return node

    def unary(self) -> Node:
        if self.at("op", "-"):
            start = self.advance().start
            self.nested()
            operand = self.unary()
            self.depth -= 1
            if isinstance(operand, _Literal) and _is_number(operand.value):
                return _Literal(self.text_from(start), -operand.value)
            return _Negate(self.text_from(start), operand)
        return self.postfix()

    def postfix(self) -> Node:
        start = self.token.start
        node = self.primary()
        while True:
            if self.at("op", "."):
                self.advance()
                token = self.advance()
                if token.kind == "name" or (token.kind == "number" and type(token.value) is int):
                    node = self._member(node, token.value, start)
                else:
                    raise self.unexpected(token, "a name after '.'")
            elif self.at("op", "["):
                self.advance()
                key = self.expression()
                self.expect("]")
                if isinstance(key, _Literal) and type(key.value) in (str, int):
                    node = self._member(node, key.value, start)
                else:
                    node = _Index(self.text_from(start), node, key)
            elif self.at("op", "("):
                raise self.error(
                    self.token,
                    "unexpected '('",
                    f"only built-in functions can be called, and {node.text!r} is not one",
                )
            else:
                return node

    def _member(self, node: Node, key: str | int, start: int) -> Node:
        if isinstance(node, _Path):
            return _Path(self.text_from(start), (*node.parts, key))
        return _Member(self.text_from(start), node, key)

    def primary(self) -> Node:
        token = self.token
        if token.kind in ("number", "string"):
            self.advance()
            return _Literal(self.text_from(token.start), token.value)
        if token.kind == "op" and token.value == "(":
            self.advance()
            node = self.expression()
            self.expect(")")
            return node
        if token.kind == "op" and token.value == "[":
            return self.list_literal()
        if token.kind == "name":
            word = token.value
            if word.lower() in _LITERALS:
                self.advance()
                return _Literal(word, _LITERALS[word.lower()])
            if word in _KEYWORDS:
                raise self.unexpected(token, "a value")
            self.advance()
            if self.at("op", "("):
                return self.call(token)
            return _Path(word, (word,))
        raise self.unexpected(token, "a value")

    def list_literal(self) -> Node:
        start = self.advance().start
        self.nested()
        items: list[Node] = []
        while not self.at("op", "]"):
            items.append(self.expression())
            if not self.at("op", "]"):
                self.expect(",")
        self.advance()
        self.depth -= 1
        return _List(self.text_from(start), tuple(items))

    def call(self, name: _Token) -> Node:
        function = FUNCTIONS.get(name.value)
        if function is None:
            by_lower = {known.lower(): known for known in FUNCTIONS}
            close = by_lower.get(name.value.lower()) or next(
                iter(difflib.get_close_matches(name.value, list(FUNCTIONS), n=1, cutoff=0.6)),
                None,
            )
            hint = f"did you mean '{close}'?" if close else f"functions are {', '.join(FUNCTIONS)}"
            raise self.error(name, f"unknown function {name.value!r}", hint)
        self.advance()
        args: list[Node] = []
        while not self.at("op", ")"):
            args.append(self.expression())
            if not self.at("op", ")"):
                self.expect(",")
        self.advance()
        low, high = function.min_args, function.max_args
        if len(args) < low or (high >= 0 and len(args) > high):
            wanted = str(low) if low == high else f"{low} or more" if high < 0 else f"{low}-{high}"
            raise self.error(
                name, f"wrong number of arguments to {name.value}()", f"it takes {wanted}"
            )
        return _Call(self.text_from(name.start), function, tuple(args))


# --- entry points -------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _parse_string(source: str, where: str) -> Condition:
    body = _Parser(source, where).parse()
    return Condition(source, _Expression(source, where, body))


def _within(where: str, step: str) -> str:
    return f"{where}, in {step}" if where else f"in {step}"


def _parse_form(source: Any, where: str, depth: int) -> Condition:
    if depth > _MAX_DEPTH:
        raise ConditionError(f"{_prefix(where)}condition nested more than {_MAX_DEPTH} deep")
    if isinstance(source, bool):
        return Condition("true" if source else "false", _Literal(str(source).lower(), source))
    if isinstance(source, str):
        return _parse_string(source, where)
    if isinstance(source, Mapping):
        return _parse_mapping(source, where, depth)
    if isinstance(source, Sequence):
        return _parse_all(source, "all", where, depth)
    raise ConditionError(
        f"{_prefix(where)}a condition is a string, list, mapping (and/or/not) or bool, "
        f"got {_described(source)}"
    )


def _parse_all(items: Sequence[Any], label: str, where: str, depth: int) -> Condition:
    parts = [
        _parse_form(item, _within(where, f"{label}[{index}]"), depth + 1)
        for index, item in enumerate(items)
    ]
    combine = _Any if label == "or" else _All
    joiner = " or " if label == "or" else " and "
    text = joiner.join(f"({part.source})" for part in parts) or (
        "false" if label == "or" else "true"
    )
    return Condition(text, combine(text, tuple(part.root for part in parts)))


def _parse_mapping(source: Mapping[Any, Any], where: str, depth: int) -> Condition:
    keys = list(source)
    if len(keys) != 1 or keys[0] not in ("and", "or", "not"):
        unknown = [str(key) for key in keys if key not in ("and", "or", "not")]
        hint = _suggestion(unknown[0], ["and", "or", "not"]) if unknown else ""
        hint = f"; {hint}" if hint else ""
        got = ", ".join(repr(str(key)) for key in keys) or "no keys"
        raise ConditionError(
            f"{_prefix(where)}a condition mapping has exactly one key, 'and', 'or' or "
            f"'not'; got {got}{hint}"
        )
    key = keys[0]
    value = source[key]
    if key == "not":
        inner = _parse_form(value, _within(where, "not"), depth + 1)
        text = f"not ({inner.source})"
        return Condition(text, _Not(text, inner.root))
    if isinstance(value, str | Mapping) or not isinstance(value, Sequence):
        raise ConditionError(
            f"{_prefix(where)}'{key}' takes a list of conditions, got {_described(value)}"
        )
    return _parse_all(value, key, where, depth)


def parse_condition(
    source: str | Mapping[str, Any] | Sequence[Any] | bool, *, where: str = ""
) -> Condition:
    """Parse any condition form; raises ConditionError, prefixed by ``where``, if invalid.

    String sources are cached, so parsing the same text again is a dictionary lookup.
    """
    if isinstance(source, str):
        return _parse_string(source, where)
    return _parse_form(source, where, 0)


def evaluate_expression(source: str, names: Mapping[str, Any]) -> Any:
    """Evaluate an expression and return its value rather than its truth (``switch: on:``)."""
    return _parse_string(source, "").root.evaluate(names)
