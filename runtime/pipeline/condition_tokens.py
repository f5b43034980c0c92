"""The tokenizer of condition expressions, and the located syntax error with its caret line."""

from __future__ import annotations

import re
from typing import Any, Final, NamedTuple

from runtime.errors import ConditionError
from runtime.pipeline.condition_values import _prefix

_MAX_SOURCE: Final = 10_000
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
