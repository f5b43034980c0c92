"""Control steps: for_loop (sequential or parallel), while_loop, switch and nested pipelines.

Bodies run through ``execute_steps`` in child scopes, so every inner step is
checkpointed under a path such as ``loop[3]/inner`` and a resumed run skips
iterations that finished.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from runtime.errors import (
    BudgetExceeded,
    Cancelled,
    ElexirionError,
    FailureKind,
    LoopLimitReached,
    StepError,
    ValidationError,
)
from runtime.pipeline.conditions import evaluate_expression
from runtime.pipeline.context import Run, Scope, StepContext, StepStatus
from runtime.pipeline.loader import LoadedPipeline, load_pipeline
from runtime.pipeline.models import (
    ForLoopStep,
    OutputMapping,
    PipelineStep,
    StepSpec,
    SwitchStep,
    WhileLoopStep,
)
from runtime.pipeline.registry import StepType
from runtime.pipeline.templates import is_template, suggest
from runtime.pipeline.workspace import Sandbox


def resolve_source(ctx: StepContext, source: Any, *, field: str) -> Any:
    """Data named by a loop's ``data_source`` or a transform's ``input_source``.

    Accepted forms: a YAML list or mapping; a template (``{{ steps.x.result.items }}``,
    giving the native value); ``previous_response:<step>[.path|:path]``;
    ``<step>:<path>``; ``<name>`` (a state variable, a loop variable, else a step).
    """
    if not isinstance(source, str):
        return ctx.render(source)
    if is_template(source):
        return ctx.render(source)
    text = source.strip()
    name, _, path = text.partition(":")
    if name == "previous_response" and path:
        name, _, rest = path.partition(":")
        if not rest and "." in name:
            name, _, rest = name.partition(".")
        return _from_step(ctx, name, rest, field)
    if name == "context" and path:
        return _walk(ctx.names(), path, ctx, field, "context")
    loop = ctx.scope.loop or {}
    if name in loop and name != "iterator":
        return _walk(loop[name], path, ctx, field, name) if path else loop[name]
    state = ctx.names()["state"]
    if not path and name in state:
        return state[name]
    return _from_step(ctx, name, path, field)


def _from_step(ctx: StepContext, name: str, path: str, field: str) -> Any:
    record = ctx.scope.lookup(name)
    if record is None:
        candidates = ctx.scope.visible_names() + list(ctx.names()["state"])
        raise StepError(
            f"step '{ctx.step.name}' {field}: no step or variable named '{name}' has a value "
            "yet" + suggest(name, candidates),
            step=ctx.path,
        )
    if not path:
        return record.result
    from runtime.pipeline.context import StepView

    return _walk(StepView(record), path, ctx, field, name)


def _walk(value: Any, path: str, ctx: StepContext, field: str, origin: str) -> Any:
    current = value
    for key in [p for p in path.replace(":", ".").split(".") if p]:
        if isinstance(current, Mapping) and key in current:
            current = current[key]
        elif isinstance(current, (list, tuple)) and key.isdigit() and int(key) < len(current):
            current = current[int(key)]
        else:
            keys = [str(k) for k in current] if isinstance(current, Mapping) else []
            raise StepError(
                f"step '{ctx.step.name}' {field}: '{origin}' has no field '{key}'"
                + suggest(key, keys),
                step=ctx.path,
            )
    return current


# ---------------------------------------------------------------------------
# for_loop


def run_for_loop(step: ForLoopStep, ctx: StepContext) -> Any:
    items = resolve_source(ctx, step.data_source, field="data_source")
    if isinstance(items, Mapping):
        items = [{"key": k, "value": v} for k, v in items.items()]
    if not isinstance(items, (list, tuple)):
        raise StepError(
            f"step '{step.name}': data_source must give a list, got {type(items).__name__}",
            step=ctx.path,
        )
    if len(items) > step.max_iterations:
        raise LoopLimitReached(
            f"step '{step.name}': {len(items)} items exceed max_iterations {step.max_iterations}",
            step=ctx.path,
        )
    total = len(items)
    parent_loop = ctx.scope.loop
    level = (parent_loop or {}).get("level", -1) + 1

    def scope_for(index: int) -> Scope:
        item = items[index]
        loop = {
            "iterator": step.iterator,
            step.iterator: item,
            "item": item,
            "index": index,
            "first": index == 0,
            "last": index == total - 1,
            "total": total,
            "level": level,
            "parent": parent_loop,
        }
        return ctx.scope.child(f"{ctx.path}[{index}]/", loop=loop)

    iterations: list[dict[str, Any] | None] = [None] * total
    if step.parallel and total > 1:
        _parallel(step, ctx, scope_for, iterations)
    else:
        for index in range(total):
            ctx.run.check_cancelled()
            scope = scope_for(index)
            if step.continue_condition is not None and _holds(
                step.continue_condition, scope, step, "continue_condition"
            ):
                iterations[index] = {"index": index, "item": items[index], "skipped": True}
                continue
            iterations[index] = _iteration(step, ctx, scope, index, items[index])
            if step.break_condition is not None and _holds(
                step.break_condition, scope, step, "break_condition"
            ):
                break
    done = [it for it in iterations if it is not None]
    return {
        "iterations": done,
        "results": [it.get("result") for it in done],
        "total_items": total,
        "completed_items": sum(1 for it in done if it.get("success")),
        "success": all(it.get("success", True) for it in done),
    }


def _holds(condition: Any, scope: Scope, step: StepSpec, field: str) -> bool:
    from runtime.pipeline.conditions import parse_condition

    where = f"step '{step.name}' field '{field}'"
    return parse_condition(condition, where=where).evaluate(scope.names())


def _iteration(
    step: ForLoopStep, ctx: StepContext, scope: Scope, index: int, item: Any
) -> dict[str, Any]:
    from runtime.pipeline.executor import error_json, execute_steps

    try:
        execute_steps(step.steps, scope)
    except (Cancelled, BudgetExceeded):
        raise
    except ElexirionError as exc:
        if step.break_on_error:
            raise
        _promote(ctx.scope, scope, index)
        return {"index": index, "item": item, "success": False, "error": error_json(exc)}
    _promote(ctx.scope, scope, index)
    results = {name: rec.result for name, rec in scope.results.items()}
    last = scope.results.get(step.steps[-1].name)
    return {
        "index": index,
        "item": item,
        "success": True,
        "results": results,
        "result": last.result if last is not None else None,
    }


def _promote(outer: Scope, inner: Scope, order: int = 0) -> None:
    """Inner results stay visible after the body, as in pipeline_ex.

    The highest iteration wins, also when parallel iterations finish out of order.
    """
    with outer.run.lock:
        for record in inner.results.values():
            if outer.ranks.get(record.name, -1) <= order:
                outer.ranks[record.name] = order
                outer.results[record.name] = record


def _parallel(
    step: ForLoopStep,
    ctx: StepContext,
    scope_for: Any,
    iterations: list[dict[str, Any] | None],
) -> None:
    total = len(iterations)
    stop = False
    with ThreadPoolExecutor(max_workers=min(step.max_parallel, total)) as pool:
        pending: dict[Future[dict[str, Any]], tuple[int, Scope]] = {}
        next_index = 0
        while next_index < total or pending:
            while not stop and next_index < total and len(pending) < step.max_parallel:
                scope = scope_for(next_index)
                future = pool.submit(
                    _iteration,
                    step,
                    ctx,
                    scope,
                    next_index,
                    scope.loop["item"] if scope.loop else None,
                )
                pending[future] = (next_index, scope)
                next_index += 1
            if not pending:
                break
            # FIRST_COMPLETED, not FIRST_EXCEPTION: the latter waits for the whole window
            # when nothing fails, so one slow item would hold back every later one.
            done, _ = wait(list(pending), timeout=_bound(ctx), return_when=FIRST_COMPLETED)
            if not done:
                raise StepError(
                    f"step '{step.name}': parallel iterations did not finish in time",
                    step=ctx.path,
                    kind=FailureKind.TIMEOUT,
                )
            for future in done:
                index, scope = pending.pop(future)
                error = future.exception()
                if error is not None:
                    ctx.run.root.cancel_event.set() if isinstance(error, Cancelled) else None
                    for other in pending:
                        other.cancel()
                    raise error
                iterations[index] = future.result()
                if step.break_condition is not None and _holds(
                    step.break_condition, scope, step, "break_condition"
                ):
                    stop = True


def _bound(ctx: StepContext) -> float:
    left = ctx.remaining()
    return left if left is not None else 24 * 3600.0


# ---------------------------------------------------------------------------
# while_loop and switch


def run_while_loop(step: WhileLoopStep, ctx: StepContext) -> Any:
    iteration = 0
    last: Any = None
    while True:
        ctx.run.check_cancelled()
        loop = {
            "iterator": None,
            "iteration": iteration,
            "index": iteration,
            "count": iteration,
            "first": iteration == 0,
        }
        scope = ctx.scope.child(f"{ctx.path}[{iteration}]/", loop=loop)
        if not _holds(step.condition, scope, step, "condition"):
            return {"iterations": iteration, "condition_met": False, "result": last}
        if iteration >= step.max_iterations:
            if step.on_max == "stop":
                return {
                    "iterations": iteration,
                    "condition_met": True,
                    "max_iterations_reached": True,
                    "result": last,
                }
            raise LoopLimitReached(
                f"step '{step.name}': reached max_iterations ({step.max_iterations}) while "
                f"its condition {str(step.condition)!r} still held; raise max_iterations, fix "
                "the condition, or set on_max: stop",
                step=ctx.path,
            )
        from runtime.pipeline.executor import execute_steps

        execute_steps(step.steps, scope)
        _promote(ctx.scope, scope, iteration)
        record = scope.results.get(step.steps[-1].name)
        last = record.result if record is not None else None
        iteration += 1


def _case_key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def run_switch(step: SwitchStep, ctx: StepContext) -> Any:
    from runtime.pipeline.executor import execute_steps

    if is_template(step.selector):
        value = ctx.render(step.selector)
    else:
        value = evaluate_expression(step.selector, ctx.names())
    key = _case_key(value)
    branch = step.cases.get(key)
    chosen = key
    if branch is None:
        if not step.default:
            raise StepError(
                f"step '{step.name}': no case for value {value!r} and no default "
                f"(cases: {', '.join(step.cases)})" + suggest(key, list(step.cases)),
                step=ctx.path,
            )
        branch, chosen = step.default, "default"
    scope = ctx.scope.child(f"{ctx.path}/{chosen}/")
    execute_steps(branch, scope)
    _promote(ctx.scope, scope)
    last = scope.results.get(branch[-1].name)
    return {
        "case": chosen,
        "value": value,
        "results": {n: r.result for n, r in scope.results.items()},
        "result": last.result if last is not None and last.status is StepStatus.COMPLETED else None,
    }


# ---------------------------------------------------------------------------
# Nested pipelines


def _child_pipeline(step: PipelineStep, ctx: StepContext) -> LoadedPipeline:
    parent = ctx.run.pipeline
    if step.pipeline is not None:
        return LoadedPipeline(step.pipeline, parent.path, parent.digest, parent.marks)
    if step.pipeline_ref is not None:
        raise StepError(
            f"step '{step.name}': pipeline_ref is not supported; use pipeline_file",
            step=ctx.path,
            kind=FailureKind.CONFIG,
        )
    assert step.pipeline_file is not None
    target = resolve_pipeline_file(ctx.render_text(step.pipeline_file), parent.directory)
    stack = ctx.run.file_stack
    if target in stack:
        chain = " → ".join(p.name for p in (*stack, target))
        raise StepError(
            f"step '{step.name}': nested pipeline includes itself ({chain})",
            step=ctx.path,
            kind=FailureKind.CONFIG,
        )
    try:
        return load_pipeline(target)
    except ValidationError as exc:
        raise StepError(
            f"step '{step.name}': nested pipeline {target} is invalid:\n{exc.message}",
            step=ctx.path,
            kind=FailureKind.CONFIG,
        ) from None


def resolve_pipeline_file(name: str, base: Path) -> Path:
    """Relative to the including pipeline's directory first, then the working directory."""
    candidate = Path(name).expanduser()
    if candidate.is_absolute():
        return candidate.resolve()
    local = (base / candidate).resolve()
    if local.exists():
        return local
    cwd = candidate.resolve()
    return cwd if cwd.exists() else local


