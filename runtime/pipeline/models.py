"""Frozen pydantic models for the whole pipeline format (PIPELINE_FORMAT.md).

The loader builds these from YAML; nothing past it sees a raw dict. Step
models are dispatched on ``type`` by the step registry, not by a pydantic
union, so third-party packages can add types. Fields that hold nested step
lists are declared in ``StepSpec.nested`` so the loader can parse them with
positions kept.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from runtime.errors import FailureKind
from runtime.pipeline.extraction import ExtractionConfig
from runtime.pipeline.file_operations import FileOp
from runtime.pipeline.transforms import TransformOp

NestKind = Literal["list", "map", "workflow"]

JsonSchema = dict[str, Any]


class Spec(BaseModel):
    """Base of every format model: frozen, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ---------------------------------------------------------------------------
# Shared pieces


RetryOn = Literal[
    "timeout", "rate_limited", "overloaded", "provider_error", "unavailable", "invalid_output"
]


class RetryPolicy(Spec):
    """A step's ``retry``: how often, how long between tries, and on which failures."""

    max_attempts: int = Field(default=3, ge=1, le=100)
    backoff: Literal["exponential", "linear", "fixed"] = "exponential"
    base_delay_s: float = Field(default=1.0, ge=0)
    max_delay_s: float = Field(default=30.0, ge=0)
    on: tuple[RetryOn, ...] = ("timeout", "rate_limited", "overloaded", "provider_error")

    def retries(self, kind: FailureKind) -> bool:
        if kind.value in self.on:
            return True
        # "provider_error" covers every transient provider failure.
        return "provider_error" in self.on and kind in (
            FailureKind.OVERLOADED,
            FailureKind.UNAVAILABLE,
            FailureKind.PROVIDER_ERROR,
        )

    def delay(self, attempt: int) -> float:
        """Seconds to wait before try ``attempt + 1`` (attempt counts from 1)."""
        if self.backoff == "fixed":
            raw = self.base_delay_s
        elif self.backoff == "linear":
            raw = self.base_delay_s * attempt
        else:
            raw = self.base_delay_s * (2 ** (attempt - 1))
        return min(self.max_delay_s, raw)


class StaticPart(Spec):
    type: Literal["static"]
    content: str


class FilePart(Spec):
    type: Literal["file"]
    path: str


class PreviousResponsePart(Spec):
    type: Literal["previous_response"]
    step: str
    extract: str | None = None
    strict: bool = True
    extract_with: Literal["content_extractor"] | None = None
    max_length: int | None = Field(default=None, ge=1)


class SessionContextPart(Spec):
    """The last turns of a named session; pipeline_ex spells the keys session_id/include_last_n."""

    type: Literal["session_context"]
    session: str = Field(alias="session_id")
    turns: int = Field(default=10, ge=1, alias="include_last_n")


class ClaudeContinuePart(Spec):
    """pipeline_ex's claude_continue: a session's history followed by a new prompt."""

    type: Literal["claude_continue"]
    session: str = Field(alias="session_id")
    new_prompt: str = ""


PromptPart = Annotated[
    StaticPart | FilePart | PreviousResponsePart | SessionContextPart | ClaudeContinuePart,
    Field(discriminator="type"),
]
PROMPT_PARTS: dict[str, type[Spec]] = {
    "static": StaticPart,
    "file": FilePart,
    "previous_response": PreviousResponsePart,
    "session_context": SessionContextPart,
    "claude_continue": ClaudeContinuePart,
}


class Prompt(Spec):
    """A prompt: one template string, or parts joined by newlines."""

    parts: tuple[PromptPart, ...]

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"parts": [{"type": "static", "content": value}]}
        if isinstance(value, list):
            parts = [
                {"type": "static", "content": item} if isinstance(item, str) else item
                for item in value
            ]
            return {"parts": parts}
        return value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # YAML writes a prompt as a string or a list of parts (or strings), never {parts: ...}.
        model = handler.resolve_ref_schema(handler(core_schema))
        part = model["properties"]["parts"]["items"]
        return {
            "description": "A template string, or a list of parts joined by newlines.",
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"anyOf": [{"type": "string"}, part]}},
            ],
        }


