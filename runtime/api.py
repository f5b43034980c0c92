"""The daemon's socket methods: parameters checked, work delegated, results JSON.

``DaemonApi`` is the ``Handler`` the socket server calls for each request,
on a worker thread. Every method is a small function of the daemon context;
bad parameters raise ``ProtocolError(invalid_params)`` naming the field.
"""

from __future__ import annotations

import json
import os
import resource
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.errors import ConfigError, ProtocolError
from runtime.protocol import ErrorCode, Request, hello_result

if TYPE_CHECKING:
    from runtime.daemon import DaemonContext
    from runtime.socket_server import Connection
    from runtime.supervision import TreeNode

MAX_WAIT_S = 3600.0


def _param(
    params: Mapping[str, Any],
    name: str,
    kind: type | tuple[type, ...],
    *,
    required: bool = False,
    default: Any = None,
) -> Any:
    if name not in params or params[name] is None:
        if required:
            raise ProtocolError(ErrorCode.INVALID_PARAMS, f"missing required param '{name}'")
        return default
    value = params[name]
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ProtocolError(ErrorCode.INVALID_PARAMS, f"param '{name}' must be a number")
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ProtocolError(
            ErrorCode.INVALID_PARAMS,
            f"param '{name}' must be {expected}, got {type(value).__name__}",
        )
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def tree_json(node: TreeNode) -> dict[str, Any]:
    data = _plain(asdict(node))
    assert isinstance(data, dict)
    return data


