"""How the condition language names and describes values, for its error messages.

Also the evaluation failure that nodes raise and the root node turns into a
``ConditionError``. Underscored names here are shared by the ``condition_*``
modules only; the public API is ``runtime.pipeline.conditions``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any, Final

_MAX_LISTED_KEYS: Final = 12


class _Failure(Exception):
    """An evaluation failure; the root node adds the expression and ``where``."""


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


def _prefix(where: str) -> str:
    return f"{where}: " if where else ""
