"""LLM steps: claude and its variants, gemini and its variants, and the neutral ``llm``.

Every call goes through ``StepContext.complete`` (cancellation, deadline,
budget, accounting) to the provider gateway. A text answer becomes the step's
result; a JSON answer becomes the parsed value. Metadata (text, provider,
model, tokens, cost) is kept beside the result, where templates read it as
``steps.<name>.text`` and so on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from typing import Any

from runtime.config import canonical_provider
from runtime.errors import (
    Cancelled,
    ElexirionError,
    FailureKind,
    InvalidOutput,
    ProviderError,
    StepError,
)
from runtime.pipeline.context import StepContext
from runtime.pipeline.extraction import extract
from runtime.pipeline.models import (
    ClaudeBatchStep,
    ClaudeExtractStep,
    ClaudeOptions,
    ClaudeRobustStep,
    ClaudeSessionStep,
    ClaudeSmartStep,
    ClaudeStep,
    GeminiInstructorStep,
    GeminiStep,
    GeminiStructuredStep,
    LlmCallStep,
    LlmStepSpec,
    ParallelClaudeStep,
    TokenBudget,
)
from runtime.pipeline.prompts import build_prompt, read_prompt_file
from runtime.pipeline.registry import StepType
from runtime.providers.base import (
    FunctionSpec,
    LLMRequest,
    LLMResponse,
    Message,
    OutputFormat,
)

# pipeline_ex's presets; a user's own claude_options always win over a preset.
PRESETS: Mapping[str, Mapping[str, Any]] = {
    "development": {
        "max_turns": 20,
        "allowed_tools": ("Write", "Edit", "Read", "Bash", "Search", "Glob", "Grep"),
        "system_prompt": "You are a helpful development assistant. "
        "Focus on writing clean, maintainable code.",
    },
    "production": {
        "max_turns": 10,
        "allowed_tools": ("Read",),
        "system_prompt": "You are a careful production assistant. Be precise and conservative.",
    },
    "analysis": {
        "max_turns": 5,
        "allowed_tools": ("Read", "Glob", "Grep"),
        "system_prompt": "You are an analysis assistant. Examine thoroughly and report clearly.",
    },
    "chat": {
        "max_turns": 15,
        "allowed_tools": (),
        "system_prompt": "You are a friendly conversational assistant.",
    },
    "test": {"max_turns": 3, "allowed_tools": ("Read",), "system_prompt": "You are testing."},
}


# ---------------------------------------------------------------------------
# Shared machinery


def provider_chain(ctx: StepContext, family: str) -> tuple[str, ...]:
    step = ctx.step
    if step.provider:
        return tuple(canonical_provider(p) for p in step.provider)
    default = ctx.workflow.defaults.provider
    if default:
        chain = (default,) if isinstance(default, str) else default
        return tuple(canonical_provider(p) for p in chain)
    return (canonical_provider(family),)


def merged_options(ctx: StepContext, own: ClaudeOptions | None) -> dict[str, Any]:
    base = ctx.workflow.defaults.claude_options
    merged: dict[str, Any] = {}
    if base is not None:
        merged.update(base.model_dump(exclude_none=True))
    if own is not None:
        merged.update(own.model_dump(exclude_none=True))
    return merged


def call(
    ctx: StepContext,
    prompt: str,
    *,
    family: str,
    model: str | None = None,
    system: str | None = None,
    schema: Mapping[str, Any] | None = None,
    json_mode: bool = False,
    functions: Sequence[FunctionSpec] = (),
    options: Mapping[str, Any] | None = None,
    history: Sequence[Message] = (),
    max_tokens: int | None = None,
    temperature: float | None = None,
    timeout_s: float | None = None,
    chain: Sequence[str] | None = None,
    tag: str | None = None,
) -> LLMResponse:
    opts = dict(options or {})
    chain = tuple(chain) if chain is not None else provider_chain(ctx, family)
    request = LLMRequest(
        prompt=prompt,
        provider=chain[0],
        fallbacks=tuple(chain[1:]),
        model=ctx.settings.resolve_model(model or opts.get("model")),
        system=system,
        history=tuple(history),
        output_format=OutputFormat.JSON if (json_mode or schema is not None) else OutputFormat.TEXT,
        schema=schema,
        functions=tuple(functions),
        allowed_tools=tuple(opts.get("allowed_tools") or ()),
        max_turns=opts.get("max_turns"),
        max_tokens=max_tokens or opts.get("max_tokens"),
        temperature=temperature if temperature is not None else opts.get("temperature"),
        timeout_s=timeout_s or (opts["timeout_ms"] / 1000 if opts.get("timeout_ms") else None),
        options={k: v for k, v in opts.items() if k not in _REQUEST_FIELDS},
        step=tag or ctx.step.name,
        workspace=str(ctx.run.workspace.root),
    )
    ctx.meta["prompt"] = prompt[:PROMPT_KEPT]  # for the optimizer's examples
    return ctx.complete(request)


PROMPT_KEPT = 8000  # characters of the rendered prompt kept in the step's record


_REQUEST_FIELDS = {"model", "allowed_tools", "max_turns", "max_tokens", "temperature", "timeout_ms"}


def response_value(response: LLMResponse, *, structured: bool) -> Any:
    """The step result: parsed data for JSON answers, else the text."""
    if structured:
        if response.data is not None:
            return response.data
        try:
            return json.loads(response.text)
        except ValueError:
            raise InvalidOutput(
                f"the {response.provider} answer is not valid JSON: {response.text[:120]!r}",
                kind=FailureKind.INVALID_OUTPUT,
            ) from None
    return response.text


def note(ctx: StepContext, response: LLMResponse) -> None:
    """Record the answer's metadata beside the result (summed over several calls)."""
    meta = ctx.meta
    meta["text"] = response.text
    meta["content"] = response.text
    meta["success"] = True
    meta["model"] = response.model
    meta["provider"] = response.provider
    meta["stop_reason"] = response.stop_reason
    meta["cost"] = round(meta.get("cost", 0.0) + response.cost_usd, 8)
    meta["input_tokens"] = meta.get("input_tokens", 0) + response.usage.input_tokens
    meta["output_tokens"] = meta.get("output_tokens", 0) + response.usage.output_tokens
    if response.function_calls:
        meta["function_calls"] = [
            {"name": c.name, "arguments": dict(c.arguments)} for c in response.function_calls
        ]


