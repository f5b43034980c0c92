"""The agent: a free-text request → a routed pipeline → a durable job → an answer.

``Agent.ask`` never blocks its caller or itself on a job: it returns a
``Future`` at once; routing (which may call an LLM classifier), submitting,
waiting (``JobManager.wait_future``, a timer, no thread) and the follow-up
work run as short tasks on a small pool. So a thousand concurrent requests
are a thousand futures and a thousand jobs in the queue, not a thousand
blocked threads.

When a job fails, the failure is classified (``runtime.fallback``); a
fallback pipeline is built, saved under ``state_dir/fallbacks/`` and run once
as a new job; the answer says which fallback ran and why, and if it fails too
the error names both failures. A completed answer is appended to the session,
if there is one, so the next request's pipeline sees the conversation.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from runtime.errors import ConfigError, DaemonUnavailable
from runtime.fallback import FallbackPlan, build_fallback, plan_fallback
from runtime.pipeline.loader import load_pipeline
from runtime.pipeline.models import Budget
from runtime.routing import Decision, RouteTable, classifier_schema, load_routes

if TYPE_CHECKING:
    from runtime.config import Settings
    from runtime.jobs import JobManager
    from runtime.providers.base import ProviderGateway
    from runtime.store import JobRow, Store

log = structlog.get_logger("elexirion.agent")

DEFAULT_TIMEOUT_S = 300.0
PROVIDER_ORDER = ("anthropic", "gemini", "openai", "mock")
ENDED = frozenset({"completed", "failed", "cancelled", "budget_exceeded"})


@dataclass(frozen=True)
class AskRequest:
    text: str
    session: str | None = None
    context: str | None = None
    wait: bool = True
    timeout_s: float = DEFAULT_TIMEOUT_S
    budget: Budget | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def deadline(self) -> float:
        return self.started + self.timeout_s


@dataclass
class _Attempt:
    """The job answering a request now, and what came before it."""

    job_id: str
    decision: Decision
    pipeline: str
    first_failure: Mapping[str, Any] | None = None
    first_job: str | None = None
    fallback: FallbackPlan | None = None


class Agent:
    """Routes, submits, follows and answers; see the module docstring."""

    def __init__(
        self,
        jobs: JobManager,
        store: Store,
        settings: Settings,
        gateway: ProviderGateway | None = None,
        *,
        routes: RouteTable | None = None,
        workers: int = 4,
        health: Any = None,
    ) -> None:
        self.jobs = jobs
        self.store = store
        self.settings = settings
        self.gateway = gateway
        self.routes = routes if routes is not None else self._load_routes()
        self._health = health  # () -> {provider: breaker state}
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="elx-agent")
        self._lock = threading.Lock()
        self._in_flight = 0
        self._answered = 0
        self.bypass = False  # set by the health monitor when the agent is overloaded
        self._pending: set[Future[dict[str, Any]]] = set()

    # -- the API ------------------------------------------------------------------

    def ask(self, request: AskRequest) -> Future[dict[str, Any]]:
        """The answer, later: completed, failed, ``running`` (timed out) or ``accepted``."""
        if not request.text.strip():
            raise ConfigError("the request is empty; ask something")
        future: Future[dict[str, Any]] = Future()
        with self._lock:
            self._in_flight += 1
            self._pending.add(future)
        future.add_done_callback(self._one_done)
        self._submit(future, self._start, request, future)
        return future

    def handle_request(
        self,
        text: str,
        session_id: str | None = None,
        context: str | None = None,
        **options: Any,
    ) -> Future[dict[str, Any]]:
        """DESIGN.md's name for ``ask``: ``options`` are AskRequest's (wait, timeout_s, budget)."""
        return self.ask(AskRequest(text, session=session_id, context=context, **options))

    def decide(self, text: str) -> Decision:
        """The routing decision for ``text``, with the providers' health at this moment."""
        classify = self._classify if self.gateway is not None and not self.bypass else None
        decision = self.routes.decide(text, classify)
        health = self.provider_health()
        return Decision(decision.pipeline, decision.reason, decision.rule, decision.score, health)

    def provider_health(self) -> dict[str, str]:
        if self._health is None:
            return {}
        return {str(k): str(v) for k, v in dict(self._health()).items()}

    def status(self) -> dict[str, int]:
        with self._lock:
            return {"in_flight": self._in_flight, "answered": self._answered}

    def close(self) -> None:
        """Stop the pool; requests still pending are answered with an error."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            _fail(future, DaemonUnavailable("the daemon stopped before the answer was ready"))

    def _submit(self, future: Future[dict[str, Any]], fn: Any, *args: Any) -> None:
        """Run one step of a request on the pool; a closed pool fails the request."""
        try:
            self._pool.submit(self._guard, future, fn, *args)
        except RuntimeError:
            _fail(future, DaemonUnavailable("the daemon is stopping; ask again after it starts"))

    # -- steps of a request (each a short task on the pool) -------------------------

    def _start(self, request: AskRequest, future: Future[dict[str, Any]]) -> None:
        decision = self.decide(request.text)
        session = request.session
        inputs = {
            "request": request.text,
            "context": request.context or "",
            "session": session or "",
        }
        meta = {"agent": {"decision": decision.to_json(), "session": session}}
        row = self.jobs.submit(decision.pipeline, inputs, meta=meta, budget=request.budget)
        log.info("agent_routed", job=row.id, pipeline=decision.pipeline, reason=decision.reason)
        attempt = _Attempt(row.id, decision, _pipeline_name(row))
        if not request.wait:
            future.set_result(self._answer(request, attempt, row, status="accepted"))
            return
        self._follow(request, attempt, future)

    def _follow(
        self, request: AskRequest, attempt: _Attempt, future: Future[dict[str, Any]]
    ) -> None:
        left = max(0.0, request.deadline - time.monotonic())
        waiting = self.jobs.wait_future(attempt.job_id, left)
        waiting.add_done_callback(
            lambda _: self._submit(future, self._ended, request, attempt, future)
        )

    def _ended(
        self, request: AskRequest, attempt: _Attempt, future: Future[dict[str, Any]]
    ) -> None:
        row = self.jobs.get(attempt.job_id)
        if row.status not in ENDED:
            future.set_result(self._answer(request, attempt, row, status="running"))
            return
        if row.status == "completed":
            self._remember(request, attempt, row)
            future.set_result(self._answer(request, attempt, row))
            return
        plan = None
        if attempt.fallback is None and row.status == "failed" and not self.bypass:
            plan = plan_fallback(
                row.error, load_pipeline(row.pipeline).workflow, healthy=self._healthy()
            )
        if plan is None:
            future.set_result(self._answer(request, attempt, row))
            return
        self._run_fallback(request, attempt, row, plan, future)

    def _run_fallback(
        self,
        request: AskRequest,
        attempt: _Attempt,
        failed: JobRow,
        plan: FallbackPlan,
        future: Future[dict[str, Any]],
    ) -> None:
        directory = self.settings.state_dir / "fallbacks"
        loaded = build_fallback(plan, load_pipeline(failed.pipeline), directory, tag=failed.id)
        meta: dict[str, Any] = {
            "agent": {"decision": attempt.decision.to_json(), "session": request.session},
            "fallback_of": failed.id,
            "fallback": {**plan.to_json(), "pipeline": loaded.workflow.name},
        }
        if plan.provider:
            meta["provider"] = plan.provider  # nested pipelines and steps without a provider too
        row = self.jobs.submit(str(loaded.path), failed.inputs, meta=meta, budget=request.budget)
        log.info("agent_fallback", failed=failed.id, job=row.id, kind=plan.kind, reason=plan.reason)
        self._follow(
            request,
            _Attempt(
                row.id,
                attempt.decision,
                attempt.pipeline,
                first_failure=failed.error or {"kind": failed.status},
                first_job=failed.id,
                fallback=plan,
            ),
            future,
        )

    # -- answers ------------------------------------------------------------------------

    def _answer(
        self, request: AskRequest, attempt: _Attempt, row: JobRow, status: str | None = None
    ) -> dict[str, Any]:
        run = row.result if isinstance(row.result, dict) else {}
        usage = run.get("usage") or {}
        state = status or row.status
        answer: dict[str, Any] = {
            "status": state,
            "response": _format(run.get("result")) if state == "completed" else "",
            "execution_time_ms": round((time.monotonic() - request.started) * 1000, 1),
            "pipeline_used": attempt.pipeline,
            "job_id": row.id,
            "providers": list(run.get("providers") or []),
            "cost_usd": float(usage.get("cost_usd") or 0.0),
            "tokens": int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0),
            "fallback_used": None,
            "decision": attempt.decision.to_json(),
            "session": request.session,
            "error": None,
        }
        if attempt.fallback is not None:
            answer["fallback_used"] = {
                **attempt.fallback.to_json(),
                "pipeline": (row.meta.get("fallback") or {}).get("pipeline", _pipeline_name(row)),
                "failed_job": attempt.first_job,
            }
        if state in ("running", "accepted"):
            answer["response"] = (
                f"job {row.id} is {state}; follow it with `elx wait {row.id}`"
                if state == "running"
                else f"job {row.id} accepted; follow it with `elx wait {row.id}`"
            )
        elif state != "completed":
            error = dict(row.error or {"kind": state, "message": f"job {row.id} {state}"})
            if attempt.first_failure is not None:
                first = attempt.first_failure
                error = {
                    "kind": error.get("kind"),
                    "message": (
                        f"{attempt.pipeline} failed ({first.get('kind')}: {first.get('message')});"
                        f" its {attempt.fallback.kind if attempt.fallback else ''} fallback failed "
                        f"too ({error.get('kind')}: {error.get('message')})"
                    ),
                    "first": dict(first),
                    "fallback": error,
                }
            answer["error"] = error
            answer["response"] = str(error.get("message", ""))
        return answer

    def _remember(self, request: AskRequest, attempt: _Attempt, row: JobRow) -> None:
        if not request.session:
            return
        run = row.result if isinstance(row.result, dict) else {}
        self.store.append_session_turns(
            request.session,
            [("user", request.text), ("assistant", _format(run.get("result")))],
            row.id,
        )

    # -- helpers ------------------------------------------------------------------------

    def _guard(self, future: Future[dict[str, Any]], fn: Any, *args: Any) -> None:
        """Run one step of a request; whatever it raises becomes the request's error."""
        try:
            fn(*args)
        except Exception as exc:
            if not future.done():
                log.warning("agent_request_failed", error=str(exc))
                future.set_exception(exc)

    def _one_done(self, future: Future[dict[str, Any]]) -> None:
        with self._lock:
            self._in_flight -= 1
            self._answered += 1
            self._pending.discard(future)

    def _healthy(self) -> list[str]:
        """Providers that can take a request now, in preference order."""
        health = self.provider_health()
        usable = [
            p
            for p in PROVIDER_ORDER
            if (self.settings.has_key(p) if p != "mock" else self.settings.allow_mock_fallback)
        ]
        return [p for p in usable if health.get(p, "closed") != "open"]

    def _classify(self, text: str, pipelines: list[str]) -> tuple[str, float]:
        from runtime.providers.base import LLMRequest, OutputFormat

        spec = self.routes.classifier
        assert spec is not None and self.gateway is not None
        descriptions = "\n".join(
            f"- {r.pipeline}: {r.description or ', '.join(r.keywords)}" for r in self.routes.routes
        )
        prompt = (
            "Choose the pipeline that should answer this request.\n"
            f"Pipelines:\n{descriptions}\n- {self.routes.default}: anything else\n\n"
            f"Request: {text}\n\nAnswer with the pipeline and your confidence from 0 to 1."
        )
        response = self.gateway.complete(
            LLMRequest(
                prompt=prompt,
                provider=spec.provider,
                model=spec.model,
                output_format=OutputFormat.JSON,
                schema=classifier_schema(pipelines),
                step="classifier",
                timeout_s=30.0,
            )
        )
        data = response.data if isinstance(response.data, dict) else {}
        return str(data.get("pipeline", "")), float(data.get("confidence", 0.0))

    def _load_routes(self) -> RouteTable:
        for base in self.settings.pipeline_dirs:
            candidate = Path(base) / "routes.yaml"
            if candidate.exists():
                return load_routes(candidate)
        return RouteTable()


def _fail(future: Future[dict[str, Any]], error: Exception) -> None:
    if not future.done():
        with contextlib.suppress(InvalidStateError):
            future.set_exception(error)


def new_session_id() -> str:
    return f"s-{uuid.uuid4().hex[:10]}"


def _pipeline_name(row: JobRow) -> str:
    return Path(row.pipeline).stem


def _format(value: Any) -> str:
    """A pipeline's final result as text: Markdown as it is, anything else as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    import json

    return "```json\n" + json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n```"
