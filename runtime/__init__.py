"""Elexirion runtime: the framework that the application actors build on.

The public names an embedding program needs are re-exported here. They load
lazily (PEP 562), so ``import runtime`` — and with it ``elx --help`` — stays
cheap; pydantic, jinja2 and Pykka are imported on first use of a name.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    # errors
    "BudgetExceeded": "runtime.errors",
    "Cancelled": "runtime.errors",
    "ChildNotRunning": "runtime.errors",
    "ConfigError": "runtime.errors",
    "ElexirionError": "runtime.errors",
    "FailureKind": "runtime.errors",
    "ProviderError": "runtime.errors",
    "RestartIntensityExceeded": "runtime.errors",
    "StepError": "runtime.errors",
    "SupervisionError": "runtime.errors",
    "TemplateError": "runtime.errors",
    "ValidationError": "runtime.errors",
    # settings, time, state
    "Clock": "runtime.clock",
    "MonotonicClock": "runtime.clock",
    "Settings": "runtime.config",
    "Store": "runtime.store",
    "daemon_context": "runtime.daemon",
    # the pipeline language
    "LoadedPipeline": "runtime.pipeline.loader",
    "RunResult": "runtime.pipeline.executor",
    "StepContext": "runtime.pipeline.context",
    "StepSpec": "runtime.pipeline.models",
    "StepType": "runtime.pipeline.registry",
    "Workflow": "runtime.pipeline.models",
    "load_pipeline": "runtime.pipeline.loader",
    "pipeline_json_schema": "runtime.pipeline.schema",
    "run_pipeline": "runtime.pipeline.executor",
    # providers
    "LLMRequest": "runtime.providers.base",
    "LLMResponse": "runtime.providers.base",
    "LocalGateway": "runtime.providers.gateway",
    "MockProvider": "runtime.providers.mock",
    "PoolGateway": "runtime.providers.pool",
    "ProviderRegistry": "runtime.providers.registry",
    "pool_detail": "runtime.providers.pool",
    "Provider": "runtime.providers.base",
    "ProviderGateway": "runtime.providers.base",
    # supervision
    "ChildHandle": "runtime.supervision",
    "ChildSpec": "runtime.supervision",
    "DynamicSupervisorSpec": "runtime.supervision",
    "Exit": "runtime.supervision",
    "ExitReason": "runtime.supervision",
    "JobOutcome": "runtime.supervision",
    "JobStatus": "runtime.supervision",
    "JobTicket": "runtime.supervision",
    "Restart": "runtime.supervision",
    "RootHandle": "runtime.supervision",
    "Strategy": "runtime.supervision",
    "SupervisorHandle": "runtime.supervision",
    "SupervisorSpec": "runtime.supervision",
    "TreeNode": "runtime.supervision",
    "WorkerStatus": "runtime.supervision",
    "boot": "runtime.supervision",
    "render_tree": "runtime.supervision",
    "start_job": "runtime.supervision",
    "start_supervisor": "runtime.supervision",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'runtime' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # pragma: no cover - names for type checkers
    from runtime.clock import (
        Clock as Clock,
        MonotonicClock as MonotonicClock,
    )
    from runtime.config import (
        Settings as Settings,
    )
    from runtime.daemon import daemon_context as daemon_context
    from runtime.errors import (
        BudgetExceeded as BudgetExceeded,
        Cancelled as Cancelled,
        ChildNotRunning as ChildNotRunning,
        ConfigError as ConfigError,
        FailureKind as FailureKind,
        ProviderError as ProviderError,
        RestartIntensityExceeded as RestartIntensityExceeded,
        StepError as StepError,
        SupervisionError as SupervisionError,
        TemplateError as TemplateError,
        ValidationError as ValidationError,
    )
    from runtime.pipeline.context import (
        StepContext as StepContext,
    )
    from runtime.pipeline.executor import (
        RunResult as RunResult,
        run_pipeline as run_pipeline,
    )
    from runtime.pipeline.loader import (
        LoadedPipeline as LoadedPipeline,
        load_pipeline as load_pipeline,
    )
    from runtime.pipeline.models import (
        StepSpec as StepSpec,
        Workflow as Workflow,
    )
    from runtime.pipeline.registry import (
        StepType as StepType,
    )
    from runtime.pipeline.schema import (
        pipeline_json_schema as pipeline_json_schema,
    )
    from runtime.providers.base import (
        LLMRequest as LLMRequest,
        LLMResponse as LLMResponse,
        Provider as Provider,
        ProviderGateway as ProviderGateway,
    )
    from runtime.providers.gateway import (
        LocalGateway as LocalGateway,
    )
    from runtime.providers.mock import (
        MockProvider as MockProvider,
    )
    from runtime.providers.pool import (
        PoolGateway as PoolGateway,
        pool_detail as pool_detail,
    )
    from runtime.providers.registry import (
        ProviderRegistry as ProviderRegistry,
    )
    from runtime.store import Store as Store
    from runtime.supervision import (
        ChildHandle as ChildHandle,
        ChildSpec as ChildSpec,
        DynamicSupervisorSpec as DynamicSupervisorSpec,
        Exit as Exit,
        ExitReason as ExitReason,
        JobOutcome as JobOutcome,
        JobStatus as JobStatus,
        JobTicket as JobTicket,
        Restart as Restart,
        RootHandle as RootHandle,
        Strategy as Strategy,
        SupervisorHandle as SupervisorHandle,
        SupervisorSpec as SupervisorSpec,
        TreeNode as TreeNode,
        WorkerStatus as WorkerStatus,
        boot as boot,
        render_tree as render_tree,
        start_job as start_job,
        start_supervisor as start_supervisor,
    )