class TokenBudget(Spec):
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=1)


class ClaudeOptions(Spec):
    """Options of pipeline_ex's claude steps. Unknown options are errors."""

    model: str | None = None
    fallback_model: str | None = None
    max_turns: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    allowed_tools: tuple[str, ...] | None = None
    disallowed_tools: tuple[str, ...] | None = None
    system_prompt: str | None = None
    append_system_prompt: str | None = None
    output_format: Literal["text", "json", "stream_json", "stream-json"] | None = None
    verbose: bool | None = None
    cwd: str | None = None
    timeout_ms: int | None = Field(default=None, ge=1)
    max_thinking_tokens: int | None = None
    permission_mode: str | None = None
    permission_prompt_tool: str | None = None
    mcp_config: str | None = None
    mcp_servers: dict[str, Any] | None = None
    hooks: dict[str, Any] | None = None
    agents: dict[str, Any] | None = None
    agent: str | None = None
    fork_session: bool | None = None
    add_dir: str | tuple[str, ...] | None = None
    strict_mcp_config: bool | None = None
    enable_skills: bool | None = None
    collect_stream: bool | None = None
    stream_handler_opts: dict[str, Any] | None = None
    session_id: str | None = None
    resume_session: bool | None = None
    debug_mode: bool | None = None
    telemetry_enabled: bool | None = None
    cost_tracking: bool | None = None
    async_streaming: bool | None = None
    stream_handler: str | None = None
    stream_buffer_size: int | None = None
    executable: str | None = None
    executable_args: tuple[str, ...] | None = None
    abort_ref: str | None = None
    retry_config: dict[str, Any] | None = None
    preset: str | None = None


class FunctionDef(Spec):
    """A ``gemini_functions`` entry."""

    description: str = ""
    parameters: JsonSchema = Field(default_factory=lambda: {"type": "object", "properties": {}})


class InputSpec(Spec):
    """A declared pipeline input (ours): validated before the run starts."""

    type: Literal["string", "integer", "number", "boolean", "object", "array", "any"] = "any"
    required: bool = False
    default: Any = None
    description: str = ""


class Budget(Spec):
    max_usd: float | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=1)


class ClaudeAuth(Spec):
    auto_check: bool = True
    provider: Literal["anthropic", "aws_bedrock", "google_vertex"] = "anthropic"
    fallback_mock: bool = False
    diagnostics: bool = False


class EnvironmentSettings(Spec):
    mode: Literal["development", "production", "test"] = "development"
    debug_level: Literal["basic", "detailed", "performance"] = "basic"
    cost_alerts: dict[str, Any] | None = None


class Defaults(Spec):
    claude_model: str | None = None
    claude_output_format: Literal["text", "json", "stream_json", "stream-json"] | None = None
    retry_on_error: bool | None = None
    claude_preset: str | None = None
    claude_options: ClaudeOptions | None = None
    gemini_model: str | None = None
    gemini_token_budget: TokenBudget | None = None
    provider: str | tuple[str, ...] | None = None
    output_dir: str | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)
    continue_on_error: bool | None = None
    retry: RetryPolicy | None = None


# ---------------------------------------------------------------------------
# Steps


Preset = Literal["development", "production", "analysis", "chat", "test", "environment-aware"]

ConditionSource = str | bool | dict[str, Any] | list[Any]


ProviderChain = Annotated[
    tuple[str, ...],
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
]


def _provider_chain(value: Any) -> Any:
    if isinstance(value, str):
        return (value,)
    return value


