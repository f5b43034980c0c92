"""The daemon: one process per state directory, the supervision tree, the socket API.

Start-up, in order: take the state directory's lock (a second daemon is
refused), configure logging (JSON lines in ``logs/daemon.log``, readable
lines on a terminal), open the store, boot the tree from ``supervision.yaml``
(the socket child starts last), build the provider gateway and the job
manager, resume every accepted or running job, print one ready line.

Shutdown (SIGTERM, SIGINT or the ``shutdown`` method) drains: stop accepting
jobs, ask running jobs to stop at their next checkpoint (they stay resumable),
wait up to ``drain_timeout_s``, stop the tree in reverse (the socket first,
which removes the socket file), close the store, release the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import structlog

from runtime.config import Settings
from runtime.errors import ConfigError, DaemonUnavailable
from runtime.redaction import redact, remember_secrets
from runtime.state_dir import ensure_state_dir
from runtime.store import Store

if TYPE_CHECKING:
    from runtime.agent import Agent
    from runtime.jobs import JobManager
    from runtime.optimize.runner import CompileRunner
    from runtime.providers.pool import PoolGateway
    from runtime.supervision import RootHandle
    from runtime.telemetry import Telemetry
    from runtime.tracing import JobTracer
    from runtime.watchdog import Watchdog

VERSION = "0.1.0"
TREE_EVENTS = frozenset(
    {
        "child_started",
        "child_exited",
        "child_restarted",
        "child_restart_failed",
        "max_restart_intensity_reached",
        "supervisor_escalated",
    }
)


@dataclass(eq=False)
class DaemonContext:
    """What the tree's actors reach through ``daemon_context()``."""

    settings: Settings
    store: Store
    started_at: float = field(default_factory=time.time)
    root: RootHandle | None = None
    gateway: PoolGateway | None = None
    _jobs: JobManager | None = None
    agent: Agent | None = None
    telemetry: Telemetry | None = None
    tracer: JobTracer | None = None
    watchdog: Watchdog | None = None
    optimizer: CompileRunner | None = None
    api: Any = None
    web_url: str | None = None  # set by the web gateway child when it serves
    ready: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)
    tree_listeners: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def jobs(self) -> JobManager:
        if self._jobs is None:
            raise DaemonUnavailable("the daemon is still starting; try again in a moment")
        return self._jobs

    @property
    def socket_path(self) -> Path:
        return self.settings.state_dir / "elx.sock"


_CONTEXT: DaemonContext | None = None
_CONTEXT_LOCK = threading.Lock()


def daemon_context() -> DaemonContext:
    """The running daemon's context (the one wrapper around this process-wide state)."""
    with _CONTEXT_LOCK:
        if _CONTEXT is None:
            raise DaemonUnavailable("no daemon runs in this process")
        return _CONTEXT


def _set_context(context: DaemonContext | None) -> None:
    global _CONTEXT
    with _CONTEXT_LOCK:
        _CONTEXT = context


