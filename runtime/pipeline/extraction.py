"""Post-processing of a model's answer for ``claude_extract`` steps.

``extract(text, config)`` turns the raw answer into a result object::

    {"content": ..., "format": "json", "text": <cleaned answer>,
     "code_blocks": [...], ...,            # one key per post_processing item
     "metadata": {...}}                    # only with include_metadata

``content`` depends on ``format``:

==========  ===============================================================
json        the parsed JSON: the whole answer, else the first fenced block
            that parses, else the first balanced ``{...}``/``[...]`` that
            parses; none parsing is a ``StepError`` of kind invalid_output
structured  ``{heading: body}`` for every markdown heading; text before the
            first heading is under ``"preamble"``
summary     the first prose paragraphs, cut at a sentence boundary so the
            summary fits ``max_summary_length`` characters
markdown    the cleaned answer
text        the cleaned answer
==========  ===============================================================

Cleaning normalises line endings, strips trailing spaces and collapses runs
of blank lines. ``use_content_extractor`` (on by default, as in pipeline_ex)
first removes conversational
framing: an answer wrapped whole in one fence is unwrapped, and a leading
"Sure, here is ...:" line or a trailing "Let me know ..." line is dropped.

Post-processing looks at the cleaned answer with code blocks removed
(except ``extract_code_blocks``, which returns them): ``links`` are
``{url, text}`` (markdown links and bare URLs, first occurrence wins),
``key_points`` the bullet and numbered items, ``recommendations`` the lines
that say should / recommend / suggest / consider plus every item under a
heading mentioning recommendations. ``generate_summary`` and
``format_markdown`` (pipeline_ex extras) add ``summary`` and ``markdown``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PositiveInt

from runtime.errors import FailureKind, StepError

__all__ = ["CodeBlock", "ExtractionConfig", "PostProcessing", "extract"]

PostProcessing = Literal[
    "extract_code_blocks",
    "extract_links",
    "extract_key_points",
    "extract_recommendations",
    "generate_summary",
    "format_markdown",
]

_RESULT_KEYS: dict[str, str] = {
    "extract_code_blocks": "code_blocks",
    "extract_links": "links",
    "extract_key_points": "key_points",
    "extract_recommendations": "recommendations",
    "generate_summary": "summary",
    "format_markdown": "markdown",
}


class ExtractionConfig(BaseModel):
    """The ``extraction_config`` of a ``claude_extract`` step."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["json", "structured", "summary", "markdown", "text"] = "text"
    post_processing: tuple[PostProcessing, ...] = ()
    max_summary_length: PositiveInt = 500
    include_metadata: bool = False
    use_content_extractor: bool = True  # pipeline_ex's EnhancedConfig default


@dataclass(frozen=True, slots=True)
class CodeBlock:
    """A fenced code block: its language (``None`` if unlabelled) and its code."""

    language: str | None
    code: str
    start: int
    end: int

    def as_json(self) -> dict[str, Any]:
        return {"language": self.language, "code": self.code}