class StepSpec(Spec):
    """Fields every step has. Subclasses pin ``type`` with a Literal."""

    nested: ClassVar[dict[str, NestKind]] = {"on_error": "list"}
    llm: ClassVar[bool] = False

    name: str = Field(min_length=1)
    type: str
    condition: ConditionSource | None = None
    output_to_file: str | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)
    continue_on_error: bool | None = None
    on_error: tuple[StepSpec, ...] = ()
    retry: RetryPolicy | None = None
    output_schema: JsonSchema | None = None
    provider: ProviderChain | None = None
    description: str | None = None
    role: Literal["brain", "muscle"] | None = None
    streaming: dict[str, Any] | None = None

    _chain = field_validator("provider", mode="before")(_provider_chain)

    @field_validator("name")
    @classmethod
    def _name_is_plain(cls, value: str) -> str:
        if not value.replace("_", "").replace("-", "").isalnum():
            raise ValueError(
                "a step name may use letters, digits, '_' and '-' only "
                "(it is used in templates as steps.<name>)"
            )
        return value


class Demonstration(Spec):
    """One worked example the optimizer chose: the inputs and the answer it wants."""

    inputs: dict[str, Any] = Field(default_factory=dict)
    answer: Any = None


class OptimizedPrompt(Spec):
    """What `elx optimize` promoted for a step: written into the YAML with provenance."""

    version: int = Field(ge=1)
    date: str
    instructions: str | None = None
    demos: tuple[Demonstration, ...] = ()
    metric: str | None = None
    score_before: float | None = None
    score_after: float | None = None
    dataset: str | None = None
    optimizer: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)


class LlmStepSpec(StepSpec):
    """Steps that call a language model."""

    llm: ClassVar[bool] = True
    prompt: Prompt | None = None
    model: str | None = None
    optimized: OptimizedPrompt | None = None
    candidate: OptimizedPrompt | None = None  # A/B: tried on a fraction of live runs
    ab_fraction: float = Field(default=0.0, ge=0, le=1)
    metric: str | dict[str, Any] | None = None  # how `elx optimize` scores this step


class ClaudeStep(LlmStepSpec):
    type: Literal["claude"]
    claude_options: ClaudeOptions | None = None
    prompt: Prompt


class ClaudeSmartStep(LlmStepSpec):
    type: Literal["claude_smart"]
    preset: Preset | None = None
    environment_aware: bool = False
    claude_options: ClaudeOptions | None = None
    prompt: Prompt


FallbackAction = Literal[
    "graceful_degradation",
    "cached_response",
    "simplified_prompt",
    "emergency_response",
    "alternative_provider",
]


class RetryConfig(Spec):
    max_retries: int = Field(default=3, ge=0, le=100)
    backoff_strategy: Literal["exponential", "linear", "fixed"] = "exponential"
    base_delay_ms: int = Field(default=1000, ge=0)
    max_delay_ms: int = Field(default=30000, ge=0)
    retry_conditions: tuple[str, ...] = ()
    fallback_action: FallbackAction | None = None
    emergency_response: str = "The service is temporarily unable to answer this request."


class ClaudeRobustStep(LlmStepSpec):
    type: Literal["claude_robust"]
    preset: Preset | None = None
    retry_config: RetryConfig = Field(default_factory=RetryConfig)
    retry_count: int | None = Field(
        default=None, ge=0, le=100, description="short form of retry_config.max_retries"
    )
    claude_options: ClaudeOptions | None = None
    prompt: Prompt

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if isinstance(value, dict) and value.get("retry_count") is not None:
            value = dict(value)
            count = value["retry_count"]
            config = dict(value.get("retry_config") or {})
            if "max_retries" in config:
                raise ValueError("give either retry_count or retry_config.max_retries, not both")
            config["max_retries"] = count
            value["retry_config"] = config
        return value


class SessionConfig(Spec):
    session_name: str | None = None
    persist: bool = True
    continue_on_restart: bool = True
    max_turns: int | None = Field(default=None, ge=1)
    checkpoint_frequency: int | None = None
    description: str | None = None


