"""Alert sinks, and the queue that delivers notifications to them off the hot path.

A sink (``log``, ``command``, ``webhook``) is built from its spec in
``runtime.alert_rules`` by ``build_sink``. ``Dispatcher`` is a bounded queue
served by one background thread, so a slow or failing sink never blocks
evaluation: a full queue drops the notification, and drops and failures are
counted (``DeliveryCounts``) and logged. Summaries pass through ``redact``
before they leave the process, and a command sink sees only a few basic
variables of the daemon's environment (``pass_env`` adds more), never its API
keys.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from runtime.alert_rules import CommandSinkSpec, SinkSpec, WebhookSinkSpec
from runtime.alert_states import AlertState, AlertTransition
from runtime.redaction import redact

__all__ = [
    "BASE_COMMAND_ENV",
    "AlertSink",
    "CommandSink",
    "Delivery",
    "DeliveryCounts",
    "Dispatcher",
    "LogSink",
    "WebhookSink",
    "build_sink",
]

log = structlog.get_logger("elexirion.alerts")

BASE_COMMAND_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SYSTEMROOT")
_ERROR_TAIL_CHARS = 500


# -- sinks --------------------------------------------------------------------------------


class AlertSink(Protocol):
    def deliver(self, alert: AlertTransition) -> None:
        """Send one notification; raise to report a failure (it is counted and logged)."""
        ...


class LogSink:
    """Firing alerts as warnings or errors (by severity), resolutions as info."""

    def deliver(self, alert: AlertTransition) -> None:
        fields = redact(alert.to_json())
        event = f"alert_{alert.state.value}"
        if alert.state is AlertState.RESOLVED:
            log.info(event, **fields)
        elif alert.severity == "critical":
            log.error(event, **fields)
        else:
            log.warning(event, **fields)


class CommandSink:
    def __init__(self, spec: CommandSinkSpec, *, environ: Mapping[str, str] | None = None) -> None:
        self.spec = spec
        source = os.environ if environ is None else environ
        keep = (*BASE_COMMAND_ENV, *spec.pass_env)
        self._base_env = {name: source[name] for name in keep if name in source}

    def deliver(self, alert: AlertTransition) -> None:
        env = {**self._base_env, **redact(alert.environment())}
        try:
            done = subprocess.run(  # no shell: argv is run as written
                list(self.spec.argv),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=self.spec.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise _DeliveryFailed(
                f"{self.spec.argv[0]} did not finish within {self.spec.timeout_s} s; killed"
            ) from None
        except OSError as exc:
            raise _DeliveryFailed(f"cannot run {self.spec.argv[0]}: {exc.strerror}") from None
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace")[-_ERROR_TAIL_CHARS:].strip()
            raise _DeliveryFailed(
                f"{self.spec.argv[0]} exited with status {done.returncode}"
                + (f": {tail}" if tail else "")
            )


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could carry an alert past the loopback check; treat it as an error."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookSink:
    def __init__(self, spec: WebhookSinkSpec) -> None:
        self.spec = spec
        # No proxies from the environment either: a loopback URL must stay on this machine.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())

    def deliver(self, alert: AlertTransition) -> None:
        body = json.dumps(redact(alert.to_json())).encode()
        request = urllib.request.Request(
            self.spec.url,
            data=body,
            method="POST",
            headers={"content-type": "application/json", "user-agent": "elexirion-alerts"},
        )
        try:
            with self._opener.open(request, timeout=self.spec.timeout_s) as response:
                response.read(_ERROR_TAIL_CHARS)
        except urllib.error.HTTPError as exc:
            raise _DeliveryFailed(f"the webhook answered HTTP {exc.code}") from None
        except (OSError, urllib.error.URLError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _DeliveryFailed(f"cannot reach the webhook: {reason}") from None


class _DeliveryFailed(Exception):
    """A sink could not deliver; the dispatcher counts and logs it."""


def build_sink(spec: SinkSpec) -> AlertSink:
    if isinstance(spec, CommandSinkSpec):
        return CommandSink(spec)
    if isinstance(spec, WebhookSinkSpec):
        return WebhookSink(spec)
    return LogSink()


# -- delivery -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryCounts:
    delivered: int = 0
    failed: int = 0
    dropped: int = 0

    def to_json(self) -> dict[str, int]:
        return {"delivered": self.delivered, "failed": self.failed, "dropped": self.dropped}


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification on its way to one named sink."""

    sink_name: str
    sink: AlertSink
    alert: AlertTransition


class Dispatcher:
    """A bounded queue and one thread that hands notifications to sinks, one at a time."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: deque[Delivery] = deque()
        self._changed = threading.Condition()
        self._unfinished = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._counts = DeliveryCounts()

    def submit(self, item: Delivery) -> bool:
        with self._changed:
            if self._closed or len(self._items) >= self._capacity:
                self._count(dropped=1)
                dropped = self._counts.dropped
            else:
                self._items.append(item)
                self._unfinished += 1
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="elx-alert-delivery", daemon=True
                    )
                    self._thread.start()
                self._changed.notify_all()
                return True
        log.warning(
            "alert_delivery_dropped",
            alert=item.alert.name,
            state=item.alert.state.value,
            sink=item.sink_name,
            dropped=dropped,
        )
        return False

    def _run(self) -> None:
        while True:
            with self._changed:
                # Untimed on purpose: submit and close both notify.
                self._changed.wait_for(lambda: bool(self._items) or self._closed)
                if not self._items:
                    return
                item = self._items.popleft()
            try:
                item.sink.deliver(item.alert)
            except Exception as exc:  # a sink must not take the dispatcher down
                with self._changed:
                    self._count(failed=1)
                log.warning(
                    "alert_delivery_failed",
                    alert=item.alert.name,
                    state=item.alert.state.value,
                    sink=item.sink_name,
                    error=redact(str(exc) or type(exc).__name__),
                )
            else:
                with self._changed:
                    self._count(delivered=1)
            finally:
                with self._changed:
                    self._unfinished -= 1
                    self._changed.notify_all()

    def _count(self, *, delivered: int = 0, failed: int = 0, dropped: int = 0) -> None:
        c = self._counts
        self._counts = DeliveryCounts(
            c.delivered + delivered, c.failed + failed, c.dropped + dropped
        )

    @property
    def counts(self) -> DeliveryCounts:
        with self._changed:
            return self._counts

    def flush(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._unfinished == 0, timeout)

    def close(self, timeout: float) -> bool:
        """Deliver what is queued, then stop the thread; False if it is still busy at timeout."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()