class DaemonApi:
    """Socket methods of the daemon."""

    def __init__(self, context: DaemonContext, request_stop: Callable[[], None]) -> None:
        self.context = context
        self.request_stop = request_stop
        self.methods: dict[str, Callable[[Mapping[str, Any], Request, Connection], Any]] = {
            "hello": self.hello,
            "ping": self.ping,
            "submit": self.submit,
            "status": self.status,
            "wait": self.wait,
            "cancel": self.cancel,
            "jobs": self.jobs,
            "result": self.result,
            "tree": self.tree,
            "restart": self.restart,
            "terminate": self.terminate,
            "kill": self.kill,
            "health": self.health,
            "metrics": self.metrics,
            "shutdown": self.shutdown,
            "subscribe": self.subscribe,
            "ask": self.ask,
            "session": self.session,
            "stats": self.stats,
            "rate": self.rate,
            "examples": self.examples,
            "optimize": self.optimize,
            "optimizations": self.optimizations,
            "ab": self.ab,
        }

    def __call__(self, request: Request, connection: Connection) -> Any:
        method = self.methods.get(request.method)
        if method is None:
            raise ProtocolError(
                ErrorCode.METHOD_NOT_FOUND,
                f"unknown method '{request.method}' (methods: {', '.join(sorted(self.methods))})",
                request.id,
            )
        if request.method not in ("hello", "ping", "health") and not self.context.ready.is_set():
            raise ProtocolError(ErrorCode.UNAVAILABLE, "the daemon is still starting")
        return method(request.params, request, connection)

    # -- basics -----------------------------------------------------------------

    def hello(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        from runtime.daemon import VERSION

        return hello_result(
            VERSION, pid=os.getpid(), state_dir=str(self.context.settings.state_dir.resolve())
        )

    def ping(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        return "pong"

    # -- jobs ---------------------------------------------------------------------

    def _job_id(self, params: Mapping[str, Any]) -> str:
        job_id: str = _param(params, "job", str, required=True)
        if self.context.store.get_job(job_id) is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no job '{job_id}'; see `elx jobs`")
        return job_id

    def _accepting(self) -> None:
        """Refuse new work while shutting down or in emergency mode (critical health)."""
        if self.context.stopping.is_set():
            raise ProtocolError(ErrorCode.SHUTTING_DOWN, "the daemon is shutting down")
        watchdog = self.context.watchdog
        retry = watchdog.modes.emergency_retry_after_s if watchdog is not None else None
        if retry is not None:
            raise ProtocolError(
                ErrorCode.OVERLOADED,
                f"the daemon is in emergency mode (health critical); running jobs continue, "
                f"new work is refused; retry in {retry:g} s (see `elx health`)",
                data={"retry_after_s": retry},
            )

    def submit(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        self._accepting()
        pipeline = _param(params, "pipeline", str, required=True)
        inputs = _param(params, "inputs", dict, default={})
        priority = _param(params, "priority", int, default=0)
        row = self.context.jobs.submit(pipeline, inputs, priority=priority, budget=_budget(params))
        return {k: v for k, v in row.to_json().items() if k != "result"}

    def status(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        return self.context.jobs.status(self._job_id(params))

    def wait(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        job_id = self._job_id(params)
        timeout = float(_param(params, "timeout", (int, float), default=30.0))
        if not 0 <= timeout <= MAX_WAIT_S:
            raise ProtocolError(
                ErrorCode.INVALID_PARAMS, f"param 'timeout' must be 0..{MAX_WAIT_S:g} seconds"
            )
        return self.context.jobs.wait_future(job_id, timeout)

    def cancel(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        return self.context.jobs.cancel(self._job_id(params))

    def jobs(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        state = _param(params, "state", str)
        limit = _param(params, "limit", int, default=100)
        return self.context.jobs.list_jobs(state, max(1, min(limit, 10_000)))

    def result(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        job_id = self._job_id(params)
        row = self.context.jobs.get(job_id)
        if row.status in ("accepted", "running"):
            raise ProtocolError(
                ErrorCode.CONFLICT,
                f"job {job_id} is {row.status}; wait for it with `elx wait {job_id}`",
            )
        return {"job": job_id, "status": row.status, "result": row.result, "error": row.error}

    # -- the agent --------------------------------------------------------------------

    def ask(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        """Route a free-text request to a pipeline and answer (later: a Future)."""
        from runtime.agent import DEFAULT_TIMEOUT_S, AskRequest

        self._accepting()
        agent = self.context.agent
        if agent is None:
            raise ProtocolError(ErrorCode.UNAVAILABLE, "the agent is not running")
        timeout = float(_param(params, "timeout", (int, float), default=DEFAULT_TIMEOUT_S))
        if not 0 <= timeout <= MAX_WAIT_S:
            raise ProtocolError(
                ErrorCode.INVALID_PARAMS, f"param 'timeout' must be 0..{MAX_WAIT_S:g} seconds"
            )
        return agent.ask(
            AskRequest(
                text=_param(params, "text", str, required=True),
                session=_param(params, "session", str),
                context=_param(params, "context", str),
                wait=not _param(params, "async", bool, default=False),
                timeout_s=timeout,
                budget=_budget(params),
            )
        )

    def session(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        """Sessions: ``action`` list (default), show, delete or new."""
        from runtime.agent import new_session_id

        action = _param(params, "action", str, default="list")
        store = self.context.store
        if action == "list":
            return store.list_sessions(_param(params, "limit", int, default=100))
        if action == "new":
            return {"session": new_session_id()}
        name: str = _param(params, "session", str, required=True)
        if action == "show":
            turns = store.session_log(name)
            if not turns:
                raise ProtocolError(ErrorCode.NOT_FOUND, f"no session '{name}'")
            return {"session": name, "turns": turns}
        if action == "delete":
            removed = store.delete_session(name)
            if not removed:
                raise ProtocolError(ErrorCode.NOT_FOUND, f"no session '{name}'")
            return {"session": name, "deleted_turns": removed}
        raise ProtocolError(
            ErrorCode.INVALID_PARAMS,
            f"unknown session action '{action}' (actions: list, show, delete, new)",
        )

    # -- optimizer examples -------------------------------------------------------------

    def rate(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        """A user's score (0..1) for a job's answers; they become scored examples."""
        job_id = self._job_id(params)
        score = float(_param(params, "score", (int, float), required=True))
        if not 0 <= score <= 1:
            raise ProtocolError(ErrorCode.INVALID_PARAMS, "param 'score' must be 0..1")
        note = _param(params, "note", str)
        rated = self.context.store.rate_job(job_id, score, note)
        row = self.context.store.get_job(job_id)
        meta = dict(row.meta or {}) if row is not None else {}
        meta["rating"] = {"score": score, "note": note}
        self.context.store.update_job_meta(job_id, meta)
        return {"job": job_id, "score": score, "examples": rated}

    def examples(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        """A pipeline's examples: from completed runs (scored or not) and its curated file."""
        from runtime.optimize.examples import curated_examples

        name: str = _param(params, "pipeline", str, required=True)
        step = _param(params, "step", str)
        try:
            path = self.context.jobs.resolve_pipeline(name)
        except ConfigError:
            path = None
        pipeline = path.stem if path is not None else name
        rows = self.context.store.examples(pipeline, step)
        if path is not None:
            rows.extend(curated_examples(path, step))
        return {"pipeline": pipeline, "examples": rows}

    # -- the optimizer -----------------------------------------------------------------

    def optimize(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        """Start a compile off to the side; with ``wait``, answer when it ends."""
        runner = self.context.optimizer
        if runner is None:
            raise ProtocolError(
                ErrorCode.UNAVAILABLE, "the optimizer is down; pipelines keep their prompts"
            )
        name: str = _param(params, "pipeline", str, required=True)
        step: str = _param(params, "step", str, required=True)
        path = self.context.jobs.resolve_pipeline(name)
        options = {
            key: _param(params, key, kind)
            for key, kind in (
                ("optimizer", str),
                ("trainset", str),
                ("metric", str),
                ("threshold", (int, float)),
                ("dev_fraction", (int, float)),
                ("seed", int),
                ("max_demos", int),
                ("provider", str),
            )
        }
        if options.get("trainset") is None:
            options["trainset"] = self._trainset(path, step)
        limit = float(_param(params, "time_limit_s", (int, float), default=900.0))
        job = runner.start(str(path), step, options=options, time_limit_s=limit)
        if _param(params, "wait", bool, default=False):
            return job.done
        return job.to_json()

    def ab(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        """A/B state of a pipeline's candidates; ``apply`` promotes or retires as decided."""
        from runtime.optimize.experiment import review
        from runtime.optimize.versions import PromptVersions

        path = self.context.jobs.resolve_pipeline(_param(params, "pipeline", str, required=True))
        apply = bool(_param(params, "apply", bool, default=False))
        versions = PromptVersions(self.context.settings.state_dir)
        return {
            "pipeline": path.stem,
            "steps": review(path, self.context.store, versions, apply=apply),
        }

    def _trainset(self, path: Path, step: str) -> str | None:
        """Well-rated answers from runs (score >= 0.5) plus the curated file, as one JSONL
        for the compile; None (the curated file alone) when no run was rated well."""
        from runtime.optimize.examples import curated_examples

        rated = [
            r
            for r in self.context.store.examples(path.stem, step)
            if r["score"] is not None and r["score"] >= 0.5
        ]
        if not rated:
            return None
        rows = rated + curated_examples(path, step)
        folder = self.context.settings.state_dir / "optimized"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        out = folder / f"{path.stem}.{step}.trainset.jsonl"
        out.write_text(
            "".join(
                json.dumps({"inputs": r["inputs"], "answer": r["output"]}, default=str) + "\n"
                for r in rows
            )
        )
        return str(out)

    def optimizations(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        runner = self.context.optimizer
        return runner.list() if runner is not None else []

    # -- the tree -------------------------------------------------------------------

    def tree(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        root = self.context.root
        if root is None:
            raise ProtocolError(ErrorCode.UNAVAILABLE, "the tree is not running")
        return tree_json(root.tree())

    def _parent_and_id(self, params: Mapping[str, Any]) -> tuple[Any, str]:
        root = self.context.root
        if root is None:
            raise ProtocolError(ErrorCode.UNAVAILABLE, "the tree is not running")
        raw: str = _param(params, "path", str, required=True)
        parts = [p for p in raw.strip("/").split("/") if p]
        if parts and parts[0] == root.tree().id:
            parts = parts[1:]
        if not parts:
            raise ProtocolError(
                ErrorCode.INVALID_PARAMS, "path must name a child, e.g. providers/mock/w0"
            )
        supervisor: Any = root
        for part in parts[:-1]:
            try:
                supervisor = supervisor.supervisor(part)
            except Exception:
                raise ProtocolError(
                    ErrorCode.NOT_FOUND, f"no supervisor '{part}' on the path '{raw}'"
                ) from None
        return supervisor, parts[-1]

    def restart(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        supervisor, child = self._parent_and_id(params)
        from runtime.errors import ChildControlError

        try:
            supervisor.terminate_child(child)
        except ChildControlError as exc:
            if exc.code != "not_running" and exc.code != "restarting":
                raise
        supervisor.restart_child(child)
        return {"restarted": f"{supervisor.path}/{child}"}

    def terminate(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        supervisor, child = self._parent_and_id(params)
        supervisor.terminate_child(child)
        return {"terminated": f"{supervisor.path}/{child}"}

    def kill(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        supervisor, child = self._parent_and_id(params)
        supervisor.kill_child(child, "killed with `elx kill`")
        return {"killed": f"{supervisor.path}/{child}"}

    # -- health and metrics -----------------------------------------------------------

    def health(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        """The last health evaluation: every check, the actions in force, active alerts."""
        root = self.context.root
        down = []
        if root is not None:
            down = [  # not running, or running but unable to serve (it says why: "error")
                n.path
                for n in root.tree().walk()
                if (n.state != "running" or any(k == "error" for k, _ in n.detail))
                and "/job-" not in n.path
            ]
        watchdog = self.context.watchdog
        if watchdog is not None and watchdog.report is None and self.context.ready.is_set():
            watchdog.tick()  # asked before the first periodic check: check now
        if watchdog is not None and watchdog.report is not None:
            data = watchdog.to_json()
        else:  # before the first evaluation: the store and the tree
            store_ok = self.context.store.writable()
            data = {
                "status": "critical" if not store_ok else "degraded" if down else "healthy",
                "checks": [
                    {
                        "name": "store",
                        "value": "writable" if store_ok else "not writable",
                        "threshold": "writable",
                        "status": "ok" if store_ok else "critical",
                        "message": "the state database takes writes"
                        if store_ok
                        else "the state database refuses writes",
                    }
                ],
                "actions": [],
            }
        if down and data["status"] == "healthy":
            data["status"] = "degraded"
        data["down"] = down
        data["ready"] = self.context.ready.is_set()
        return data

    def metrics(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        """Counters, gauges and histograms; ``format: prometheus`` gives the text exposition."""
        fmt = _param(params, "format", str, default="json")
        if fmt not in ("json", "prometheus"):
            raise ProtocolError(
                ErrorCode.INVALID_PARAMS, "param 'format' must be json or prometheus"
            )
        telemetry = self._refresh_gauges()
        if fmt == "prometheus":
            return {"text": telemetry.prometheus().decode() if telemetry else ""}
        usage = resource.getrusage(resource.RUSAGE_SELF)
        gateway = self.context.gateway
        providers: dict[str, Any] = {}
        if gateway is not None:
            from runtime.providers.pool import pool_detail

            providers = {name: dict(pool_detail(name)) for name in gateway.names}
        return {
            "uptime_s": round(time.time() - self.context.started_at, 3),
            "jobs": self.context.jobs.counts(),
            "threads": threading.active_count(),
            "max_rss_kib": usage.ru_maxrss,
            "rss_kib": _rss_kib(),
            "providers": providers,
            "counters": telemetry.summary() if telemetry else {},
        }

    def _refresh_gauges(self) -> Any:
        telemetry = self.context.telemetry
        if telemetry is None:
            return None
        counts = self.context.jobs.counts()
        mailboxes: dict[str, int] = {}
        root = self.context.root
        if root is not None:
            for child in root.tree().children:
                depths = [n.mailbox_depth or 0 for n in child.walk()]
                mailboxes[child.id] = max(depths) if depths else 0
        gateway = self.context.gateway
        telemetry.refresh_gauges(
            running=counts.get("running_now", 0),
            queued=counts.get("queued_now", 0),
            breakers=gateway.breaker_states() if gateway is not None else {},
            mailboxes=mailboxes,
        )
        return telemetry

    def stats(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        """Per pipeline over a window: runs, success rate, latency percentiles, tokens, cost."""
        from runtime.telemetry import percentile

        pipeline = _param(params, "pipeline", str)
        window = float(_param(params, "since_s", (int, float), default=86400.0))
        if window <= 0:
            raise ProtocolError(ErrorCode.INVALID_PARAMS, "param 'since_s' must be positive")
        since = time.time() - window
        runs = self.context.store.perf_runs(since, pipeline)
        steps = self.context.store.perf_steps(since, pipeline)
        by_pipeline: dict[str, list[dict[str, Any]]] = {}
        for run in runs:
            by_pipeline.setdefault(run["pipeline"], []).append(run)
        out = []
        for name, rows in sorted(by_pipeline.items()):
            durations = [r["duration_ms"] for r in rows]
            completed = sum(1 for r in rows if r["status"] == "completed")
            cost = sum(r["cost_usd"] for r in rows)
            step_rows = [s for s in steps if s["pipeline"] == name]
            out.append(
                {
                    "pipeline": name,
                    "runs": len(rows),
                    "completed": completed,
                    "success_rate": round(completed / len(rows), 4),
                    "p50_ms": round(percentile(durations, 0.50), 1),
                    "p95_ms": round(percentile(durations, 0.95), 1),
                    "p99_ms": round(percentile(durations, 0.99), 1),
                    "tokens": sum(r["tokens"] for r in rows),
                    "cost_usd": round(cost, 6),
                    "cost_per_run_usd": round(cost / len(rows), 6),
                    "steps": len(step_rows),
                    "step_p95_ms": round(
                        percentile([s["duration_ms"] for s in step_rows], 0.95), 1
                    ),
                }
            )
        return {"since_s": window, "pipelines": out}

    def shutdown(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        self.request_stop()
        return {"stopping": True}

    # -- streams ----------------------------------------------------------------------

    def subscribe(self, params: Mapping[str, Any], request: Request, conn: Connection) -> Any:
        """Stream job and tree events on this connection until it closes."""
        wanted_jobs = _param(params, "jobs", list, default=[])
        want_tree = bool(_param(params, "tree", bool, default=True))
        job_filter = {str(j) for j in wanted_jobs}

        def on_job(event: dict[str, Any]) -> None:
            if not job_filter or event.get("job") in job_filter:
                conn.send_event(request.id, event)

        def on_tree(event: dict[str, Any]) -> None:
            conn.send_event(request.id, event)

        # Listeners first, then the jobs' events so far (or final states): a job that moved
        # between a client's `submit` and its `subscribe` is never missed. Events sent now
        # are held until the response is written.
        remove_job = self.context.jobs.add_listener(on_job, replay=sorted(job_filter))
        if want_tree:
            with self.context.lock:
                self.context.tree_listeners.append(on_tree)

        def closed() -> None:
            remove_job()
            with self.context.lock:
                if on_tree in self.context.tree_listeners:
                    self.context.tree_listeners.remove(on_tree)

        conn.on_close(closed)
        return {"subscribed": True, "jobs": sorted(job_filter), "tree": want_tree}


def _budget(params: Mapping[str, Any]) -> Any:
    """The optional ``budget`` param ({max_tokens, max_usd}) as a Budget, checked."""
    from pydantic import ValidationError as PydanticError

    from runtime.pipeline.models import Budget

    raw = _param(params, "budget", dict)
    if raw is None:
        return None
    try:
        return Budget.model_validate(raw)
    except PydanticError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ProtocolError(ErrorCode.INVALID_PARAMS, f"param 'budget': {problems}") from None


def _rss_kib() -> int:
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * (os.sysconf("SC_PAGE_SIZE") // 1024)
