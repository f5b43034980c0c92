"""The JSON Schema of the pipeline format, assembled from the step registry."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from runtime.pipeline.models import PipelineDocument
from runtime.pipeline.registry import STEP_REGISTRY, StepRegistry


def pipeline_json_schema(registry: StepRegistry = STEP_REGISTRY) -> dict[str, Any]:
    """One schema for editors: a step is any registered step type, chosen by ``type``."""
    models = [step_type.model for step_type in registry.types()]
    entries = [(m, "validation") for m in [PipelineDocument, *models]]
    refs, top = models_json_schema(entries, ref_template="#/$defs/{model}")  # type: ignore[arg-type]
    defs: dict[str, Any] = top.get("$defs", {})
    step_refs = {
        step_type.name: refs[(step_type.model, "validation")]["$ref"]
        for step_type in registry.types()
    }
    defs["StepSpec"] = {
        "title": "Step",
        "oneOf": [{"$ref": ref} for ref in step_refs.values()],
        "discriminator": {"propertyName": "type", "mapping": step_refs},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Elexirion pipeline",
        "$ref": refs[(PipelineDocument, "validation")]["$ref"],
        "$defs": defs,
    }
