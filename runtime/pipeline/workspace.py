"""Path confinement for file steps, prompt ``file`` parts and step outputs.

A ``Sandbox`` owns one root directory. ``Sandbox.resolve`` turns a path from a
pipeline (relative to the root, or absolute) into an absolute path that lies
inside the root, or raises ``WorkspaceViolation`` naming the offending field,
the path and the root. It refuses:

* ``..`` components that climb above the root, even if a later component
  would climb back in;
* absolute paths that do not lie under the root;
* symlinks anywhere along the path (existing components are resolved one by
  one) whose target lies outside the root, including dangling ones, through
  which a file would otherwise be created outside.

``SandboxSet`` accepts a path if any of several roots accepts it (prompt
``file`` parts may come from the pipeline's directory or the workspace).

The checks are made when the path is resolved; a process that swaps a
directory for a symlink between ``resolve`` and the ``open`` is outside this
module's threat model (the workspace belongs to the run).
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePath

from runtime.errors import WorkspaceViolation

__all__ = ["Sandbox", "SandboxSet", "write_text_atomic"]

# Files written by write_text_atomic get ordinary permissions, not mkstemp's 0600.
_NEW_FILE_MODE = 0o644


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


@dataclass(frozen=True, slots=True)
class Sandbox:
    """A root directory that resolved paths may not leave.

    ``root`` is stored absolute with its own symlinks resolved, so a root such
    as ``/tmp/ws`` on a system where ``/tmp`` is a link still compares right.
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(os.path.realpath(Path(self.root).absolute())))

    @classmethod
    def many(cls, roots: Iterable[str | Path]) -> SandboxSet:
        """A sandbox set accepting paths inside any of ``roots``, tried in order."""
        return SandboxSet(tuple(cls(Path(root)) for root in roots))

    def resolve(self, path: str | Path, *, field: str, follow_symlinks: bool = True) -> Path:
        """Return the absolute path ``path`` names inside the root.

        With ``follow_symlinks=False`` the last component is returned as is,
        not resolved, so that deleting or moving a symlink acts on the link;
        every earlier component is still resolved and checked.
        """
        text = os.fspath(path)
        if text == "":
            raise self._violation(field, text, "the path is empty")
        if "\x00" in text:
            raise self._violation(field, text, "the path contains a NUL byte")
        parts = self._relative_parts(PurePath(text), field, text)
        if not follow_symlinks and (not parts or parts[-1] in ("..", ".")):
            raise self._violation(field, text, "the path must name an entry inside the root")

        current = self.root
        depth = 0
        for index, part in enumerate(parts):
            if part == ".":
                continue
            if part == "..":
                if depth == 0:
                    raise self._violation(field, text, "'..' climbs above the root")
                depth -= 1
                current = current.parent
                continue
            candidate = current / part
            depth += 1
            is_last = index == len(parts) - 1
            if candidate.is_symlink() and (follow_symlinks or not is_last):
                target = Path(os.path.realpath(candidate))
                if not _is_within(target, self.root):
                    raise self._violation(
                        field,
                        text,
                        f"'{self._shown(candidate)}' is a symlink to {target}, outside the root",
                    )
                current = target
                depth = len(target.relative_to(self.root).parts)
            else:
                current = candidate
        if not _is_within(current, self.root):  # pragma: no cover - guarded above
            raise self._violation(field, text, "the path resolves outside the root")
        return current

    def relative(self, path: Path) -> str:
        """``path`` (already resolved inside the root) relative to it, in POSIX form."""
        relative = path.relative_to(self.root)
        return relative.as_posix() if relative.parts else "."

    def _relative_parts(self, pure: PurePath, field: str, text: str) -> tuple[str, ...]:
        if not pure.is_absolute():
            return pure.parts
        root_parts = self.root.parts
        if pure.parts[: len(root_parts)] == root_parts:
            return pure.parts[len(root_parts) :]
        # The root may have been reached through a symlinked prefix (/tmp -> /private/tmp).
        real = Path(os.path.realpath(pure))
        if _is_within(real, self.root):
            return real.relative_to(self.root).parts
        raise self._violation(field, text, "the absolute path is not under the root")

    def _shown(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def _violation(self, field: str, path: str, reason: str) -> WorkspaceViolation:
        return WorkspaceViolation(
            f"{field}: path {path!r} is not allowed: {reason} (root: {self.root}); "
            f"use a path inside {self.root}"
        )


@dataclass(frozen=True, slots=True)
class SandboxSet:
    """Several sandboxes; a path is accepted if any of them accepts it.

    A relative path is tried against each root in order: the first root under
    which it exists wins, else the first root that accepts it at all.
    """

    sandboxes: tuple[Sandbox, ...]

    def __post_init__(self) -> None:
        if not self.sandboxes:
            raise ValueError("a SandboxSet needs at least one root")

    @property
    def roots(self) -> tuple[Path, ...]:
        return tuple(sandbox.root for sandbox in self.sandboxes)

    def resolve(self, path: str | Path, *, field: str) -> Path:
        """Return the absolute path inside one of the roots, or raise naming all of them."""
        accepted: list[Path] = []
        reasons: list[str] = []
        for sandbox in self.sandboxes:
            try:
                resolved = sandbox.resolve(path, field=field)
            except WorkspaceViolation as violation:
                reasons.append(violation.message)
                continue
            if resolved.exists():
                return resolved
            accepted.append(resolved)
        if accepted:
            return accepted[0]
        roots = ", ".join(str(root) for root in self.roots)
        raise WorkspaceViolation(
            f"{field}: path {os.fspath(path)!r} is not inside any allowed root ({roots}); "
            f"use a path inside one of them. Details: " + " | ".join(reasons)
        )


def write_text_atomic(path: Path, text: str, *, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` so readers see the old file or the new one, never half.

    Parent directories are created. The data is written to a temporary file in
    the same directory, fsynced, then renamed over ``path``; the directory is
    fsynced too so the rename survives a crash. An existing file keeps its mode.
    ``path`` must already have been resolved through a ``Sandbox``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = _NEW_FILE_MODE
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(mode)
        tmp.replace(path)  # os.replace: atomic on POSIX within one directory
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms that cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems that refuse directory fsync
        pass
    finally:
        os.close(fd)
