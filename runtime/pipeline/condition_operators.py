"""The condition language's operators: comparisons (``==``, ``contains``, ``matches`` ...)
and arithmetic (``+ - * / %``), each a function of two values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from runtime.pipeline.condition_values import _described, _Failure, _is_list, _is_number

MAX_PATTERN_LENGTH: Final = 500


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
