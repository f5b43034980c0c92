"""The daemon side of the Ray backend: a child's life as a Ray actor, watched from here.

``RayIncarnation`` has the thread backend's interface, so handles, restarts
and the tree work unchanged. Ray's own restarts are off (``max_restarts=0``,
``max_task_retries=0``): our supervisor owns restart types, intensity,
backoff and escalation. One watcher thread per life long-polls the host
(``RayHost.poll``); the actor's death reaches it as a failed call, at once,
whether the actor crashed, was ``ray.kill``-ed or lost its node. The watcher
also serves the actor's calls home through the handler the daemon registers
with ``set_home`` (store, providers, events).

Ray is imported here and only here; ``connect`` joins or starts a cluster
once per process (a test may have started one already).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from runtime.errors import ChildNotRunning, ConfigError, StartIgnored
from runtime.supervision.child_spec import RaySpec
from runtime.supervision.exit import Exit
from runtime.supervision.incarnation import FencedFuture, Incarnation, StartOutcome
from runtime.supervision.snapshot import WorkerStatus

log = structlog.get_logger("runtime.supervision")

POLL_S = 1.0
HomeHandler = Callable[[str, Any], Any]

_lock = threading.Lock()
_home: HomeHandler | None = None
_host_class: Any = None
_home_pool: concurrent.futures.ThreadPoolExecutor | None = None


def set_home(handler: HomeHandler | None) -> None:
    """Serve calls home from actors on Ray with ``handler(kind, payload)`` (the daemon)."""
    global _home
    with _lock:
        _home = handler


def connect(spec: RaySpec) -> Any:
    """The ``ray`` module, joined to a cluster: the running one in this process, else
    ``spec.address`` (``auto``: RAY_ADDRESS or a local cluster, else a new local instance)."""
    global _host_class
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "backend 'ray' needs Ray, which is not installed: pip install 'elexirion[ray]'"
        ) from None
    with _lock:
        if not ray.is_initialized():
            address = None if spec.address in ("auto", "local") else spec.address
            ray.init(
                address=address,
                namespace=spec.namespace,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
            log.info("ray_connected", address=spec.address, namespace=spec.namespace)
        if _host_class is None:
            from runtime.supervision.ray_host import RayHost

            _host_class = ray.remote(RayHost)
    return ray


class RayIncarnation(Incarnation):
    """The n-th life of a worker placed on Ray."""

    def __init__(self, ray_spec: RaySpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ray_spec = ray_spec
        self.host: Any = None
        self.where: dict[str, Any] = {}
        self._status: WorkerStatus | None = None
        self._ray: Any = None

    # -- starting ---------------------------------------------------------------------

    def spawn(self, actor_class: Any, kwargs: Mapping[str, Any]) -> None:
        ray = connect(self.ray_spec)
        self._ray = ray
        options: dict[str, Any] = {
            "max_restarts": 0,
            "max_task_retries": 0,
            "num_cpus": self.ray_spec.num_cpus,
            "namespace": self.ray_spec.namespace,
            "name": f"{self.path}#{self.generation}",
            "max_concurrency": 1000,
        }
        if self.ray_spec.scheduling == "spread":
            options["scheduling_strategy"] = "SPREAD"
        if self.ray_spec.resources:
            options["resources"] = dict(self.ray_spec.resources)
        self.host = _host_class.options(**options).remote(
            actor_class, dict(kwargs), self.path, self.generation, self.crash_on
        )
        threading.Thread(target=self._watch, name=f"ray {self.path}", daemon=True).start()

    def _watch(self) -> None:
        """Start the host, then long-poll it until its life ends; then ``finish``."""
        ray = self._ray
        try:
            started = ray.get(self.host.start.remote(_START_WAIT_S))
        except Exception as exc:  # scheduling failed, or the actor died while starting
            self.start_error = ChildNotRunning(
                f"{self.path} could not start on Ray: {_cause(exc)!r}", child=self.path
            )
            self._end_unstarted()
            return
        self.where = {k: started[k] for k in ("node", "ip", "pid")}
        if started["outcome"] != StartOutcome.STARTED.value:
            self.start_error = started["error"] or (
                StartIgnored(f"{self.path} ignored its start")
                if started["outcome"] == "ignored"
                else None
            )
            self._end_unstarted()
            return
        self._start_succeeded()
        replies: list[tuple[int, bool, Any]] = []
        while True:
            try:  # answers to the last calls ride on the next poll: one round trip, not two
                news = ray.get(self.host.poll.remote(POLL_S, replies))
            except Exception as exc:  # the actor died: killed, crashed hard, node lost
                self.record_crash(
                    ChildNotRunning(
                        f"{self.path}: its Ray actor died ({_cause(exc).__class__.__name__})",
                        child=self.path,
                    )
                )
                break
            self._status = news["status"]
            replies = [r for call in news["calls"] if (r := self._serve(*call)) is not None]
            ended = news["exit"]
            if ended is not None:
                if ended["reason"] == "crash":
                    self.record_crash(ended["error"] or RuntimeError("crashed"))
                break
        self.finish()
        self._kill()

    def _end_unstarted(self) -> None:
        self._kill()
        self.finish()

    # -- calls ------------------------------------------------------------------------

    def ask(self, message: Any) -> FencedFuture:
        future = FencedFuture()
        if self.host is None:
            future.fail(self._not_running("has not started"))
            return future
        if not self._track(future):
            return future
        reply = self.host.ask.remote(message).future()
        reply.add_done_callback(lambda done: self._settle(future, done))
        return future

    def _settle(self, future: FencedFuture, done: concurrent.futures.Future[Any]) -> None:
        error = done.exception()
        if error is None:
            future.set(done.result())
            return
        cause = _cause(error)
        if _is_actor_death(error):
            cause = self._not_running("died before answering")
        future.fail(cause)

    def tell(self, message: Any) -> None:
        if self.host is None or self._fenced:
            raise self._not_running("is not running")
        self.host.tell.remote(message)

    def request_stop(self) -> None:
        with self._lock:
            self._stop_requested = True
        if self.host is not None:
            with contextlib.suppress(Exception):
                self.host.stop.remote()

    def abandon(self) -> Exit:
        exit_ = super().abandon()
        self._kill()
        return exit_

    def mailbox_depth(self) -> int:
        return self.pending_calls()

    def status(self) -> WorkerStatus | None:
        status = self._status or WorkerStatus()
        place = [("backend", "ray")]
        if self.where:
            place += [("node", str(self.where["ip"])), ("pid", str(self.where["pid"]))]
        return WorkerStatus(job=status.job, step=status.step, detail=(*status.detail, *place))

    # -- calls home -----------------------------------------------------------------------

    def _serve(self, call_id: int, kind: str, payload: Any) -> tuple[int, bool, Any] | None:
        """Answer one call home. Provider calls run on a pool (they wait on the network) and
        reply by themselves; store writes and events run here, in order, and their answers
        go with the next poll."""
        if kind.startswith("gateway."):
            _pool().submit(self._reply, call_id, kind, payload)
            return None
        return self._answer(call_id, kind, payload)

    def _reply(self, call_id: int, kind: str, payload: Any) -> None:
        answer = self._answer(call_id, kind, payload)
        if answer is not None:
            with contextlib.suppress(Exception):  # the actor died meanwhile: nobody waits
                self.host.reply.remote(*answer)

    def _answer(self, call_id: int, kind: str, payload: Any) -> tuple[int, bool, Any] | None:
        with _lock:
            handler = _home
        try:
            if handler is None:
                raise ChildNotRunning(
                    f"{self.path} called home ({kind}) but no daemon serves calls home",
                    child=self.path,
                )
            ok, value = True, handler(kind, payload)
        except Exception as exc:
            ok, value = False, exc
            if call_id == 0:
                log.warning("ray_notify_failed", child=self.path, kind=kind, error=str(exc))
        if call_id == 0:  # a notification: nobody waits for an answer
            return None
        return call_id, ok, value

    def _kill(self) -> None:
        if self.host is not None and self._ray is not None:
            with contextlib.suppress(Exception):
                self._ray.kill(self.host, no_restart=True)


_START_WAIT_S = 300.0  # the supervisor's own start_timeout_s abandons sooner


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _home_pool
    with _lock:
        if _home_pool is None:
            _home_pool = concurrent.futures.ThreadPoolExecutor(64, thread_name_prefix="ray-home")
        return _home_pool


def _cause(error: BaseException) -> BaseException:
    """The exception an actor raised, out of Ray's wrapper."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error


def _is_actor_death(error: BaseException) -> bool:
    from ray.exceptions import RayActorError

    return isinstance(error, RayActorError)
