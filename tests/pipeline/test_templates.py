"""Templates: native values, helpful undefined errors, and a sandbox that holds."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.errors import TemplateError
from runtime.pipeline.templates import referenced_paths, render_text, render_value

NAMES: dict[str, Any] = {
    "steps": {"review": {"result": {"score": 8, "tags": ["a", "b"]}}},
    "inputs": {"topic": "actors"},
    "state": {"count": 2},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ steps.review.result.score }}", 8),
        ("{{ steps.review.result.tags }}", ["a", "b"]),
        ("{{ state.count + 1 }}", 3),
        ("topic: {{ inputs.topic }}", "topic: actors"),
        ("{% for t in steps.review.result.tags %}{{ t }}{% endfor %}", "ab"),
        ("no template", "no template"),
    ],
)
def test_a_single_expression_keeps_its_type_and_text_renders_to_text(
    template: str, expected: Any
) -> None:
    """`{{ x }}` alone gives x itself; anything else renders to a string."""
    assert render_value(template, NAMES) == expected


def test_render_text_turns_structured_values_into_json() -> None:
    """Where text is needed, a list becomes JSON rather than a Python repr."""
    assert render_text("{{ steps.review.result.tags }}", NAMES) == '["a", "b"]'


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "{{ stepz.review }}",
            "undefined name 'stepz' in template '{{ stepz.review }}'; did you mean 'steps'?",
        ),
        (
            "{{ steps.reviw.result }}",
            "'reviw' is not defined here in template '{{ steps.reviw.result }}'; "
            "did you mean 'review'?",
        ),
        ("{{ inputs.topc }}", "did you mean 'topic'?"),
    ],
)
def test_an_undefined_name_names_itself_and_the_closest_match(template: str, message: str) -> None:
    """Strict undefined: the error says what is missing and what exists."""
    with pytest.raises(TemplateError) as caught:
        render_value(template, NAMES)
    assert message in caught.value.message


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ inputs.__class__ }}",
        "{{ inputs.topic.__class__.__base__ }}",
        "{{ (1).__add__(2) }}",
        "{{ steps.review.result.tags.append(3) }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ self._TemplateReference__context }}",
        "{{ lipsum.__globals__['os'] }}",
    ],
)
def test_sandbox_escapes_raise_a_template_error_and_never_execute(template: str) -> None:
    """Internals and mutation are out of reach; every attempt is a TemplateError."""
    before = list(NAMES["steps"]["review"]["result"]["tags"])
    with pytest.raises(TemplateError):
        render_value(template, NAMES)
    assert NAMES["steps"]["review"]["result"]["tags"] == before


def test_a_syntax_error_is_reported_with_its_line() -> None:
    """Broken template syntax is a TemplateError naming the line."""
    with pytest.raises(TemplateError, match="template syntax error at line 1"):
        render_value("{{ steps. }}", NAMES)


def test_referenced_paths_lists_the_dotted_names_a_template_reads() -> None:
    """Validation uses these to check step references before running."""
    paths = referenced_paths("{{ steps.a.result.x }} {{ inputs.y }}")
    assert ("steps", "a", "result", "x") in paths
    assert ("inputs", "y") in paths
