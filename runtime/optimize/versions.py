"""Every optimized version of a pipeline, kept under ``state_dir/optimized/``.

Each write-back is recorded as three files in the pipeline's own directory
(``<stem>-<hash of its path>``): ``NNNN.before.yaml`` (the exact bytes it
replaced), ``NNNN.after.yaml`` (what it wrote) and ``NNNN.json`` (version,
date, step, scores, dataset hash, optimizer and settings). ``rollback``
writes a version's *before* bytes back, byte for byte, and records the
rollback itself as a version, so history only ever grows.
``load_known_good`` loads a pipeline, or — if the file no longer loads — the
newest recorded version that does, with a notice saying so.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runtime.errors import ConfigError, ValidationError
from runtime.pipeline.workspace import write_text_atomic


@dataclass(frozen=True)
class Version:
    number: int
    date: str
    step: str
    kind: str  # optimized | rollback
    meta: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.number,
            "date": self.date,
            "step": self.step,
            "kind": self.kind,
            **self.meta,
        }


class PromptVersions:
    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "optimized"

    def folder(self, pipeline: Path) -> Path:
        resolved = pipeline.resolve()
        digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:10]
        return self.root / f"{resolved.stem}-{digest}"

    def record(
        self,
        pipeline: Path,
        step: str,
        before: bytes,
        after: bytes,
        meta: dict[str, Any] | None = None,
        *,
        kind: str = "optimized",
    ) -> Version:
        folder = self.folder(pipeline)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        number = len(self.history(pipeline)) + 1
        date = datetime.now(UTC).isoformat(timespec="seconds")
        (folder / f"{number:04d}.before.yaml").write_bytes(before)
        (folder / f"{number:04d}.after.yaml").write_bytes(after)
        info = {"version": number, "date": date, "step": step, "kind": kind, **(meta or {})}
        info["pipeline"] = str(pipeline.resolve())
        (folder / f"{number:04d}.json").write_text(json.dumps(info, indent=2) + "\n")
        return self._version(info)

    def history(self, pipeline: Path) -> list[Version]:
        folder = self.folder(pipeline)
        if not folder.is_dir():
            return []
        return [
            self._version(json.loads(path.read_text()))
            for path in sorted(folder.glob("[0-9][0-9][0-9][0-9].json"))
        ]

    def get(self, pipeline: Path, number: int | None = None) -> Version:
        versions = self.history(pipeline)
        if not versions:
            raise ConfigError(f"{pipeline} has no optimized versions yet; run `elx optimize` first")
        if number is None:
            return versions[-1]
        for version in versions:
            if version.number == number:
                return version
        known = ", ".join(str(v.number) for v in versions)
        raise ConfigError(f"{pipeline} has no version {number} (versions: {known})")

    def diff(self, pipeline: Path, number: int | None = None) -> str:
        """What a version changed in the file, as a unified diff."""
        version = self.get(pipeline, number)
        folder = self.folder(pipeline)
        before = (folder / f"{version.number:04d}.before.yaml").read_text().splitlines(True)
        after = (folder / f"{version.number:04d}.after.yaml").read_text().splitlines(True)
        return "".join(
            difflib.unified_diff(
                before,
                after,
                f"{pipeline.name} (before version {version.number})",
                f"{pipeline.name} (version {version.number})",
            )
        )

    def rollback(self, pipeline: Path, to: int | None = None) -> Version:
        """Put the file back as it was before version ``to`` (default: the latest)."""
        version = self.get(pipeline, to)
        folder = self.folder(pipeline)
        restored = (folder / f"{version.number:04d}.before.yaml").read_bytes()
        current = pipeline.read_bytes()
        write_text_atomic(pipeline, restored.decode("utf-8"))
        return self.record(
            pipeline,
            version.step,
            current,
            restored,
            {"rolled_back": version.number},
            kind="rollback",
        )

    def load_known_good(self, pipeline: Path) -> tuple[Any, str | None]:
        """The pipeline as loaded, or its newest recorded version that loads (with a notice)."""
        from runtime.pipeline.loader import load_pipeline

        try:
            return load_pipeline(pipeline), None
        except ValidationError as problem:
            folder = self.folder(pipeline)
            for version in reversed(self.history(pipeline)):
                for side in ("after", "before"):
                    saved = folder / f"{version.number:04d}.{side}.yaml"
                    candidate = pipeline.with_name(f".{pipeline.stem}.known-good.yaml")
                    candidate.write_bytes(saved.read_bytes())
                    try:
                        loaded = load_pipeline(candidate)
                    except ValidationError:
                        continue
                    notice = (
                        f"{pipeline} does not load ({problem}); using its last known good "
                        f"version {version.number} ({side})"
                    )
                    return loaded, notice
            raise

    @staticmethod
    def _version(info: dict[str, Any]) -> Version:
        meta = {k: v for k, v in info.items() if k not in ("version", "date", "step", "kind")}
        return Version(
            int(info["version"]),
            str(info["date"]),
            str(info["step"]),
            str(info.get("kind", "optimized")),
            meta,
        )