class ClaudeSessionStep(LlmStepSpec):
    type: Literal["claude_session"]
    preset: Preset | None = None
    session: str | None = None
    session_config: SessionConfig = Field(default_factory=SessionConfig)
    claude_options: ClaudeOptions | None = None
    prompt: Prompt

    @property
    def session_name(self) -> str:
        return self.session or self.session_config.session_name or self.name


class ClaudeExtractStep(LlmStepSpec):
    type: Literal["claude_extract"]
    preset: Preset | None = None
    claude_options: ClaudeOptions | None = None
    extraction_config: ExtractionConfig = Field(default_factory=ExtractionConfig)
    schema_: JsonSchema | None = Field(default=None, alias="schema")
    prompt: Prompt


class BatchConfig(Spec):
    max_parallel: int = Field(default=3, ge=1, le=256)
    timeout_per_task: int | None = Field(
        default=None, gt=0, description="milliseconds, as in pipeline_ex"
    )
    consolidate_results: bool = True


class BatchTask(Spec):
    task_id: str | None = None
    id: str | None = None
    file: str | None = None
    prompt: Prompt | None = None
    claude_options: ClaudeOptions | None = None
    output_to_file: str | None = None

    @model_validator(mode="after")
    def _has_work(self) -> BatchTask:
        if self.prompt is None and self.file is None:
            raise ValueError("a batch task needs a prompt or a file")
        return self

    def key(self, index: int) -> str:
        return self.task_id or self.id or f"task_{index + 1}"


class ClaudeBatchStep(LlmStepSpec):
    type: Literal["claude_batch"]
    preset: Preset | None = None
    batch_config: BatchConfig = Field(default_factory=BatchConfig)
    tasks: tuple[BatchTask, ...] = ()
    claude_options: ClaudeOptions | None = None

    @model_validator(mode="after")
    def _has_tasks(self) -> ClaudeBatchStep:
        if not self.tasks and self.prompt is None:
            raise ValueError("claude_batch needs tasks (or a prompt for a single task)")
        return self


class ParallelTask(Spec):
    id: str
    prompt: Prompt
    claude_options: ClaudeOptions | None = None
    output_to_file: str | None = None


class ParallelClaudeStep(LlmStepSpec):
    type: Literal["parallel_claude"]
    parallel_tasks: tuple[ParallelTask, ...] = Field(min_length=1)
    max_parallel: int = Field(default=8, ge=1, le=256)
    claude_options: ClaudeOptions | None = None


class GeminiStep(LlmStepSpec):
    type: Literal["gemini"]
    prompt: Prompt
    token_budget: TokenBudget | None = None
    functions: tuple[str, ...] = ()
    tools: tuple[dict[str, Any], ...] = ()
    system_instruction: str | None = None


class GeminiStructuredStep(LlmStepSpec):
    type: Literal["gemini_structured"]
    prompt: Prompt
    token_budget: TokenBudget | None = None
    schema_: JsonSchema | None = Field(default=None, alias="schema")
    format: Literal["json"] = "json"
    system_instruction: str | None = None


class GeminiInstructorStep(LlmStepSpec):
    type: Literal["gemini_instructor"]
    prompt: Prompt
    token_budget: TokenBudget | None = None
    schema_: JsonSchema | None = Field(default=None, alias="schema")
    validation_mode: Literal["strict", "loose"] = "strict"
    max_retries: int = Field(default=2, ge=0, le=20)
    functions: tuple[str, ...] = ()
    system_instruction: str | None = None

    @model_validator(mode="after")
    def _needs_schema(self) -> GeminiInstructorStep:
        if self.output_schema is None and self.schema_ is None:
            raise ValueError(
                "gemini_instructor needs a schema (or output_schema) to validate against"
            )
        return self

    @property
    def target_schema(self) -> JsonSchema:
        schema = self.schema_ or self.output_schema
        assert schema is not None
        return schema


