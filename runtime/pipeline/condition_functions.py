"""The condition language's built-in functions: ``length(x)``, ``any(...)``, ``round(x, 2)`` ..."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence, Sized
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from runtime.pipeline.condition_operators import _contains, _equal
from runtime.pipeline.condition_values import (
    _described,
    _Failure,
    _is_list,
    _is_number,
    _type_name,
)


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