def system_of(options: Mapping[str, Any]) -> str | None:
    parts = [options.get("system_prompt"), options.get("append_system_prompt")]
    text = "\n".join(p for p in parts if p)
    return text or None


def claude_model(ctx: StepContext, step: LlmStepSpec, options: Mapping[str, Any]) -> str | None:
    return step.model or options.get("model") or ctx.workflow.defaults.claude_model


def plain_claude(ctx: StepContext, step: LlmStepSpec, options: Mapping[str, Any]) -> Any:
    prompt = build_prompt(ctx, step.prompt)
    response = call(
        ctx,
        prompt,
        family="claude",
        model=claude_model(ctx, step, options),
        system=system_of(options),
        options=options,
    )
    note(ctx, response)
    return response_value(response, structured=False)


# ---------------------------------------------------------------------------
# Claude family


def run_claude(step: ClaudeStep, ctx: StepContext) -> Any:
    return plain_claude(ctx, step, merged_options(ctx, step.claude_options))


def preset_name(ctx: StepContext, preset: str | None, fallback: str) -> str:
    if preset:
        return preset
    if ctx.workflow.defaults.claude_preset:
        return ctx.workflow.defaults.claude_preset
    return fallback


def preset_options(ctx: StepContext, preset: str, own: ClaudeOptions | None) -> dict[str, Any]:
    if preset == "environment-aware":
        env = ctx.workflow.environment
        preset = env.mode if env is not None and env.mode in PRESETS else "development"
    base = dict(PRESETS.get(preset, PRESETS["development"]))
    base.update(merged_options(ctx, own))
    return base


def run_claude_smart(step: ClaudeSmartStep, ctx: StepContext) -> Any:
    chosen: str | None = step.preset
    if chosen is None and step.environment_aware and ctx.workflow.environment is not None:
        chosen = ctx.workflow.environment.mode
    name = preset_name(ctx, chosen, "development")
    options = preset_options(ctx, name, step.claude_options)
    ctx.meta["preset"] = name
    return plain_claude(ctx, step, options)


