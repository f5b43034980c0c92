"""The in-process gateway: picks a provider for each request and walks fallback chains.

Providers are looked up by canonical name (``claude`` → ``anthropic``). When a
provider is not available here (no API key, or not installed) and settings
allow it, the mock answers instead and the response says so; the run records
which provider really answered. Provider actors replace this gateway in the
daemon; the contract is the same ``complete``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import replace

from runtime.clock import SYSTEM_CLOCK
from runtime.config import Settings, canonical_provider
from runtime.errors import AuthError, ProviderError, Rejected, Unavailable
from runtime.providers.base import LLMRequest, LLMResponse, Provider


class LocalGateway:
    """Providers in this process: given ones, plus ones built on first use by ``factory``."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        settings: Settings,
        factory: Callable[[str], Provider] | None = None,
    ) -> None:
        self._providers = {canonical_provider(n): p for n, p in providers.items()}
        self._settings = settings
        self._factory = factory
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return sorted(self._providers)

    def provider(self, name: str) -> Provider:
        return self._pick(canonical_provider(name))

    def _pick(self, name: str) -> Provider:
        forced = self._settings.force_provider
        if forced is not None:
            name = canonical_provider(forced)
        found = self._providers.get(name)
        if found is None and self._factory is not None and self._settings.has_key(name):
            with self._lock:
                found = self._providers.get(name)
                if found is None:
                    found = self._providers[name] = self._factory(name)
        if found is not None and (name == "mock" or self._settings.has_key(name)):
            return found
        if self._settings.allow_mock_fallback and "mock" in self._providers:
            return self._providers["mock"]
        if found is None:
            raise Unavailable(
                f"provider '{name}' is not available (known: {', '.join(self.names)})",
                provider=name,
            )
        raise AuthError(
            f"provider '{name}' has no API key in the environment; set it, or allow the "
            "mock fallback (ELX_MOCK_FALLBACK=1)",
            provider=name,
        )

    def complete(self, request: LLMRequest) -> LLMResponse:
        chain = (request.provider, *request.fallbacks)
        last: ProviderError | None = None
        for index, name in enumerate(chain):
            canonical = canonical_provider(name)
            try:
                provider = self._pick(canonical)
                return provider.complete(replace(request, provider=canonical, fallbacks=()))
            except Rejected as exc:
                raise exc
            except ProviderError as exc:
                last = exc
                if index == len(chain) - 1:
                    raise
        assert last is not None
        raise last


def default_gateway(settings: Settings, mock: Provider | None = None) -> LocalGateway:
    """The gateway `elx run` uses: the mock, and every provider whose key is set.

    Real providers are built on first use and wrapped in the default retry
    policy and circuit breaker (their SDKs never retry on their own).
    """
    from runtime.providers.mock import MockProvider, MockSettings
    from runtime.providers.registry import ProviderRegistry

    provider = mock if mock is not None else MockProvider(MockSettings.from_env(settings.environ))
    registry = ProviderRegistry(settings)

    def build(name: str) -> Provider:
        from runtime.providers.breaker import BreakerConfig, CircuitBreaker
        from runtime.providers.resilient import ResilientProvider
        from runtime.providers.retry import RetryPolicy

        return ResilientProvider(
            registry.create(name),
            RetryPolicy(),
            CircuitBreaker(BreakerConfig(), SYSTEM_CLOCK, provider=name),
            bulkhead_size=64,
        )

    return LocalGateway({"mock": provider}, settings, factory=build)
