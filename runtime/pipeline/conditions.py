"""Conditions: the expression language of ``condition:``, ``switch: on:`` and loop tests.

A condition is one of::

    "steps.review.score > 7 and review.passed"    a string expression
    {and: [c1, c2]}  {or: [c1, c2]}  {not: c}     c is again any form
    [c1, c2]                                      a list means all of them
    true / false                                  a literal

Expressions are read by the tokenizer (``condition_tokens``) and the recursive-descent
parser (``condition_parser``), never by ``eval``. Precedence, loosest first::

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

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from runtime.errors import ConditionError
from runtime.pipeline.condition_functions import FUNCTIONS
from runtime.pipeline.condition_names import SHORTHAND_SCOPES
from runtime.pipeline.condition_nodes import (
    Condition,
    Node,
    _All,
    _Any,
    _Expression,
    _Literal,
    _Not,
)
from runtime.pipeline.condition_operators import MAX_PATTERN_LENGTH
from runtime.pipeline.condition_parser import _MAX_DEPTH, _Parser
from runtime.pipeline.condition_values import _described, _prefix, _suggestion

__all__ = [
    "FUNCTIONS",
    "MAX_PATTERN_LENGTH",
    "SHORTHAND_SCOPES",
    "Condition",
    "Node",
    "evaluate_expression",
    "parse_condition",
]


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
