"""The caller's side of provider pools: free workers, resilience, chains, mock fallback.

Each provider is a supervised pool of worker actors (``pool:`` in
supervision.yaml). ``ProviderPool`` hands a call to a free worker through its
stable handle, so N calls wait on the API in parallel and a crashed worker's
restart is invisible apart from the failed call. ``PoolGateway`` wraps each
pool in its breaker, rate limiter, bulkhead and retry policy
(``ResilientProvider``) and walks a request's fallback chain; it is the
``ProviderGateway`` pipeline steps talk to inside the daemon.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from runtime.clock import SYSTEM_CLOCK, Clock
from runtime.config import Settings, canonical_provider
from runtime.errors import (
    AuthError,
    CallTimeout,
    ChildNotRunning,
    ConfigError,
    ElexirionError,
    ProviderTimeout,
    Unavailable,
)
from runtime.providers.base import LLMRequest, LLMResponse
from runtime.providers.breaker import BreakerConfig, BreakerState, CircuitBreaker
from runtime.providers.rate_limit import RateLimitConfig, RateLimiter
from runtime.providers.resilient import FallbackChain, PoolFull, ResilientProvider
from runtime.providers.retry import RetryEvent, RetryPolicy

if TYPE_CHECKING:
    from runtime.supervision import ChildHandle, SupervisorHandle

Detail = tuple[tuple[str, str], ...]

# How a worker reports its pool's health in the tree: one registry, one wrapper.
_DETAILS: dict[str, Callable[[], Detail]] = {}
_DETAILS_LOCK = threading.Lock()


def pool_detail(provider: str) -> Detail:
    """Breaker state and load of ``provider``'s pool, for tree snapshots."""
    with _DETAILS_LOCK:
        source = _DETAILS.get(canonical_provider(provider))
    return source() if source is not None else ()


def _publish(provider: str, source: Callable[[], Detail] | None) -> None:
    with _DETAILS_LOCK:
        if source is None:
            _DETAILS.pop(provider, None)
        else:
            _DETAILS[provider] = source


class ProviderPool:
    """Hands each call to a free worker; at most ``size`` calls at once."""

    def __init__(self, name: str, workers: Sequence[ChildHandle], *, wait_s: float = 30.0) -> None:
        self.last_done = time.monotonic()
        if not workers:
            raise ConfigError(f"provider pool '{name}' has no workers")
        self.name = name
        self.size = len(workers)
        self._wait_s = wait_s
        self._free: queue.Queue[ChildHandle] = queue.Queue()
        for worker in workers:
            self._free.put(worker)
        self._busy = 0
        self._lock = threading.Lock()

    last_done = 0.0  # monotonic time the last call finished (or the pool was made)

    @property
    def busy(self) -> int:
        with self._lock:
            return self._busy

    def complete(self, request: LLMRequest) -> LLMResponse:
        try:
            worker = self._free.get(timeout=self._wait_s)
        except queue.Empty:
            raise PoolFull(
                f"no free {self.name} worker within {self._wait_s:g} s",
                provider=self.name,
                pool_size=self.size,
            ) from None
        with self._lock:
            self._busy += 1
        # The worker enforces the request's own timeout; this bound only catches a stuck actor.
        bound = (request.timeout_s or 600.0) + 5.0
        try:
            response: LLMResponse = worker.call("complete", request, timeout=bound)
            return response
        except ChildNotRunning as exc:
            raise Unavailable(
                f"{self.name} worker {exc.child} is down (it is being restarted); "
                "the call can be retried",
                provider=self.name,
            ) from None
        except CallTimeout:
            raise ProviderTimeout(
                f"{self.name} worker did not answer within {bound:g} s", provider=self.name
            ) from None
        finally:
            with self._lock:
                self._busy -= 1
                self.last_done = time.monotonic()
            self._free.put(worker)

    def stream(self, request: LLMRequest) -> Iterator[str]:
        yield self.complete(request).text


