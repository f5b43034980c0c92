"""Provider names → provider classes: built-ins, config dotted paths, and plugins.

A provider class is constructed as ``cls(settings)`` and must satisfy the
``Provider`` protocol. Built-ins are listed by dotted path so that their SDKs
load only when used. Other packages add providers through the entry-point
group ``elexirion.providers``; a deployment can also name a class by dotted
path in ``ELX_PROVIDERS`` (``name=package.module:Class,...``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from runtime.config import Settings, canonical_provider
from runtime.errors import ConfigError
from runtime.providers.base import Provider

ENTRY_POINT_GROUP = "elexirion.providers"

BUILTIN: Mapping[str, str] = {
    "anthropic": "runtime.providers.anthropic:AnthropicProvider",
    "gemini": "runtime.providers.gemini:GeminiProvider",
    "openai": "runtime.providers.openai_compatible:OpenAICompatibleProvider",
    "mock": "runtime.providers.mock:MockProvider",
}

ProviderFactory = Callable[[Settings], Provider]


def _load(target: str, *, what: str) -> Any:
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"{what}: {target!r} must look like 'package.module:Class'")
    try:
        return getattr(import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{what}: cannot load {target!r}: {exc}") from None


@functools.cache
def _plugin_targets() -> dict[str, str]:
    """Providers of installed packages (scanned once per process: every pool worker asks)."""
    return {point.name.lower(): point.value for point in entry_points(group=ENTRY_POINT_GROUP)}


def _from_env(settings: Settings) -> dict[str, str]:
    raw = settings.environ.get("ELX_PROVIDERS", "")
    found: dict[str, str] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        name, sep, target = item.partition("=")
        if not sep:
            raise ConfigError(f"ELX_PROVIDERS: {item!r} must look like 'name=package.module:Class'")
        found[name.strip().lower()] = target.strip()
    return found


class ProviderRegistry:
    """Which class serves which provider name; ``create`` builds one instance."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._targets: dict[str, str | type[Any]] = dict(BUILTIN)
        self._targets.update(_plugin_targets())
        self._targets.update(_from_env(settings))

    def register(self, name: str, target: str | type[Any]) -> None:
        self._targets[name.lower()] = target

    @property
    def names(self) -> list[str]:
        return sorted(self._targets)

    def knows(self, name: str) -> bool:
        return canonical_provider(name) in self._targets

    def create(self, name: str) -> Provider:
        canonical = canonical_provider(name)
        target = self._targets.get(canonical)
        if target == BUILTIN["gemini"]:
            from runtime.providers import gemini

            return gemini.create(self._settings, name)  # notes the legacy alias once
        if target is None:
            raise ConfigError(
                f"unknown provider '{name}' (known: {', '.join(self.names)}); add one with "
                f"the '{ENTRY_POINT_GROUP}' entry point or ELX_PROVIDERS"
            )
        cls = _load(target, what=f"provider '{canonical}'") if isinstance(target, str) else target
        if canonical == "mock":
            from runtime.providers.mock import MockSettings

            provider: Any = cls(MockSettings.from_env(self._settings.environ))
        else:
            provider = cls(self._settings)
        if not isinstance(provider, Provider):
            raise ConfigError(
                f"provider '{canonical}' ({target}) does not implement complete/stream"
            )
        return provider
