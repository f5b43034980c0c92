"""claude_extract post-processing of a model's answer."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from runtime.errors import StepError
from runtime.pipeline.extraction import ExtractionConfig, extract

ANSWER = """\
Sure, here is the review:

# Code review

The module is small and readable. It parses the input once. Errors are clear.

## Findings

- The cache never expires
- Tests cover the happy path only
1. Add a TTL to the cache

See [the docs](https://example.com/docs) and https://example.com/issues/12.
Also https://example.com/docs again.

```python
def ttl() -> int:
    return 60
```

## Recommendations

- Add property tests
- Log cache misses

You should also pin the dependencies.

Let me know if you want more detail!
"""


def config(**fields: Any) -> ExtractionConfig:
    """A config with the content extractor off unless asked, to see answers unchanged."""
    return ExtractionConfig.model_validate({"use_content_extractor": False, **fields})


# -- json -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"score": 8}', {"score": 8}),
        ("  [1, 2]\n", [1, 2]),
        ('Here you go:\n```json\n{"a": [1, {"b": null}]}\n```\nDone.', {"a": [1, {"b": None}]}),
        ('```\n{"plain": "fence"}\n```', {"plain": "fence"}),
        (
            'The result is {"ok": true, "note": "braces } in strings"} as asked.',
            {"ok": True, "note": "braces } in strings"},
        ),
        ('Items: [{"id": 1}, {"id": 2}] and more text {not json}', [{"id": 1}, {"id": 2}]),
        ('Bad {not json} then good {"x": 1}', {"x": 1}),
        ("```text\nnot json\n```\n```json\n[3]\n```", [3]),
    ],
)
def test_json_format_finds_the_json_in_the_answer(text: str, expected: Any) -> None:
    """Whole text, fenced blocks, then the first balanced object or array that parses."""
    result = extract(text, config(format="json"))
    assert result["content"] == expected
    assert result["format"] == "json"


@pytest.mark.parametrize("text", ["no json here", "{broken: json", "```json\n{oops}\n```"])
def test_json_format_without_json_is_invalid_output(text: str) -> None:
    """An answer with no parseable JSON is a StepError of kind invalid_output."""
    with pytest.raises(StepError) as caught:
        extract(text, config(format="json"))
    assert caught.value.kind == "invalid_output"
    assert "no valid JSON" in str(caught.value)


# -- structured / summary / markdown / text ------------------------------------------------


def test_structured_format_splits_sections_by_heading() -> None:
    """Each heading becomes a key; text before the first heading is the preamble."""
    content = extract(ANSWER, config(format="structured"))["content"]
    assert list(content) == ["preamble", "Code review", "Findings", "Recommendations"]
    assert content["preamble"] == "Sure, here is the review:"
    assert content["Code review"].startswith("The module is small")
    assert "def ttl()" in content["Findings"]


def test_structured_format_ignores_hashes_in_code_and_numbers_repeats() -> None:
    """A `#` comment inside a fence is not a heading; repeated headings get a suffix."""
    text = "## Step\none\n```sh\n# not a heading\n```\n## Step\ntwo\n### Empty ###"
    content = extract(text, config(format="structured"))["content"]
    assert content == {
        "Step": "one\n```sh\n# not a heading\n```",
        "Step (2)": "two",
        "Empty": "",
    }


def test_structured_format_without_headings_is_one_preamble() -> None:
    """Plain prose becomes a single preamble section."""
    assert extract("just text", config(format="structured"))["content"] == {"preamble": "just text"}


@pytest.mark.parametrize(
    ("max_length", "expected"),
    [
        (
            500,
            "Sure, here is the review:\n\nThe module is small and readable. "
            "It parses the input once. Errors are clear.",
        ),
        (70, "Sure, here is the review:"),
    ],
)
def test_summary_keeps_whole_paragraphs_that_fit(max_length: int, expected: str) -> None:
    """Paragraphs are kept while they fit; headings and code are left out."""
    result = extract(ANSWER, config(format="summary", max_summary_length=max_length))
    assert result["content"].startswith(expected)
    assert len(result["content"]) <= max_length
    assert "#" not in result["content"]
    assert "def ttl" not in result["content"]


@pytest.mark.parametrize(
    ("max_length", "expected"),
    [
        (40, "The module is small and readable."),
        (65, "The module is small and readable. It parses the input once."),
        (20, "The module is small…"),
        (8, "The…"),
    ],
)
def test_summary_cuts_a_long_first_paragraph_at_a_sentence(max_length: int, expected: str) -> None:
    """A first paragraph too long is cut at the last sentence end that fits, else at a word."""
    text = "The module is small and readable. It parses the input once. Errors are clear."
    result = extract(text, config(format="summary", max_summary_length=max_length))
    assert result["content"] == expected
    assert len(result["content"]) <= max_length


@pytest.mark.parametrize("fmt", ["markdown", "text"])
def test_markdown_and_text_formats_return_the_cleaned_answer(fmt: str) -> None:
    """Line endings are normalised, trailing spaces and extra blank lines removed."""
    text = "\r\n# Title  \r\n\r\n\r\n\r\nBody text   \r\n\n\n"
    assert extract(text, config(format=fmt))["content"] == "# Title\n\nBody text"


def test_defaults_are_text_format_with_the_content_extractor() -> None:
    """With no settings the content is the cleaned text, framing removed."""
    result = extract("Sure, here it is:\nhello \n\nHope this helps!", ExtractionConfig())
    assert result == {"content": "hello", "format": "text", "text": "hello"}


# -- post-processing --------------------------------------------------------------------


def test_code_blocks_are_extracted_with_their_language() -> None:
    """Fenced blocks give language (null when unlabelled) and code."""
    text = "a\n```python title=x\nprint(1)\n```\n~~~\nraw\n~~~\n````md\n```\nnested\n```\n````"
    result = extract(text, config(post_processing=["extract_code_blocks"]))
    assert result["code_blocks"] == [
        {"language": "python", "code": "print(1)"},
        {"language": None, "code": "raw"},
        {"language": "md", "code": "```\nnested\n```"},
    ]


def test_links_are_deduplicated_in_order_with_their_labels() -> None:
    """Markdown and bare URLs are found once each, trailing punctuation trimmed."""
    result = extract(ANSWER, config(post_processing=["extract_links"]))
    assert result["links"] == [
        {"url": "https://example.com/docs", "text": "the docs"},
        {"url": "https://example.com/issues/12", "text": None},
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(see https://a.example/x_(y))", ["https://a.example/x_(y)"]),
        ("go to https://a.example/p).", ["https://a.example/p"]),
        (
            "![img](https://a.example/i.png) [t](https://b.example)",
            ["https://a.example/i.png", "https://b.example"],
        ),
        ("```\nhttps://in.code.example\n```", []),
    ],
)
def test_bare_url_edges(text: str, expected: list[str]) -> None:
    """Balanced parentheses stay, closing ones and periods go; URLs inside code are ignored."""
    result = extract(text, config(post_processing=["extract_links"]))
    assert [link["url"] for link in result["links"]] == expected


def test_key_points_are_bullet_and_numbered_items() -> None:
    """-, *, + and numbered items, markers stripped, code ignored."""
    result = extract(ANSWER, config(post_processing=["extract_key_points"]))
    assert result["key_points"] == [
        "The cache never expires",
        "Tests cover the happy path only",
        "Add a TTL to the cache",
        "Add property tests",
        "Log cache misses",
    ]


def test_recommendations_come_from_advice_words_and_the_recommendations_section() -> None:
    """Items under a Recommendations heading and lines with should/consider are advice."""
    result = extract(ANSWER, config(post_processing=["extract_recommendations"]))
    assert result["recommendations"] == [
        "Add property tests",
        "Log cache misses",
        "You should also pin the dependencies.",
        "Let me know if you want more detail!",
    ]


@pytest.mark.parametrize(
    ("line", "is_advice"),
    [
        ("We recommend caching.", True),
        ("Consider a queue.", True),
        ("I suggest retries.", True),
        ("You should log.", True),
        ("The shoulder hurts.", False),
        ("Reconsidered nothing.", False),
    ],
)
def test_advice_words_match_whole_words(line: str, is_advice: bool) -> None:
    """should/recommend/suggest/consider match as words, not inside other words."""
    result = extract(line, config(post_processing=["extract_recommendations"]))
    assert bool(result["recommendations"]) is is_advice


def test_pipeline_ex_extras_add_summary_and_markdown() -> None:
    """generate_summary and format_markdown add their own keys."""
    result = extract(
        "Plain answer. Second sentence.",
        config(post_processing=["generate_summary", "format_markdown"], max_summary_length=14),
    )
    assert result["summary"] == "Plain answer."
    assert result["markdown"] == "# Extracted Content\n\nPlain answer. Second sentence."


def test_each_post_processing_item_adds_one_key() -> None:
    """The result has content, format, text and one key per item."""
    result = extract(
        ANSWER,
        config(
            post_processing=[
                "extract_code_blocks",
                "extract_links",
                "extract_key_points",
                "extract_recommendations",
            ]
        ),
    )
    assert set(result) == {
        "content",
        "format",
        "text",
        "code_blocks",
        "links",
        "key_points",
        "recommendations",
    }


# -- content extractor and metadata --------------------------------------------------------


def test_content_extractor_drops_conversational_framing() -> None:
    """A leading 'Sure, here is...:' and a trailing 'Let me know...' line are removed."""
    result = extract(ANSWER, config(use_content_extractor=True))
    assert result["content"].startswith("# Code review")
    assert "Let me know" not in result["content"]


def test_content_extractor_unwraps_an_answer_that_is_one_fence() -> None:
    """An answer wrapped whole in a fence is unwrapped before formatting."""
    text = "```markdown\n# Title\n\nBody\n```"
    result = extract(text, config(use_content_extractor=True, format="structured"))
    assert result["content"] == {"Title": "Body"}


def test_metadata_counts_the_cleaned_answer() -> None:
    """include_metadata adds counts and the settings used, without timestamps."""
    result = extract("one two\n\n```\nx\n```\n# H", config(include_metadata=True))
    assert result["metadata"] == {
        "format": "text",
        "post_processing": [],
        "use_content_extractor": False,
        "original_char_count": 22,
        "char_count": 22,
        "word_count": 7,
        "line_count": 6,
        "code_block_count": 1,
        "heading_count": 1,
    }


def test_no_metadata_unless_asked() -> None:
    """metadata is absent by default."""
    assert "metadata" not in extract("x", ExtractionConfig())


@pytest.mark.parametrize(
    "fields",
    [
        {"format": "xml"},
        {"post_processing": ["extract_entities"]},
        {"max_summary_length": 0},
        {"unknown": True},
    ],
)
def test_invalid_configs_are_rejected(fields: dict[str, Any]) -> None:
    """Unknown formats, post-processing items and fields, and non-positive lengths fail."""
    with pytest.raises(pydantic.ValidationError):
        ExtractionConfig.model_validate(fields)


def test_config_is_frozen() -> None:
    """An ExtractionConfig cannot be changed after parsing."""
    with pytest.raises(pydantic.ValidationError):
        ExtractionConfig().format = "json"  # type: ignore[misc]
