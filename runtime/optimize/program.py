"""One LLM step of a pipeline as a DSPy program, and the examples it learns from.

``StepProgram.from_pipeline(loaded, "answer")`` reads the step once:

- its **inputs** are the pipeline inputs its prompt references
  (``{{ inputs.country }}``), in declaration order; a prompt that references
  none takes every declared input;
- its **instructions** are the prompt's static text, rendered with what is
  known before a run (``global_vars``, ``state`` from ``variables``,
  ``workflow.name``), each input shown as its field name in backticks — the
  way DSPy's adapters name fields (``What is the capital of `country`?``).
  Prompt files are read from the pipeline's directory; parts that only exist
  during a run (earlier results, sessions) cannot be optimized and say so;
- its **output** is one field, ``answer``;
- ``providers`` and ``model`` are the step's own (or the workflow defaults),
  so the optimizer can ask the provider the step will run on.

``signature()`` builds the ``dspy.Signature`` (inputs as ``InputField`` with
their declared descriptions, ``answer`` as ``OutputField``, the instructions
as its docstring) and ``module()`` a fresh ``dspy.Predict`` over it — the
student an optimizer compiles. DSPy is imported only by these two.

``Example`` is one record to learn from: the inputs and the expected answer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from runtime.config import canonical_provider
from runtime.errors import ConfigError, ElexirionError, TemplateError
from runtime.optimize.language_model import load_dspy
from runtime.pipeline.loader import LoadedPipeline
from runtime.pipeline.models import FilePart, LlmStepSpec, Prompt, StaticPart, StepSpec, Workflow
from runtime.pipeline.templates import is_template, referenced_paths, render_text

__all__ = ["OUTPUT_FIELD", "Example", "StepInput", "StepProgram"]

OUTPUT_FIELD = "answer"


@dataclass(frozen=True, slots=True)
class Example:
    """Inputs for a step and the answer wanted for them."""

    inputs: Mapping[str, Any]
    answer: Any

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", MappingProxyType(dict(self.inputs)))

    def to_json(self) -> dict[str, Any]:
        return {"inputs": dict(self.inputs), "answer": self.answer}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Example:
        inputs = data.get("inputs")
        if not isinstance(inputs, Mapping) or "answer" not in data:
            raise ConfigError(
                f"an example is {{inputs: {{...}}, answer: ...}}, got keys {sorted(data)}"
            )
        return cls(inputs, data["answer"])


@dataclass(frozen=True, slots=True)
class StepInput:
    """A pipeline input the step reads: a field of the program's signature."""

    name: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class StepProgram:
    """What the optimizer needs of one LLM step; builds the DSPy module on demand."""

    step: str
    instructions: str
    inputs: tuple[StepInput, ...]
    providers: tuple[str, ...] = ("mock",)
    model: str | None = None
    output: str = OUTPUT_FIELD

    def __post_init__(self) -> None:
        names = [item.name for item in self.inputs]
        if not names:
            raise ConfigError(f"step '{self.step}': a program needs at least one input field")
        bad = [name for name in names if not name.isidentifier() or name.startswith("_")]
        if bad:
            raise ConfigError(
                f"step '{self.step}': input names {bad} cannot be DSPy fields; "
                "rename them to letters, digits and '_' (not leading)"
            )
        if self.output in names:
            raise ConfigError(
                f"step '{self.step}': an input is named '{self.output}', the output field's "
                "name; rename the input"
            )
        if len(set(names)) != len(names):
            raise ConfigError(f"step '{self.step}': input fields repeat: {names}")
        if not self.providers:
            raise ConfigError(f"step '{self.step}': a program needs a provider")

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(item.name for item in self.inputs)

    @property
    def provider(self) -> str:
        """The provider asked first; the rest of ``providers`` are its fallbacks."""
        return self.providers[0]

    @classmethod
    def from_pipeline(cls, pipeline: LoadedPipeline, step: str) -> StepProgram:
        """The program for the LLM step named ``step`` (nested steps included)."""
        workflow = pipeline.workflow
        found = _find(workflow.steps, step)
        if not isinstance(found, LlmStepSpec) or found.prompt is None:
            llm = sorted(
                s.name for s in _walk(workflow.steps) if isinstance(s, LlmStepSpec) and s.prompt
            )
            what = "no step" if found is None else f"step '{step}' (type {found.type})"
            raise ConfigError(
                f"{pipeline.path}: {what} is not an LLM step with a prompt; "
                f"steps that can be optimized: {', '.join(llm) or 'none'}"
            )
        names = _input_names(found.prompt, workflow)
        if not names:
            raise ConfigError(
                f"{pipeline.path}: step '{step}' reads no pipeline inputs and the pipeline "
                "declares none; declare the inputs its examples vary (workflow.inputs) and "
                "use them in the prompt as {{ inputs.<name> }}"
            )
        inputs = tuple(
            StepInput(name, spec.description if (spec := workflow.inputs.get(name)) else "")
            for name in names
        )
        return cls(
            step=step,
            instructions=_instructions(pipeline, found, names),
            inputs=inputs,
            providers=_providers(found, workflow),
            model=_model(found, workflow),
        )

    # -- DSPy (imported here only) -----------------------------------------------------------

    def signature(self) -> Any:
        """``dspy.Signature``: the inputs, then ``answer``; the instructions as its docstring."""
        dspy = load_dspy()
        fields: dict[str, Any] = {
            item.name: dspy.InputField(desc=item.description)
            if item.description
            else dspy.InputField()
            for item in self.inputs
        }
        fields[self.output] = dspy.OutputField()
        return dspy.Signature(fields, self.instructions)

    def module(self) -> Any:
        """A fresh ``dspy.Predict`` over ``signature()``, with no demos."""
        return load_dspy().Predict(self.signature())

    def inputs_of(self, example: Example, where: str = "example") -> dict[str, Any]:
        """The example's values for this program's inputs; a missing one is an error."""
        missing = [name for name in self.input_names if name not in example.inputs]
        if missing:
            raise ConfigError(
                f"{where} lacks input{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                f"that step '{self.step}' reads (it has: {', '.join(example.inputs) or 'none'})"
            )
        return {name: example.inputs[name] for name in self.input_names}

    def dspy_example(self, example: Example, where: str = "example") -> Any:
        """``dspy.Example`` with the inputs marked as inputs and ``answer`` as the label."""
        dspy = load_dspy()
        values = self.inputs_of(example, where)
        return dspy.Example(**values, **{self.output: example.answer}).with_inputs(*values)


