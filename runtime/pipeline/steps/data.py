"""Data steps: set_variable, data_transform, file_ops and test_echo."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError as PydanticValidationError

from runtime.errors import FailureKind, StepError
from runtime.pipeline.conditions import parse_condition
from runtime.pipeline.context import Scope, StepContext
from runtime.pipeline.file_operations import FileOp, run_file_op
from runtime.pipeline.models import DataTransformStep, FileOpsStep, SetVariableStep, TestEchoStep
from runtime.pipeline.registry import StepType
from runtime.pipeline.steps.control import resolve_source
from runtime.pipeline.transforms import Predicate, apply_operations


def apply_variables(scope: Scope, kind: str, values: Mapping[str, Any]) -> None:
    """global/session write the run's state; local/loop write the enclosing body only."""
    if kind in ("local", "loop") and scope.parent is not None:
        with scope.run.lock:
            scope.local_state.update(values)
        return
    with scope.run.lock:
        scope.run.state.update(values)


def run_set_variable(step: SetVariableStep, ctx: StepContext) -> Any:
    values = {name: ctx.render(value) for name, value in step.variables.items()}
    apply_variables(ctx.scope, step.scope, values)
    return {
        "variables_set": sorted(values),
        "scope": step.scope,
        "variable_count": len(values),
        "values": values,
    }


def _predicate(ctx: StepContext) -> Any:
    def factory(expression: str) -> Predicate:
        condition = parse_condition(expression, where=f"step '{ctx.step.name}' filter")
        base = ctx.names()

        def holds(item: Any) -> bool:
            names = dict(base)
            names["value"] = item
            names["item"] = item
            if isinstance(item, Mapping):
                # pipeline_ex filters name item fields bare: `status == 'done'`
                for key, field in item.items():
                    if isinstance(key, str) and key not in names:
                        names[key] = field
            return condition.evaluate(names)

        return holds

    return factory


def run_data_transform(step: DataTransformStep, ctx: StepContext) -> Any:
    data = resolve_source(ctx, step.input_source, field="input_source")
    if isinstance(data, str):
        stripped = data.strip()
        if stripped[:1] in ("[", "{"):
            with contextlib.suppress(ValueError):
                data = json.loads(stripped)
    result = apply_operations(
        data,
        step.operations,
        predicate_factory=_predicate(ctx),
        resolve_source=lambda ref: resolve_source(ctx, ref, field="right_source"),
        step=ctx.path,
    )
    if step.output_format == "string":
        result = result if isinstance(result, str) else json.dumps(result, default=str)
    elif step.output_format == "count":
        result = len(result) if hasattr(result, "__len__") else 1
    return {step.output_field or step.name: result}


_FILE_OP: TypeAdapter[Any] = TypeAdapter(FileOp)


def run_file_ops(step: FileOpsStep, ctx: StepContext) -> Any:
    raw = step.op.model_dump(by_alias=True, exclude_none=True)
    rendered = ctx.render(raw)
    try:
        op = _FILE_OP.validate_python(rendered) if rendered != raw else step.op
    except PydanticValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise StepError(
            f"step '{step.name}': after templates, {'.'.join(map(str, first['loc']))}: "
            f"{first['msg']}",
            step=ctx.path,
            kind=FailureKind.CONFIG,
        ) from None
    return run_file_op(op, ctx.run.workspace, step=ctx.path)


def run_test_echo(step: TestEchoStep, ctx: StepContext) -> Any:
    value = ctx.render(step.value if step.value is not None else "default_echo")
    if step.fail:
        message = ctx.render_text(step.message) if step.message else "test_echo failed as asked"
        raise StepError(f"step '{step.name}': {message}", step=ctx.path)
    return value


def data_step_types() -> list[StepType]:
    return [
        StepType(SetVariableStep, run_set_variable, "assign state variables"),
        StepType(DataTransformStep, run_data_transform, "filter, map, aggregate, join, sort"),
        StepType(FileOpsStep, run_file_ops, "file operations inside the workspace"),
        StepType(TestEchoStep, run_test_echo, "return a value (or fail) for tests"),
    ]
