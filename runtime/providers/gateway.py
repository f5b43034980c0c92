"""The in-process gateway: picks a provider for each request and walks fallback chains.

Providers are looked up by canonical name (``claude`` → ``anthropic``). When a
provider is not available here (no API key, or not installed) and settings
allow it, the mock answers instead and the response says so; the run records
which provider really answered. Provider actors replace this gateway in the
daemon; the contract is the same ``complete``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from runtime.config import Settings, canonical_provider
from runtime.errors import AuthError, ProviderError, Rejected, Unavailable
from runtime.providers.base import LLMRequest, LLMResponse, Provider


class LocalGateway:
    def __init__(self, providers: Mapping[str, Provider], settings: Settings) -> None:
        self._providers = {canonical_provider(n): p for n, p in providers.items()}
        self._settings = settings

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
    """The gateway `elx run` uses: the mock provider, configured from the environment."""
    from runtime.providers.mock import MockProvider, MockSettings

    provider = mock if mock is not None else MockProvider(MockSettings.from_env(settings.environ))
    return LocalGateway({"mock": provider}, settings)