def run_pipeline_step(step: PipelineStep, ctx: StepContext) -> Any:
    from runtime.pipeline.executor import coerce_inputs, execute_steps

    run = ctx.run
    limit = min(step.config.max_depth, run.settings.max_nesting_depth)
    if run.depth + 1 > limit:
        raise StepError(
            f"step '{step.name}': nesting depth {run.depth + 1} exceeds the limit of {limit}",
            step=ctx.path,
            kind=FailureKind.CONFIG,
        )
    child_pipeline = _child_pipeline(step, ctx)
    workflow = child_pipeline.workflow
    inputs = ctx.render(dict(step.inputs))
    if step.config.inherit_context and not step.inputs:
        inputs = dict(run.inputs)
    inputs = coerce_inputs(workflow.inputs, inputs, file=str(child_pipeline.path))
    global_vars = dict(workflow.global_vars)
    if step.config.inherit_context:
        global_vars = {**run.global_vars, **global_vars}
    workspace = run.workspace
    if step.config.workspace_dir:
        workspace = Sandbox(run.workspace.resolve(step.config.workspace_dir, field="workspace_dir"))
    child = Run(
        id=run.id,
        pipeline=child_pipeline,
        inputs=inputs,
        gateway=run.gateway,
        settings=run.settings,
        clock=run.clock,
        workspace=workspace,
        outputs=run.outputs,
        store=run.store,
        events=None,
        started_at=run.started_at,
        global_vars=global_vars,
        state=dict(workflow.variables),
        parent=run,
        depth=run.depth + 1,
        file_stack=(*run.file_stack, child_pipeline.path),
        checkpoint_prefix=f"{run.checkpoint_prefix}{ctx.path}>",
    )
    scope = Scope(run=child)
    try:
        execute_steps(workflow.steps, scope)
    finally:
        ctx.meta["nested_usage"] = {
            "calls": child.usage.calls,
            "tokens": child.usage.tokens,
            "cost_usd": round(child.usage.cost_usd, 6),
        }
    return _outputs(step, ctx, scope)


def _outputs(step: PipelineStep, ctx: StepContext, scope: Scope) -> Any:
    if not step.outputs:
        return {name: rec.result for name, rec in scope.results.items()}
    result: dict[str, Any] = {}
    for output in step.outputs:
        path, alias = (
            (output.path, output.as_) if isinstance(output, OutputMapping) else (output, None)
        )
        head, _, rest = path.partition(".")
        record = scope.results.get(head)
        if record is None:
            raise StepError(
                f"step '{step.name}': output '{path}' names no step of the nested pipeline"
                + suggest(head, list(scope.results)),
                step=ctx.path,
            )
        from runtime.pipeline.context import StepView

        value = _walk(StepView(record), rest, ctx, "outputs", head) if rest else record.result
        result[alias or path] = value
    return result


def control_step_types() -> list[StepType]:
    return [
        StepType(ForLoopStep, run_for_loop, "iterate a list, sequentially or in parallel"),
        StepType(WhileLoopStep, run_while_loop, "repeat while a condition holds"),
        StepType(SwitchStep, run_switch, "run the branch matching a value"),
        StepType(PipelineStep, run_pipeline_step, "run another pipeline as a step"),
    ]