_CONDITION_KINDS: Mapping[str, tuple[FailureKind, ...]] = {
    "timeout": (FailureKind.TIMEOUT,),
    "rate_limit": (FailureKind.RATE_LIMITED,),
    "rate_limited": (FailureKind.RATE_LIMITED,),
    "overloaded": (FailureKind.OVERLOADED,),
    "unavailable": (FailureKind.UNAVAILABLE,),
    "api_error": (FailureKind.PROVIDER_ERROR, FailureKind.OVERLOADED, FailureKind.UNAVAILABLE),
    "provider_error": (FailureKind.PROVIDER_ERROR, FailureKind.OVERLOADED),
    "temporary_error": (
        FailureKind.PROVIDER_ERROR,
        FailureKind.OVERLOADED,
        FailureKind.UNAVAILABLE,
    ),
    "invalid_output": (FailureKind.INVALID_OUTPUT,),
}
_DEFAULT_RETRY_KINDS = {
    FailureKind.TIMEOUT,
    FailureKind.RATE_LIMITED,
    FailureKind.OVERLOADED,
    FailureKind.PROVIDER_ERROR,
    FailureKind.UNAVAILABLE,
}


def _robust_kinds(conditions: Sequence[str]) -> set[FailureKind]:
    if not conditions:
        return set(_DEFAULT_RETRY_KINDS)
    kinds: set[FailureKind] = set()
    for condition in conditions:
        kinds.update(_CONDITION_KINDS.get(condition.strip().lower(), ()))
    return kinds


def _cache_key(prompt: str, model: str | None, system: str | None) -> str:
    raw = json.dumps([prompt, model, system])
    return "robust:" + hashlib.sha256(raw.encode()).hexdigest()


def run_claude_robust(step: ClaudeRobustStep, ctx: StepContext) -> Any:
    config = step.retry_config
    options = preset_options(ctx, preset_name(ctx, step.preset, "production"), step.claude_options)
    prompt = build_prompt(ctx, step.prompt)
    model = claude_model(ctx, step, options)
    system = system_of(options)
    kinds = _robust_kinds(config.retry_conditions)
    errors: list[str] = []
    store = ctx.run.root.store
    for attempt in range(config.max_retries + 1):
        try:
            response = call(
                ctx, prompt, family="claude", model=model, system=system, options=options
            )
        except ProviderError as exc:
            errors.append(f"attempt {attempt + 1}: {exc.kind.value}: {exc.message}")
            if exc.kind not in kinds or attempt == config.max_retries:
                break
            base = config.base_delay_ms / 1000
            if config.backoff_strategy == "exponential":
                delay = base * (2**attempt)
            elif config.backoff_strategy == "linear":
                delay = base * (attempt + 1)
            else:
                delay = base
            _pause(ctx, min(delay, config.max_delay_ms / 1000))
            continue
        note(ctx, response)
        ctx.meta["attempts"] = attempt + 1
        if store is not None:
            store.cache_put(_cache_key(prompt, model, system), response.text)
        return response.text
    ctx.meta["error_history"] = errors
    action = config.fallback_action
    original = errors[-1] if errors else "unknown error"
    if action is None:
        raise StepError(
            f"step '{step.name}' failed after {len(errors)} attempt(s): {original}",
            step=ctx.path,
            kind=FailureKind.PROVIDER_ERROR,
        )
    ctx.meta["fallback_type"] = action
    ctx.meta["original_error"] = original
    if action == "graceful_degradation":
        ctx.meta["degraded_mode"] = True
        return ""
    if action == "emergency_response":
        return config.emergency_response
    if action == "cached_response":
        cached = store.cache_get(_cache_key(prompt, model, system)) if store else None
        if cached is None:
            raise StepError(
                f"step '{step.name}' failed ({original}) and no cached response exists "
                "for this prompt yet",
                step=ctx.path,
                kind=FailureKind.PROVIDER_ERROR,
            )
        return cached
    if action == "simplified_prompt":
        short = prompt if len(prompt) <= 2000 else prompt[:2000]
        simplified = dict(options, max_turns=1, allowed_tools=())
        response = call(
            ctx,
            short + "\n\nAnswer briefly.",
            family="claude",
            model=model,
            system=system,
            options=simplified,
        )
        note(ctx, response)
        return response.text
    # alternative_provider: the next provider that is not the one that failed
    tried = provider_chain(ctx, "claude")
    alternatives = [p for p in ("gemini", "openai", "anthropic", "mock") if p not in tried]
    response = call(
        ctx, prompt, family="claude", model=None, system=system, options=options, chain=alternatives
    )
    note(ctx, response)
    return response.text


