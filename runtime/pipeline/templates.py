"""Sandboxed Jinja2 templates with strict, helpful undefined handling.

A template that is one expression (``"{{ steps.x.result }}"``) renders to the
native value, so data flows between steps without a round trip through text;
anything else renders to a string. A reference to a missing name fails with
the name and the closest existing one. The sandbox is immutable and refuses
attribute access that could reach Python internals.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NoReturn

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from runtime.errors import TemplateError

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}|\{\{).)*)\}\}\s*$", re.DOTALL)


def is_template(value: str) -> bool:
    return "{{" in value or "{%" in value


class _Missing(jinja2.StrictUndefined):
    """Raises a TemplateError that knows which name was missing and where."""

    __slots__ = ()

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> NoReturn:
        if self._undefined_exception is SecurityError:
            raise TemplateError(f"refused: {self._undefined_hint}")
        raise _UndefinedName(self._undefined_obj, self._undefined_name, self._undefined_hint)

    __str__ = __iter__ = __len__ = __bool__ = __eq__ = __ne__ = __hash__ = (
        _fail_with_undefined_error
    )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        self._fail_with_undefined_error()

    __getitem__ = __add__ = __radd__ = __mul__ = __call__ = _fail_with_undefined_error
    __lt__ = __le__ = __gt__ = __ge__ = __contains__ = __int__ = __float__ = (
        _fail_with_undefined_error
    )


class _UndefinedName(jinja2.UndefinedError):
    def __init__(self, obj: Any, name: str | None, hint: str | None) -> None:
        super().__init__(hint or f"{name!r} is undefined")
        self.obj = obj
        self.name = name


class _Environment(ImmutableSandboxedEnvironment):
    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        # Only data, never methods or internals, is reachable from a template.
        if attr.startswith("_"):
            return False
        return super().is_safe_attribute(obj, attr, value)


def _finalize(value: Any) -> Any:
    # Inside text, structured values read as JSON (as previous_response renders them).
    if isinstance(value, (Mapping, list, tuple)):
        return _to_json(value, None)
    return value


_ENV = _Environment(
    undefined=_Missing,
    finalize=_finalize,
    autoescape=False,
    keep_trailing_newline=True,
    trim_blocks=False,
)
_ENV.filters["tojson"] = lambda value, indent=None: _to_json(value, indent)


def _to_json(value: Any, indent: int | None) -> str:
    import json

    return json.dumps(_plain(value), indent=indent, ensure_ascii=False, default=str)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def suggest(name: str, candidates: Iterable[str]) -> str:
    """``; did you mean 'x'?`` or, with nothing close, the list of known names."""
    names = sorted({str(c) for c in candidates})
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    if not names:
        return ""
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return f" (known: {shown})"


def _candidates(obj: Any, context: Mapping[str, Any]) -> list[str]:
    if obj is jinja2.utils.missing:
        return list(context)
    if isinstance(obj, Mapping):
        return [str(k) for k in obj]
    return []


class Template:
    """A compiled template; ``render`` takes the names a step can see."""

    __slots__ = ("_expression", "_template", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._expression: Any = None
        self._template: jinja2.Template | None = None
        try:
            match = _SINGLE_EXPRESSION.match(source)
            if match is not None:
                self._expression = _ENV.compile_expression(
                    match.group("expr"), undefined_to_none=False
                )
            else:
                self._template = _ENV.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"template syntax error at line {exc.lineno}: {exc.message}", template=source
            ) from None

    def render(self, names: Mapping[str, Any]) -> Any:
        try:
            if self._expression is not None:
                value = self._expression(**names)
                if isinstance(value, jinja2.Undefined):
                    str(value)  # raises with the missing name
                return value
            assert self._template is not None
            return self._template.render(names)
        except _UndefinedName as exc:
            missing = exc.name or "?"
            if exc.obj is jinja2.utils.missing:
                raise TemplateError(
                    f"undefined name '{missing}' in template {self._short()}"
                    + suggest(missing, _candidates(exc.obj, names)),
                    template=self.source,
                ) from None
            raise TemplateError(
                f"'{missing}' is not defined here in template {self._short()}"
                + suggest(missing, _candidates(exc.obj, names)),
                template=self.source,
            ) from None
        except SecurityError as exc:
            raise TemplateError(f"refused: {exc}", template=self.source) from None
        except TemplateError:
            raise
        except jinja2.TemplateError as exc:
            raise TemplateError(
                f"template {self._short()} failed: {exc}", template=self.source
            ) from None
        except (TypeError, ValueError, ZeroDivisionError, KeyError, IndexError) as exc:
            raise TemplateError(
                f"template {self._short()} failed: {type(exc).__name__}: {exc}",
                template=self.source,
            ) from None

    def _short(self) -> str:
        text = self.source.strip().replace("\n", " ")
        return repr(text if len(text) <= 80 else text[:77] + "...")


@lru_cache(maxsize=4096)
def compile_template(source: str) -> Template:
    return Template(source)


def render_value(value: Any, names: Mapping[str, Any]) -> Any:
    """Render every template string inside ``value`` (recursing into lists and maps)."""
    if isinstance(value, str):
        return compile_template(value).render(names) if is_template(value) else value
    if isinstance(value, Mapping):
        return {k: render_value(v, names) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [render_value(v, names) for v in value]
    return value


def render_text(source: str, names: Mapping[str, Any]) -> str:
    """Render to text: a native value from a single-expression template becomes a string."""
    if not is_template(source):
        return source
    value = compile_template(source).render(names)
    if isinstance(value, str):
        return value
    if isinstance(value, (Mapping, list, tuple)):
        return _to_json(value, None)
    return "" if value is None else str(value)


@dataclass(frozen=True, slots=True)
class TemplateShape:
    """What validation needs to know of a template, from one parse."""

    paths: tuple[tuple[str, ...], ...] = ()
    local_names: frozenset[str] = frozenset()
    error: str | None = None


@lru_cache(maxsize=4096)
def analyze(source: str) -> TemplateShape:
    """Parse ``source`` once: the dotted names it reads, the names it sets, or its syntax error."""
    try:
        ast = _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return TemplateShape(error=f"template syntax error at line {exc.lineno}: {exc.message}")
    paths: list[tuple[str, ...]] = []
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        path = _dotted(node)
        if path is not None:
            paths.append(path)
    # keep only maximal paths: drop those that prefix another
    paths.sort(key=len, reverse=True)
    kept: list[tuple[str, ...]] = []
    for p in paths:
        if not any(k[: len(p)] == p for k in kept):
            kept.append(p)
    names: set[str] = set()
    for assignment in ast.find_all((nodes.Assign, nodes.For)):
        target = assignment.target  # type: ignore[attr-defined]
        names.update(n.name for n in target.find_all(nodes.Name))
        if isinstance(target, nodes.Name):
            names.add(target.name)
    return TemplateShape(tuple(kept), frozenset(names))


def referenced_paths(source: str) -> list[tuple[str, ...]]:
    """Dotted name paths a template reads, e.g. ``("steps", "review", "result")``."""
    return list(analyze(source).paths)


def _dotted(node: nodes.Node) -> tuple[str, ...] | None:
    if isinstance(node, nodes.Name):
        return (node.name,)
    if isinstance(node, nodes.Getattr):
        base = _dotted(node.node)
        return None if base is None else (*base, node.attr)
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        base = _dotted(node.node)
        if base is None or not isinstance(node.arg.value, str):
            return base
        return (*base, node.arg.value)
    return None


__all__ = [
    "Template",
    "TemplateShape",
    "analyze",
    "compile_template",
    "is_template",
    "referenced_paths",
    "render_text",
    "render_value",
    "suggest",
]
