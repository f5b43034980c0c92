"""The FastAPI application: routes over the daemon's own methods, the page, the OpenAPI doc.

Every route calls the same ``DaemonApi`` method the Unix socket does (so the
checks, errors and emergency refusals are one code path) on a worker thread,
and awaits the method's Future when it answers later (``ask``), so no thread
waits on a job. Errors have one shape, ``ErrorAnswer``, with the socket's
stable code and an HTTP status that matches it.
"""

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Path as PathParam, Query, Request as HttpRequest
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPBearer
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from runtime.protocol import ErrorCode, Request, error_from_exception
from runtime.redaction import redact
from runtime.web.guard import Guard, error_json
from runtime.web.schemas import (
    JOB_ID_PATTERN,
    ChatAnswer,
    ChatRequest,
    ErrorAnswer,
    Health,
    JobList,
    JobProgress,
    JobStatus,
    SubmitRequest,
    TreeNode,
)

if TYPE_CHECKING:
    from runtime.daemon import DaemonContext
    from runtime.web.config import WebConfig

STATIC = Path(__file__).with_name("static")
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HTTP_STATUS: dict[str, int] = {
    ErrorCode.INVALID_PARAMS: 422,
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.PARSE_ERROR: 400,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.TIMEOUT: 504,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.SHUTTING_DOWN: 503,
    ErrorCode.OVERLOADED: 503,
    ErrorCode.JOB_FAILED: 409,
    ErrorCode.INTERNAL: 500,
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorAnswer, "description": description}
    for status, description in (
        (400, "The body could not be read (not JSON, or not UTF-8)."),
        (401, "No bearer token, or not the current one."),
        (403, "The Host header does not name this gateway."),
        (413, "The body is over the limit."),
        (422, "A field is missing or wrong; `error` names it."),
        (503, "Shutting down, starting, or in emergency mode (see Retry-After)."),
    )
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorAnswer, "description": "No such job."}
}
# Routes whose success is not JSON (a stream, Prometheus text) still answer errors in JSON.
_JSON_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {
        "description": answer["description"],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorAnswer"}}},
    }
    for status, answer in {**_ERRORS, **_NOT_FOUND}.items()
}

ContextProvider = Callable[[], "DaemonContext"]


