"""The watchdog: gathers the daemon's vital signs, asks the health policy, carries out actions.

Every ``interval_s`` the health actor calls ``Watchdog.tick()``:

1. ``gather`` builds a ``HealthInputs`` from the live daemon: breakers and the
   provider calls/errors and restarts of the last ``window_s`` (deltas of the
   telemetry counters), the job queue, the optimizer's state in the tree, a
   write probe of the store, free disk, RSS, the agent's load and each
   provider pool's load;
2. ``HealthMonitor.evaluate`` (runtime/health.py, pure) turns it into a report;
3. the actions in force are applied and the ones that ended are undone:
   a provider's traffic goes to its backups (``PoolGateway.use_backups``),
   static prompts, the agent bypassed, a stuck pool restarted, emergency mode
   (new work refused with ``overloaded`` and a retry-after). Each change is
   logged; a status change is also a telemetry event.

Alert rules (runtime/alerts.py) are evaluated on the same tick against the
telemetry series.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from runtime.clock import SYSTEM_CLOCK
from runtime.health import (
    Action,
    ActionKind,
    HealthConfig,
    HealthInputs,
    HealthMonitor,
    HealthReport,
    PoolLoad,
)
from runtime.telemetry import HEALTH_VALUES, HealthChanged, process_rss_bytes

if TYPE_CHECKING:
    from runtime.daemon import DaemonContext

log = structlog.get_logger("elexirion.health")


@dataclass
class Modes:
    """What the actions switched on; read by the API, the agent and the optimizer."""

    emergency_retry_after_s: float | None = None
    bypass_agent: bool = False
    static_prompts: bool = False
    rerouted: dict[str, tuple[str, ...]] = field(default_factory=dict)


class Watchdog:
    def __init__(self, context: DaemonContext, config: HealthConfig, alerts: Any = None) -> None:
        self.context = context
        self.config = config
        self.monitor = HealthMonitor(config, SYSTEM_CLOCK)
        self.modes = Modes()
        self.alerts = alerts  # runtime.alerts.AlertEngine, or None
        self._history: deque[tuple[float, dict[str, float]]] = deque()
        self._last_done: dict[str, float] = {}
        self._lock = threading.RLock()  # predicates of wait_until may read the watchdog
        self._applied: dict[tuple[str, str | None], Action] = {}
        self.report: HealthReport | None = None
        self._ticked = threading.Condition(self._lock)
        self._ticking = threading.Lock()

    # -- one tick ------------------------------------------------------------------

    def tick(self) -> HealthReport:
        with self._ticking:  # the health actor's timer and a first `elx health` may race
            return self._tick()

    def _tick(self) -> HealthReport:
        inputs = self.gather()
        report = self.monitor.evaluate(inputs)
        self._apply(report)
        telemetry = self.context.telemetry
        if report.changed:
            log.warning("health_changed", status=report.status.value, issues=list(report.issues))
            if telemetry is not None:
                telemetry.emit(HealthChanged(report.status.value, tuple(report.issues)))
        if telemetry is not None:
            telemetry.metrics.set("elx_health_status", (), HEALTH_VALUES[report.status.value])
        if self.alerts is not None and telemetry is not None:
            self.alerts.evaluate(telemetry.series())
        with self._lock:
            self.report = report
            self._ticked.notify_all()
        return report

    def wait_until(self, predicate: Callable[[HealthReport], bool], timeout: float) -> bool:
        """Block until a tick's report satisfies ``predicate`` (or ``timeout`` passes)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self.report is None or not predicate(self.report):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._ticked.wait(left)
        return True

    # -- gathering -----------------------------------------------------------------

    def gather(self) -> HealthInputs:
        ctx = self.context
        now = time.monotonic()
        series = ctx.telemetry.series() if ctx.telemetry is not None else {}
        calls, restarts = self._window(now, series)
        gateway = ctx.gateway
        counts = ctx.jobs.counts()
        optimizer_running = True
        if ctx.root is not None:
            for child in ctx.root.tree().children:
                if child.id == "optimizer":
                    optimizer_running = child.state == "running"
        agent = ctx.agent
        return HealthInputs(
            breakers=gateway.breaker_states() if gateway is not None else {},
            provider_calls=calls,
            queued=counts.get("queued_now", 0),
            running=counts.get("running_now", 0),
            max_running=ctx.jobs.max_running,
            restarts=restarts,
            optimizer_running=optimizer_running,
            store_writable=ctx.store.writable(),
            free_disk_bytes=shutil.disk_usage(ctx.settings.state_dir).free,
            rss_bytes=process_rss_bytes(),
            agent_in_flight=agent.status()["in_flight"] if agent is not None else 0,
            pools=self._pools(now),
        )

    def _window(
        self, now: float, series: Mapping[str, float]
    ) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
        """Provider calls/errors and restarts over the last ``window_s`` (counter deltas)."""
        self._history.append((now, dict(series)))
        while len(self._history) > 1 and now - self._history[0][0] > self.config.window_s:
            self._history.popleft()
        base = self._history[0][1]

        def delta(key: str) -> float:
            return series.get(key, 0.0) - base.get(key, 0.0)

        calls: dict[str, list[int]] = {}
        restarts: dict[str, int] = {}
        for key in series:
            if key.startswith("elx_provider_calls_total{"):
                provider = _label(key, "provider")
                outcome = _label(key, "outcome")
                entry = calls.setdefault(provider, [0, 0])
                if outcome in ("ok", "error"):
                    entry[0] += int(delta(key))
                if outcome == "error":
                    entry[1] += int(delta(key))
            elif key.startswith("elx_restarts_total{"):
                supervisor = _label(key, "supervisor")
                if not supervisor.startswith("root/pipelines/job-"):
                    restarts[supervisor] = int(delta(key))
        return {p: (c, e) for p, (c, e) in calls.items()}, restarts

    def _pools(self, now: float) -> dict[str, PoolLoad]:
        gateway = self.context.gateway
        if gateway is None:
            return {}
        loads = {}
        for name, (busy, size, last_done) in gateway.pool_loads().items():
            idle = now - last_done if busy >= size and last_done else 0.0
            loads[name] = PoolLoad(busy=busy, size=size, idle_for_s=max(0.0, idle))
        return loads

    # -- acting ----------------------------------------------------------------------

    def _apply(self, report: HealthReport) -> None:
        wanted = {(a.kind.value, a.target): a for a in report.actions}
        with self._lock:
            ended = [key for key in self._applied if key not in wanted]
            started = [a for key, a in wanted.items() if key not in self._applied]
            self._applied = {
                k: a for k, a in wanted.items() if a.kind is not ActionKind.RESTART_POOL
            }
        for kind, target in ended:
            try:
                self._undo(kind, target)
            except Exception as exc:  # one failed reversal must not block the others
                log.error("health_action_undo_failed", kind=kind, target=target, error=str(exc))
        for action in started:
            try:
                self._do(action)
            except Exception as exc:  # forget it, so the next tick tries again
                log.error("health_action_failed", kind=action.kind.value, error=str(exc))
                with self._lock:
                    self._applied.pop((action.kind.value, action.target), None)

    def _do(self, action: Action) -> None:
        ctx = self.context
        log.warning(
            "health_action", kind=action.kind.value, target=action.target, reason=action.reason
        )
        if action.kind is ActionKind.USE_BACKUPS and action.target and ctx.gateway is not None:
            ctx.gateway.use_backups(action.target, action.backups)
            self.modes.rerouted[action.target] = tuple(action.backups)
        elif action.kind is ActionKind.STATIC_PROMPTS:
            self.modes.static_prompts = True
        elif action.kind is ActionKind.BYPASS_AGENT:
            self.modes.bypass_agent = True
            if ctx.agent is not None:
                ctx.agent.bypass = True
        elif action.kind is ActionKind.RESTART_POOL and action.target and ctx.root is not None:
            providers = ctx.root.supervisor("providers")
            try:
                providers.terminate_child(action.target)
                providers.restart_child(action.target)
            except Exception as exc:
                log.error("health_restart_pool_failed", pool=action.target, error=str(exc))
        elif action.kind is ActionKind.EMERGENCY_MODE:
            self.modes.emergency_retry_after_s = action.retry_after_s or 5.0

    def _undo(self, kind: str, target: str | None) -> None:
        ctx = self.context
        log.info("health_action_ended", kind=kind, target=target)
        if kind == ActionKind.USE_BACKUPS.value and target and ctx.gateway is not None:
            ctx.gateway.restore(target)
            self.modes.rerouted.pop(target, None)
        elif kind == ActionKind.STATIC_PROMPTS.value:
            self.modes.static_prompts = False
        elif kind == ActionKind.BYPASS_AGENT.value:
            self.modes.bypass_agent = False
            if ctx.agent is not None:
                ctx.agent.bypass = False
        elif kind == ActionKind.EMERGENCY_MODE.value:
            self.modes.emergency_retry_after_s = None

    # -- reading ---------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            report = self.report
        data: dict[str, Any] = report.to_json() if report is not None else {"status": "healthy"}
        data["modes"] = {
            "emergency": self.modes.emergency_retry_after_s is not None,
            "bypass_agent": self.modes.bypass_agent,
            "static_prompts": self.modes.static_prompts,
            "rerouted": {k: list(v) for k, v in self.modes.rerouted.items()},
        }
        if self.alerts is not None:
            data["alerts"] = [a.to_json() for a in self.alerts.active()]
        return data


def _label(series: str, name: str) -> str:
    marker = f'{name}="'
    start = series.find(marker)
    if start < 0:
        return ""
    start += len(marker)
    return series[start : series.find('"', start)]