class LlmCallStep(LlmStepSpec):
    type: Literal["llm"]
    prompt: Prompt
    system: str | None = None
    format: Literal["text", "json"] = "text"
    schema_: JsonSchema | None = Field(default=None, alias="schema")
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)


class SetVariableStep(StepSpec):
    type: Literal["set_variable"]
    variables: dict[str, Any] = Field(min_length=1)
    scope: Literal["global", "local", "session", "loop"] = "global"


class DataTransformStep(StepSpec):
    type: Literal["data_transform"]
    input_source: Any
    operations: tuple[TransformOp, ...] = Field(min_length=1)
    output_field: str | None = None
    output_format: Literal["json", "string", "count"] | None = None


_COMMON_FIELDS = frozenset(
    {
        "name", "type", "condition", "output_to_file", "timeout_seconds", "continue_on_error",
        "on_error", "retry", "output_schema", "provider", "description", "role", "streaming",
    }
)  # fmt: skip


class FileOpsStep(StepSpec):
    """pipeline_ex writes the operation's fields flat on the step; they are kept in ``op``."""

    type: Literal["file_ops"]
    op: FileOp

    @model_validator(mode="before")
    @classmethod
    def _fold(cls, value: Any) -> Any:
        if isinstance(value, dict) and "op" not in value:
            common = {k: v for k, v in value.items() if k in _COMMON_FIELDS}
            common["op"] = {k: v for k, v in value.items() if k not in _COMMON_FIELDS}
            return common
        return value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # In YAML the operation's fields sit on the step itself: one variant per operation.
        schema = handler.resolve_ref_schema(handler(core_schema))
        common = {k: v for k, v in schema["properties"].items() if k != "op"}
        required = [r for r in schema.get("required", []) if r != "op"]
        variants = []
        for op in schema["properties"]["op"].get("oneOf", []):
            resolved = handler.resolve_ref_schema(op)
            variants.append(
                {
                    "type": "object",
                    "properties": {**common, **resolved["properties"]},
                    "required": sorted({*required, *resolved.get("required", [])}),
                    "additionalProperties": False,
                }
            )
        return {"title": "FileOpsStep", "oneOf": variants}


class ForLoopStep(StepSpec):
    nested: ClassVar[dict[str, NestKind]] = {"on_error": "list", "steps": "list"}
    type: Literal["for_loop"]
    iterator: str = "item"
    data_source: Any
    steps: tuple[StepSpec, ...] = Field(min_length=1)
    parallel: bool = False
    max_parallel: int = Field(default=4, ge=1, le=256)
    break_condition: ConditionSource | None = None
    continue_condition: ConditionSource | None = None
    max_iterations: int = Field(default=10_000, ge=1)
    break_on_error: bool = True
    batch_size: int | None = Field(default=None, ge=1)

    @field_validator("iterator")
    @classmethod
    def _iterator_is_name(cls, value: str) -> str:
        if not value.isidentifier() or value.startswith("_"):
            raise ValueError("the iterator must be a plain identifier such as 'item'")
        return value


class WhileLoopStep(StepSpec):
    """``condition`` is the loop condition here, checked before each iteration."""

    nested: ClassVar[dict[str, NestKind]] = {"on_error": "list", "steps": "list"}
    type: Literal["while_loop"]
    condition: ConditionSource
    steps: tuple[StepSpec, ...] = Field(min_length=1)
    max_iterations: int = Field(default=100, ge=1, le=1_000_000)
    on_max: Literal["fail", "stop"] = "fail"


class SwitchStep(StepSpec):
    nested: ClassVar[dict[str, NestKind]] = {"on_error": "list", "cases": "map", "default": "list"}
    type: Literal["switch"]
    on: str | None = None
    expression: str | None = Field(default=None, description="pipeline_ex's name for `on`")
    cases: dict[str, tuple[StepSpec, ...]] = Field(min_length=1)
    default: tuple[StepSpec, ...] = ()

    @model_validator(mode="after")
    def _one_selector(self) -> SwitchStep:
        if (self.on is None) == (self.expression is None):
            raise ValueError("a switch needs exactly one of `on` or `expression`")
        return self

    @property
    def selector(self) -> str:
        value = self.on if self.on is not None else self.expression
        assert value is not None
        return value


