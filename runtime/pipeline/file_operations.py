"""The operations of a ``file_ops`` step, confined to the workspace.

Every path goes through ``Sandbox.resolve`` first, so ``..``, absolute paths
outside the workspace and symlinks pointing out of it raise
``WorkspaceViolation`` before anything is touched. Other failures (a missing
source, an existing destination, a file that fails validation) raise
``StepError`` with a message saying what to change. Results are JSON-able
and name paths relative to the workspace.

=========  ================================================================
operation  fields and result
=========  ================================================================
copy       ``source``, ``destination``, ``overwrite`` (false). A destination
           ending in ``/``, or an existing directory when the source is a
           file, receives the source inside it. Directories are copied whole
           (onto an existing one only with ``overwrite``, merging); symlinks
           in them stay links, so nothing outside is read.
move       ``source``, ``destination``, ``overwrite`` (false; replaces the
           destination); a symlink is moved as a link.
delete     ``path``, ``recursive`` (false: directories are refused),
           ``missing_ok`` (false); a symlink is removed, not its target.
list       ``path`` ("."), ``pattern`` (a glob on the name, or on the path
           below ``path`` if it has a ``/``), ``regex`` (searched in the name,
           as pipeline_ex's ``pattern``), ``recursive`` (false) →
           ``[{path, size, is_dir}]`` sorted by path; ``size`` is null for
           directories; symlinks leading outside the workspace are skipped.
validate   ``files: [{path, must_exist (true), must_be_file, must_be_dir,
           min_size, max_size, must_be_readable, must_be_writable}]``,
           ``fail_on_invalid`` (true) → ``{valid, results: [{path, valid,
           errors}]}``; ``must_exist: false`` means must not exist.
convert    ``source``, ``destination``, ``from``/``to`` among csv, json,
           yaml (inferred from the extensions when absent; pipeline_ex's
           ``format: csv_to_json`` also works), ``overwrite`` (true: the
           destination is a derived file). CSV reads as a list of objects of
           strings; a list of objects writes as CSV with the union of keys.
=========  ================================================================
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import os
import re
import shutil
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, model_validator

from runtime.errors import StepError
from runtime.pipeline.workspace import Sandbox, write_text_atomic

__all__ = [
    "ConvertOp",
    "CopyOp",
    "DataFormat",
    "DeleteOp",
    "FileCheck",
    "FileOp",
    "ListOp",
    "MoveOp",
    "ValidateOp",
    "run_file_op",
]

DataFormat = Literal["csv", "json", "yaml"]

_EXTENSIONS: dict[str, DataFormat] = {
    ".csv": "csv",
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
}
_PIPELINE_EX_FORMATS: dict[str, tuple[DataFormat, DataFormat]] = {
    f"{a}_to_{b}": (a, b)
    for a in ("csv", "json", "yaml")
    for b in ("csv", "json", "yaml")
    if a != b
}


class _Op(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class CopyOp(_Op):
    operation: Literal["copy"]
    source: str
    destination: str
    overwrite: bool = False


class MoveOp(_Op):
    operation: Literal["move"]
    source: str
    destination: str
    overwrite: bool = False


class DeleteOp(_Op):
    operation: Literal["delete"]
    path: str
    recursive: bool = False
    missing_ok: bool = False


class ListOp(_Op):
    operation: Literal["list"]
    path: str = "."
    pattern: str | None = None
    regex: str | None = None
    recursive: bool = False

    @model_validator(mode="after")
    def _valid_regex(self) -> Self:
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as error:
                raise ValueError(f"regex {self.regex!r} is invalid: {error}") from error
        return self


class FileCheck(_Op):
    """What one path must satisfy."""

    path: str
    must_exist: bool = True
    must_be_file: bool = False
    must_be_dir: bool = False
    min_size: NonNegativeInt | None = None
    max_size: NonNegativeInt | None = None
    must_be_readable: bool = False
    must_be_writable: bool = False

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.must_be_file and self.must_be_dir:
            raise ValueError("a path cannot be both a file and a directory")
        demands = self.must_be_file or self.must_be_dir or self.min_size is not None
        if not self.must_exist and (demands or self.max_size is not None):
            raise ValueError("must_exist: false contradicts the other checks")
        if (
            self.min_size is not None
            and self.max_size is not None
            and self.min_size > self.max_size
        ):
            raise ValueError(f"min_size {self.min_size} is above max_size {self.max_size}")
        return self


class ValidateOp(_Op):
    operation: Literal["validate"]
    files: tuple[FileCheck, ...] = Field(min_length=1)
    fail_on_invalid: bool = True


class ConvertOp(_Op):
    operation: Literal["convert"]
    source: str
    destination: str
    from_: DataFormat | None = Field(default=None, alias="from")
    to: DataFormat | None = None
    format: str | None = None
    overwrite: bool = True

    @model_validator(mode="after")
    def _formats(self) -> Self:
        if self.format is not None:
            if self.format not in _PIPELINE_EX_FORMATS:
                known = ", ".join(sorted(_PIPELINE_EX_FORMATS))
                raise ValueError(f"format {self.format!r} is not one of {known}")
            source, target = _PIPELINE_EX_FORMATS[self.format]
            if (self.from_ or source) != source or (self.to or target) != target:
                raise ValueError(f"format {self.format!r} contradicts from/to")
        for field, path, given in (
            ("from", self.source, self.source_format),
            ("to", self.destination, self.target_format),
        ):
            if given is None:
                raise ValueError(
                    f"cannot tell the format of {path!r} from its extension; set '{field}'"
                )
        return self

    @property
    def source_format(self) -> DataFormat | None:
        if self.from_ is not None:
            return self.from_
        if self.format is not None:
            return _PIPELINE_EX_FORMATS[self.format][0]
        return _EXTENSIONS.get(Path(self.source).suffix.lower())

    @property
    def target_format(self) -> DataFormat | None:
        if self.to is not None:
            return self.to
        if self.format is not None:
            return _PIPELINE_EX_FORMATS[self.format][1]
        return _EXTENSIONS.get(Path(self.destination).suffix.lower())


FileOp = Annotated[
    CopyOp | MoveOp | DeleteOp | ListOp | ValidateOp | ConvertOp,
    Field(discriminator="operation"),
]


def run_file_op(op: FileOp, sandbox: Sandbox, *, step: str | None = None) -> Any:
    """Perform ``op`` inside ``sandbox`` and return its JSON-able result."""
    try:
        match op:
            case CopyOp():
                return _copy(op, sandbox)
            case MoveOp():
                return _move(op, sandbox)
            case DeleteOp():
                return _delete(op, sandbox)
            case ListOp():
                return _list(op, sandbox)
            case ValidateOp():
                return _validate(op, sandbox)
            case ConvertOp():
                return _convert(op, sandbox)
    except StepError as error:
        if error.step is None:
            error.step = step
        raise
    except OSError as error:
        raise StepError(
            f"file_ops {op.operation} failed: {error.strerror or error} "
            f"({error.filename or 'no file name'})",
            step=step,
            cause=error,
        ) from error


# -- copy / move / delete -----------------------------------------------------------------


def _copy(op: CopyOp, sandbox: Sandbox) -> dict[str, Any]:
    source = sandbox.resolve(op.source, field="source")
    _require_exists(source, op.source, "source")
    target = _target(sandbox, source, op.destination)
    if source == target or source in target.parents:
        raise StepError(f"cannot copy {op.source!r} into itself ({op.destination!r})")
    _check_overwrite(source, target, op.destination, op.overwrite, sandbox)
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=op.overwrite)
    else:
        shutil.copy2(source, target)
    return {
        "operation": "copy",
        "source": sandbox.relative(source),
        "destination": sandbox.relative(target),
    }


def _move(op: MoveOp, sandbox: Sandbox) -> dict[str, Any]:
    source = sandbox.resolve(op.source, field="source", follow_symlinks=False)
    if source == sandbox.root:
        raise StepError("cannot move the workspace root; name an entry inside it")
    _require_exists(source, op.source, "source")
    target = _target(sandbox, source, op.destination)
    if source == target:
        shown = sandbox.relative(source)
        return {"operation": "move", "source": shown, "destination": shown}
    if source in target.parents:
        raise StepError(f"cannot move {op.source!r} into itself ({op.destination!r})")
    _check_overwrite(source, target, op.destination, op.overwrite, sandbox)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)  # overwrite was allowed; os.replace refuses non-empty dirs
    source.replace(target)
    return {
        "operation": "move",
        "source": sandbox.relative(source),
        "destination": sandbox.relative(target),
    }


def _delete(op: DeleteOp, sandbox: Sandbox) -> dict[str, Any]:
    path = sandbox.resolve(op.path, field="path", follow_symlinks=False)
    if path == sandbox.root:
        raise StepError("refusing to delete the workspace root; name an entry inside it")
    if not path.exists() and not path.is_symlink():
        if op.missing_ok:
            return {"operation": "delete", "path": sandbox.relative(path), "deleted": False}
        raise StepError(f"cannot delete {op.path!r}: it does not exist (set missing_ok: true)")
    if path.is_dir() and not path.is_symlink():
        if not op.recursive:
            raise StepError(
                f"{op.path!r} is a directory; set recursive: true to delete it and its contents"
            )
        shutil.rmtree(path)
    else:
        path.unlink()
    return {"operation": "delete", "path": sandbox.relative(path), "deleted": True}


def _target(sandbox: Sandbox, source: Path, destination: str) -> Path:
    target = sandbox.resolve(destination, field="destination")
    if destination.endswith(("/", os.sep)) or (target.is_dir() and not source.is_dir()):
        target = sandbox.resolve(Path(target, source.name), field="destination")
    return target


def _check_overwrite(
    source: Path, target: Path, shown: str, overwrite: bool, sandbox: Sandbox
) -> None:
    if not target.exists() and not target.is_symlink():
        return
    if not overwrite:
        raise StepError(
            f"destination {sandbox.relative(target)!r} exists; set overwrite: true to replace it"
        )
    if source.is_dir() != target.is_dir():
        kinds = ("directory", "file") if source.is_dir() else ("file", "directory")
        raise StepError(f"cannot replace the {kinds[1]} {shown!r} with a {kinds[0]}")


def _require_exists(path: Path, shown: str, field: str) -> None:
    if not path.exists() and not path.is_symlink():
        raise StepError(f"{field} {shown!r} does not exist in the workspace")


# -- list -------------------------------------------------------------------------------


def _list(op: ListOp, sandbox: Sandbox) -> list[dict[str, Any]]:
    base = sandbox.resolve(op.path, field="path")
    if not base.is_dir():
        what = "does not exist" if not base.exists() else "is not a directory"
        raise StepError(f"cannot list {op.path!r}: it {what}")
    regex = re.compile(op.regex) if op.regex is not None else None
    entries: list[dict[str, Any]] = []
    for path in _walk(base, op.recursive):
        real = _inside(path, sandbox)
        if real is None:
            continue
        relative = path.relative_to(base).as_posix()
        if op.pattern is not None:
            subject = relative if "/" in op.pattern else path.name
            if not fnmatch.fnmatchcase(subject, op.pattern):
                continue
        if regex is not None and regex.search(path.name) is None:
            continue
        is_dir = real.is_dir()
        entries.append(
            {
                "path": sandbox.relative(path),
                "size": None if is_dir else real.stat().st_size,
                "is_dir": is_dir,
            }
        )
    return sorted(entries, key=lambda entry: str(entry["path"]))


def _walk(base: Path, recursive: bool) -> list[Path]:
    if not recursive:
        return list(base.iterdir())
    found: list[Path] = []
    for directory, dirnames, filenames in os.walk(base, followlinks=False):
        found.extend(Path(directory, name) for name in (*dirnames, *filenames))
    return found


def _inside(path: Path, sandbox: Sandbox) -> Path | None:
    """``path``'s real location if it stays in the sandbox (and exists), else None."""
    if not path.is_symlink():
        return path
    real = Path(os.path.realpath(path))
    if not real.exists() or (real != sandbox.root and sandbox.root not in real.parents):
        return None
    return real


