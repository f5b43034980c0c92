"""Built-in tools a model may use in a tool loop, each confined to the step's workspace.

A ``ToolBox`` is made for one request from its workspace and ``allowed_tools``.
It offers the model the JSON-schema definitions (``specs``) of the allowed
built-in tools and runs the calls the model makes (``run``):

==========  ==========================================  =====================
tool        does                                        pipeline_ex name
==========  ==========================================  =====================
read_file   return a text file (optionally a line span)  Read
list_dir    list a directory (directories end in ``/``)  LS
glob        files matching a pattern (``**`` recurses)   Glob
grep        lines matching a regular expression          Grep, Search
write_file  create or replace a text file (atomically)   Write
edit_file   replace an exact string in a file            Edit
==========  ==========================================  =====================

Every path goes through ``runtime.pipeline.workspace.Sandbox``: ``..`` above
the root, absolute paths elsewhere and symlinks leading out are refused, and
the refusal goes back to the model as a tool error, so nothing outside the
workspace is read or written. Walks (``glob``, ``grep``) do not follow
directory symlinks and skip file symlinks that lead out.

A call to a tool that is not in ``allowed_tools`` is not run: ``check``
raises ``ToolNotAllowed`` (kind ``tool_not_allowed``). An allowed name this
runtime has no implementation for (pipeline_ex's ``Bash``, say) is not offered
to the model; a call to it gets a tool error.

The loop that sends definitions and feeds results back is provider-specific
(``runtime.providers.anthropic``); this module knows nothing about any API.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.errors import ToolNotAllowed, WorkspaceViolation
from runtime.pipeline.workspace import Sandbox, write_text_atomic

__all__ = [
    "BUILTIN_TOOLS",
    "TOOL_ALIASES",
    "ToolBox",
    "ToolResult",
    "ToolSpec",
    "canonical_tool",
]

TOOL_ALIASES: Mapping[str, str] = {
    "Read": "read_file",
    "Write": "write_file",
    "Edit": "edit_file",
    "Glob": "glob",
    "Grep": "grep",
    "Search": "grep",
    "LS": "list_dir",
}

_MAX_READ_CHARS = 200_000
_MAX_LIST_ENTRIES = 1_000
_MAX_GLOB_MATCHES = 500
_MAX_GREP_MATCHES = 200
_MAX_GREP_FILE_BYTES = 2_000_000
_MAX_LINE_CHARS = 300


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool definition as the model sees it."""

    name: str
    description: str
    input_schema: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool call returns to the model; ``is_error`` marks a refusal or failure."""

    content: str
    is_error: bool = False


def _object(properties: Mapping[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": dict(properties), "required": list(required)}


_PATH = {"type": "string", "description": "Path relative to the workspace root."}

BUILTIN_TOOLS: Mapping[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec(
            "read_file",
            "Read a UTF-8 text file in the workspace. offset is the first line (1-based), "
            "limit the number of lines.",
            _object(
                {
                    "path": _PATH,
                    "offset": {"type": "integer", "minimum": 1},
                    "limit": {"type": "integer", "minimum": 1},
                },
                ("path",),
            ),
        ),
        ToolSpec(
            "list_dir",
            "List a directory in the workspace; directory names end with '/'.",
            _object({"path": {**_PATH, "default": "."}}),
        ),
        ToolSpec(
            "glob",
            "Find files whose workspace-relative path matches a glob pattern "
            "('*' within a directory, '**' across directories).",
            _object(
                {"pattern": {"type": "string"}, "path": {**_PATH, "default": "."}},
                ("pattern",),
            ),
        ),
        ToolSpec(
            "grep",
            "Search files for lines matching a regular expression; "
            "returns 'path:line: text' lines.",
            _object(
                {
                    "pattern": {"type": "string", "description": "A Python regular expression."},
                    "path": {**_PATH, "default": "."},
                    "include": {"type": "string", "description": "Only files matching this glob."},
                    "ignore_case": {"type": "boolean", "default": False},
                },
                ("pattern",),
            ),
        ),
        ToolSpec(
            "write_file",
            "Create or replace a UTF-8 text file in the workspace; parent directories are created.",
            _object({"path": _PATH, "content": {"type": "string"}}, ("path", "content")),
        ),
        ToolSpec(
            "edit_file",
            "Replace old_string with new_string in a workspace file. old_string must occur "
            "exactly once unless replace_all is true.",
            _object(
                {
                    "path": _PATH,
                    "old_string": {"type": "string"},
                    "new_string": {"type": "string"},
                    "replace_all": {"type": "boolean", "default": False},
                },
                ("path", "old_string", "new_string"),
            ),
        ),
    )
}


def canonical_tool(name: str) -> str:
    """Our name for a tool: pipeline_ex's ``Read`` → ``read_file``; others unchanged."""
    return TOOL_ALIASES.get(name, name)


