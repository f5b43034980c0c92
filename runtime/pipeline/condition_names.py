"""Name lookup: a dotted path walked through mappings and lists, pipeline_ex's
shorthand scopes, and the message that says why a name or key is missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from runtime.pipeline.condition_values import (
    _closest_first,
    _described,
    _is_list,
    _listing,
    _string_keys,
    _suggestion,
)

SHORTHAND_SCOPES: Final = ("steps", "state", "inputs", "global_vars")
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
