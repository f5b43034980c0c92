"""Step families, one module per family; ``core_step_types`` lists them for the registry."""

from __future__ import annotations

from runtime.pipeline.registry import StepType


def core_step_types() -> list[StepType]:
    from runtime.pipeline.steps.control import control_step_types
    from runtime.pipeline.steps.data import data_step_types
    from runtime.pipeline.steps.llm import llm_step_types

    return [*llm_step_types(), *control_step_types(), *data_step_types()]
