"""The web gateway's settings: the ``web`` child's ``args`` in ``supervision.yaml``, then env.

The environment wins, so one daemon can be started with the gateway on
without editing the tree: ``ELX_WEB=1`` (or ``elx daemon --web``) enables it,
``ELX_WEB_HOST`` / ``ELX_WEB_PORT`` move it. A host that is not loopback is
refused unless ``allow_remote: true`` says so on purpose.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from runtime.errors import ConfigError

DEFAULT_PORT = 8765
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class WebConfig(BaseModel):
    """How the gateway listens and what it accepts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)  # 0: any free port (tests)
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    allowed_hosts: tuple[str, ...] = ()  # extra Host names besides loopback ones
    cors_origins: tuple[str, ...] = ()  # none by default: the page is same-origin
    chat_timeout_s: float = Field(300.0, gt=0, le=3600)
    allow_remote: bool = False

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name an address, e.g. 127.0.0.1")
        return value.strip()

    @field_validator("allowed_hosts")
    @classmethod
    def _lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(name.strip().lower() for name in value)  # Host headers compare lowered

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def host_names(self, port: int) -> frozenset[str]:
        """Host header values a request may carry (DNS-rebinding check)."""
        names = {"127.0.0.1", "localhost", "[::1]", *self.allowed_hosts}
        if not self.loopback:
            names.add(self.host)
        return frozenset({*names, *(f"{name}:{port}" for name in names)})


def web_config(args: Mapping[str, Any], environ: Mapping[str, str]) -> WebConfig:
    """``args`` from the tree with the environment's overrides, checked; ConfigError names
    the field."""
    data = dict(args)
    if "ELX_WEB" in environ:
        flag = environ["ELX_WEB"].strip().lower()
        if flag not in _TRUE | _FALSE:
            raise ConfigError(f"ELX_WEB must be 1 or 0, got {environ['ELX_WEB']!r}")
        data["enabled"] = flag in _TRUE
    if environ.get("ELX_WEB_HOST"):
        data["host"] = environ["ELX_WEB_HOST"]
    if environ.get("ELX_WEB_PORT"):
        data["port"] = environ["ELX_WEB_PORT"]
    try:
        config = WebConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'args'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(
            f"web gateway settings (supervision.yaml 'web' args): {problems}"
        ) from None
    if config.enabled and not config.loopback and not config.allow_remote:
        raise ConfigError(
            f"web gateway host {config.host!r} is not loopback; set `allow_remote: true` in the "
            "'web' args to serve other machines (the token is then the only protection: put a "
            "TLS proxy in front)"
        )
    return config