class StateLock:
    """An flock on ``state_dir/elx.lock``: one daemon per state directory.

    The kernel drops the lock when the process dies, so a killed daemon never
    leaves a stale lock behind (unlike a pid file or the socket's presence).
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "elx.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ConfigError(
                f"another daemon (pid {holder}) is serving {self.path.parent}; stop it with "
                f"`elx shutdown`, or use another --state-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def configure_logging(
    settings: Settings, context: DaemonContext, console: TextIO | None
) -> tuple[Path, Callable[[], None]]:
    """JSON lines to logs/daemon.log; readable lines on a terminal; tree events to listeners.

    Returns the log's path and a function that restores the previous logging
    configuration and closes the file (a daemon run inside a test leaves no trace).
    """
    previous = structlog.get_config()
    logs = settings.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = logs / "daemon.log"
    # Lives as long as the daemon; line-buffered so a crash keeps what was logged.
    log_file = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
    json_renderer = structlog.processors.JSONRenderer()
    if console is not None and not console.isatty():
        console = None  # the JSON file is the log; a readable copy only for a person watching
    console_renderer = structlog.dev.ConsoleRenderer(colors=True)

    def forward_tree_events(
        _: Any, name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if event.get("event") in TREE_EVENTS:
            telemetry = context.telemetry
            if telemetry is not None:
                from runtime.telemetry import from_tree_event

                typed = from_tree_event(event)
                if typed is not None:
                    telemetry.emit(typed)
            with context.lock:
                listeners = list(context.tree_listeners)
            payload = {"type": "tree", **{k: str(v) for k, v in event.items()}}
            for listener in listeners:
                with contextlib.suppress(Exception):  # a subscriber's failure is its own
                    listener(payload)
        return event

    def write(_: Any, name: str, event: MutableMapping[str, Any]) -> str:
        event = redact(dict(event))
        line = json_renderer(_, name, event)
        log_file.write((line.decode() if isinstance(line, bytes) else line) + "\n")
        if console is not None:
            text = console_renderer(_, name, event)
            console.write(f"{text}\n")
        return ""

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            forward_tree_events,
            write,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )

    def restore() -> None:
        structlog.configure(**previous)
        log_file.close()

    return path, restore


class Daemon:
    """Boot, serve, drain. ``run()`` blocks until the daemon has stopped."""

    def __init__(
        self,
        settings: Settings,
        tree_file: Path,
        *,
        drain_timeout_s: float = 30.0,
        console: TextIO | None = sys.stderr,
        ready_line: Callable[[str], None] | None = None,
        span_exporter: Any = None,
    ) -> None:
        self.settings = settings
        self.tree_file = tree_file
        self.drain_timeout_s = drain_timeout_s
        self.console = console
        self.ready_line = ready_line or (lambda text: print(text, flush=True))
        self.span_exporter = span_exporter  # tests: an in-memory exporter turns tracing on
        self._lock = StateLock(settings.state_dir)
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self.context: DaemonContext | None = None
        self.log = structlog.get_logger("elexirion.daemon")

    def request_stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        started = time.monotonic()
        ensure_state_dir(self.settings)
        self._lock.acquire()
        try:
            self._serve(started)
        finally:
            self._lock.release()
            self._stopped.set()

    def _serve(self, started: float) -> None:
        from runtime import tracing
        from runtime.agent import Agent
        from runtime.api import DaemonApi
        from runtime.jobs import JobManager
        from runtime.providers.pool import PoolGateway
        from runtime.supervision import boot
        from runtime.telemetry import Telemetry, from_job_event

        remember_secrets(self.settings.environ)  # API keys of any shape are scrubbed from output
        store = Store(self.settings.database, durable=self.settings.durable_store)
        context = DaemonContext(settings=self.settings, store=store)
        context.telemetry = Telemetry(
            store=store,
            retention_days=float(self.settings.environ.get("ELX_PERF_RETENTION_DAYS", "30")),
        )
        context.telemetry.start()
        context.tracer = tracing.from_environment(self.settings.environ, self.span_exporter)
        context.api = DaemonApi(context, self.request_stop)
        self.context = context
        log_path, restore_logging = configure_logging(self.settings, context, self.console)
        _set_context(context)
        root = None
        try:
            root = boot(self.tree_file)
            context.root = root
            gateway = PoolGateway.from_tree(
                root.supervisor("providers"),
                self.settings,
                telemetry=context.telemetry.emit,
                tracer=context.tracer,
            )
            context.gateway = gateway
            pipelines = root.supervisor("pipelines")
            limit = pipelines.tree().max_children or 64
            context._jobs = JobManager(store, self.settings, gateway, pipelines, max_running=limit)
            context._jobs.tracer = context.tracer
            telemetry = context.telemetry

            def to_telemetry(event: dict[str, Any]) -> None:
                typed = from_job_event(event)
                if typed is not None:
                    telemetry.emit(typed)

            context._jobs.add_listener(to_telemetry)
            from runtime.remote_jobs import JobHome
            from runtime.supervision.ray_backend import set_home

            set_home(JobHome(context.jobs))  # job workers placed on Ray call home here
            context.agent = Agent(
                context.jobs, store, self.settings, gateway, health=gateway.breaker_states
            )
            resumed = context.jobs.resume_unfinished()
            context.ready.set()
            self.log.info(
                "daemon_ready",
                socket=str(context.socket_path),
                pid=os.getpid(),
                resumed=len(resumed),
                log=str(log_path),
            )
            web = f"; chat page {context.web_url} (`elx web url`)" if context.web_url else ""
            self.ready_line(
                f"elexirion ready on {context.socket_path} (pid {os.getpid()}, "
                f"{time.monotonic() - started:.2f} s, {len(resumed)} job(s) resumed){web}"
            )
            self._stop.wait()
            self._drain(context, root)
        finally:
            context.stopping.set()
            if context._jobs is not None:
                context._jobs.close()  # pending waits get the job's state before the socket goes
            if context.agent is not None:
                context.agent.close()  # and asks still pending are answered with an error
            if root is not None:
                root.shutdown()
            if context.gateway is not None:
                context.gateway.close()
            context.telemetry.stop()
            if context.tracer is not None:
                context.tracer.shutdown()
            _set_context(None)
            store.close()
            self.log.info("daemon_stopped")
            restore_logging()

    def _drain(self, context: DaemonContext, root: RootHandle) -> None:
        context.stopping.set()
        jobs = context.jobs
        jobs.stop_accepting()
        jobs.interrupt_running()
        drained = jobs.wait_idle(self.drain_timeout_s)
        self.log.info("daemon_draining", drained=drained)


def install_signal_handlers(daemon: Daemon) -> None:
    def handler(signum: int, _frame: Any) -> None:
        daemon.request_stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
