"""The recursive-descent parser that turns a condition expression's tokens into a tree.

Precedence and the grammar are described in ``runtime.pipeline.conditions``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any, Final

from runtime.errors import ConditionError
from runtime.pipeline.condition_functions import FUNCTIONS
from runtime.pipeline.condition_nodes import (
    Node,
    _All,
    _Any,
    _Binary,
    _Call,
    _Index,
    _Junction,
    _List,
    _Literal,
    _Member,
    _Negate,
    _Not,
    _Path,
)
from runtime.pipeline.condition_operators import (
    _ARITHMETIC,
    _COMPARISONS,
    _compile_pattern,
    _matches,
)
from runtime.pipeline.condition_tokens import _syntax_error, _Token, _tokenize
from runtime.pipeline.condition_values import _Failure, _is_number

_MAX_DEPTH: Final = 32  # nesting of parentheses, lists and not; keeps recursion bounded
_MAX_HEIGHT: Final = 200  # levels in the finished tree, e.g. a long chain of `+`
_KEYWORDS: Final = frozenset({"and", "or", "not", "in", "not_in"})
_LITERALS: Final[Mapping[str, Any]] = {"true": True, "false": False, "null": None, "none": None}
_COMPARISON_WORDS: Final = frozenset({"contains", "matches", "in", "not_in"})
_COMPARISON_SYMBOLS: Final = frozenset({"==", "!=", ">", "<", ">=", "<="})


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
        return self.junction(self.conjunction, "or", "||", _Any)

    def conjunction(self) -> Node:
        return self.junction(self.negation, "and", "&&", _All)

    def junction(
        self, operand: Callable[[], Node], word: str, symbol: str, combine: type[_Junction]
    ) -> Node:
        """``operand`` joined by ``word`` or ``symbol``; one operand alone is not wrapped."""
        start = self.token.start
        operands = [operand()]
        while self.at("name", word) or self.at("op", symbol):
            self.advance()
            operands.append(operand())
        if len(operands) == 1:
            return operands[0]
        return combine(self.text_from(start), tuple(operands))

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

    def separated(self, closer: str) -> list[Node]:
        """Expressions separated by commas up to ``closer``, which is consumed."""
        items: list[Node] = []
        while not self.at("op", closer):
            items.append(self.expression())
            if not self.at("op", closer):
                self.expect(",")
        self.advance()
        return items

    def list_literal(self) -> Node:
        start = self.advance().start
        self.nested()
        items = self.separated("]")
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
        args = self.separated(")")
        low, high = function.min_args, function.max_args
        if len(args) < low or (high >= 0 and len(args) > high):
            wanted = str(low) if low == high else f"{low} or more" if high < 0 else f"{low}-{high}"
            raise self.error(
                name, f"wrong number of arguments to {name.value}()", f"it takes {wanted}"
            )
        return _Call(self.text_from(name.start), function, tuple(args))
