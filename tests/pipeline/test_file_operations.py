"""file_ops operations confined to the workspace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from runtime.errors import StepError, WorkspaceViolation
from runtime.pipeline.file_operations import FileOp, run_file_op
from runtime.pipeline.workspace import Sandbox

_ADAPTER: pydantic.TypeAdapter[FileOp] = pydantic.TypeAdapter(FileOp)


def op(**fields: Any) -> FileOp:
    return _ADAPTER.validate_python(fields)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "docs" / "deep").mkdir(parents=True)
    (root / "docs" / "a.md").write_text("alpha")
    (root / "docs" / "b.txt").write_text("bravo!")
    (root / "docs" / "deep" / "c.md").write_text("charlie")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("secret")
    return root


@pytest.fixture
def sandbox(workspace: Path) -> Sandbox:
    return Sandbox(workspace)


# -- confinement, for every operation --------------------------------------------------------

ESCAPES = [
    pytest.param("../outside/secret.txt", id="dot-dot"),
    pytest.param("ABSOLUTE", id="absolute"),
    pytest.param("link/secret.txt", id="symlink"),
]


def _escape(path: str, workspace: Path) -> str:
    (workspace / "link").symlink_to(workspace.parent / "outside")
    if path == "ABSOLUTE":
        return str(workspace.parent / "outside" / "secret.txt")
    return path


@pytest.mark.parametrize("escaping", ESCAPES)
@pytest.mark.parametrize(
    "build",
    [
        lambda p: {"operation": "copy", "source": p, "destination": "x.txt"},
        lambda p: {"operation": "copy", "source": "docs/a.md", "destination": p},
        lambda p: {"operation": "move", "source": p, "destination": "x.txt"},
        lambda p: {"operation": "move", "source": "docs/a.md", "destination": p},
        lambda p: {"operation": "delete", "path": p},
        lambda p: {"operation": "list", "path": p},
        lambda p: {"operation": "validate", "files": [{"path": p}]},
        lambda p: {"operation": "convert", "source": p, "destination": "x.json", "from": "csv"},
        lambda p: {
            "operation": "convert",
            "source": "docs/a.md",
            "destination": p,
            "from": "yaml",
            "to": "json",
        },
    ],
    ids=[
        "copy-src",
        "copy-dst",
        "move-src",
        "move-dst",
        "delete",
        "list",
        "validate",
        "convert-src",
        "convert-dst",
    ],
)
def test_every_operation_refuses_paths_that_escape(
    workspace: Path, sandbox: Sandbox, escaping: str, build: Any
) -> None:
    """`..`, absolute and symlink escapes are refused before anything is touched."""
    path = _escape(escaping, workspace)
    with pytest.raises(WorkspaceViolation):
        run_file_op(op(**build(path)), sandbox)
    assert (workspace.parent / "outside" / "secret.txt").read_text() == "secret"
    assert (workspace / "docs" / "a.md").read_text() == "alpha"


def test_step_name_is_attached_to_errors(sandbox: Sandbox) -> None:
    """The caller's step name is set on the raised error."""
    with pytest.raises(WorkspaceViolation) as caught:
        run_file_op(op(operation="delete", path="../x"), sandbox, step="cleanup")
    assert caught.value.step == "cleanup"


# -- copy -------------------------------------------------------------------------------


def test_copy_copies_a_file_creating_parent_directories(workspace: Path, sandbox: Sandbox) -> None:
    """The destination gets the content; the result names workspace-relative paths."""
    result = run_file_op(
        op(operation="copy", source="docs/a.md", destination="out/new/a.md"), sandbox
    )
    assert (workspace / "out" / "new" / "a.md").read_text() == "alpha"
    assert result == {"operation": "copy", "source": "docs/a.md", "destination": "out/new/a.md"}