def _pause(ctx: StepContext, seconds: float) -> None:
    from runtime.clock import SYSTEM_CLOCK

    if seconds <= 0:
        return
    if ctx.clock is SYSTEM_CLOCK:
        ctx.run.root.cancel_event.wait(seconds)
    else:
        ctx.clock.sleep(seconds)
    ctx.run.check_cancelled()


def run_claude_session(step: ClaudeSessionStep, ctx: StepContext) -> Any:
    options = preset_options(ctx, preset_name(ctx, step.preset, "analysis"), step.claude_options)
    session = ctx.render_text(step.session_name)
    store = ctx.run.root.store
    limit = step.session_config.max_turns
    turns = store.session_turns(session, limit * 2 if limit else None) if store else []
    history = [Message(role, text) for role, text in turns]
    prompt = build_prompt(ctx, step.prompt)
    response = call(
        ctx,
        prompt,
        family="claude",
        model=claude_model(ctx, step, options),
        system=system_of(options),
        options=options,
        history=history,
    )
    note(ctx, response)
    if store is not None and step.session_config.persist:
        store.append_session_turns(
            session, [("user", prompt), ("assistant", response.text)], ctx.run.root.id
        )
    ctx.meta["session"] = session
    ctx.meta["session_turns"] = len(history) // 2 + 1
    return response.text


def run_claude_extract(step: ClaudeExtractStep, ctx: StepContext) -> Any:
    options = preset_options(ctx, preset_name(ctx, step.preset, "analysis"), step.claude_options)
    settings = step.extraction_config
    wants_json = step.schema_ is not None or settings.format == "json"
    response = call(
        ctx,
        build_prompt(ctx, step.prompt),
        family="claude",
        model=claude_model(ctx, step, options),
        system=system_of(options),
        options=options,
        schema=step.schema_,
        json_mode=wants_json,
    )
    note(ctx, response)
    return extract(response.text, settings)


def run_claude_batch(step: ClaudeBatchStep, ctx: StepContext) -> Any:
    options = preset_options(ctx, preset_name(ctx, step.preset, "development"), step.claude_options)
    config = step.batch_config
    tasks = list(step.tasks) or []
    prompts: list[tuple[str, str, dict[str, Any]]] = []
    if not tasks:
        prompts.append(("default_task", build_prompt(ctx, step.prompt), options))
    for index, task in enumerate(tasks):
        text = build_prompt(ctx, task.prompt) if task.prompt is not None else ""
        if task.file:
            content = read_prompt_file(ctx, ctx.render_text(task.file))
            text = f"{content}\n{text}" if text else content
        task_options = dict(options)
        if task.claude_options is not None:
            task_options.update(task.claude_options.model_dump(exclude_none=True))
        prompts.append((task.key(index), text, task_options))
    timeout = config.timeout_per_task / 1000 if config.timeout_per_task else None
    model = claude_model(ctx, step, options)

    def one(key: str, text: str, opts: dict[str, Any]) -> LLMResponse:
        return call(
            ctx,
            text,
            family="claude",
            model=model,
            system=system_of(opts),
            options=opts,
            timeout_s=timeout,
            tag=f"{step.name}:{key}",
        )

    results = _fan_out(
        ctx, [(k, lambda k=k, t=t, o=o: one(k, t, o)) for k, t, o in prompts], config.max_parallel
    )
    batch: list[dict[str, Any]] = []
    for key, outcome in results:
        if isinstance(outcome, LLMResponse):
            note(ctx, outcome)
            batch.append({"task_id": key, "status": "success", "result": outcome.text})
        else:
            batch.append({"task_id": key, "status": "error", "error": str(outcome)})
    from runtime.pipeline.executor import write_output

    # A task's output_to_file was accepted by the model but never written; write it as
    # parallel_claude does. batch follows the order of tasks when tasks are given.
    for task, entry in zip(tasks, batch, strict=False):
        if task.output_to_file and entry["status"] == "success":
            entry["output_file"] = write_output(ctx, task.output_to_file, entry["result"])
    ok = sum(1 for b in batch if b["status"] == "success")
    value: dict[str, Any] = {
        "batch_processed": True,
        "total_tasks": len(batch),
        "successful_tasks": ok,
        "failed_tasks": len(batch) - ok,
        "batch_results": batch,
    }
    if config.consolidate_results:
        value["text"] = "\n\n".join(
            f"## {b['task_id']}\n{b.get('result') or 'ERROR: ' + b.get('error', '')}" for b in batch
        )
    if ok == 0:
        raise StepError(
            f"step '{step.name}': all {len(batch)} batch tasks failed; first: "
            f"{batch[0].get('error')}",
            step=ctx.path,
            kind=FailureKind.PROVIDER_ERROR,
        )
    return value


