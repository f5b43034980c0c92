"""Runs a pipeline: steps in order, each under its condition, retry, timeout,
output schema and error policy, with a checkpoint after every step.

``run_pipeline`` is the one entry point (the CLI's ``elx run`` and, later, the
pipeline worker actor call it). ``execute_steps`` is what control steps use
for their bodies. A run resumed with the id of an earlier run restores each
checkpointed step instead of running it again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from runtime.clock import SYSTEM_CLOCK, Clock
from runtime.config import Settings
from runtime.errors import (
    BudgetExceeded,
    Cancelled,
    ElexirionError,
    FailureKind,
    InputError,
    InvalidOutput,
    ProviderError,
    RateLimited,
    StepError,
)
from runtime.pipeline.context import (
    EventSink,
    Run,
    Scope,
    StepContext,
    StepRecord,
    StepStatus,
)
from runtime.pipeline.events import EventKind, RunEvent
from runtime.pipeline.loader import LoadedPipeline
from runtime.pipeline.models import (
    Budget,
    InputSpec,
    RetryPolicy,
    SetVariableStep,
    StepSpec,
    WhileLoopStep,
)
from runtime.pipeline.registry import STEP_REGISTRY
from runtime.pipeline.workspace import Sandbox, write_text_atomic
from runtime.providers.base import ProviderGateway
from runtime.store import Store


class RunStatus:
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BUDGET_EXCEEDED = "budget_exceeded"


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a finished run returns: status, every step's record, the final value."""

    run_id: str
    status: str
    steps: dict[str, dict[str, Any]]
    result: Any
    error: dict[str, Any] | None
    usage: dict[str, Any]
    providers: tuple[str, ...]
    notices: tuple[str, ...]
    duration_ms: float
    outputs_dir: str
    restored_steps: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.status == RunStatus.COMPLETED

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "result": self.result,
            "error": self.error,
            "steps": self.steps,
            "usage": self.usage,
            "providers": list(self.providers),
            "notices": list(self.notices),
            "duration_ms": round(self.duration_ms, 3),
            "outputs_dir": self.outputs_dir,
            "restored_steps": list(self.restored_steps),
        }


def error_json(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, ElexirionError):
        data: dict[str, Any] = {"kind": exc.kind.value, "message": exc.message}
        step = getattr(exc, "step", None)
        if step:
            data["step"] = step
        provider = getattr(exc, "provider", None) or getattr(
            getattr(exc, "cause", None), "provider", None
        )  # a step error keeps the provider of the call that failed it
        if provider:
            data["provider"] = provider
        arm = getattr(exc, "arm", None)
        if arm:
            data["arm"] = arm
        return data
    return {"kind": "crash", "message": f"{type(exc).__name__}: {exc}"}


# ---------------------------------------------------------------------------
# Inputs