# -- validate ---------------------------------------------------------------------------


def _validate(op: ValidateOp, sandbox: Sandbox) -> dict[str, Any]:
    checked: list[tuple[str, list[str]]] = []
    for index, check in enumerate(op.files):
        path = sandbox.resolve(check.path, field=f"files[{index}].path")
        checked.append((check.path, _check(path, check)))
    results = [{"path": path, "valid": not errors, "errors": errors} for path, errors in checked]
    failures = [(path, errors) for path, errors in checked if errors]
    if failures and op.fail_on_invalid:
        listed = "; ".join(f"{path}: {', '.join(errors)}" for path, errors in failures)
        raise StepError(
            f"{len(failures)} of {len(results)} file check(s) failed: {listed}. "
            "Fix the files, or set fail_on_invalid: false to get the report as the result"
        )
    return {"valid": not failures, "results": results}


def _check(path: Path, check: FileCheck) -> list[str]:
    exists = path.exists()
    if not check.must_exist:
        return ["exists but must not"] if exists else []
    if not exists:
        return ["does not exist"]
    errors = []
    if check.must_be_file and not path.is_file():
        errors.append("is not a file")
    if check.must_be_dir and not path.is_dir():
        errors.append("is not a directory")
    if path.is_file():
        size = path.stat().st_size
        if check.min_size is not None and size < check.min_size:
            errors.append(f"is {size} bytes, below min_size {check.min_size}")
        if check.max_size is not None and size > check.max_size:
            errors.append(f"is {size} bytes, above max_size {check.max_size}")
    if check.must_be_readable and not os.access(path, os.R_OK):
        errors.append("is not readable")
    if check.must_be_writable and not os.access(path, os.W_OK):
        errors.append("is not writable")
    return errors


