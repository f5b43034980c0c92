"""The health monitor in the tree: every ``interval_s`` it runs the watchdog's checks.

Its args are the health config (runtime/health.py ``HealthConfig``: interval,
thresholds, hysteresis, backups) plus ``alerts`` (runtime/alerts.py rules and
sinks). Ticks come from a timer thread as messages to this actor, so a slow
check never piles up: the next tick is scheduled when the previous one ends.
"""

from __future__ import annotations

from typing import Any

import pykka
import structlog

from runtime import WorkerStatus, daemon_context
from runtime.health import HealthConfig
from runtime.timers import Timers

log = structlog.get_logger("elexirion.health")


class HealthActor(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self, alerts: dict[str, Any] | None = None, **config: Any) -> None:
        super().__init__()
        self.config = HealthConfig.from_mapping(config, source="supervision.yaml: health.args")
        self.alert_spec = alerts
        self._timers = Timers(name="elx-health-ticks")
        self._ticks = 0

    def on_start(self) -> None:
        from runtime.watchdog import Watchdog

        context = daemon_context()
        engine = None
        if self.alert_spec:
            from runtime.alerts import AlertEngine, load_alerts
            from runtime.clock import SYSTEM_CLOCK

            config = load_alerts(self.alert_spec, source="health.args.alerts")
            engine = AlertEngine(config, SYSTEM_CLOCK)
        context.watchdog = Watchdog(context, self.config, engine)
        self._schedule()

    def on_stop(self) -> None:
        self._timers.close()
        watchdog = daemon_context().watchdog
        if watchdog is not None and watchdog.alerts is not None:
            watchdog.alerts.close()

    def on_receive(self, message: Any) -> Any:
        if message == "tick":
            try:
                self._tick()
            finally:
                self._schedule()
            return None
        return super().on_receive(message)

    def _tick(self) -> None:
        context = daemon_context()
        if context.watchdog is None or not context.ready.is_set():
            return
        context.watchdog.tick()
        self._ticks += 1

    def _schedule(self) -> None:
        ref = self.actor_ref
        self._timers.call_later(self.config.interval_s, lambda: ref.tell("tick"))

    def ping(self) -> str:
        return "pong"

    def supervision_status(self) -> WorkerStatus:
        watchdog = daemon_context().watchdog
        report = watchdog.report if watchdog is not None else None
        if report is None:
            return WorkerStatus(detail=(("status", "not checked yet"),))
        return WorkerStatus(
            detail=(("status", report.status.value), ("actions", str(len(report.actions))))
        )