def _fan_out(
    ctx: StepContext,
    jobs: Sequence[tuple[str, Any]],
    max_parallel: int,
) -> list[tuple[str, LLMResponse | ElexirionError]]:
    """Run calls concurrently (at most ``max_parallel``); keep order; collect errors."""
    if len(jobs) == 1 or max_parallel == 1:
        out: list[tuple[str, LLMResponse | ElexirionError]] = []
        for key, job in jobs:
            try:
                out.append((key, job()))
            except Cancelled as exc:
                raise exc
            except ElexirionError as exc:
                out.append((key, exc))
        return out
    with ThreadPoolExecutor(max_workers=min(max_parallel, len(jobs))) as pool:
        futures = [(key, pool.submit(job)) for key, job in jobs]
        collected: list[tuple[str, LLMResponse | ElexirionError]] = []
        for key, future in futures:
            try:
                collected.append((key, future.result(timeout=_wait_bound(ctx))))
            except Cancelled:
                raise
            except ElexirionError as exc:
                collected.append((key, exc))
            except FutureTimeout:
                collected.append(
                    (key, StepError(f"task {key} did not finish in time", step=ctx.path))
                )
        return collected


def _wait_bound(ctx: StepContext) -> float:
    left = ctx.remaining()
    return left if left is not None else 24 * 3600.0


def run_parallel_claude(step: ParallelClaudeStep, ctx: StepContext) -> Any:
    base = merged_options(ctx, step.claude_options)
    jobs = []
    for task in step.parallel_tasks:
        opts = dict(base)
        if task.claude_options is not None:
            opts.update(task.claude_options.model_dump(exclude_none=True))
        text = build_prompt(ctx, task.prompt)

        def job(text: str = text, opts: dict[str, Any] = opts, key: str = task.id) -> LLMResponse:
            return call(
                ctx,
                text,
                family="claude",
                model=claude_model(ctx, step, opts),
                system=system_of(opts),
                options=opts,
                tag=f"{step.name}:{key}",
            )

        jobs.append((task.id, job))
    outcomes = _fan_out(ctx, jobs, step.max_parallel)
    individual: dict[str, Any] = {}
    failures: list[str] = []
    for key, outcome in outcomes:
        if isinstance(outcome, LLMResponse):
            note(ctx, outcome)
            individual[key] = outcome.text
        else:
            failures.append(f"{key}: {outcome}")
    if failures:
        raise StepError(
            f"step '{step.name}': {len(failures)} of {len(outcomes)} parallel tasks failed: "
            + "; ".join(failures),
            step=ctx.path,
            kind=FailureKind.PROVIDER_ERROR,
        )
    from runtime.pipeline.executor import write_output

    for task in step.parallel_tasks:
        if task.output_to_file:
            write_output(ctx, task.output_to_file, individual[task.id])
    combined = "\n".join(f"=== {k} ===\n{v}" for k, v in individual.items())
    return {"combined_results": combined, "individual_results": individual}


# ---------------------------------------------------------------------------
# Gemini family and the neutral llm step


def _budget(ctx: StepContext, own: TokenBudget | None) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    default = ctx.workflow.defaults.gemini_token_budget
    if default is not None:
        merged.update(default.model_dump(exclude_none=True))
    if own is not None:
        merged.update(own.model_dump(exclude_none=True))
    return merged


def _functions(ctx: StepContext, names: Sequence[str]) -> list[FunctionSpec]:
    known = ctx.workflow.gemini_functions
    specs = []
    for name in names:
        spec = known.get(name)
        if spec is None:  # validation catches this; a nested scope might not
            raise StepError(f"unknown gemini function '{name}'", step=ctx.path)
        specs.append(FunctionSpec(name, spec.description, spec.parameters))
    return specs


