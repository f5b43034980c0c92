"""Settings, resolved in one place: defaults here, then the environment, then flags.

Paths the rest of the code uses (state directory, database, workspace) come
from ``Settings``; nothing else reads the environment for them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_MODEL_ALIASES: Mapping[str, str] = {
    "sonnet": "claude-sonnet-4-6",
    "opus": "claude-opus-4-6",
    "haiku": "claude-haiku-4-5",
}

PROVIDER_ALIASES: Mapping[str, str] = {
    "claude": "anthropic",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "google": "gemini",
    "google-generativeai": "gemini",
    "google-genai": "gemini",
    "openai": "openai",
    "openai_compatible": "openai",
    "mock": "mock",
}

PROVIDER_KEYS: Mapping[str, tuple[str, ...]] = {
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL"),
}


def canonical_provider(name: str) -> str:
    """``claude`` → ``anthropic``; unknown names are returned unchanged."""
    return PROVIDER_ALIASES.get(name.strip().lower(), name.strip().lower())


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a run needs to know about its surroundings."""

    state_dir: Path = Path(".elexirion")
    workspace_dir: Path | None = None
    output_dir: Path | None = None
    model_aliases: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MODEL_ALIASES))
    force_provider: str | None = None
    allow_mock_fallback: bool = True
    template_env: tuple[str, ...] = ()
    max_nesting_depth: int = 10
    durable_store: bool = False
    pipeline_dirs: tuple[Path, ...] = (Path("pipelines"),)
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        state_dir = Path(env.get("ELX_STATE_DIR", ".elexirion"))
        test_mode = env.get("TEST_MODE", "").strip().lower()
        force = "mock" if test_mode == "mock" else None
        allowed = tuple(n.strip() for n in env.get("ELX_TEMPLATE_ENV", "").split(",") if n.strip())
        workspace = env.get("PIPELINE_WORKSPACE_DIR")
        output = env.get("PIPELINE_OUTPUT_DIR")
        return cls(
            state_dir=state_dir,
            workspace_dir=Path(workspace) if workspace else None,
            output_dir=Path(output) if output else None,
            force_provider=force,
            allow_mock_fallback=env.get("ELX_MOCK_FALLBACK", "1") not in ("0", "false", "no"),
            template_env=allowed,
            durable_store=env.get("ELX_DURABLE", "0") in ("1", "true", "yes"),
            environ=env,
        )

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def database(self) -> Path:
        return self.state_dir / "elx.db"

    def resolve_model(self, model: str | None) -> str | None:
        if model is None:
            return None
        return self.model_aliases.get(model, model)

    def has_key(self, provider: str) -> bool:
        names = PROVIDER_KEYS.get(canonical_provider(provider), ())
        return any(self.environ.get(n) for n in names)

    def template_environment(self) -> dict[str, str]:
        """Only the variables listed in ELX_TEMPLATE_ENV are visible as ``env.X``."""
        return {n: self.environ[n] for n in self.template_env if n in self.environ}