@dataclass(frozen=True, slots=True)
class PoolPolicy:
    """Resilience settings of one provider's pool."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> PoolPolicy:
        """Defaults, with the breaker tuned by ``ELX_BREAKER_THRESHOLD`` (failures in its
        window before it opens) and ``ELX_BREAKER_COOLDOWN_S`` (how long it stays open)."""
        changes: dict[str, Any] = {}
        for variable, name, kind in (
            ("ELX_BREAKER_THRESHOLD", "failure_threshold", int),
            ("ELX_BREAKER_COOLDOWN_S", "cooldown_s", float),
        ):
            raw = environ.get(variable, "").strip()
            if raw:
                try:
                    changes[name] = kind(raw)
                except ValueError:
                    raise ConfigError(f"{variable} must be a number, got {raw!r}") from None
        if not changes:
            return cls()
        try:
            return cls(breaker=BreakerConfig(**changes))
        except ValueError as exc:
            raise ConfigError(f"ELX_BREAKER_*: {exc}") from None


class PoolGateway:
    """The daemon's ProviderGateway: provider pools behind breakers, limiters and chains."""

    def __init__(
        self,
        pools: Mapping[str, ProviderPool],
        settings: Settings,
        *,
        policies: Mapping[str, PoolPolicy] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        telemetry: Callable[[Any], Any] | None = None,
        tracer: Any = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._telemetry = telemetry  # runtime.telemetry.Telemetry.emit; never blocks
        self.tracer = tracer  # runtime.tracing.JobTracer, or None
        self._providers: dict[str, ResilientProvider] = {}
        self._pools = dict(pools)
        default = PoolPolicy.from_env(settings.environ)
        for name, pool in pools.items():
            policy = (policies or {}).get(name, default)
            self._providers[name] = ResilientProvider(
                pool,
                policy.retry,
                CircuitBreaker(policy.breaker, clock, provider=name, on_change=self._breaker_moved),
                RateLimiter(policy.rate_limit, clock, provider=name),
                bulkhead_size=pool.size,
                clock=clock,
                on_retry=functools.partial(self._retried, name),
            )
            _publish(name, self._detail_source(name))
        self._down: dict[str, tuple[str, ...]] = {}  # provider → backups taking its traffic

    @classmethod
    def from_tree(
        cls,
        providers: SupervisorHandle,
        settings: Settings,
        *,
        policies: Mapping[str, PoolPolicy] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        telemetry: Callable[[Any], Any] | None = None,
        tracer: Any = None,
    ) -> PoolGateway:
        """One pool per child of the ``providers`` supervisor, workers in order."""
        pools: dict[str, ProviderPool] = {}
        for info in providers.which_children():
            pool_supervisor = providers.supervisor(info.id)
            workers = [pool_supervisor.child(w.id) for w in pool_supervisor.which_children()]
            pools[canonical_provider(info.id)] = ProviderPool(info.id, workers)
        return cls(
            pools, settings, policies=policies, clock=clock, telemetry=telemetry, tracer=tracer
        )

    def close(self) -> None:
        for name in self._providers:
            _publish(name, None)

    @property
    def names(self) -> list[str]:
        return sorted(self._providers)

    # -- health actions ---------------------------------------------------------------

    def use_backups(self, provider: str, backups: Sequence[str]) -> None:
        """Send ``provider``'s traffic to ``backups`` (in order) until ``restore``."""
        self._down[canonical_provider(provider)] = tuple(backups)

    def restore(self, provider: str) -> None:
        self._down.pop(canonical_provider(provider), None)

    @property
    def rerouted(self) -> dict[str, tuple[str, ...]]:
        return dict(self._down)

    # -- telemetry --------------------------------------------------------------------

    def _breaker_moved(self, provider: str, state: BreakerState) -> None:
        if self._telemetry is not None:
            from runtime.telemetry import BreakerChanged

            self._telemetry(BreakerChanged(provider, state.value))

    def _retried(self, provider: str, event: RetryEvent) -> None:
        if self._telemetry is not None:
            from runtime.telemetry import ProviderRetry

            self._telemetry(
                ProviderRetry(provider, event.attempt, event.error.kind.value, event.delay_s)
            )

    def pool_loads(self) -> dict[str, tuple[int, int, float]]:
        """Each pool's (busy workers, size, when its last call finished)."""
        return {name: (p.busy, p.size, p.last_done) for name, p in self._pools.items()}

    def breaker_states(self) -> dict[str, str]:
        """Each provider's breaker now: closed, open or half_open. An open breaker whose
        cooldown is over counts as half_open: its next call is the probe."""
        states = {}
        for name, provider in self._providers.items():
            breaker = provider.snapshot().breaker
            if breaker is None:
                states[name] = "none"
            elif breaker.state is BreakerState.OPEN and breaker.next_probe_in_s == 0:
                states[name] = BreakerState.HALF_OPEN.value
            else:
                states[name] = breaker.state.value
        return states

    def _detail_source(self, name: str) -> Callable[[], Detail]:
        def detail() -> Detail:
            snap = self._providers[name].snapshot()
            pool = self._pools[name]
            breaker = snap.breaker.state.value if snap.breaker is not None else "none"
            return (("breaker", breaker), ("busy", f"{pool.busy}/{pool.size}"))

        return detail

    def _usable(self, name: str) -> str | None:
        """``name`` itself, the mock standing in for it, or None if it cannot serve."""
        if name in self._providers and (name == "mock" or self._settings.has_key(name)):
            return name
        if self._settings.allow_mock_fallback and "mock" in self._providers:
            return "mock"
        return None

    def complete(self, request: LLMRequest) -> LLMResponse:
        forced = self._settings.force_provider
        asked = (request.provider, *request.fallbacks)
        if forced is not None:
            asked = (forced,)
        chain: list[str] = []
        for name in (canonical_provider(n) for n in asked):
            usable = self._usable(name)
            if usable is not None and usable not in chain:
                chain.append(usable)
        if not chain:
            first = canonical_provider(asked[0])
            if first not in self._providers:
                raise Unavailable(
                    f"provider '{first}' has no pool here (pools: {', '.join(self.names)})",
                    provider=first,
                )
            raise AuthError(
                f"provider '{first}' has no API key in the environment and the mock "
                "fallback is off (ELX_MOCK_FALLBACK=0)",
                provider=first,
            )
        chain = self._reroute(chain)
        plain = replace(request, fallbacks=())
        started = self._clock.now()
        try:
            if self.tracer is not None:
                with self.tracer.provider_call(chain[0], request.model):
                    response = self._call(chain, plain)
            else:
                response = self._call(chain, plain)
        except ElexirionError as error:
            self._record_call(chain[0], started, None, error, request)
            raise
        self._record_call(response.provider, started, response, None, request)
        return response

    def _call(self, chain: list[str], request: LLMRequest) -> LLMResponse:
        if len(chain) == 1:
            return self._providers[chain[0]].complete(replace(request, provider=chain[0]))
        result = FallbackChain(
            [(name, self._providers[name]) for name in chain], clock=self._clock
        ).complete(request)
        return result.response

    def _reroute(self, chain: list[str]) -> list[str]:
        """A provider the health monitor marked down hands its place to its backups."""
        if not self._down:
            return chain
        out: list[str] = []
        for name in chain:
            backups = self._down.get(name)
            for candidate in (*backups, name) if backups else (name,):
                usable = self._usable(candidate)
                if usable is not None and usable not in out:
                    out.append(usable)
        return out or chain

    def _record_call(
        self,
        provider: str,
        started: float,
        response: LLMResponse | None,
        error: ElexirionError | None,
        request: LLMRequest,
    ) -> None:
        if self._telemetry is None:
            return
        from runtime.telemetry import provider_call_event

        cut = request.control is not None and request.control.is_set()
        self._telemetry(
            provider_call_event(
                provider, self._clock.now() - started, response, error, cancelled=cut
            )
        )


__all__ = ["PoolGateway", "PoolPolicy", "ProviderPool", "pool_detail"]
