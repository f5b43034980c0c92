"""Built-in tools stay inside the workspace; the tool loop enforces allowed_tools and max_turns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.config import Settings
from runtime.errors import FailureKind, MaxTurnsExceeded, Rejected, ToolNotAllowed
from runtime.providers.anthropic import AnthropicProvider
from runtime.providers.base import LLMRequest
from runtime.providers.tools import BUILTIN_TOOLS, TOOL_ALIASES, ToolBox, canonical_tool
from runtime.testing.fake_anthropic import AnthropicReply, FakeAnthropic, ToolUse

KEY = "sk-ant-test-tools-0123456789"
EVERY_TOOL = tuple(BUILTIN_TOOLS)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("def main():\n    return 'hello'\n")
    (root / "notes.txt").write_text("alpha\nbeta\ngamma\n")
    (tmp_path / "secret.txt").write_text("TOP SECRET\n")
    (root / "escape").symlink_to(tmp_path / "secret.txt")
    (root / "outdir").symlink_to(tmp_path, target_is_directory=True)
    return root


@pytest.fixture
def box(workspace: Path) -> ToolBox:
    return ToolBox(workspace, EVERY_TOOL, provider="anthropic")


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


def provider_for(fake: FakeAnthropic, workspace: Path | None = None) -> AnthropicProvider:
    return AnthropicProvider(
        Settings(environ={"ANTHROPIC_API_KEY": KEY}, workspace_dir=workspace),
        base_url=fake.base_url,
        default_model="claude-haiku-4-5",
    )


# -- the tools on their own ----------------------------------------------------


def test_pipeline_ex_names_map_to_builtin_tools() -> None:
    """Read/Write/Edit/Glob/Grep/LS name our tools; unknown names pass through."""
    assert {
        canonical_tool(name) for name in ("Read", "Write", "Edit", "Glob", "Grep", "LS")
    } == set(BUILTIN_TOOLS)
    assert set(TOOL_ALIASES.values()) <= set(BUILTIN_TOOLS)
    assert canonical_tool("Bash") == "Bash"


def test_specs_offer_only_allowed_implemented_tools(workspace: Path) -> None:
    """A box offers the allowed built-ins, in a stable order, and lists the rest as unsupported."""
    box = ToolBox(workspace, ("Grep", "Read", "Bash"))
    assert [spec.name for spec in box.specs] == ["read_file", "grep"]
    assert box.unsupported == ("Bash",)
    for spec in box.specs:
        assert spec.input_schema["type"] == "object"


def test_read_file_returns_text_and_line_spans(box: ToolBox) -> None:
    """read_file returns the file, or the lines from offset for limit lines."""
    assert box.run("read_file", {"path": "notes.txt"}).content == "alpha\nbeta\ngamma\n"
    result = box.run("read_file", {"path": "notes.txt", "offset": 2, "limit": 1})
    assert (result.content, result.is_error) == ("beta\n", False)


def test_list_dir_marks_directories(box: ToolBox) -> None:
    """list_dir lists names sorted, directories with a trailing slash."""
    listing = box.run("list_dir", {}).content.splitlines()
    assert "src/" in listing
    assert "notes.txt" in listing


def test_glob_recurses_and_never_leaves_the_root(box: ToolBox) -> None:
    """glob '**' finds nested files; symlinks leading out are skipped, not followed."""
    assert box.run("glob", {"pattern": "**/*.py"}).content == "src/app.py"
    everything = box.run("glob", {"pattern": "**"}).content.splitlines()
    assert "notes.txt" in everything
    assert not any("secret" in line or line.startswith("outdir") for line in everything)


def test_grep_reports_path_line_and_text(box: ToolBox) -> None:
    """grep returns 'path:line: text' for matching lines, inside the workspace only."""
    assert box.run("grep", {"pattern": "^b"}).content == "notes.txt:2: beta"
    assert "SECRET" not in box.run("grep", {"pattern": "SECRET"}).content
    assert box.run(
        "grep", {"pattern": "HELLO", "ignore_case": True, "include": "*.py"}
    ).content == ("src/app.py:2:     return 'hello'")


def test_write_and_edit_change_files_in_the_workspace(box: ToolBox, workspace: Path) -> None:
    """write_file creates parents; edit_file replaces an exact, unique string."""
    assert not box.run("write_file", {"path": "out/new.txt", "content": "one two"}).is_error
    assert (workspace / "out" / "new.txt").read_text() == "one two"
    assert not box.run(
        "edit_file", {"path": "out/new.txt", "old_string": "two", "new_string": "2"}
    ).is_error
    assert (workspace / "out" / "new.txt").read_text() == "one 2"


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("read_file", {"path": "../secret.txt"}),
        ("read_file", {"path": "escape"}),
        ("read_file", {"path": "outdir/secret.txt"}),
        ("list_dir", {"path": ".."}),
        ("glob", {"pattern": "../*"}),
        ("grep", {"pattern": "SECRET", "path": "../secret.txt"}),
        ("write_file", {"path": "../planted.txt", "content": "x"}),
        ("write_file", {"path": "outdir/planted.txt", "content": "x"}),
        ("edit_file", {"path": "escape", "old_string": "TOP", "new_string": "BOTTOM"}),
    ],
)
def test_escapes_are_refused_as_tool_errors(
    box: ToolBox, workspace: Path, tool: str, arguments: dict[str, Any]
) -> None:
    """'..', absolute paths and symlinks out of the root come back as errors and touch nothing."""
    result = box.run(tool, arguments)
    assert result.is_error
    assert "TOP SECRET" not in result.content
    outside = workspace.parent
    assert (outside / "secret.txt").read_text() == "TOP SECRET\n"
    assert not (outside / "planted.txt").exists()


def test_absolute_path_outside_is_refused(box: ToolBox, workspace: Path) -> None:
    """An absolute path elsewhere is refused even when the file exists."""
    result = box.run("read_file", {"path": str(workspace.parent / "secret.txt")})
    assert result.is_error and "not allowed" in result.content


@pytest.mark.parametrize(
    ("tool", "arguments", "says"),
    [
        ("read_file", {"path": "missing.txt"}, "No such file"),
        ("read_file", {"path": 7}, "must be a string"),
        ("edit_file", {"path": "notes.txt", "old_string": "zeta", "new_string": "z"}, "not occur"),
        ("edit_file", {"path": "notes.txt", "old_string": "a", "new_string": "A"}, "occurs"),
        ("grep", {"pattern": "("}, "invalid regular expression"),
        ("Bash", {"command": "ls"}, "not available"),
    ],
)
def test_bad_calls_are_tool_errors(
    box: ToolBox, tool: str, arguments: dict[str, Any], says: str
) -> None:
    """Missing files, bad arguments and unimplemented tools are reported, not raised."""
    box = ToolBox(box.sandbox.root, (*EVERY_TOOL, "Bash"))
    result = box.run(tool, arguments)
    assert result.is_error
    assert says in result.content


def test_tool_outside_allowed_tools_raises_tool_not_allowed(workspace: Path) -> None:
    """A call to a tool the step does not allow is classified tool_not_allowed and not run."""
    box = ToolBox(workspace, ("Read",))
    with pytest.raises(ToolNotAllowed) as caught:
        box.run("write_file", {"path": "x.txt", "content": "x"})
    assert caught.value.kind is FailureKind.TOOL_NOT_ALLOWED
    assert caught.value.tool == "write_file"
    assert not (workspace / "x.txt").exists()


# -- the loop, through the real SDK and the fake API ---------------------------


def test_tool_loop_reads_and_writes_inside_the_workspace(
    fake: FakeAnthropic, workspace: Path
) -> None:
    """The model reads a file, writes another, and gets each result back as a tool_result."""
    fake.script(
        AnthropicReply(tool_uses=(ToolUse("read_file", {"path": "notes.txt"}, id="t1"),)),
        AnthropicReply(
            text="writing",
            tool_uses=(
                ToolUse("write_file", {"path": "summary.txt", "content": "3 lines"}, id="t2"),
            ),
        ),
        AnthropicReply(text="Done: 3 lines.", input_tokens=30, output_tokens=7),
    )
    request = LLMRequest(
        prompt="Summarize notes.txt into summary.txt",
        provider="anthropic",
        allowed_tools=("Read", "Write"),
        max_turns=5,
        workspace=str(workspace),
    )
    response = provider_for(fake).complete(request)

    assert response.text == "Done: 3 lines."
    assert response.stop_reason == "end_turn"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (50, 17)
    assert (workspace / "summary.txt").read_text() == "3 lines"
    bodies = [r.json() for r in fake.requests]
    assert [tool["name"] for tool in bodies[0]["tools"]] == ["read_file", "write_file"]
    second = bodies[1]["messages"]
    assert second[1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "t1", "name": "read_file", "input": {"path": "notes.txt"}}
        ],
    }
    assert second[2]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "t1",
            "content": "alpha\nbeta\ngamma\n",
            "is_error": False,
        }
    ]
    assert bodies[2]["messages"][3]["content"][0]["type"] == "text"


def test_tool_loop_returns_escape_attempts_to_the_model_as_errors(
    fake: FakeAnthropic, workspace: Path
) -> None:
    """A path out of the workspace becomes an is_error tool_result; nothing outside is read."""
    fake.script(
        AnthropicReply(tool_uses=(ToolUse("read_file", {"path": "../secret.txt"}, id="t1"),)),
        AnthropicReply(
            tool_uses=(ToolUse("write_file", {"path": "outdir/x", "content": "x"}, id="t2"),)
        ),
        AnthropicReply(text="I could not."),
    )
    request = LLMRequest(
        prompt="read the secret", allowed_tools=("Read", "Write"), workspace=str(workspace)
    )
    assert provider_for(fake).complete(request).text == "I could not."
    results = [r.json()["messages"][-1]["content"][0] for r in fake.requests[1:]]
    assert all(result["is_error"] for result in results)
    assert all("TOP SECRET" not in result["content"] for result in results)
    assert not (workspace.parent / "x").exists()


def test_tool_loop_uses_settings_workspace_when_request_has_none(
    fake: FakeAnthropic, workspace: Path
) -> None:
    """Without request.workspace the provider confines tools to Settings.workspace_dir."""
    fake.script(
        AnthropicReply(tool_uses=(ToolUse("LS", {}, id="t1"),)),
        AnthropicReply(text="listed"),
    )
    request = LLMRequest(prompt="list", allowed_tools=("LS",))
    assert provider_for(fake, workspace).complete(request).text == "listed"
    assert "notes.txt" in fake.requests[1].json()["messages"][-1]["content"][0]["content"]


def test_tool_loop_without_workspace_is_rejected(fake: FakeAnthropic) -> None:
    """File tools with no workspace to confine them are refused before any call."""
    with pytest.raises(Rejected, match="no workspace"):
        provider_for(fake).complete(LLMRequest(prompt="x", allowed_tools=("Read",)))
    assert fake.requests == ()


def test_tool_outside_allowed_tools_fails_the_call(fake: FakeAnthropic, workspace: Path) -> None:
    """The model asking for a tool the step does not allow raises ToolNotAllowed; nothing runs."""
    fake.script(AnthropicReply(tool_uses=(ToolUse("write_file", {"path": "x", "content": "x"}),)))
    request = LLMRequest(prompt="x", allowed_tools=("Read",), workspace=str(workspace))
    with pytest.raises(ToolNotAllowed) as caught:
        provider_for(fake).complete(request)
    assert caught.value.kind is FailureKind.TOOL_NOT_ALLOWED
    assert "allowed_tools: Read" in str(caught.value)
    assert not (workspace / "x").exists()
    assert len(fake.requests) == 1


def test_loop_past_max_turns_raises_max_turns_exceeded(
    fake: FakeAnthropic, workspace: Path
) -> None:
    """A model still asking for tools after max_turns turns raises MaxTurnsExceeded."""
    for index in range(3):
        fake.script(AnthropicReply(tool_uses=(ToolUse("list_dir", {}, id=f"t{index}"),)))
    request = LLMRequest(prompt="x", allowed_tools=("LS",), max_turns=2, workspace=str(workspace))
    with pytest.raises(MaxTurnsExceeded) as caught:
        provider_for(fake).complete(request)
    assert caught.value.kind is FailureKind.MAX_TURNS_EXCEEDED
    assert caught.value.max_turns == 2
    assert len(fake.requests) == 2


def test_max_turns_without_tools_is_a_single_call(fake: FakeAnthropic) -> None:
    """A chat-style step (max_turns, no tools) needs no workspace and answers in one turn."""
    fake.reply("hi there")
    response = provider_for(fake).complete(LLMRequest(prompt="hello", max_turns=15))
    assert response.text == "hi there"
    assert "tools" not in fake.requests[0].json()


def test_walk_does_not_follow_directory_symlinks(box: ToolBox, workspace: Path) -> None:
    """grep over the root never descends into a directory symlink that leads out."""
    assert (workspace / "outdir").is_symlink()
    assert box.run("grep", {"pattern": "."}).content.count("outdir") == 0