_INPUT_TYPES: Mapping[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def coerce_inputs(
    declared: Mapping[str, InputSpec], given: Mapping[str, Any], *, file: str
) -> dict[str, Any]:
    """Check given inputs against the declared ones; fill defaults; coerce CLI strings."""
    result = dict(given)
    problems: list[str] = []
    for name, spec in declared.items():
        if name not in result:
            if spec.required:
                problems.append(f"missing required input '{name}' ({spec.type})")
            elif spec.default is not None:
                result[name] = spec.default
            continue
        value = result[name]
        expected = _INPUT_TYPES.get(spec.type)
        if expected is None:
            continue
        if isinstance(value, str) and spec.type != "string":
            value = _coerce_string(value, spec.type)
        ok = isinstance(value, expected) and not (
            spec.type in ("integer", "number") and isinstance(value, bool)
        )
        if not ok:
            problems.append(
                f"input '{name}' must be {spec.type}, got {type(value).__name__} {value!r}"
            )
        result[name] = value
    if problems:
        raise InputError(f"{file}: " + "; ".join(problems), name=None)
    return result


def _coerce_string(value: str, kind: str) -> Any:
    import json

    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
        if kind == "boolean":
            lowered = value.strip().lower()
            if lowered in ("true", "yes", "1"):
                return True
            if lowered in ("false", "no", "0"):
                return False
            return value
        return json.loads(value)
    except ValueError:
        return value


# ---------------------------------------------------------------------------
# Running


def run_pipeline(
    pipeline: LoadedPipeline,
    inputs: Mapping[str, Any] | None = None,
    *,
    gateway: ProviderGateway,
    settings: Settings,
    store: Store | None = None,
    run_id: str | None = None,
    resume: bool = False,
    events: EventSink | None = None,
    clock: Clock = SYSTEM_CLOCK,
    cancel: Any = None,
    budget: Budget | None = None,
) -> RunResult:
    """Run ``pipeline`` to the end and return its result; never raises for step failures.

    Configuration problems (bad inputs) raise ``InputError`` before anything runs.
    """
    workflow = pipeline.workflow
    started = time.perf_counter()
    run_id = run_id or uuid.uuid4().hex[:12]
    restored: dict[str, Any] = {}
    row = None
    if resume:
        if store is None:
            raise InputError("resuming needs the state store")
        row = store.get_run(run_id)
        if row is None:
            raise InputError(f"no run '{run_id}' in {store.path}; see `elx runs` for run ids")
        inputs = row.inputs
        restored = store.checkpoints(run_id)
    given = coerce_inputs(workflow.inputs, inputs or {}, file=str(pipeline.path))
    workspace_root = _resolve_dir(settings.workspace_dir, workflow.workspace_dir, "./workspace")
    output_root = _resolve_dir(
        settings.output_dir, workflow.defaults.output_dir or workflow.output_dir, "./outputs"
    )
    workspace_root.mkdir(parents=True, exist_ok=True)
    output_root.mkdir(parents=True, exist_ok=True)
    run = Run(
        id=run_id,
        pipeline=pipeline,
        inputs=given,
        gateway=gateway,
        settings=settings,
        clock=clock,
        workspace=Sandbox(workspace_root),
        outputs=Sandbox(output_root),
        store=store,
        events=events,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        global_vars=dict(workflow.global_vars),
        state=dict(workflow.variables),
        restored=restored,
        file_stack=(pipeline.path,),
    )
    if cancel is not None:
        run.cancel_event = cancel
    run.extra_budget = budget
    if store is not None:
        if resume:
            store.set_run_status(run_id, "running")
            if row is not None and row.digest != pipeline.digest:
                run.notice(
                    "the pipeline changed since this run started; completed steps are "
                    "restored by name, changed steps that had not run will run as now written"
                )
        else:
            store.create_run(run_id, str(pipeline.path), pipeline.digest, given)
    run.emit(RunEvent(EventKind.RUN_STARTED, run_id, message=workflow.name))
    scope = Scope(run=run)
    status = RunStatus.COMPLETED
    error: dict[str, Any] | None = None
    try:
        execute_steps(workflow.steps, scope)
    except Cancelled as exc:
        status, error = RunStatus.CANCELLED, error_json(exc)
    except BudgetExceeded as exc:
        status, error = RunStatus.BUDGET_EXCEEDED, error_json(exc)
    except ElexirionError as exc:
        status, error = RunStatus.FAILED, error_json(exc)
    duration = (time.perf_counter() - started) * 1000
    final = _final_result(scope, workflow.steps)
    result = RunResult(
        run_id=run_id,
        status=status,
        steps={name: rec.to_json() for name, rec in scope.results.items()},
        result=final,
        error=error,
        usage={
            "input_tokens": run.usage.input_tokens,
            "output_tokens": run.usage.output_tokens,
            "cost_usd": round(run.usage.cost_usd, 6),
            "calls": run.usage.calls,
        },
        providers=tuple(sorted(run.providers_used)),
        notices=tuple(run.notices),
        duration_ms=duration,
        outputs_dir=str(output_root),
        restored_steps=tuple(p for p in restored if "/" not in p),
    )
    if store is not None:
        store.set_run_status(run_id, status, result=final, error=error)
    run.emit(
        RunEvent(EventKind.RUN_FINISHED, run_id, duration_ms=duration, message=status),
    )
    return result


def _resolve_dir(override: Path | None, from_yaml: str | None, default: str) -> Path:
    if override is not None:
        return override.expanduser().resolve()
    return Path(from_yaml or default).expanduser().resolve()


def _final_result(scope: Scope, steps: Sequence[StepSpec]) -> Any:
    for step in reversed(steps):
        record = scope.results.get(step.name)
        if record is not None and record.status is StepStatus.COMPLETED:
            return record.result
    return None


def execute_steps(steps: Sequence[StepSpec], scope: Scope) -> None:
    """Run ``steps`` in order in ``scope``; a failure that is not continued raises."""
    for step in steps:
        execute_step(step, scope)


def execute_step(step: StepSpec, scope: Scope) -> StepRecord:
    run = scope.run
    run.check_cancelled()
    path = f"{scope.prefix}{step.name}"
    key = run.checkpoint_prefix + path
    saved = run.root.restored.get(key)
    if saved is not None:
        record = StepRecord.from_json(saved.record)
        scope.record(record)
        with run.lock:
            run.state.clear()
            run.state.update(saved.state)
        if isinstance(step, SetVariableStep) and isinstance(record.result, dict):
            from runtime.pipeline.steps.data import apply_variables

            apply_variables(scope, step.scope, record.result.get("values") or {})
        run.emit(RunEvent(EventKind.STEP_RESTORED, run.root.id, path, step.type, run.depth))
        return record
    defaults = run.workflow.defaults
    timeout = step.timeout_seconds or defaults.timeout_seconds
    deadline = run.clock.now() + timeout if timeout else None
    ctx = StepContext(step, scope, path, deadline)
    guarded = step.condition is not None and not isinstance(step, WhileLoopStep)
    if guarded and not ctx.check(step.condition):
        record = StepRecord(
            step.name,
            path,
            step.type,
            StepStatus.SKIPPED,
            result=None,
            meta={"reason": f"condition not met: {_short(step.condition)}"},
        )
        _finish(record, scope, key)
        run.emit(RunEvent(EventKind.STEP_SKIPPED, run.root.id, path, step.type, run.depth))
        return record
    step_type = STEP_REGISTRY.get(step.type)
    if step_type is None:  # the loader refuses unknown types; a plugin may have been removed
        raise StepError(f"step type '{step.type}' is not registered", step=path)
    policy = step.retry or defaults.retry or RetryPolicy(max_attempts=1)
    run.emit(RunEvent(EventKind.STEP_STARTED, run.root.id, path, step.type, run.depth))
    started = time.perf_counter()
    spent = (run.usage.tokens, run.usage.cost_usd)
    attempt = 0
    while True:
        attempt += 1
        try:
            value = step_type.run(step, ctx)
            if step.output_schema is not None:
                check_schema(value, step.output_schema, path)
            break
        except (Cancelled, BudgetExceeded):
            raise
        except ElexirionError as exc:
            if attempt < policy.max_attempts and policy.retries(exc.kind):
                delay = policy.delay(attempt)
                if isinstance(exc, RateLimited) and exc.retry_after_s is not None:
                    delay = min(max(delay, exc.retry_after_s), policy.max_delay_s)
                run.emit(
                    RunEvent(
                        EventKind.STEP_RETRY,
                        run.root.id,
                        path,
                        step.type,
                        run.depth,
                        attempt=attempt,
                        message=f"{exc.kind.value}: {exc.message}; retrying in {delay:.2f} s",
                    )
                )
                _wait(run, delay)
                continue
            return _failed(step, ctx, scope, key, exc, started, attempt, spent)
        except Exception as exc:  # a bug in a step runner: report it as a step failure
            wrapped = StepError(
                f"step '{step.name}' crashed: {type(exc).__name__}: {exc}",
                step=path,
                cause=exc,
            )
            return _failed(step, ctx, scope, key, wrapped, started, attempt, spent)
    duration = (time.perf_counter() - started) * 1000
    record = StepRecord(
        step.name, path, step.type, StepStatus.COMPLETED, value, ctx.meta, None, duration
    )
    if attempt > 1:
        record.meta["attempts"] = attempt
    if step.output_to_file:
        record.meta["output_file"] = write_output(ctx, step.output_to_file, value)
    _finish(record, scope, key)
    run.emit(
        RunEvent(
            EventKind.STEP_FINISHED,
            run.root.id,
            path,
            step.type,
            run.depth,
            duration_ms=duration,
            meta=_step_usage(run, ctx, spent),
        )
    )
    run.check_budget()
    return record


def _failed(
    step: StepSpec,
    ctx: StepContext,
    scope: Scope,
    key: str,
    exc: ElexirionError,
    started: float,
    attempts: int,
    spent: tuple[int, float] = (0, 0.0),
) -> StepRecord:
    run = scope.run
    duration = (time.perf_counter() - started) * 1000
    if not isinstance(exc, StepError) or exc.step is None:
        exc = _as_step_error(exc, step, ctx.path)
    info = error_json(exc)
    info["attempts"] = attempts
    if ctx.meta.get("arm"):  # an A/B arm that failed still counts as an outcome
        info["arm"] = ctx.meta["arm"]
        exc.arm = ctx.meta["arm"]  # type: ignore[attr-defined]  # reaches the run's error
    run.emit(
        RunEvent(
            EventKind.STEP_FAILED,
            run.root.id,
            ctx.path,
            step.type,
            run.depth,
            duration_ms=duration,
            message=exc.message,
            meta=_step_usage(run, ctx, spent),
        )
    )
    if step.on_error:
        handler = scope.child(f"{ctx.path}/on_error/", extra={"error": info})
        execute_steps(step.on_error, handler)
    defaults = run.workflow.defaults
    continue_on_error = (
        step.continue_on_error
        if step.continue_on_error is not None
        else bool(defaults.continue_on_error)
    )
    if not continue_on_error:
        raise exc
    record = StepRecord(
        step.name, ctx.path, step.type, StepStatus.FAILED, None, ctx.meta, info, duration
    )
    _finish(record, scope, key)
    return record


def _as_step_error(exc: ElexirionError, step: StepSpec, path: str) -> StepError:
    where = f"step '{step.name}' ({step.type})"
    if isinstance(exc, ProviderError) and exc.provider:
        where += f" via {exc.provider}"
    return StepError(f"{where} failed: {exc.message}", step=path, kind=exc.kind, cause=exc)


def _finish(record: StepRecord, scope: Scope, key: str) -> None:
    scope.record(record)
    run = scope.run
    store = run.root.store
    if store is not None:
        with run.lock:
            state = dict(run.state)
        store.save_checkpoint(run.root.id, run.next_seq(), key, record.to_json(), state)


def _wait(run: Run, seconds: float) -> None:
    """Wait between retries; a cancel cuts the wait short."""
    if seconds <= 0:
        return
    if run.clock is SYSTEM_CLOCK:
        if run.root.cancel_event.wait(seconds):
            run.check_cancelled()
    else:
        run.clock.sleep(seconds)
    run.check_cancelled()


def _step_usage(run: Run, ctx: StepContext, spent: tuple[int, float]) -> dict[str, Any]:
    """What a step used: its providers, and the run's tokens and cost since it started."""
    return {
        "providers": list(ctx.meta.get("providers") or ()),
        "tokens": run.usage.tokens - spent[0],
        "cost_usd": round(run.usage.cost_usd - spent[1], 8),
    }


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


@lru_cache(maxsize=512)
def _validator(schema_json: str) -> Any:
    import json

    import jsonschema

    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def check_schema(value: Any, schema: Mapping[str, Any], path: str) -> None:
    """Raise InvalidOutput listing every place ``value`` breaks ``schema``."""
    import json

    validator = _validator(json.dumps(schema, sort_keys=True))
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        details = "; ".join(
            f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
            for e in errors[:5]
        )
        raise InvalidOutput(
            f"output of step '{path}' does not match its output_schema: {details}",
            step=path,
            kind=FailureKind.INVALID_OUTPUT,
        )


def write_output(ctx: StepContext, target: str, value: Any) -> str:
    """Write a step's result under the output directory (never outside it)."""
    import json

    name = ctx.render_text(target)
    path = ctx.run.outputs.resolve(name, field=f"step '{ctx.step.name}' output_to_file")
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, indent=2, ensure_ascii=False, default=str)
    )
    write_text_atomic(path, text)
    return str(path)


__all__ = [
    "RunResult",
    "RunStatus",
    "check_schema",
    "coerce_inputs",
    "execute_step",
    "execute_steps",
    "run_pipeline",
]