# -- reading the step ----------------------------------------------------------------------


def _walk(steps: Sequence[StepSpec]) -> Iterator[StepSpec]:
    for step in steps:
        yield step
        for name, kind in type(step).nested.items():
            value = getattr(step, name, None)
            if not value:
                continue
            if kind == "list":
                yield from _walk(value)
            elif kind == "map":
                for branch in value.values():
                    yield from _walk(branch)


def _find(steps: Sequence[StepSpec], name: str) -> StepSpec | None:
    return next((step for step in _walk(steps) if step.name == name), None)


def _texts(prompt: Prompt) -> Iterator[str]:
    for part in prompt.parts:
        if isinstance(part, StaticPart):
            yield part.content
        elif isinstance(part, FilePart):
            yield part.path


def _input_names(prompt: Prompt, workflow: Workflow) -> list[str]:
    referenced: list[str] = []
    for text in _texts(prompt):
        if not is_template(text):
            continue
        for path in referenced_paths(text):
            if len(path) >= 2 and path[0] == "inputs" and path[1] not in referenced:
                referenced.append(path[1])
    if not referenced:
        return list(workflow.inputs)
    declared = [name for name in workflow.inputs if name in referenced]
    return declared + [name for name in referenced if name not in declared]


def _instructions(pipeline: LoadedPipeline, step: LlmStepSpec, inputs: Sequence[str]) -> str:
    workflow = pipeline.workflow
    names = {
        "inputs": {name: f"`{name}`" for name in (*workflow.inputs, *inputs)},
        "global_vars": workflow.global_vars,
        "state": workflow.variables,
        "workflow": {"name": workflow.name, "description": workflow.description or ""},
    }
    assert step.prompt is not None
    texts: list[str] = []
    for index, part in enumerate(step.prompt.parts):
        where = f"step '{step.name}' prompt part {index + 1}"
        try:
            if isinstance(part, StaticPart):
                texts.append(render_text(part.content, names))
            elif isinstance(part, FilePart):
                texts.append(_read(pipeline, render_text(part.path, names), where))
            else:
                raise ConfigError(
                    f"{pipeline.path}: {where} is a {part.type} part, known only during a run; "
                    "the optimizer learns prompts built from pipeline inputs (static text "
                    "and files)"
                )
        except TemplateError as exc:
            raise ConfigError(
                f"{pipeline.path}: {where} reads something known only during a run ({exc}); "
                "the optimizer learns prompts built from pipeline inputs, global_vars and "
                "variables"
            ) from None
    text = "\n".join(texts).strip()
    if not text:
        raise ConfigError(f"{pipeline.path}: step '{step.name}' has an empty prompt")
    return text


def _read(pipeline: LoadedPipeline, path: str, where: str) -> str:
    from runtime.pipeline.workspace import Sandbox

    try:
        resolved = Sandbox(pipeline.directory).resolve(path, field=where)
        return resolved.read_text(encoding="utf-8")
    except ElexirionError as exc:
        raise ConfigError(f"{pipeline.path}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{pipeline.path}: {where}: prompt file {path} cannot be read "
            f"from the pipeline's directory: {exc}"
        ) from None


def _family(step: LlmStepSpec) -> str:
    if step.type.startswith("gemini"):
        return "gemini"
    if step.type == "llm":
        return "mock"
    return "claude"


def _providers(step: LlmStepSpec, workflow: Workflow) -> tuple[str, ...]:
    """The chain the step runs on: its own, else the workflow default, else its family's."""
    if step.provider:
        chain: tuple[str, ...] = step.provider
    elif workflow.defaults.provider:
        default = workflow.defaults.provider
        chain = (default,) if isinstance(default, str) else tuple(default)
    else:
        chain = (_family(step),)
    return tuple(canonical_provider(name) for name in chain)


def _model(step: LlmStepSpec, workflow: Workflow) -> str | None:
    """The model as written (an alias, maybe; ``Settings.resolve_model`` resolves it)."""
    if step.model:
        return step.model
    if step.type.startswith("gemini"):
        return workflow.defaults.gemini_model
    if step.type == "llm":
        return None
    options = getattr(step, "claude_options", None)
    own = getattr(options, "model", None)
    return own if isinstance(own, str) else workflow.defaults.claude_model
