"""What to run when a job fails: a plan per failure class, and the fallback pipeline itself.

``plan_fallback`` is pure policy: from the failed job's error (its ``kind``,
``provider``) and what is available now, it picks one of

========================  ======================================================
failure                   fallback
========================  ======================================================
``max_turns_exceeded``    ``simple``: one step, one turn
``tool_not_allowed``      ``no_tools``: the same pipeline with every tool list removed
provider errors, breaker  ``alternative_provider``: the same pipeline on a healthy
                          provider other than the one that failed
``timeout``               ``short``: one step, the request cut short, a tight budget
``crash_loop``            ``declared``: the pipeline's own ``fallback:``, else ``simple``
========================  ======================================================

and ``None`` for failures a fallback cannot help (bad input, cancelled, over
budget). ``build_fallback`` makes the pipeline as a validated ``Workflow``
object, writes it to the state directory for inspection and loads it back
through the normal loader, so it is checked like any file (never a YAML string
pasted together).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from runtime.errors import FailureKind
from runtime.pipeline.loader import LoadedPipeline, load_pipeline
from runtime.pipeline.models import Budget, StepSpec, Workflow
from runtime.pipeline.registry import STEP_REGISTRY

PROVIDER_FAILURES = frozenset(
    {
        FailureKind.RATE_LIMITED,
        FailureKind.OVERLOADED,
        FailureKind.UNAVAILABLE,
        FailureKind.PROVIDER_ERROR,
        FailureKind.AUTH,
    }
)
SHORT_PROMPT_CHARS = 2000
SHORT_BUDGET = Budget(max_tokens=4000)


@dataclass(frozen=True)
class FallbackPlan:
    kind: str  # simple | no_tools | alternative_provider | short | declared
    failure: str
    reason: str
    provider: str | None = None  # alternative_provider: the provider to use instead

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "failure": self.failure,
            "reason": self.reason,
            "provider": self.provider,
        }


def plan_fallback(
    error: Mapping[str, Any] | None,
    workflow: Workflow,
    *,
    healthy: Sequence[str],
) -> FallbackPlan | None:
    """The fallback for a job that failed with ``error``; ``healthy`` lists usable providers."""
    if not error:
        return None
    raw = str(error.get("kind", ""))
    try:
        kind = FailureKind(raw)
    except ValueError:
        kind = FailureKind.CRASH_LOOP if raw == "crash" else None  # type: ignore[assignment]
    if kind is FailureKind.MAX_TURNS_EXCEEDED:
        return FallbackPlan("simple", raw, "it ran out of turns; one step, one turn")
    if kind is FailureKind.TOOL_NOT_ALLOWED:
        return FallbackPlan("no_tools", raw, "a step used a tool it may not; no tools at all")
    if kind in PROVIDER_FAILURES:
        failed = str(error.get("provider") or "")
        others = [p for p in healthy if p != failed]
        if not others:
            return None
        return FallbackPlan(
            "alternative_provider",
            raw,
            f"{failed or 'its provider'} failed ({raw}); the same pipeline on {others[0]}",
            provider=others[0],
        )
    if kind is FailureKind.TIMEOUT:
        return FallbackPlan(
            "short",
            raw,
            f"it timed out; a shorter prompt with a {SHORT_BUDGET.max_tokens}-token budget",
        )
    if kind is FailureKind.CRASH_LOOP:
        if workflow.fallback:
            return FallbackPlan(
                "declared", raw, f"it crashed repeatedly; its declared fallback {workflow.fallback}"
            )
        return FallbackPlan("simple", raw, "it crashed repeatedly; one step, one turn")
    return None


def build_fallback(
    plan: FallbackPlan, original: LoadedPipeline, directory: Path, tag: str = ""
) -> LoadedPipeline:
    """The fallback pipeline for ``plan``, written to ``directory`` and loaded back.

    The file is ``[<tag>-]<name>.yaml`` (the agent tags it with the failed job's id).
    """
    if plan.kind == "declared":
        assert original.workflow.fallback is not None
        return load_pipeline(original.directory / original.workflow.fallback)
    workflow = original.workflow
    if plan.kind == "no_tools":
        fallback = _rename(
            workflow, "no_tools", steps=tuple(_without_tools(s) for s in workflow.steps)
        )
    elif plan.kind == "alternative_provider":
        assert plan.provider is not None
        steps = tuple(_on_provider(s, plan.provider) for s in workflow.steps)
        fallback = _rename(workflow, f"on_{plan.provider}", steps=steps)
    elif plan.kind == "short":
        fallback = _one_step(
            workflow,
            "short",
            "Answer briefly and directly.\n\n"
            f"{{{{ inputs.request | truncate({SHORT_PROMPT_CHARS}) }}}}",
            budget=SHORT_BUDGET,
        )
    else:
        fallback = _one_step(workflow, "simple", "{{ inputs.request }}")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"{tag + '-' if tag else ''}{fallback.name}.yaml"
    dumped = fallback.model_dump(
        mode="json", exclude_none=True, exclude_defaults=True, by_alias=True, serialize_as_any=True
    )
    document = {"workflow": dumped}
    header = (
        f"# Generated by Elexirion as the '{plan.kind}' fallback of {original.path}\n"
        f"# because: {plan.reason}\n"
    )
    path.write_text(header + yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return load_pipeline(path)


def _rename(workflow: Workflow, suffix: str, **changes: Any) -> Workflow:
    return workflow.model_copy(
        update={"name": f"{workflow.name}_{suffix}", "fallback": None, **changes}
    )


def _without_tools(step: StepSpec) -> StepSpec:
    changes: dict[str, Any] = {}
    for name in ("allowed_tools", "disallowed_tools", "tools"):
        if getattr(step, name, None) is not None:
            changes[name] = None
    options = getattr(step, "claude_options", None)
    if options is not None and getattr(options, "allowed_tools", None) is not None:
        changes["claude_options"] = options.model_copy(
            update={"allowed_tools": None, "disallowed_tools": None}
        )
    return step.model_copy(update=changes) if changes else step


def _on_provider(step: StepSpec, provider: str) -> StepSpec:
    if getattr(step, "llm", False):
        return step.model_copy(update={"provider": (provider,)})
    return step


def _one_step(
    workflow: Workflow, suffix: str, prompt: str, budget: Budget | None = None
) -> Workflow:
    step_type = STEP_REGISTRY.get("claude")
    assert step_type is not None
    step = step_type.model.model_validate(
        {"name": "answer", "type": "claude", "prompt": prompt, "claude_options": {"max_turns": 1}}
    )
    return Workflow.model_validate(
        {
            "name": f"{workflow.name}_{suffix}",
            "description": f"fallback of {workflow.name}: one step",
            "inputs": {k: v.model_dump(exclude_none=True) for k, v in workflow.inputs.items()},
            "budget": budget.model_dump(exclude_none=True) if budget else None,
            "steps": [step],
        }
    )