@pytest.mark.parametrize("destination", ["docs/deep", "docs/deep/"])
def test_copy_into_a_directory_keeps_the_name(
    workspace: Path, sandbox: Sandbox, destination: str
) -> None:
    """An existing directory (or a trailing slash) receives the file under its own name."""
    result = run_file_op(op(operation="copy", source="docs/a.md", destination=destination), sandbox)
    assert (workspace / "docs" / "deep" / "a.md").read_text() == "alpha"
    assert result["destination"] == "docs/deep/a.md"


def test_copy_refuses_to_overwrite_unless_asked(workspace: Path, sandbox: Sandbox) -> None:
    """An existing destination is an error until overwrite: true."""
    copy = {"operation": "copy", "source": "docs/a.md", "destination": "docs/b.txt"}
    with pytest.raises(StepError, match="exists; set overwrite: true"):
        run_file_op(op(**copy), sandbox)
    assert (workspace / "docs" / "b.txt").read_text() == "bravo!"
    run_file_op(op(**copy, overwrite=True), sandbox)
    assert (workspace / "docs" / "b.txt").read_text() == "alpha"


def test_copy_copies_directories_keeping_symlinks_as_links(
    workspace: Path, sandbox: Sandbox
) -> None:
    """A directory is copied whole; a link to outside is copied as a link, not its target."""
    (workspace / "docs" / "leak").symlink_to(workspace.parent / "outside" / "secret.txt")
    run_file_op(op(operation="copy", source="docs", destination="backup"), sandbox)
    assert (workspace / "backup" / "deep" / "c.md").read_text() == "charlie"
    assert (workspace / "backup" / "leak").is_symlink()
    with pytest.raises(WorkspaceViolation):
        run_file_op(op(operation="copy", source="backup/leak", destination="x"), sandbox)


def test_copy_of_a_directory_into_itself_is_refused(sandbox: Sandbox) -> None:
    """Copying a directory below itself would never end."""
    with pytest.raises(StepError, match="into itself"):
        run_file_op(op(operation="copy", source="docs", destination="docs/deep/again"), sandbox)


def test_copy_of_a_missing_source_fails(sandbox: Sandbox) -> None:
    """A missing source names the path."""
    with pytest.raises(StepError, match=r"source 'nope.txt' does not exist"):
        run_file_op(op(operation="copy", source="nope.txt", destination="x"), sandbox)


# -- move -------------------------------------------------------------------------------


def test_move_renames_and_refuses_to_overwrite(workspace: Path, sandbox: Sandbox) -> None:
    """A move renames; onto an existing file it needs overwrite."""
    result = run_file_op(op(operation="move", source="docs/a.md", destination="a2.md"), sandbox)
    assert result == {"operation": "move", "source": "docs/a.md", "destination": "a2.md"}
    assert not (workspace / "docs" / "a.md").exists()
    move = {"operation": "move", "source": "a2.md", "destination": "docs/b.txt"}
    with pytest.raises(StepError, match="overwrite"):
        run_file_op(op(**move), sandbox)
    run_file_op(op(**move, overwrite=True), sandbox)
    assert (workspace / "docs" / "b.txt").read_text() == "alpha"


def test_move_of_a_symlink_moves_the_link(workspace: Path, sandbox: Sandbox) -> None:
    """Moving a link (even one pointing outside) moves the link, not what it points to."""
    (workspace / "out-link").symlink_to(workspace.parent / "outside" / "secret.txt")
    run_file_op(op(operation="move", source="out-link", destination="moved-link"), sandbox)
    assert (workspace / "moved-link").is_symlink()
    assert (workspace.parent / "outside" / "secret.txt").read_text() == "secret"


def test_move_of_the_root_is_refused(sandbox: Sandbox) -> None:
    """The workspace root cannot be moved."""
    with pytest.raises(WorkspaceViolation):
        run_file_op(op(operation="move", source=".", destination="elsewhere"), sandbox)


# -- delete -----------------------------------------------------------------------------


def test_delete_removes_a_file(workspace: Path, sandbox: Sandbox) -> None:
    """A file is deleted and the result says so."""
    result = run_file_op(op(operation="delete", path="docs/a.md"), sandbox)
    assert result == {"operation": "delete", "path": "docs/a.md", "deleted": True}
    assert not (workspace / "docs" / "a.md").exists()


