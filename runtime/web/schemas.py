"""The gateway's request and answer shapes: they validate bodies and make the OpenAPI doc."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runtime.pipeline.models import Budget

SESSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
PIPELINE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
JobStatus = Literal["accepted", "running", "completed", "failed", "cancelled", "budget_exceeded"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatRequest(_Request):
    message: str = Field(min_length=1, max_length=32_000, description="The request, free text.")
    session_id: str | None = Field(
        None,
        pattern=SESSION_PATTERN,
        description="Continue this session; omitted: a new session is started and returned.",
    )


class ChatAnswer(_Answer):
    status: str = Field(
        description="completed, failed, cancelled, budget_exceeded, or running when the "
        "answer took longer than the gateway's chat timeout (follow job_id)."
    )
    response: str = Field(description="The answer in Markdown, or what went wrong.")
    execution_time: float = Field(description="Seconds from the request to the answer.")
    execution_time_ms: float
    pipeline_used: str | None
    job_id: str | None
    fallback_used: dict[str, Any] | None = Field(
        description="The fallback that produced the answer, when the first pipeline failed."
    )
    session_id: str
    error: dict[str, Any] | None = None
    providers: list[str] = []
    tokens: int = 0
    cost_usd: float = 0.0


class ErrorAnswer(BaseModel):
    status: Literal["error"] = "error"
    error: str = Field(description="What went wrong and what to do.")
    code: str = Field(description="A stable code: see docs/reference/protocol.md.")
    fallback_used: None = None
    retry_after_s: float | None = None


class SubmitRequest(_Request):
    pipeline: str = Field(
        pattern=PIPELINE_PATTERN,
        description="A pipeline's name under the pipeline directories (e.g. analysis); "
        "paths are refused over HTTP.",
    )
    inputs: dict[str, Any] = Field(default_factory=dict)
    priority: int = Field(0, ge=-1000, le=1000, description="Higher starts sooner.")
    budget: Budget | None = None


class Job(_Answer):
    id: str
    pipeline: str
    inputs: dict[str, Any]
    status: JobStatus
    priority: int
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int
    error: Any = None
    meta: dict[str, Any] = {}


class JobProgress(Job):
    current_step: str | None = Field(None, description="The step running now (live jobs).")
    steps_done: int = Field(0, description="Steps finished, skipped or restored so far.")


class JobList(BaseModel):
    jobs: list[Job]


class TreeNode(_Answer):
    path: str
    id: str
    kind: str
    state: str
    restart_count: int
    uptime_s: float | None
    detail: list[list[str]] = []
    children: list[TreeNode] = []


class HealthCheck(_Answer):
    name: str
    status: str
    message: str


class Health(_Answer):
    status: Literal["healthy", "degraded", "critical"]
    checks: list[HealthCheck]
    actions: list[Any]
    down: list[str]
    ready: bool