class DaemonError(Exception):
    """A daemon method refused: carried to the one error handler."""

    def __init__(self, code: str, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


def create_app(
    context: ContextProvider,
    config: "WebConfig",
    *,
    token_matches: Callable[[str], bool],
    port: Callable[[], int],
) -> Any:
    """The gateway's ASGI app: the FastAPI routes behind the ``Guard``."""
    from runtime.daemon import VERSION

    app = FastAPI(
        title="Elexirion web API",
        version=VERSION,
        summary="The agent, jobs, the supervision tree and health of a running Elexirion daemon.",
        description=(
            "Every path but `/` and `/static/*` needs `Authorization: Bearer <token>`; "
            "`elx web token` prints the token. Errors answer `ErrorAnswer` with a stable `code`."
        ),
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
        max_body_size=config.max_body_bytes,
        dependencies=[Depends(HTTPBearer(auto_error=False, description="`elx web token`"))],
    )
    calls = _Calls(context)
    _routes(app, calls, config)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(DaemonError)
    async def daemon_error(request: HttpRequest, exc: DaemonError) -> JSONResponse:
        return _error_response(exc.code, exc.message, exc.data)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: HttpRequest, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return _error_response(ErrorCode.INVALID_PARAMS, problems or "invalid request")

    @app.exception_handler(HTTPException)
    async def http_error(request: HttpRequest, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "invalid_request"
        )
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names only the first route's methods
            headers["Allow"] = ", ".join(_methods(app, request.url.path))
        return JSONResponse(
            ErrorAnswer(error=str(exc.detail), code=code).model_dump(),
            status_code=exc.status_code,
            headers=headers,
        )

    guarded: Any = Guard(
        app,
        hosts=lambda: config.host_names(port()),
        token_matches=token_matches,
        max_body_bytes=config.max_body_bytes,
    )
    if config.cors_origins:  # outside the guard: a preflight carries no token
        from starlette.middleware.cors import CORSMiddleware

        guarded = CORSMiddleware(
            guarded,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return guarded


def openapi_document(app: Any) -> dict[str, Any]:
    """The OpenAPI document of an app made by ``create_app``."""
    inner: Any = app
    while not isinstance(inner, FastAPI):
        inner = inner.app
    document: dict[str, Any] = inner.openapi()
    return document


def _methods(app: FastAPI, path: str) -> list[str]:
    """Every method some route serves at ``path``."""
    methods: set[str] = set()
    for route in app.router.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path) and getattr(route, "methods", None):
            methods |= set(getattr(route, "methods", ()))
    return sorted(methods)


class _Calls:
    """Daemon methods called off the event loop, their refusals as ``DaemonError``."""

    def __init__(self, context: ContextProvider) -> None:
        self.context = context
        self._ids = itertools.count(1)

    async def __call__(self, method: str, **params: Any) -> Any:
        request = Request(f"web-{next(self._ids)}", method, params)
        try:
            api = self.context().api
            result = await run_in_threadpool(api, request, None)
            if isinstance(result, Future):
                result = await asyncio.wrap_future(result)
        except Exception as exc:
            body = error_from_exception(exc)
            raise DaemonError(body.code.value, body.message, body.data) from None
        return redact(result)

    async def published(self, name: str) -> None:
        """Over HTTP only pipelines under the pipeline directories run, by name: a path
        would let a token holder make the daemon read any file it can."""
        dirs = self.context().settings.pipeline_dirs
        found = any((base / f"{name}{suffix}").is_file() for base in dirs for suffix in _YAML)
        if not found:
            where = ", ".join(str(d) for d in dirs)
            raise DaemonError(ErrorCode.NOT_FOUND, f"no pipeline named '{name}' in {where}")


_YAML = (".yaml", ".yml")


def _error_response(code: str, message: str, data: Any = None) -> JSONResponse:
    retry = data.get("retry_after_s") if isinstance(data, dict) else None
    headers = {"Retry-After": str(max(1, round(float(retry))))} if retry is not None else None
    answer = ErrorAnswer(error=redact(message), code=code, retry_after_s=retry)
    return JSONResponse(
        answer.model_dump(), status_code=HTTP_STATUS.get(code, 500), headers=headers
    )


JobId = Annotated[str, PathParam(pattern=JOB_ID_PATTERN, description="A job id.")]


def _routes(app: FastAPI, calls: _Calls, config: "WebConfig") -> None:

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    @app.post("/api/agent/chat", response_model=ChatAnswer, responses=_ERRORS, tags=["agent"])
    async def chat(body: ChatRequest) -> Any:
        """Route the message to a pipeline, run it, answer. Waits up to the gateway's chat
        timeout (300 s by default); a longer run answers `running` with its `job_id`."""
        from runtime.agent import new_session_id

        session = body.session_id or new_session_id()
        answer = await calls(
            "ask", text=body.message, session=session, timeout=config.chat_timeout_s
        )
        answer.pop("session", None)
        ms = float(answer.get("execution_time_ms") or 0.0)
        error = answer.get("error")
        return {
            **answer,
            "execution_time": round(ms / 1000, 3),
            "session_id": session,
            "error": error if isinstance(error, dict) or error is None else {"message": error},
        }

    @app.get("/api/jobs", response_model=JobList, responses=_ERRORS, tags=["jobs"])
    async def jobs(
        state: Annotated[JobStatus | None, Query(description="Only jobs in this state.")] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> Any:
        """The latest jobs, newest first."""
        return {"jobs": await calls("jobs", state=state, limit=limit)}

    @app.post(
        "/api/jobs",
        response_model=JobProgress,
        status_code=202,
        responses={**_ERRORS, 404: {"model": ErrorAnswer, "description": "No such pipeline."}},
        tags=["jobs"],
    )
    async def submit(body: SubmitRequest) -> Any:
        """Submit a pipeline run. The job is committed before the answer: it survives a
        daemon restart."""
        await calls.published(body.pipeline)
        budget = body.budget.model_dump(exclude_none=True) if body.budget else None
        row = await calls(
            "submit",
            pipeline=body.pipeline,
            inputs=body.inputs,
            priority=body.priority,
            budget=budget,
        )
        return await calls("status", job=row["id"])

    @app.get(
        "/api/jobs/{job_id}",
        response_model=JobProgress,
        responses={**_ERRORS, **_NOT_FOUND},
        tags=["jobs"],
    )
    async def status(job_id: JobId) -> Any:
        """A job's state and live progress (current step, steps done)."""
        return await calls("status", job=job_id)

    @app.post(
        "/api/jobs/{job_id}/cancel",
        response_model=JobProgress,
        responses={**_ERRORS, **_NOT_FOUND},
        tags=["jobs"],
    )
    async def cancel(job_id: JobId) -> Any:
        """Cancel a job: final at once; a running step stops at its next check."""
        return await calls("cancel", job=job_id)

    async def existing_job(job_id: JobId) -> str:
        await calls("status", job=job_id)
        return job_id

    @app.get(
        "/api/jobs/{job_id}/events",
        response_class=EventSourceResponse,
        responses=_JSON_ERRORS,
        tags=["jobs"],
    )
    async def events(
        job_id: Annotated[str, Depends(existing_job)],
    ) -> AsyncIterator[ServerSentEvent]:
        """Server-sent events of a job: what it did so far, then live, until it ends. Each
        event's name is its type (`job`, `step`); its data is the JSON event."""
        from runtime.web.events import job_events

        async for event in job_events(calls.context(), job_id):
            yield ServerSentEvent(event=str(event.get("type", "message")), data=redact(event))

    @app.get("/api/tree", response_model=TreeNode, responses=_ERRORS, tags=["tree"])
    async def tree() -> Any:
        """The live supervision tree, as `elx tree --json` shows it."""
        return await calls("tree")

    @app.get("/api/health", response_model=Health, responses=_ERRORS, tags=["tree"])
    async def health() -> Any:
        """The last health evaluation: every check, the actions in force, what is down."""
        return await calls("health")

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={
            **{k: v for k, v in _JSON_ERRORS.items() if k != 404},
            200: {"content": {PROMETHEUS_TYPE: {"schema": {"type": "string"}}}},
        },
        tags=["metrics"],
    )
    async def metrics() -> PlainTextResponse:
        """Prometheus text format (scrape with `bearer_token_file`)."""
        answer = await calls("metrics", format="prometheus")
        return PlainTextResponse(answer["text"], media_type=PROMETHEUS_TYPE)


__all__ = ["create_app", "error_json", "openapi_document"]