def test_delete_refuses_directories_unless_recursive(workspace: Path, sandbox: Sandbox) -> None:
    """A directory needs recursive: true."""
    with pytest.raises(StepError, match="recursive: true"):
        run_file_op(op(operation="delete", path="docs"), sandbox)
    assert (workspace / "docs" / "a.md").exists()
    run_file_op(op(operation="delete", path="docs", recursive=True), sandbox)
    assert not (workspace / "docs").exists()


def test_delete_of_a_symlink_leaves_its_target(workspace: Path, sandbox: Sandbox) -> None:
    """Deleting a link to outside removes the link only."""
    (workspace / "out-dir").symlink_to(workspace.parent / "outside")
    run_file_op(op(operation="delete", path="out-dir", recursive=True), sandbox)
    assert not (workspace / "out-dir").is_symlink()
    assert (workspace.parent / "outside" / "secret.txt").read_text() == "secret"


@pytest.mark.parametrize("path", [".", "docs/.."])
def test_delete_of_the_root_is_refused(workspace: Path, sandbox: Sandbox, path: str) -> None:
    """The workspace root itself cannot be deleted."""
    with pytest.raises(WorkspaceViolation):
        run_file_op(op(operation="delete", path=path, recursive=True), sandbox)
    assert workspace.is_dir()


@pytest.mark.parametrize(("missing_ok", "raises"), [(False, True), (True, False)])
def test_delete_of_a_missing_path(sandbox: Sandbox, missing_ok: bool, raises: bool) -> None:
    """A missing path is an error unless missing_ok."""
    delete = op(operation="delete", path="gone.txt", missing_ok=missing_ok)
    if raises:
        with pytest.raises(StepError, match="does not exist"):
            run_file_op(delete, sandbox)
    else:
        assert run_file_op(delete, sandbox)["deleted"] is False


# -- list -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"path": "docs"}, ["docs/a.md", "docs/b.txt", "docs/deep"]),
        ({"path": "docs", "pattern": "*.md"}, ["docs/a.md"]),
        ({"path": "docs", "pattern": "*.md", "recursive": True}, ["docs/a.md", "docs/deep/c.md"]),
        ({"path": "docs", "pattern": "deep/*", "recursive": True}, ["docs/deep/c.md"]),
        ({"path": "docs", "regex": r"\.(md|txt)$"}, ["docs/a.md", "docs/b.txt"]),
        ({}, ["docs"]),
    ],
)
def test_list_returns_sorted_entries_relative_to_the_workspace(
    sandbox: Sandbox, fields: dict[str, Any], expected: list[str]
) -> None:
    """Entries are filtered by glob (or regex), optionally recursively, sorted by path."""
    result = run_file_op(op(operation="list", **fields), sandbox)
    assert [entry["path"] for entry in result] == expected


def test_list_reports_size_and_kind(sandbox: Sandbox) -> None:
    """Files have their size; directories have a null size."""
    result = run_file_op(op(operation="list", path="docs"), sandbox)
    assert result == [
        {"path": "docs/a.md", "size": 5, "is_dir": False},
        {"path": "docs/b.txt", "size": 6, "is_dir": False},
        {"path": "docs/deep", "size": None, "is_dir": True},
    ]


def test_list_skips_symlinks_that_lead_outside(workspace: Path, sandbox: Sandbox) -> None:
    """A link to outside is not listed (nor followed); a link inside is."""
    (workspace / "docs" / "leak").symlink_to(workspace.parent / "outside")
    (workspace / "docs" / "alias.md").symlink_to(workspace / "docs" / "a.md")
    result = run_file_op(op(operation="list", path="docs", recursive=True), sandbox)
    paths = [entry["path"] for entry in result]
    assert "docs/leak" not in paths
    assert not any("secret" in path for path in paths)
    assert {"path": "docs/alias.md", "size": 5, "is_dir": False} in result


