"""Builds a prompt's text from its parts: static templates, files, earlier
results and session history, joined by newlines."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from runtime.errors import StepError
from runtime.pipeline.context import StepContext, StepStatus, StepView
from runtime.pipeline.models import (
    ClaudeContinuePart,
    FilePart,
    OptimizedPrompt,
    PreviousResponsePart,
    Prompt,
    SessionContextPart,
    StaticPart,
)
from runtime.pipeline.templates import suggest
from runtime.pipeline.workspace import Sandbox

MAX_FILE_BYTES = 2 * 1024 * 1024


def build_prompt(ctx: StepContext, prompt: Prompt | None) -> str:
    if prompt is None:
        return ""
    text = "\n".join(_part(ctx, part) for part in prompt.parts)
    optimized = getattr(ctx.step, "optimized", None)
    candidate = getattr(ctx.step, "candidate", None)
    if candidate is not None and getattr(ctx.step, "ab_fraction", 0.0) > 0:
        arm = ab_arm(ctx.run.root.id, ctx.path, ctx.step.ab_fraction)  # type: ignore[attr-defined]
        ctx.meta["arm"] = arm
        if arm == "candidate":
            optimized = candidate
    return with_optimized(optimized, text) if optimized is not None else text


def ab_arm(run_id: str, path: str, fraction: float) -> str:
    """``candidate`` for a stable ``fraction`` of runs (by a hash of the run and step)."""
    digest = hashlib.sha256(f"{run_id}/{path}".encode()).digest()
    share = int.from_bytes(digest[:8], "big") / 2**64
    return "candidate" if share < fraction else "current"


def with_optimized(optimized: OptimizedPrompt, text: str) -> str:
    """The promoted instructions first, then the chosen demonstrations, then the prompt."""
    parts = []
    if optimized.instructions:
        parts.append(optimized.instructions.strip())
    if optimized.demos:
        lines = ["Examples:"]
        for demo in optimized.demos:
            shown = "; ".join(f"{k}: {v}" for k, v in demo.inputs.items())
            lines.append(f"Input: {shown}\nAnswer: {demo.answer}")
        parts.append("\n\n".join(lines))
    parts.append(text)
    return "\n\n".join(parts)


def _part(ctx: StepContext, part: Any) -> str:
    if isinstance(part, StaticPart):
        return ctx.render_text(part.content)
    if isinstance(part, FilePart):
        return read_prompt_file(ctx, ctx.render_text(part.path))
    if isinstance(part, PreviousResponsePart):
        return previous_response(ctx, part)
    if isinstance(part, SessionContextPart):
        return format_turns(session_history(ctx, part.session, part.turns))
    if isinstance(part, ClaudeContinuePart):
        history = format_turns(session_history(ctx, part.session, 50))
        new = ctx.render_text(part.new_prompt)
        return f"{history}\n{new}" if history else new
    raise StepError(f"unsupported prompt part {type(part).__name__}", step=ctx.path)


def read_prompt_file(ctx: StepContext, path: str) -> str:
    """A prompt file must live in the pipeline's directory or the workspace."""
    roots = Sandbox.many([ctx.run.pipeline.directory, ctx.run.workspace.root])
    resolved = roots.resolve(path, field=f"step '{ctx.step.name}' prompt file")
    try:
        size = resolved.stat().st_size
        if size > MAX_FILE_BYTES:
            raise StepError(
                f"prompt file {path} is {size} bytes; the limit is {MAX_FILE_BYTES}",
                step=ctx.path,
            )
        return resolved.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StepError(
            f"step '{ctx.step.name}': prompt file {path} does not exist "
            f"(looked in {', '.join(str(r) for r in roots.roots)})",
            step=ctx.path,
        ) from None
    except IsADirectoryError:
        raise StepError(
            f"step '{ctx.step.name}': prompt file {path} is a directory", step=ctx.path
        ) from None
    except UnicodeDecodeError:
        raise StepError(
            f"step '{ctx.step.name}': prompt file {path} is not UTF-8 text", step=ctx.path
        ) from None


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(_plain(value), indent=2, ensure_ascii=False, default=str)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def previous_response(ctx: StepContext, part: PreviousResponsePart) -> str:
    record = ctx.scope.lookup(part.step)
    if record is None:
        raise StepError(
            f"step '{ctx.step.name}': previous_response names step '{part.step}', "
            "which has no result yet (it has not run)"
            + suggest(part.step, ctx.scope.visible_names()),
            step=ctx.path,
        )
    if record.status is StepStatus.SKIPPED and part.strict:
        raise StepError(
            f"step '{ctx.step.name}': previous_response step '{part.step}' was skipped "
            "(its condition was false); set strict: false to use an empty text instead",
            step=ctx.path,
        )
    value: Any = record.result
    if part.extract:
        value = extract_path(StepView(record), part.extract, strict=part.strict, ctx=ctx)
    text = as_text(value)
    if part.max_length is not None and len(text) > part.max_length:
        text = text[: part.max_length]
    return text


def extract_path(value: Any, path: str, *, strict: bool, ctx: StepContext) -> Any:
    """Walk a dot path (``a.b.0.c``) through maps and lists."""
    current = value
    walked: list[str] = []
    for key in path.split("."):
        if isinstance(current, str):
            parsed = _maybe_json(current)
            if parsed is not None:
                current = parsed
        found, current = _step_into(current, key)
        if not found:
            if not strict:
                return None
            available = list(current.keys()) if isinstance(current, Mapping) else []
            where = ".".join(walked) or "the result"
            raise StepError(
                f"step '{ctx.step.name}': field '{key}' not found in {where} of the previous "
                f"response" + suggest(key, [str(a) for a in available]),
                step=ctx.path,
            )
        walked.append(key)
    return current


def _step_into(current: Any, key: str) -> tuple[bool, Any]:
    if isinstance(current, Mapping):
        if key in current:
            return True, current[key]
        return False, current
    if isinstance(current, (list, tuple)) and key.lstrip("-").isdigit():
        index = int(key)
        if -len(current) <= index < len(current):
            return True, current[index]
    return False, current


def _maybe_json(text: str) -> Any:
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        return json.loads(stripped)
    except ValueError:
        return None


def session_history(ctx: StepContext, session: str, turns: int) -> list[tuple[str, str]]:
    store = ctx.run.root.store
    if store is None:
        return []
    name = ctx.render_text(session)
    return store.session_turns(name, turns * 2)


def format_turns(turns: list[tuple[str, str]]) -> str:
    return "\n".join(f"{'User' if role == 'user' else 'Assistant'}: {text}" for role, text in turns)