# -- convert ----------------------------------------------------------------------------


def _convert(op: ConvertOp, sandbox: Sandbox) -> dict[str, Any]:
    source = sandbox.resolve(op.source, field="source")
    if not source.is_file():
        raise StepError(f"source {op.source!r} is not a file in the workspace")
    target = sandbox.resolve(op.destination, field="destination")
    if target.is_dir():
        raise StepError(f"destination {op.destination!r} is a directory; name a file")
    if target.exists() and not op.overwrite:
        raise StepError(f"destination {op.destination!r} exists; set overwrite: true")
    source_format, target_format = op.source_format, op.target_format
    assert source_format is not None and target_format is not None  # checked by the model
    data = _read(source, source_format, op.source)
    write_text_atomic(target, _write(data, target_format, op.source))
    result: dict[str, Any] = {
        "operation": "convert",
        "source": sandbox.relative(source),
        "destination": sandbox.relative(target),
        "from": source_format,
        "to": target_format,
    }
    if isinstance(data, list):
        result["records"] = len(data)
    return result


def _read(source: Path, fmt: DataFormat, shown: str) -> Any:
    try:
        text = source.read_text(encoding="utf-8")
        match fmt:
            case "csv":
                return [dict(row) for row in csv.DictReader(io.StringIO(text))]
            case "json":
                return json.loads(text)
            case "yaml":
                return yaml.safe_load(text)
    except (ValueError, yaml.YAMLError, csv.Error) as error:
        raise StepError(f"{shown!r} is not valid {fmt}: {error}", cause=error) from error


def _write(data: Any, fmt: DataFormat, shown: str) -> str:
    match fmt:
        case "json":
            return json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
        case "yaml":
            return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        case "csv":
            if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
                raise StepError(
                    f"cannot write {shown!r} as CSV: it must be a list of objects, "
                    f"not {type(data).__name__}"
                )
            columns: dict[str, None] = {}
            for row in data:
                columns.update(dict.fromkeys(map(str, row)))
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
            writer.writeheader()
            for row in data:
                writer.writerow({str(key): _cell(value) for key, value in row.items()})
            return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)