@pytest.mark.parametrize(
    ("path", "message"), [("nope", "does not exist"), ("docs/a.md", "not a directory")]
)
def test_list_of_a_non_directory_fails(sandbox: Sandbox, path: str, message: str) -> None:
    """Listing needs an existing directory."""
    with pytest.raises(StepError, match=message):
        run_file_op(op(operation="list", path=path), sandbox)


def test_list_rejects_an_invalid_regex_at_load() -> None:
    """A bad regex is a load-time error."""
    with pytest.raises(pydantic.ValidationError, match="regex"):
        op(operation="list", regex="(")


# -- validate ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("check", "errors"),
    [
        ({"path": "docs/a.md"}, []),
        ({"path": "docs/a.md", "must_be_file": True, "min_size": 5, "max_size": 5}, []),
        ({"path": "docs", "must_be_dir": True}, []),
        ({"path": "missing"}, ["does not exist"]),
        ({"path": "missing", "must_exist": False}, []),
        ({"path": "docs/a.md", "must_exist": False}, ["exists but must not"]),
        ({"path": "docs", "must_be_file": True}, ["is not a file"]),
        ({"path": "docs/a.md", "must_be_dir": True}, ["is not a directory"]),
        ({"path": "docs/a.md", "min_size": 6}, ["is 5 bytes, below min_size 6"]),
        ({"path": "docs/b.txt", "max_size": 2}, ["is 6 bytes, above max_size 2"]),
        ({"path": "docs/a.md", "must_be_readable": True, "must_be_writable": True}, []),
    ],
)
def test_validate_reports_each_check(
    sandbox: Sandbox, check: dict[str, Any], errors: list[str]
) -> None:
    """Each file gets valid and its list of errors."""
    result = run_file_op(op(operation="validate", files=[check], fail_on_invalid=False), sandbox)
    assert result == {
        "valid": not errors,
        "results": [{"path": check["path"], "valid": not errors, "errors": errors}],
    }


def test_validate_fails_listing_every_failure(sandbox: Sandbox) -> None:
    """By default a failed check raises, naming every failing path."""
    validate = op(
        operation="validate",
        files=[{"path": "docs/a.md"}, {"path": "x"}, {"path": "docs", "must_be_file": True}],
    )
    with pytest.raises(
        StepError, match=r"2 of 3 file check\(s\) failed: x: does not exist; docs: is not a file"
    ):
        run_file_op(validate, sandbox)


@pytest.mark.parametrize(
    "check",
    [
        {"path": "a", "must_be_file": True, "must_be_dir": True},
        {"path": "a", "must_exist": False, "min_size": 1},
        {"path": "a", "min_size": 5, "max_size": 1},
        {"path": "a", "min_size": -1},
        {"path": "a", "colour": "red"},
    ],
)
def test_contradictory_checks_are_rejected_at_load(check: dict[str, Any]) -> None:
    """Checks that can never pass, or unknown keys, fail when the pipeline loads."""
    with pytest.raises(pydantic.ValidationError):
        op(operation="validate", files=[check])


# -- convert ----------------------------------------------------------------------------

ROWS = [{"name": "Ada", "age": "36"}, {"name": "Bob", "city": "Oslo"}]


def test_csv_converts_to_json_rows(workspace: Path, sandbox: Sandbox) -> None:
    """CSV becomes a list of objects of strings; the format is read from the extensions."""
    (workspace / "people.csv").write_text('name,age\nAda,36\n"Lee, Jr",7\n')
    result = run_file_op(
        op(operation="convert", source="people.csv", destination="out/people.json"), sandbox
    )
    assert json.loads((workspace / "out" / "people.json").read_text()) == [
        {"name": "Ada", "age": "36"},
        {"name": "Lee, Jr", "age": "7"},
    ]
    assert result == {
        "operation": "convert",
        "source": "people.csv",
        "destination": "out/people.json",
        "from": "csv",
        "to": "json",
        "records": 2,
    }