def _gemini_call(
    ctx: StepContext,
    step: GeminiStep | GeminiStructuredStep | GeminiInstructorStep,
    prompt: str,
    *,
    schema: Mapping[str, Any] | None = None,
    json_mode: bool = False,
    functions: Sequence[FunctionSpec] = (),
) -> LLMResponse:
    budget = _budget(ctx, step.token_budget)
    return call(
        ctx,
        prompt,
        family="gemini",
        model=step.model or ctx.workflow.defaults.gemini_model,
        system=step.system_instruction,
        schema=schema,
        json_mode=json_mode,
        functions=functions,
        max_tokens=budget.get("max_output_tokens"),
        temperature=budget.get("temperature"),
        options={k: v for k, v in budget.items() if k in ("top_p", "top_k")},
    )


def run_gemini(step: GeminiStep, ctx: StepContext) -> Any:
    functions = _functions(ctx, step.functions)
    response = _gemini_call(ctx, step, build_prompt(ctx, step.prompt), functions=functions)
    note(ctx, response)
    if response.function_calls:
        return {
            "content": response.text,
            "function_calls": [
                {"name": c.name, "arguments": dict(c.arguments)} for c in response.function_calls
            ],
        }
    return response.text


def run_gemini_structured(step: GeminiStructuredStep, ctx: StepContext) -> Any:
    response = _gemini_call(
        ctx, step, build_prompt(ctx, step.prompt), schema=step.schema_, json_mode=True
    )
    note(ctx, response)
    return response_value(response, structured=True)


def run_gemini_instructor(step: GeminiInstructorStep, ctx: StepContext) -> Any:
    from runtime.pipeline.executor import check_schema

    schema = step.target_schema
    base = build_prompt(ctx, step.prompt)
    prompt = base
    last: InvalidOutput | None = None
    for attempt in range(step.max_retries + 1):
        response = _gemini_call(ctx, step, prompt, schema=schema)
        note(ctx, response)
        try:
            value = response_value(response, structured=True)
            check_schema(value, schema, ctx.path)
        except InvalidOutput as exc:
            last = exc
            if step.validation_mode == "loose" and response.data is not None:
                return response.data
            prompt = (
                f"{base}\n\nYour previous answer was rejected: {exc.message}\n"
                "Answer again with JSON that satisfies the schema exactly."
            )
            ctx.meta["reasks"] = attempt + 1
            continue
        return value
    assert last is not None
    raise InvalidOutput(
        f"step '{step.name}': no valid structured answer after {step.max_retries + 1} tries; "
        f"last problem: {last.message}",
        step=ctx.path,
        kind=FailureKind.INVALID_OUTPUT,
    )


def run_llm(step: LlmCallStep, ctx: StepContext) -> Any:
    json_mode = step.format == "json" or step.schema_ is not None
    response = call(
        ctx,
        build_prompt(ctx, step.prompt),
        family="mock",
        model=step.model,
        system=ctx.render_text(step.system) if step.system else None,
        schema=step.schema_,
        json_mode=json_mode,
        max_tokens=step.max_tokens,
        temperature=step.temperature,
    )
    note(ctx, response)
    return response_value(response, structured=json_mode)


def llm_step_types() -> list[StepType]:
    return [
        StepType(ClaudeStep, run_claude, "one Claude call, optionally with tools"),
        StepType(ClaudeSmartStep, run_claude_smart, "Claude with preset options"),
        StepType(ClaudeRobustStep, run_claude_robust, "Claude with retries and a fallback action"),
        StepType(ClaudeSessionStep, run_claude_session, "Claude in a named, persisted session"),
        StepType(ClaudeExtractStep, run_claude_extract, "Claude call plus content extraction"),
        StepType(ClaudeBatchStep, run_claude_batch, "bounded-parallel Claude tasks"),
        StepType(ParallelClaudeStep, run_parallel_claude, "independent Claude calls at once"),
        StepType(GeminiStep, run_gemini, "one Gemini call, optionally with functions"),
        StepType(GeminiStructuredStep, run_gemini_structured, "Gemini JSON output"),
        StepType(GeminiInstructorStep, run_gemini_instructor, "Gemini output validated, re-asked"),
        StepType(LlmCallStep, run_llm, "a provider-neutral call"),
    ]
