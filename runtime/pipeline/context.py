"""What a running step can see and do.

``Run`` is the state of one pipeline run (shared by nested scopes);
``Scope`` is one level of step list (top level, a loop iteration, a switch
branch) with its own result overlay; ``StepContext`` is handed to a step
runner and is the only way a step reaches templates, conditions, providers,
the workspace and nested execution.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.clock import Clock
from runtime.config import Settings
from runtime.errors import BudgetExceeded, Cancelled, ElexirionError, StepError
from runtime.pipeline.conditions import parse_condition
from runtime.pipeline.models import Budget, StepSpec, Workflow
from runtime.pipeline.templates import render_text, render_value
from runtime.pipeline.workspace import Sandbox
from runtime.providers.base import CallControl, LLMRequest, LLMResponse, ProviderGateway

if TYPE_CHECKING:
    from runtime.pipeline.events import RunEvent
    from runtime.pipeline.loader import LoadedPipeline
    from runtime.store import CheckpointRow, Store


class StepStatus(StrEnum):
    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(slots=True)
class StepRecord:
    """The outcome of one step: ``result`` is what templates see as ``steps.<name>.result``."""

    name: str
    path: str
    type: str
    status: StepStatus
    result: Any = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    duration_ms: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "type": self.type,
            "status": self.status.value,
            "result": self.result,
            "meta": self.meta,
            "error": self.error,
            "duration_ms": round(self.duration_ms, 3),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StepRecord:
        return cls(
            name=data["name"],
            path=data["path"],
            type=data["type"],
            status=StepStatus(data["status"]),
            result=data.get("result"),
            meta=dict(data.get("meta") or {}),
            error=data.get("error"),
            duration_ms=float(data.get("duration_ms") or 0.0),
        )


class StepView(Mapping[str, Any]):
    """``steps.<name>`` in templates: ``.result``, result fields, then metadata.

    pipeline_ex writes both ``steps.x.result.score`` and ``steps.x.score``;
    ``steps.x.text``/``.content``/``.success``/``.cost`` read the metadata.
    """

    __slots__ = ("_record",)

    def __init__(self, record: StepRecord) -> None:
        self._record = record

    def _fields(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self._record.meta)
        out["status"] = self._record.status.value
        out["success"] = self._record.status is not StepStatus.FAILED
        if self._record.status is StepStatus.SKIPPED:
            out["skipped"] = True
        if self._record.error is not None:
            out["error"] = self._record.error
        structured = self._structured()
        if isinstance(structured, Mapping):
            out.update(structured)
        out["result"] = self._record.result
        return out

    def __getitem__(self, key: str) -> Any:
        if key == "result":
            return self._record.result
        result = self._structured()
        if isinstance(result, Mapping) and key in result:
            return result[key]
        return self._fields()[key]

    def _structured(self) -> Any:
        """The result, or the object a JSON-text answer holds (``analyze.score`` on text)."""
        result = self._record.result
        if isinstance(result, str):
            stripped = result.strip()
            if stripped.startswith("{") and stripped.endswith("}"):
                try:
                    return json.loads(stripped)
                except ValueError:
                    return result
        return result

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields())

    def __len__(self) -> int:
        return len(self._fields())

    def __repr__(self) -> str:
        return f"StepView({self._record.name}: {self._record.result!r})"


class StepsView(Mapping[str, StepView]):
    """All step results visible from a scope (inner scopes see outer results)."""

    __slots__ = ("_scope",)

    def __init__(self, scope: Scope) -> None:
        self._scope = scope

    def __getitem__(self, key: str) -> StepView:
        record = self._scope.lookup(key)
        if record is None:
            raise KeyError(key)
        return StepView(record)

    def __iter__(self) -> Iterator[str]:
        return iter(self._scope.visible_names())

    def __len__(self) -> int:
        return len(self._scope.visible_names())


EventSink = Callable[["RunEvent"], None]


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(eq=False)
class Run:
    """One run of a pipeline (a nested pipeline gets its own Run with ``parent`` set)."""

    id: str
    pipeline: LoadedPipeline
    inputs: dict[str, Any]
    gateway: ProviderGateway
    settings: Settings
    clock: Clock
    workspace: Sandbox
    outputs: Sandbox
    store: Store | None = None
    events: EventSink | None = None
    started_at: str = ""
    global_vars: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    restored: dict[str, CheckpointRow] = field(default_factory=dict)
    cancel_event: threading.Event = field(default_factory=CallControl)
    parent: Run | None = None
    depth: int = 0
    file_stack: tuple[Path, ...] = ()
    usage: Usage = field(default_factory=Usage)
    providers_used: set[str] = field(default_factory=set)
    notices: list[str] = field(default_factory=list)
    checkpoint_prefix: str = ""
    extra_budget: Budget | None = None  # a job's own budget, on top of the pipeline's
    lock: threading.RLock = field(default_factory=threading.RLock)
    _seq: int = 0

    @property
    def workflow(self) -> Workflow:
        return self.pipeline.workflow

    @property
    def root(self) -> Run:
        return self if self.parent is None else self.parent.root

    @property
    def budget(self) -> Budget | None:
        """The pipeline's budget, tightened by the job's: the lower limit of each wins."""
        own, extra = self.workflow.budget, self.extra_budget
        if own is None or extra is None:
            return own or extra
        return Budget(
            max_tokens=_lowest(own.max_tokens, extra.max_tokens),
            max_usd=_lowest(own.max_usd, extra.max_usd),
        )

    def next_seq(self) -> int:
        root = self.root
        with root.lock:
            root._seq += 1
            return root._seq

    def emit(self, event: RunEvent) -> None:
        sink = self.root.events
        if sink is not None:
            sink(event)

    def check_cancelled(self) -> None:
        if self.root.cancel_event.is_set():
            raise Cancelled(f"run {self.root.id} was cancelled")

    def notice(self, text: str) -> None:
        root = self.root
        with root.lock:
            if text not in root.notices:
                root.notices.append(text)

    def check_budget(self) -> None:
        """Raise if any run in the chain is already over its budget."""
        run: Run | None = self
        while run is not None:
            budget = run.budget
            if budget is not None:
                if budget.max_tokens is not None and run.usage.tokens >= budget.max_tokens:
                    raise BudgetExceeded(
                        f"token budget of {budget.max_tokens} reached "
                        f"({run.usage.tokens} used); no further provider calls",
                        limit="max_tokens",
                        used=run.usage.tokens,
                        allowed=budget.max_tokens,
                    )
                if budget.max_usd is not None and run.usage.cost_usd >= budget.max_usd:
                    raise BudgetExceeded(
                        f"cost budget of ${budget.max_usd:.4f} reached "
                        f"(${run.usage.cost_usd:.4f} used); no further provider calls",
                        limit="max_usd",
                        used=run.usage.cost_usd,
                        allowed=budget.max_usd,
                    )
            run = run.parent

    def account(self, response: LLMResponse) -> None:
        run: Run | None = self
        while run is not None:
            with run.lock:
                run.usage.input_tokens += response.usage.input_tokens
                run.usage.output_tokens += response.usage.output_tokens
                run.usage.cost_usd += response.cost_usd
                run.usage.calls += 1
                run.providers_used.add(response.provider)
            run = run.parent


@dataclass(eq=False)
class Scope:
    """A level of step list: results written here, lookups fall back to the parent."""

    run: Run
    prefix: str = ""
    parent: Scope | None = None
    loop: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    results: dict[str, StepRecord] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=dict)
    local_state: dict[str, Any] = field(default_factory=dict)

    def lookup(self, name: str) -> StepRecord | None:
        scope: Scope | None = self
        while scope is not None:
            record = scope.results.get(name)
            if record is not None:
                return record
            scope = scope.parent
        return None

    def visible_names(self) -> list[str]:
        names: dict[str, None] = {}
        scope: Scope | None = self
        while scope is not None:
            names.update(dict.fromkeys(scope.results))
            scope = scope.parent
        return list(names)

    def record(self, record: StepRecord) -> None:
        with self.run.lock:
            self.results[record.name] = record

    def state_view(self) -> Mapping[str, Any]:
        """Run state, overlaid by the variables set with a local scope here and above."""
        layers: list[dict[str, Any]] = []
        scope: Scope | None = self
        while scope is not None:
            if scope.local_state:
                layers.append(scope.local_state)
            scope = scope.parent
        if not layers:
            return self.run.state
        return ChainMap(*layers, self.run.state)

    def child(
        self,
        prefix: str,
        *,
        loop: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Scope:
        return Scope(
            run=self.run,
            prefix=prefix,
            parent=self,
            loop=loop if loop is not None else self.loop,
            extra={**self.extra, **(extra or {})},
        )

    def names(self) -> dict[str, Any]:
        """The names templates and conditions see."""
        run = self.run
        names: dict[str, Any] = {
            "steps": StepsView(self),
            "inputs": run.inputs,
            "global_vars": run.global_vars,
            "state": self.state_view(),
            "workflow": {
                "name": run.workflow.name,
                "description": run.workflow.description or "",
                "version": run.workflow.version,
            },
            "run": {"id": run.root.id, "started_at": run.root.started_at},
        }
        env = run.settings.template_environment()
        if env:
            names["env"] = env
        if self.loop is not None:
            names["loop"] = self.loop
            iterator = self.loop.get("iterator")
            if isinstance(iterator, str) and iterator not in names:
                names[iterator] = self.loop.get(iterator)
        names.update(self.extra)
        return names


class StepContext:
    """The interface between a step runner and the executor."""

    def __init__(self, step: StepSpec, scope: Scope, path: str, deadline: float | None) -> None:
        self.step = step
        self.scope = scope
        self.path = path
        self.deadline = deadline
        self.meta: dict[str, Any] = {}

    @property
    def run(self) -> Run:
        return self.scope.run

    @property
    def workflow(self) -> Workflow:
        return self.scope.run.workflow

    @property
    def settings(self) -> Settings:
        return self.scope.run.settings

    @property
    def clock(self) -> Clock:
        return self.scope.run.clock

    def names(self) -> dict[str, Any]:
        return self.scope.names()

    def render(self, value: Any) -> Any:
        return render_value(value, self.names())

    def render_text(self, source: str) -> str:
        return render_text(source, self.names())

    def check(self, condition: Any, *, field_name: str = "condition") -> bool:
        where = f"step '{self.step.name}' field '{field_name}'"
        return parse_condition(condition, where=where).evaluate(self.names())

    def remaining(self) -> float | None:
        if self.deadline is None:
            return None
        left = self.deadline - self.clock.now()
        if left <= 0:
            raise StepError(
                f"step '{self.step.name}' exceeded its timeout of "
                f"{self.step.timeout_seconds or self.workflow.defaults.timeout_seconds} s",
                step=self.path,
                kind=_timeout_kind(),
            )
        return left

    def complete(self, request: LLMRequest) -> LLMResponse:
        """Send one LLM call: cancellation, deadline and budget are checked first."""
        run = self.run
        run.check_cancelled()
        run.check_budget()
        left = self.remaining()
        if left is not None and (request.timeout_s is None or request.timeout_s > left):
            request = _with_timeout(request, left)
        control = run.root.cancel_event
        if isinstance(control, CallControl) and request.control is None:
            request = dataclasses.replace(request, control=control)  # a cancel cuts the call
        try:
            response = run.gateway.complete(request)
        except ElexirionError:
            run.check_cancelled()  # the call failed because we cut it: report the cancel
            raise
        run.account(response)
        if response.provider != request.provider and request.provider != "mock":
            run.notice(
                f"{request.provider} was not available; the {response.provider} provider "
                f"answered instead (set its API key, or pass --provider)"
            )
        self.meta.setdefault("providers", [])
        if response.provider not in self.meta["providers"]:
            self.meta["providers"].append(response.provider)
        return response


def _lowest(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else min(a, b)


def _timeout_kind() -> Any:
    from runtime.errors import FailureKind

    return FailureKind.TIMEOUT


def _with_timeout(request: LLMRequest, seconds: float) -> LLMRequest:
    from dataclasses import replace

    return replace(request, timeout_s=seconds)