def test_json_converts_to_csv_with_the_union_of_keys(workspace: Path, sandbox: Sandbox) -> None:
    """Columns are every key in order of first appearance; missing cells are empty."""
    (workspace / "rows.json").write_text(
        json.dumps([*ROWS, {"name": "Cy", "tags": ["a"], "ok": True}])
    )
    run_file_op(op(operation="convert", source="rows.json", destination="rows.csv"), sandbox)
    assert (workspace / "rows.csv").read_text() == (
        'name,age,city,tags,ok\nAda,36,,,\nBob,,Oslo,,\nCy,,,"[""a""]",true\n'
    )


@pytest.mark.parametrize(
    ("fields", "source_name", "target_name"),
    [
        ({"format": "json_to_yaml"}, "data.txt", "data.out"),
        ({"from": "json", "to": "yaml"}, "data.txt", "data.out"),
        ({}, "data.json", "data.yml"),
    ],
)
def test_json_converts_to_yaml_with_explicit_or_inferred_formats(
    workspace: Path, sandbox: Sandbox, fields: dict[str, Any], source_name: str, target_name: str
) -> None:
    """pipeline_ex's format, from/to, or the file extensions pick the conversion."""
    (workspace / source_name).write_text(json.dumps(ROWS))
    run_file_op(
        op(operation="convert", source=source_name, destination=target_name, **fields), sandbox
    )
    assert yaml.safe_load((workspace / target_name).read_text()) == ROWS


def test_yaml_converts_to_json(workspace: Path, sandbox: Sandbox) -> None:
    """YAML is read safely and written as JSON."""
    (workspace / "c.yaml").write_text("a: 1\nb: [x, y]\n")
    run_file_op(op(operation="convert", source="c.yaml", destination="c.json"), sandbox)
    assert json.loads((workspace / "c.json").read_text()) == {"a": 1, "b": ["x", "y"]}


@pytest.mark.parametrize(
    ("content", "source", "destination", "message"),
    [
        ('{"a": 1}', "o.json", "o.csv", "must be a list of objects"),
        ("{broken", "b.json", "b.yaml", "is not valid json"),
        ("a: [", "b.yaml", "b.json", "is not valid yaml"),
    ],
)
def test_convert_reports_unconvertible_input(
    workspace: Path, sandbox: Sandbox, content: str, source: str, destination: str, message: str
) -> None:
    """Bad input or a shape CSV cannot hold is a StepError and nothing is written."""
    (workspace / source).write_text(content)
    with pytest.raises(StepError, match=message):
        run_file_op(op(operation="convert", source=source, destination=destination), sandbox)
    assert not (workspace / destination).exists()


def test_convert_refuses_to_overwrite_when_told(workspace: Path, sandbox: Sandbox) -> None:
    """overwrite: false keeps an existing destination."""
    (workspace / "a.json").write_text("[]")
    (workspace / "a.yaml").write_text("keep")
    with pytest.raises(StepError, match="exists"):
        run_file_op(
            op(operation="convert", source="a.json", destination="a.yaml", overwrite=False), sandbox
        )
    assert (workspace / "a.yaml").read_text() == "keep"


@pytest.mark.parametrize(
    "fields",
    [
        {"source": "a.txt", "destination": "b.json"},
        {"source": "a.json", "destination": "b.txt"},
        {"source": "a.csv", "destination": "b.json", "format": "csv_to_xml"},
        {"source": "a.csv", "destination": "b.json", "format": "csv_to_json", "from": "yaml"},
        {"source": "a.csv", "destination": "b.json", "from": "xml"},
    ],
)
def test_convert_formats_must_be_known_and_consistent(fields: dict[str, Any]) -> None:
    """Unknown or contradictory formats are load-time errors."""
    with pytest.raises(pydantic.ValidationError):
        op(operation="convert", **fields)


def test_unknown_operation_is_rejected_at_load() -> None:
    """stream_process is not an operation here."""
    with pytest.raises(pydantic.ValidationError):
        op(operation="stream_process", source="a")