_FENCE_OPEN = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")
_HEADING = re.compile(r"^ {0,3}(?P<level>#{1,6})[ \t]+(?P<title>.*?)[ \t#]*$")
_BULLET = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+(?P<text>\S.*)$")
_MD_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]\n]*)\]\((?P<url>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_BARE_URL = re.compile(r"https?://[^\s<>\"'`\]\[]+")
_ADVICE = re.compile(r"\b(should|recommend\w*|suggest\w*|consider\w*)\b", re.IGNORECASE)
_RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")
_PREAMBLE = re.compile(
    r"^(sure|certainly|of course|absolutely|okay|ok|here(?:'s| is| are))\b.*:\s*$",
    re.IGNORECASE,
)
_SIGN_OFF = re.compile(
    r"^(let me know|i hope (?:this|that) helps|hope (?:this|that) helps|feel free to)\b",
    re.IGNORECASE,
)


def extract(text: str, config: ExtractionConfig) -> dict[str, Any]:
    """Apply ``config`` to a model's answer and return the result object."""
    cleaned = _clean(_content_extractor(text) if config.use_content_extractor else text)
    blocks = code_blocks(cleaned)
    prose = _without_blocks(cleaned, blocks)

    result: dict[str, Any] = {
        "content": _format(cleaned, prose, config),
        "format": config.format,
        "text": cleaned,
    }
    for item in config.post_processing:
        result[_RESULT_KEYS[item]] = _post_process(item, cleaned, prose, blocks, config)
    if config.include_metadata:
        result["metadata"] = {
            "format": config.format,
            "post_processing": list(config.post_processing),
            "use_content_extractor": config.use_content_extractor,
            "original_char_count": len(text),
            "char_count": len(cleaned),
            "word_count": len(cleaned.split()),
            "line_count": len(cleaned.splitlines()),
            "code_block_count": len(blocks),
            "heading_count": len(_headings(cleaned)),
        }
    return result


# -- formats ----------------------------------------------------------------------------


def _format(cleaned: str, prose: str, config: ExtractionConfig) -> Any:
    match config.format:
        case "json":
            return parse_json(cleaned)
        case "structured":
            return sections(cleaned)
        case "summary":
            return summarize(prose if prose.strip() else cleaned, config.max_summary_length)
        case _:
            return cleaned


def parse_json(text: str) -> Any:
    """The JSON value in ``text``: whole, fenced, or the first balanced object/array."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    for block in code_blocks(text):
        try:
            return json.loads(block.code)
        except ValueError:
            continue
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        return value
    snippet = text.strip()[:80].replace("\n", " ")
    raise StepError(
        f"the answer contains no valid JSON (it starts {snippet!r}); ask for JSON only, "
        "or use format: text",
        kind=FailureKind.INVALID_OUTPUT,
    )


def sections(text: str) -> dict[str, str]:
    """``{heading: body}`` for each markdown heading outside code blocks."""
    lines = text.split("\n")
    result: dict[str, str] = {}
    title = "preamble"
    start = 0
    for index, heading in _headings(text):
        _add_section(result, title, lines[start:index])
        title, start = heading, index + 1
    _add_section(result, title, lines[start:], keep_empty=title != "preamble")
    return result


def _add_section(
    result: dict[str, str], title: str, lines: list[str], *, keep_empty: bool = True
) -> None:
    body = "\n".join(lines).strip()
    if title == "preamble" and not body:
        return
    if not body and not keep_empty:
        return
    key, n = title, 2
    while key in result:
        key, n = f"{title} ({n})", n + 1
    result[key] = body


def summarize(text: str, max_length: int) -> str:
    """The leading prose paragraphs of ``text``, at most ``max_length`` characters.

    Whole paragraphs are kept while they fit; the first one that does not is
    cut at its last sentence end that fits, else at a word, with an ellipsis.
    """
    paragraphs = []
    for chunk in re.split(r"\n\s*\n", text):
        lines = [
            line.strip()
            for line in chunk.split("\n")
            if line.strip() and not _HEADING.match(line) and not _RULE.match(line)
        ]
        if lines:
            paragraphs.append(" ".join(lines))
    summary = ""
    for paragraph in paragraphs:
        joined = f"{summary}\n\n{paragraph}" if summary else paragraph
        if len(joined) <= max_length:
            summary = joined
            continue
        if summary:
            break
        return _cut(paragraph, max_length)
    return summary


def _cut(paragraph: str, max_length: int) -> str:
    best = 0
    for end in _SENTENCE_END.finditer(paragraph):
        if end.end() <= max_length:
            best = end.end()
    if best:
        return paragraph[:best]
    room = max(max_length - 1, 0)
    cut = paragraph[:room]
    word_is_split = len(paragraph) > room and not paragraph[room].isspace()
    if word_is_split and " " in cut.strip():
        cut = cut[: cut.rstrip().rfind(" ")]
    return cut.rstrip(" ,;:") + "…"


# -- post-processing --------------------------------------------------------------------


def _post_process(
    item: PostProcessing,
    cleaned: str,
    prose: str,
    blocks: list[CodeBlock],
    config: ExtractionConfig,
) -> Any:
    match item:
        case "extract_code_blocks":
            return [block.as_json() for block in blocks]
        case "extract_links":
            return links(prose)
        case "extract_key_points":
            return key_points(prose)
        case "extract_recommendations":
            return recommendations(prose)
        case "generate_summary":
            return summarize(prose if prose.strip() else cleaned, config.max_summary_length)
        case _:
            return cleaned if _headings(cleaned) else f"# Extracted Content\n\n{cleaned}"


def code_blocks(text: str) -> list[CodeBlock]:
    """The fenced code blocks of ``text``; an unclosed fence runs to the end."""
    lines = text.split("\n")
    blocks: list[CodeBlock] = []
    index = 0
    while index < len(lines):
        opening = _FENCE_OPEN.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence = opening["fence"]
        info = opening["info"].strip()
        language = info.split()[0] if info else None
        end = index + 1
        while end < len(lines) and not _closes(lines[end], fence):
            end += 1
        blocks.append(CodeBlock(language, "\n".join(lines[index + 1 : end]), index, end))
        index = end + 1
    return blocks


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(fence[0] * len(fence)) and set(stripped) == {fence[0]}


def links(text: str) -> list[dict[str, str | None]]:
    """Markdown links and bare URLs in order of appearance, each URL once."""
    entries: list[tuple[int, str, str | None]] = []
    covered: list[tuple[int, int]] = []
    for match in _MD_LINK.finditer(text):
        entries.append((match.start(), match["url"], match["text"] or None))
        covered.append(match.span())
    for match in _BARE_URL.finditer(text):
        if not any(start <= match.start() < end for start, end in covered):
            entries.append((match.start(), _trim_url(match.group()), None))
    found: dict[str, str | None] = {}
    for _, url, label in sorted(entries, key=lambda entry: entry[0]):
        if found.get(url) is None:
            found[url] = label
    return [{"url": url, "text": label} for url, label in found.items()]


def _trim_url(url: str) -> str:
    url = url.rstrip(".,;:!?*_")
    while url.endswith(")") and url.count(")") > url.count("("):
        url = url[:-1].rstrip(".,;:!?*_")
    return url


def key_points(text: str) -> list[str]:
    """The text of every bullet or numbered item."""
    return [match["text"].strip() for match in map(_BULLET.match, text.split("\n")) if match]


def recommendations(text: str) -> list[str]:
    """Advice: lines or items saying should / recommend / suggest / consider, and
    every item or paragraph line under a heading that mentions recommendations."""
    found: list[str] = []
    under_heading = False
    for line in text.split("\n"):
        heading = _HEADING.match(line)
        if heading:
            under_heading = "recommend" in heading["title"].lower()
            continue
        bullet = _BULLET.match(line)
        content = bullet["text"].strip() if bullet else line.strip()
        if not content:
            continue
        if (under_heading or _ADVICE.search(content)) and content not in found:
            found.append(content)
    return found


# -- cleaning ---------------------------------------------------------------------------


def _clean(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n").strip()


def _content_extractor(text: str) -> str:
    stripped = _clean(text)
    blocks = code_blocks(stripped)
    lines = stripped.split("\n")
    if len(blocks) == 1 and blocks[0].start == 0 and blocks[0].end >= len(lines) - 1:
        return blocks[0].code
    if lines and _PREAMBLE.match(lines[0]):
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines.pop()
    if lines and _SIGN_OFF.match(lines[-1].strip()):
        lines = lines[:-1]
    return "\n".join(lines)


def _without_blocks(text: str, blocks: list[CodeBlock]) -> str:
    if not blocks:
        return text
    lines = text.split("\n")
    keep = [True] * len(lines)
    for block in blocks:
        for index in range(block.start, min(block.end, len(lines) - 1) + 1):
            keep[index] = False
    return "\n".join(line for line, kept in zip(lines, keep, strict=True) if kept)


def _headings(text: str) -> list[tuple[int, str]]:
    """(line index, title) of each ATX heading outside code blocks."""
    skip: set[int] = set()
    for block in code_blocks(text):
        skip.update(range(block.start, block.end + 1))
    result = []
    for index, line in enumerate(text.split("\n")):
        if index in skip:
            continue
        match = _HEADING.match(line)
        if match and match["title"]:
            result.append((index, match["title"]))
    return result