class NestedConfig(Spec):
    inherit_context: bool = False
    inherit_providers: bool = True
    inherit_functions: bool = True
    workspace_dir: str | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)
    max_depth: int = Field(default=10, ge=1, le=64)
    max_total_steps: int = Field(default=1000, ge=1)
    memory_limit_mb: int | None = None
    workspace_enabled: bool | None = None
    cleanup_on_error: bool | None = None
    checkpoint_enabled: bool | None = None
    max_retries: int | None = None
    enable_tracing: bool | None = None
    continue_on_error: bool = False


class OutputMapping(Spec):
    path: str
    as_: str | None = Field(default=None, alias="as")


class PipelineStep(StepSpec):
    nested: ClassVar[dict[str, NestKind]] = {"on_error": "list", "pipeline": "workflow"}
    type: Literal["pipeline"]
    pipeline_file: str | None = None
    pipeline: Workflow | None = None
    pipeline_ref: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: tuple[str | OutputMapping, ...] = ()
    config: NestedConfig = Field(default_factory=NestedConfig)

    @model_validator(mode="after")
    def _one_source(self) -> PipelineStep:
        given = [
            n for n in ("pipeline_file", "pipeline", "pipeline_ref") if getattr(self, n) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "a pipeline step needs exactly one of pipeline_file or pipeline (inline)"
                + (f"; got {', '.join(given)}" if given else "")
            )
        return self


class TestEchoStep(StepSpec):
    __test__ = False  # not a pytest test class
    type: Literal["test_echo"]
    value: Any = None
    fail: bool = False
    message: str | None = None


# ---------------------------------------------------------------------------
# The workflow


class Workflow(Spec):
    nested: ClassVar[dict[str, NestKind]] = {"steps": "list"}

    name: str = Field(min_length=1)
    description: str | None = None
    version: str | int | float | None = None
    workspace_dir: str | None = None
    output_dir: str | None = None
    claude_auth: ClaudeAuth | None = None
    environment: EnvironmentSettings | None = None
    resource_limits: dict[str, int | float] | None = None
    checkpoint_enabled: bool = True
    checkpoint_dir: str | None = None
    defaults: Defaults = Field(default_factory=Defaults)
    gemini_functions: dict[str, FunctionDef] = Field(default_factory=dict)
    global_vars: dict[str, Any] = Field(default_factory=dict)
    variables: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    budget: Budget | None = None
    fallback: str | None = None
    steps: tuple[StepSpec, ...] = Field(min_length=1)


class PipelineDocument(Spec):
    """The file's root: ``workflow:`` and nothing else."""

    workflow: Workflow


PipelineStep.model_rebuild()

CORE_STEP_MODELS: tuple[type[StepSpec], ...] = (
    ClaudeStep,
    ClaudeSmartStep,
    ClaudeRobustStep,
    ClaudeSessionStep,
    ClaudeExtractStep,
    ClaudeBatchStep,
    ParallelClaudeStep,
    GeminiStep,
    GeminiStructuredStep,
    GeminiInstructorStep,
    LlmCallStep,
    SetVariableStep,
    DataTransformStep,
    FileOpsStep,
    ForLoopStep,
    WhileLoopStep,
    SwitchStep,
    PipelineStep,
    TestEchoStep,
)


def step_type_name(model: type[StepSpec]) -> str:
    """The ``type`` literal a step model pins."""
    annotation = model.model_fields["type"].annotation
    args: tuple[Any, ...] = getattr(annotation, "__args__", ())
    if len(args) != 1 or not isinstance(args[0], str):
        raise TypeError(f"{model.__name__}.type must be a single Literal string")
    name: str = args[0]
    return name
