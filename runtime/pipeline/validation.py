"""Checks that need the whole pipeline: names, references, nesting, paths.

Run by every load after the models are built. Every problem found is kept
and raised together, each located at the YAML key it is about.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from runtime.errors import ConditionError, Problem, TemplateError, ValidationError
from runtime.pipeline.conditions import parse_condition
from runtime.pipeline.models import (
    ClaudeBatchStep,
    FilePart,
    ForLoopStep,
    GeminiInstructorStep,
    GeminiStep,
    PipelineStep,
    PreviousResponsePart,
    Prompt,
    SetVariableStep,
    StepSpec,
    WhileLoopStep,
    Workflow,
)
from runtime.pipeline.registry import STEP_REGISTRY, StepRegistry
from runtime.pipeline.templates import analyze, is_template, suggest
from runtime.pipeline.yaml_source import Marks, PathKey

if False:  # pragma: no cover - typing only, avoids an import cycle
    from runtime.pipeline.loader import LoadedPipeline

TOP_LEVEL_NAMES = frozenset(
    {"steps", "inputs", "global_vars", "state", "workflow", "run", "env", "loop", "error"}
)
# Fields whose strings are not templates (or are checked another way).
_NOT_TEMPLATED = frozenset({"name", "type", "condition", "break_condition", "continue_condition"})


@dataclass
class _Located:
    step: StepSpec
    path: PathKey
    loop_vars: frozenset[str]


@dataclass
class _Checker:
    workflow: Workflow
    marks: Marks
    base: PathKey
    directory: Path
    stack: tuple[Path, ...]
    registry: StepRegistry
    problems: list[Problem] = field(default_factory=list)

    def problem(self, path: Sequence[str | int], message: str) -> None:
        self.problems.append(self.marks.problem(path, message))

    def run(self) -> None:
        located = list(self.walk(self.workflow.steps, (*self.base, "steps"), frozenset()))
        names: dict[str, PathKey] = {}
        for item in located:
            earlier = names.get(item.step.name)
            if earlier is not None:
                line = self.marks.locate(earlier).line
                self.problem(
                    (*item.path, "name"),
                    f"duplicate step name '{item.step.name}' (first used on line {line}); "
                    "step names must be unique because templates refer to steps.<name>",
                )
            else:
                names[item.step.name] = item.path
        self.step_names = set(names)
        self.variables = set(self.workflow.variables) | {
            var
            for item in located
            if isinstance(item.step, SetVariableStep)
            for var in item.step.variables
        }
        for item in located:
            self.check_step(item)

    def walk(
        self, steps: Sequence[StepSpec], path: PathKey, loop_vars: frozenset[str]
    ) -> Iterator[_Located]:
        for index, step in enumerate(steps):
            here = (*path, index)
            yield _Located(step, here, loop_vars)
            inner_vars = loop_vars
            if isinstance(step, ForLoopStep):
                inner_vars = loop_vars | {step.iterator}
            for fname, kind in type(step).nested.items():
                value = getattr(step, fname, None)
                if not value:
                    continue
                if kind == "list":
                    yield from self.walk(value, (*here, fname), inner_vars)
                elif kind == "map":
                    for key, branch in value.items():
                        yield from self.walk(branch, (*here, fname, key), inner_vars)

    # -- one step ------------------------------------------------------------

    def check_step(self, item: _Located) -> None:
        step, path = item.step, item.path
        allowed = TOP_LEVEL_NAMES | item.loop_vars
        data = step.model_dump(by_alias=True, exclude_none=True)
        for fname in (*type(step).nested, *_NOT_TEMPLATED):
            data.pop(fname, None)
        if isinstance(step, PipelineStep):
            data.pop("pipeline", None)
        for sub, text in _strings(data, ()):
            self.check_template(text, (*path, *_yaml_sub(sub)), allowed)
        for fname in ("condition", "break_condition", "continue_condition"):
            value = getattr(step, fname, None)
            if value is not None:
                scope = allowed
                if isinstance(step, ForLoopStep) and fname != "condition":
                    scope = allowed | {step.iterator}  # evaluated inside an iteration
                self.check_condition(value, (*path, fname), step, scope)
        prompt = getattr(step, "prompt", None)
        if isinstance(prompt, Prompt):
            self.check_prompt(prompt, (*path, "prompt"), step)
        if isinstance(step, ClaudeBatchStep):
            for i, task in enumerate(step.tasks):
                if task.prompt is not None:
                    self.check_prompt(task.prompt, (*path, "tasks", i, "prompt"), step)
        if isinstance(step, (GeminiStep, GeminiInstructorStep)):
            for i, fn in enumerate(step.functions):
                if fn not in self.workflow.gemini_functions:
                    self.problem(
                        (*path, "functions", i),
                        f"step '{step.name}': unknown gemini function '{fn}'"
                        + suggest(fn, list(self.workflow.gemini_functions)),
                    )
        if step.output_to_file and not is_template(step.output_to_file):
            self.check_relative(
                step.output_to_file,
                (*path, "output_to_file"),
                f"step '{step.name}': output_to_file",
                "the output directory",
            )
        if isinstance(step, PipelineStep):
            self.check_nested(step, path)

    def check_template(self, text: str, path: PathKey, allowed: frozenset[str]) -> None:
        if not is_template(text):
            return
        shape = analyze(text)
        if shape.error is not None:
            self.problem(path, shape.error)
            return
        for ref in shape.paths:
            head = ref[0]
            if head in shape.local_names or head in allowed:
                if head == "steps" and len(ref) > 1:
                    self.check_step_ref(str(ref[1]), path)
                if head == "state" and len(ref) > 1 and ref[1] not in self.variables:
                    self.problem(
                        path,
                        f"state variable '{ref[1]}' is never set (declare it under "
                        "`variables:` or set it with a set_variable step)"
                        + suggest(str(ref[1]), self.variables),
                    )
                continue
            self.problem(
                path,
                f"template refers to unknown name '{head}'"
                + suggest(head, [*allowed, *shape.local_names]),
            )

    def check_step_ref(self, name: str, path: PathKey) -> None:
        if name not in self.step_names:
            self.problem(
                path, f"reference to unknown step '{name}'" + suggest(name, self.step_names)
            )

    def check_condition(
        self, value: Any, path: PathKey, step: StepSpec, allowed: frozenset[str]
    ) -> None:
        where = f"step '{step.name}' field '{path[-1]}'"
        try:
            condition = parse_condition(value, where=where)
        except ConditionError as exc:
            self.problem(path, exc.message.splitlines()[0])
            return
        known = allowed | self.step_names | self.variables | set(self.workflow.inputs)
        known |= set(self.workflow.global_vars)
        for ref in condition.references():
            head = str(ref[0])
            if head == "steps" and len(ref) > 1:
                self.check_step_ref(str(ref[1]), path)
            elif head not in known and not isinstance(step, WhileLoopStep):
                self.problem(
                    path,
                    f"{where}: unknown name '{head}' (not a step, variable or input)"
                    + suggest(head, known),
                )

    def check_prompt(self, prompt: Prompt, path: PathKey, step: StepSpec) -> None:
        for i, part in enumerate(prompt.parts):
            here = (*path, i)
            if isinstance(part, PreviousResponsePart) and part.step not in self.step_names:
                self.problem(
                    (*here, "step"),
                    f"step '{step.name}': previous_response names unknown step '{part.step}'"
                    + suggest(part.step, self.step_names),
                )
            if isinstance(part, FilePart) and not is_template(part.path):
                self.check_relative(
                    part.path,
                    (*here, "path"),
                    f"step '{step.name}': prompt file",
                    "the pipeline's directory or the workspace",
                )

    def check_relative(self, raw: str, path: PathKey, label: str, where: str) -> None:
        pure = PurePosixPath(raw)
        if pure.is_absolute() or ".." in pure.parts:
            self.problem(path, f"{label} {raw!r} must stay inside {where} (no absolute or '..')")

    def check_nested(self, step: PipelineStep, path: PathKey) -> None:
        if step.pipeline is not None:
            inner = _Checker(
                step.pipeline,
                self.marks,
                (*path, "pipeline"),
                self.directory,
                self.stack,
                self.registry,
            )
            inner.run()
            self.problems.extend(inner.problems)
            return
        if step.pipeline_file is None or is_template(step.pipeline_file):
            return
        from runtime.pipeline.steps.control import resolve_pipeline_file

        target = resolve_pipeline_file(step.pipeline_file, self.directory)
        where = (*path, "pipeline_file")
        if target in self.stack:
            chain = " → ".join(p.name for p in (*self.stack, target))
            self.problem(where, f"step '{step.name}': nested pipeline includes itself ({chain})")
            return
        if not target.exists():
            self.problem(where, f"step '{step.name}': pipeline_file {target} does not exist")
            return
        if len(self.stack) > step.config.max_depth:
            self.problem(where, f"step '{step.name}': nesting deeper than {step.config.max_depth}")
            return
        from runtime.pipeline.loader import load_pipeline

        try:
            child = load_pipeline(target, registry=self.registry, check=False)
            check_pipeline(child, registry=self.registry, stack=(*self.stack, target))
        except ValidationError as exc:
            self.problems.extend(exc.problems)


def _strings(value: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, index))


def _yaml_sub(sub: tuple[Any, ...]) -> tuple[Any, ...]:
    # Prompt dumps as {"parts": [...]} and file_ops as {"op": {...}}; YAML has neither level.
    return tuple(p for p in sub if p not in ("parts", "op"))


def check_pipeline(
    loaded: LoadedPipeline,
    *,
    registry: StepRegistry = STEP_REGISTRY,
    stack: tuple[Path, ...] | None = None,
) -> None:
    """Raise ValidationError with every cross-reference problem in ``loaded``."""
    checker = _Checker(
        loaded.workflow,
        loaded.marks,
        ("workflow",),
        loaded.directory,
        stack if stack is not None else (loaded.path,),
        registry,
    )
    try:
        checker.run()
    except TemplateError as exc:  # defensive: a template the parser itself rejects
        checker.problem(("workflow",), exc.message)
    if checker.problems:
        raise ValidationError(checker.problems)