class _BadInput(Exception):
    """A tool was called with arguments it cannot use; reported to the model."""


class ToolBox:
    """The allowed built-in tools of one request, confined to ``workspace``."""

    def __init__(
        self, workspace: str | Path, allowed: Iterable[str], *, provider: str = ""
    ) -> None:
        self.sandbox = Sandbox(Path(workspace))
        self.allowed = tuple(dict.fromkeys(allowed))
        self.provider = provider
        self._names = frozenset(canonical_tool(name) for name in self.allowed)

    @property
    def specs(self) -> tuple[ToolSpec, ...]:
        """Definitions of the allowed tools this runtime implements, in a stable order."""
        return tuple(spec for name, spec in BUILTIN_TOOLS.items() if name in self._names)

    @property
    def unsupported(self) -> tuple[str, ...]:
        """Allowed names with no built-in implementation (not offered to the model)."""
        return tuple(n for n in self.allowed if canonical_tool(n) not in BUILTIN_TOOLS)

    def is_allowed(self, name: str) -> bool:
        return canonical_tool(name) in self._names

    def check(self, names: Iterable[str]) -> None:
        """Raise ``ToolNotAllowed`` for the first name outside ``allowed_tools``."""
        for name in names:
            if not self.is_allowed(name):
                allowed = ", ".join(self.allowed) if self.allowed else "none"
                raise ToolNotAllowed(
                    f"{self.provider or 'the'} model asked for tool {name!r}, which this step "
                    f"does not allow (allowed_tools: {allowed}); it was not run. Add it to "
                    "allowed_tools if the step needs it, or tell the model not to use it.",
                    tool=name,
                    allowed=self.allowed,
                    provider=self.provider or None,
                )

    def run(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        """Run one call; a refused path, a missing file or bad input comes back as an error."""
        self.check((name,))
        tool = canonical_tool(name)
        handler = _HANDLERS.get(tool)
        if handler is None:
            return ToolResult(
                f"tool {name!r} is not available in this runtime; "
                f"available: {', '.join(spec.name for spec in self.specs) or 'none'}",
                is_error=True,
            )
        try:
            return ToolResult(handler(self, arguments))
        except WorkspaceViolation as exc:
            return ToolResult(f"refused: {exc.message}", is_error=True)
        except _BadInput as exc:
            return ToolResult(f"{tool}: {exc}", is_error=True)
        except UnicodeDecodeError:
            return ToolResult(f"{tool}: the file is not UTF-8 text", is_error=True)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            return ToolResult(f"{tool}: {reason}", is_error=True)

    # -- helpers ------------------------------------------------------------

    def _path(self, arguments: Mapping[str, Any], key: str, default: str | None = None) -> Path:
        return self.sandbox.resolve(_string(arguments, key, default), field=f"tool argument {key}")

    def _show(self, path: Path) -> str:
        return self.sandbox.relative(path)

    def _walk(self, base: Path) -> Iterator[Path]:
        """Files under ``base`` (or ``base`` itself), never leaving the root through a link."""
        if not base.is_dir():
            yield base
            return
        for directory, dirnames, filenames in os.walk(base, followlinks=False):
            dirnames.sort()
            for filename in sorted(filenames):
                candidate = Path(directory) / filename
                if candidate.is_symlink():
                    try:
                        candidate = self.sandbox.resolve(
                            self._show(candidate), field="walk", follow_symlinks=True
                        )
                    except WorkspaceViolation:
                        continue
                if candidate.is_file():
                    yield candidate


# -- the tools -----------------------------------------------------------------


def _string(arguments: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = arguments.get(key, default)
    if not isinstance(value, str):
        raise _BadInput(f"argument {key!r} must be a string, got {type(value).__name__}")
    return value


def _integer(arguments: Mapping[str, Any], key: str) -> int | None:
    value = arguments.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _BadInput(f"argument {key!r} must be a positive integer, got {value!r}")
    return value


def _flag(arguments: Mapping[str, Any], key: str) -> bool:
    value = arguments.get(key, False)
    if not isinstance(value, bool):
        raise _BadInput(f"argument {key!r} must be true or false, got {value!r}")
    return value


def _read_file(box: ToolBox, arguments: Mapping[str, Any]) -> str:
    path = box._path(arguments, "path")
    offset, limit = _integer(arguments, "offset"), _integer(arguments, "limit")
    text = path.read_text(encoding="utf-8")
    if offset is not None or limit is not None:
        lines = text.splitlines(keepends=True)
        start = (offset or 1) - 1
        text = "".join(lines[start : start + limit if limit is not None else None])
    if len(text) > _MAX_READ_CHARS:
        return text[:_MAX_READ_CHARS] + f"\n[truncated at {_MAX_READ_CHARS} characters]"
    return text


def _list_dir(box: ToolBox, arguments: Mapping[str, Any]) -> str:
    path = box._path(arguments, "path", ".")
    names = []
    for entry in sorted(path.iterdir(), key=lambda p: p.name):
        names.append(entry.name + ("/" if entry.is_dir() and not entry.is_symlink() else ""))
    if len(names) > _MAX_LIST_ENTRIES:
        names = [*names[:_MAX_LIST_ENTRIES], f"[{len(names) - _MAX_LIST_ENTRIES} more]"]
    return "\n".join(names) if names else "(empty directory)"


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex for a workspace-relative glob: ``*``, ``?``, ``[...]`` and ``**``."""
    if pattern.startswith("/") or ".." in pattern.split("/"):
        raise _BadInput("the pattern must be relative to the workspace and must not contain '..'")
    out, index = [], 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif char == "*":
            out.append("[^/]*")
            index += 1
        elif char == "?":
            out.append("[^/]")
            index += 1
        elif char == "[" and "]" in pattern[index + 1 :]:
            end = pattern.index("]", index + 1)
            body = pattern[index + 1 : end].replace("\\", "\\\\")
            out.append("[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]")
            index = end + 1
        else:
            out.append(re.escape(char))
            index += 1
    return re.compile("".join(out) + r"\Z")


def _glob(box: ToolBox, arguments: Mapping[str, Any]) -> str:
    matcher = _glob_regex(_string(arguments, "pattern"))
    base = box._path(arguments, "path", ".")
    found = []
    for path in box._walk(base):
        relative = path.relative_to(base).as_posix() if base.is_dir() else path.name
        if matcher.match(relative):
            found.append(box._show(path))
            if len(found) >= _MAX_GLOB_MATCHES:
                found.append(f"[stopped at {_MAX_GLOB_MATCHES} matches]")
                break
    return "\n".join(found) if found else "no files match"


def _grep(box: ToolBox, arguments: Mapping[str, Any]) -> str:
    flags = re.IGNORECASE if _flag(arguments, "ignore_case") else 0
    try:
        regex = re.compile(_string(arguments, "pattern"), flags)
    except re.error as exc:
        raise _BadInput(f"invalid regular expression: {exc}") from None
    include = arguments.get("include")
    matcher = _glob_regex(_string(arguments, "include")) if include is not None else None
    base = box._path(arguments, "path", ".")
    lines: list[str] = []
    for path in box._walk(base):
        if matcher is not None and not (matcher.match(path.name) or matcher.match(box._show(path))):
            continue
        if path.stat().st_size > _MAX_GREP_FILE_BYTES:
            continue
        data = path.read_bytes()
        if b"\x00" in data[:8192]:
            continue
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if regex.search(line):
                lines.append(f"{box._show(path)}:{number}: {line[:_MAX_LINE_CHARS]}")
                if len(lines) >= _MAX_GREP_MATCHES:
                    lines.append(f"[stopped at {_MAX_GREP_MATCHES} matches]")
                    return "\n".join(lines)
    return "\n".join(lines) if lines else "no matches"


def _write_file(box: ToolBox, arguments: Mapping[str, Any]) -> str:
    path = box._path(arguments, "path")
    content = _string(arguments, "content")
    if path.is_dir():
        raise _BadInput(f"{box._show(path)} is a directory")
    write_text_atomic(path, content)
    return f"wrote {len(content)} characters to {box._show(path)}"


def _edit_file(box: ToolBox, arguments: Mapping[str, Any]) -> str:
    path = box._path(arguments, "path")
    old, new = _string(arguments, "old_string"), _string(arguments, "new_string")
    replace_all = _flag(arguments, "replace_all")
    if old == "":
        raise _BadInput("old_string must not be empty")
    if old == new:
        raise _BadInput("old_string and new_string are the same; nothing to change")
    text = path.read_text(encoding="utf-8")
    count = text.count(old)
    if count == 0:
        raise _BadInput(f"old_string does not occur in {box._show(path)}")
    if count > 1 and not replace_all:
        raise _BadInput(
            f"old_string occurs {count} times in {box._show(path)}; "
            "give more context or set replace_all"
        )
    write_text_atomic(path, text.replace(old, new) if replace_all else text.replace(old, new, 1))
    return f"replaced {count if replace_all else 1} occurrence(s) in {box._show(path)}"


_HANDLERS = {
    "read_file": _read_file,
    "list_dir": _list_dir,
    "glob": _glob,
    "grep": _grep,
    "write_file": _write_file,
    "edit_file": _edit_file,
}
