"""Sandbox path confinement and atomic writes."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from runtime.errors import StepError, WorkspaceViolation
from runtime.pipeline.workspace import Sandbox, SandboxSet, write_text_atomic


@pytest.fixture
def root(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    (workspace / "sub").mkdir(parents=True)
    (workspace / "sub" / "a.txt").write_text("a")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("secret")
    return workspace


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sub/a.txt", "sub/a.txt"),
        ("./sub/./a.txt", "sub/a.txt"),
        ("sub/../sub/a.txt", "sub/a.txt"),
        ("new/dir/file.json", "new/dir/file.json"),
        (".", ""),
        ("sub/", "sub"),
    ],
)
def test_relative_paths_resolve_inside_the_root(root: Path, given: str, expected: str) -> None:
    """Relative paths, with harmless `.` and `..`, resolve to absolute paths under the root."""
    resolved = Sandbox(root).resolve(given, field="path")
    assert resolved == (root / expected if expected else root).resolve()
    assert resolved.is_absolute()


@pytest.mark.parametrize(
    "given",
    ["..", "../outside/secret.txt", "sub/../../outside", "sub/../../ws/sub/a.txt", "../../etc"],
)
def test_dot_dot_escapes_are_refused(root: Path, given: str) -> None:
    """A `..` that climbs above the root is refused, even when a later part climbs back in."""
    with pytest.raises(WorkspaceViolation, match=r"'\.\.' climbs above the root"):
        Sandbox(root).resolve(given, field="source")


def test_absolute_path_outside_the_root_is_refused(root: Path) -> None:
    """An absolute path outside the root is refused."""
    with pytest.raises(WorkspaceViolation, match="absolute path is not under the root"):
        Sandbox(root).resolve(str(root.parent / "outside" / "secret.txt"), field="source")


def test_absolute_path_inside_the_root_is_accepted(root: Path) -> None:
    """An absolute path under the root resolves to itself."""
    target = root / "sub" / "a.txt"
    assert Sandbox(root).resolve(target, field="path") == target.resolve()


def test_absolute_path_cannot_dot_dot_out_of_the_root(root: Path) -> None:
    """`..` after an absolute root prefix is checked like a relative path."""
    with pytest.raises(WorkspaceViolation, match="climbs above"):
        Sandbox(root).resolve(f"{root}/../outside/secret.txt", field="path")


def test_violation_names_the_field_the_path_and_the_root(root: Path) -> None:
    """The message says which field, which path and which root, and is a StepError."""
    with pytest.raises(WorkspaceViolation) as caught:
        Sandbox(root).resolve("../x", field="destination")
    message = str(caught.value)
    assert "destination" in message
    assert "'../x'" in message
    assert str(root.resolve()) in message
    assert isinstance(caught.value, StepError)
    assert caught.value.kind == "workspace"


@pytest.mark.parametrize("given", ["", "a\x00b"])
def test_empty_and_nul_paths_are_refused(root: Path, given: str) -> None:
    """An empty path (which would mean the root) and a NUL byte are refused."""
    with pytest.raises(WorkspaceViolation):
        Sandbox(root).resolve(given, field="path")


def test_symlink_pointing_outside_is_refused(root: Path) -> None:
    """A symlink inside the root whose target is outside is refused."""
    (root / "escape").symlink_to(root.parent / "outside")
    with pytest.raises(WorkspaceViolation, match=r"'escape' is a symlink to .*outside the root"):
        Sandbox(root).resolve("escape/secret.txt", field="source")


def test_file_symlink_pointing_outside_is_refused(root: Path) -> None:
    """A symlink to a file outside is refused when named directly."""
    (root / "leak.txt").symlink_to(root.parent / "outside" / "secret.txt")
    with pytest.raises(WorkspaceViolation, match="symlink"):
        Sandbox(root).resolve("leak.txt", field="source")


def test_creating_through_an_escaping_symlink_is_refused(root: Path) -> None:
    """A path not yet existing below a symlinked directory outside is refused."""
    (root / "out").symlink_to(root.parent / "outside")
    with pytest.raises(WorkspaceViolation, match="symlink"):
        Sandbox(root).resolve("out/new/file.txt", field="destination")


def test_dangling_symlink_pointing_outside_is_refused(root: Path) -> None:
    """A dangling symlink would create its target outside on write; it is refused."""
    (root / "dangling").symlink_to(root.parent / "outside" / "not-yet.txt")
    with pytest.raises(WorkspaceViolation, match="symlink"):
        Sandbox(root).resolve("dangling", field="destination")


def test_symlink_chain_that_ends_outside_is_refused(root: Path) -> None:
    """A link to a link to outside is refused."""
    (root / "hop2").symlink_to(root.parent / "outside")
    (root / "hop1").symlink_to(root / "hop2")
    with pytest.raises(WorkspaceViolation, match="symlink"):
        Sandbox(root).resolve("hop1/secret.txt", field="source")


def test_symlink_inside_the_root_is_followed(root: Path) -> None:
    """A symlink to a place inside the root resolves to its target."""
    (root / "alias").symlink_to(root / "sub")
    assert Sandbox(root).resolve("alias/a.txt", field="path") == (root / "sub" / "a.txt").resolve()


def test_dot_dot_after_an_inside_symlink_is_measured_from_its_target(root: Path) -> None:
    """`..` after a followed symlink climbs from the target, and cannot pass the root."""
    (root / "deep" / "er").mkdir(parents=True)
    (root / "alias").symlink_to(root / "deep" / "er")
    sandbox = Sandbox(root)
    assert sandbox.resolve("alias/..", field="path") == (root / "deep").resolve()
    with pytest.raises(WorkspaceViolation):
        sandbox.resolve("alias/../../..", field="path")


def test_not_following_the_last_symlink_returns_the_link_itself(root: Path) -> None:
    """With follow_symlinks=False the last component stays a link, even one pointing out."""
    link = root / "escape"
    link.symlink_to(root.parent / "outside")
    resolved = Sandbox(root).resolve("escape", field="path", follow_symlinks=False)
    assert resolved == root.resolve() / "escape"
    assert resolved.is_symlink()


def test_not_following_still_checks_earlier_components(root: Path) -> None:
    """With follow_symlinks=False the parent components are still resolved and checked."""
    (root / "escape").symlink_to(root.parent / "outside")
    with pytest.raises(WorkspaceViolation):
        Sandbox(root).resolve("escape/secret.txt", field="path", follow_symlinks=False)


@pytest.mark.parametrize("given", [".", "sub/.."])
def test_not_following_refuses_the_root_itself(root: Path, given: str) -> None:
    """With follow_symlinks=False the path must name an entry, not the root."""
    with pytest.raises(WorkspaceViolation, match="name an entry"):
        Sandbox(root).resolve(given, field="path", follow_symlinks=False)


def test_root_reached_through_a_symlink_is_stored_resolved(tmp_path: Path, root: Path) -> None:
    """A root given through a symlink is stored real, and paths under either form resolve."""
    link_to_root = tmp_path / "ws-link"
    link_to_root.symlink_to(root)
    sandbox = Sandbox(link_to_root)
    assert sandbox.root == root.resolve()
    assert sandbox.resolve(link_to_root / "sub", field="path") == (root / "sub").resolve()


def test_relative_reports_paths_in_posix_form(root: Path) -> None:
    """`relative` gives workspace-relative names, `.` for the root."""
    sandbox = Sandbox(root)
    assert sandbox.relative(sandbox.resolve("sub/a.txt", field="p")) == "sub/a.txt"
    assert sandbox.relative(sandbox.root) == "."


def test_sandbox_is_frozen(root: Path) -> None:
    """A Sandbox cannot be re-pointed after creation."""
    sandbox = Sandbox(root)
    with pytest.raises(AttributeError):
        sandbox.root = Path("/")  # type: ignore[misc]


# -- SandboxSet -------------------------------------------------------------------------


@pytest.fixture
def two_roots(tmp_path: Path) -> tuple[Path, Path]:
    pipeline_dir = tmp_path / "pipelines"
    workspace = tmp_path / "workspace"
    for directory in (pipeline_dir, workspace):
        directory.mkdir()
    (pipeline_dir / "prompt.md").write_text("from pipelines")
    (workspace / "notes.md").write_text("from workspace")
    (workspace / "prompt.md").write_text("shadowed")
    return pipeline_dir, workspace


@pytest.mark.parametrize(
    ("given", "root_index"),
    [("prompt.md", 0), ("notes.md", 1), ("missing.md", 0)],
)
def test_sandbox_set_prefers_the_first_root_where_the_path_exists(
    two_roots: tuple[Path, Path], given: str, root_index: int
) -> None:
    """A relative path resolves in the first root holding it, else in the first root."""
    sandboxes = Sandbox.many(two_roots)
    assert isinstance(sandboxes, SandboxSet)
    assert sandboxes.resolve(given, field="file") == (two_roots[root_index] / given).resolve()


def test_sandbox_set_accepts_absolute_paths_under_any_root(two_roots: tuple[Path, Path]) -> None:
    """An absolute path is accepted if it lies under one of the roots."""
    target = two_roots[1] / "notes.md"
    assert Sandbox.many(two_roots).resolve(str(target), field="file") == target.resolve()


def test_sandbox_set_refusal_names_every_root(two_roots: tuple[Path, Path]) -> None:
    """A path outside all roots is refused with every root named."""
    with pytest.raises(WorkspaceViolation) as caught:
        Sandbox.many(two_roots).resolve("../elsewhere.md", field="prompt[0].path")
    message = str(caught.value)
    assert "prompt[0].path" in message
    for root in two_roots:
        assert str(root.resolve()) in message


def test_sandbox_set_needs_a_root() -> None:
    """An empty set of roots is a programming error."""
    with pytest.raises(ValueError, match="at least one root"):
        Sandbox.many([])


# -- write_text_atomic ------------------------------------------------------------------


def test_write_text_atomic_creates_parents_and_writes(tmp_path: Path) -> None:
    """The file appears with the text, parent directories created, no temp file left."""
    target = tmp_path / "a" / "b" / "out.json"
    write_text_atomic(target, '{"ok": true}\n')
    assert target.read_text() == '{"ok": true}\n'
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_write_text_atomic_replaces_and_keeps_the_mode(tmp_path: Path) -> None:
    """An existing file is replaced whole and keeps its permissions."""
    target = tmp_path / "out.txt"
    target.write_text("old contents that are longer")
    target.chmod(0o600)
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_write_text_atomic_keeps_newlines_as_given(tmp_path: Path) -> None:
    """Text is written without newline translation."""
    target = tmp_path / "crlf.txt"
    write_text_atomic(target, "a\r\nb\n")
    assert target.read_bytes() == b"a\r\nb\n"


def test_write_text_atomic_leaves_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    """If encoding fails midway, the old file stays and no temp file is left behind."""
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(UnicodeEncodeError):
        write_text_atomic(target, "caf\u00e9", encoding="ascii")
    assert target.read_text() == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["out.txt"]
