"""Frozen specs for children and supervisors, with every default declared here.

A child is a worker (``actor``: a Pykka actor class or its dotted path), a
``supervisor`` (static children) or a ``dynamic_supervisor`` (children added at
run time). Actor classes and ``crash_on`` exceptions are resolved by dotted
path with importlib, so ``runtime`` never imports the application's ``actors``.
"""

from __future__ import annotations

import importlib
import inspect
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Literal, Self

import pykka
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
DEFAULT_WORKER_SHUTDOWN_S = 5.0


class Strategy(StrEnum):
    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class Restart(StrEnum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


class AutoShutdown(StrEnum):
    NEVER = "never"
    ANY_SIGNIFICANT = "any_significant"
    ALL_SIGNIFICANT = "all_significant"


class ShutdownMode(StrEnum):
    BRUTAL_KILL = "brutal_kill"
    INFINITY = "infinity"


class ChildKind(StrEnum):
    WORKER = "worker"
    SUPERVISOR = "supervisor"
    DYNAMIC_SUPERVISOR = "dynamic_supervisor"


def _parse_shutdown(value: object) -> object:
    allowed = "'brutal_kill', 'infinity' or a number of seconds > 0"
    if isinstance(value, ShutdownMode):
        return value
    if isinstance(value, str):
        try:
            return ShutdownMode(value)
        except ValueError:
            raise ValueError(f"shutdown must be {allowed}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"shutdown must be {allowed}")
    return float(value)


Shutdown = Annotated[float | ShutdownMode, BeforeValidator(_parse_shutdown)]
"""``brutal_kill``, ``infinity`` or seconds to wait for a clean stop before abandoning."""


@cache
def resolve_dotted(path: str) -> object:
    """Import ``package.module:Name`` (or ``package.module.Name``) and return the object."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"{path!r} is not a dotted path like 'package.module:Name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r} for {path!r}: {exc}") from exc
    target: object = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from None
    return target


def resolve_actor(target: str | type[pykka.Actor]) -> type[pykka.ThreadingActor]:
    cls = resolve_dotted(target) if isinstance(target, str) else target
    if not (isinstance(cls, type) and issubclass(cls, pykka.ThreadingActor)):
        raise ValueError(f"{target!r} is not a pykka.ThreadingActor subclass")
    return cls


@cache
def _signature(cls: type[pykka.ThreadingActor]) -> inspect.Signature:
    """An actor class's constructor signature (computed once: a spec is checked per start)."""
    return inspect.signature(cls)


def resolve_exception(target: str | type[BaseException]) -> type[BaseException]:
    cls = resolve_dotted(target) if isinstance(target, str) else target
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        raise ValueError(f"{target!r} is not an exception class")
    return cls


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class BackoffSpec(_Frozen):
    """Delay before restart n: ``min(max_s, min_s·2ⁿ)·(1 + U(0, jitter))``."""

    min_s: float = Field(default=0.1, gt=0)
    max_s: float = Field(default=10.0, gt=0)
    jitter: float = Field(default=0.2, ge=0, le=1)
    reset_after_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _max_not_below_min(self) -> Self:
        if self.max_s < self.min_s:
            raise ValueError(f"max_s ({self.max_s}) must be ≥ min_s ({self.min_s})")
        return self


class SupervisorFlags(_Frozen):
    strategy: Strategy = Strategy.ONE_FOR_ONE
    intensity: int = Field(default=1, ge=0)
    period_s: float = Field(default=5.0, gt=0)
    backoff: BackoffSpec | None = None
    auto_shutdown: AutoShutdown = AutoShutdown.NEVER


class Backend(StrEnum):
    """Where a worker's actor runs: a thread of the daemon, or a Ray actor on a cluster."""

    THREAD = "thread"
    RAY = "ray"


class RaySpec(_Frozen):
    """Where and how Ray places a worker (``ray:`` beside ``backend: ray``)."""

    address: str = "auto"  # auto: RAY_ADDRESS or a running cluster, else a local instance
    num_cpus: float = Field(default=1.0, ge=0)
    resources: dict[str, float] = Field(default_factory=dict)
    namespace: str = Field(default="elexirion", min_length=1)
    # default: Ray's placement (local node first); spread: across the cluster's nodes
    scheduling: Literal["default", "spread"] = "default"


def ray_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


class PoolSpec(_Frozen):
    """A pool of identical workers (provider pools): expanded into a supervisor."""

    size: int = Field(ge=1, le=1024)
    actor: str
    args: dict[str, Any] = Field(default_factory=dict)
    intensity: int = Field(default=10, ge=0)
    period_s: float = Field(default=10.0, gt=0)
    backoff: BackoffSpec | None = None
    shutdown: float = Field(default=DEFAULT_WORKER_SHUTDOWN_S, gt=0)


class ChildSpec(_Frozen):
    """One child. Exactly one of ``actor``, ``supervisor``, ``dynamic_supervisor``."""

    id: str = Field(pattern=ID_PATTERN)
    actor: str | type[pykka.ThreadingActor] | None = None
    supervisor: SupervisorSpec | None = None
    dynamic_supervisor: DynamicSupervisorSpec | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    restart: Restart = Restart.PERMANENT
    shutdown: Shutdown = DEFAULT_WORKER_SHUTDOWN_S
    significant: bool = False
    crash_on: tuple[str | type[BaseException], ...] = ()
    start_timeout_s: float = Field(default=30.0, gt=0)
    # Where workers run: on a worker, its own actor; on a supervisor, every worker below it
    # that does not say otherwise. None inherits (the root's default is thread).
    backend: Backend | None = None
    ray: RaySpec | None = None

    @field_validator("actor")
    @classmethod
    def _actor_resolves(
        cls, value: str | type[pykka.ThreadingActor] | None
    ) -> str | type[pykka.ThreadingActor] | None:
        if value is not None:
            resolve_actor(value)
        return value

    @field_validator("crash_on")
    @classmethod
    def _exceptions_resolve(
        cls, value: tuple[str | type[BaseException], ...]
    ) -> tuple[str | type[BaseException], ...]:
        for target in value:
            resolve_exception(target)
        return value

    @model_validator(mode="before")
    @classmethod
    def _expand_pool(cls, data: Any) -> Any:
        """``pool: {size, actor, args}`` is a one_for_one supervisor of ``size`` equal workers.

        Workers are named w0..w{size-1} and get their ``index`` as an argument.
        """
        if not isinstance(data, dict) or data.get("pool") is None:
            return data
        pool = PoolSpec.model_validate(data["pool"])
        rest = {k: v for k, v in data.items() if k != "pool"}
        if rest.get("supervisor") is not None or rest.get("dynamic_supervisor") is not None:
            raise ValueError("'pool' cannot be combined with 'supervisor' or 'dynamic_supervisor'")
        workers = [
            {
                "id": f"w{index}",
                "actor": pool.actor,
                "args": {**pool.args, "index": index},
                "shutdown": pool.shutdown,
            }
            for index in range(pool.size)
        ]
        flags = pool.model_dump(include={"intensity", "period_s", "backoff"}, exclude_none=True)
        return {**rest, "supervisor": {**flags, "children": workers}}

    @model_validator(mode="before")
    @classmethod
    def _supervisors_wait_forever_by_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and "shutdown" not in data:
            nested = data.get("supervisor") is not None or data.get("dynamic_supervisor")
            if nested is not None and nested is not False:
                return {**data, "shutdown": ShutdownMode.INFINITY}
        return data

    @model_validator(mode="after")
    def _check(self) -> Self:
        given = [k for k in ("actor", "supervisor", "dynamic_supervisor") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "a child needs exactly one of 'actor', 'supervisor', 'dynamic_supervisor'"
                f" (got {', '.join(given) or 'none'})"
            )
        if self.significant and self.restart is Restart.PERMANENT:
            raise ValueError("a significant child must be 'transient' or 'temporary'")
        if self.ray is not None and self.backend is not Backend.RAY:
            raise ValueError("'ray' settings need 'backend: ray'")
        if self.backend is Backend.RAY and not ray_installed():
            raise ValueError(
                "backend 'ray' needs Ray, which is not installed: "
                "pip install 'elexirion[ray]' (or pip install ray)"
            )
        if self.actor is not None:
            cls = resolve_actor(self.actor)
            try:
                _signature(cls).bind(**self.args)
            except TypeError as exc:
                raise ValueError(f"args do not fit {cls.__qualname__}(): {exc}") from None
        elif self.args:
            raise ValueError("'args' only applies to an 'actor' child")
        return self

    @property
    def kind(self) -> ChildKind:
        if self.supervisor is not None:
            return ChildKind.SUPERVISOR
        if self.dynamic_supervisor is not None:
            return ChildKind.DYNAMIC_SUPERVISOR
        return ChildKind.WORKER

    def crash_on_types(self) -> tuple[type[BaseException], ...]:
        return tuple(resolve_exception(target) for target in self.crash_on)


class SupervisorSpec(SupervisorFlags):
    """A static supervisor: children start in order and stop in reverse."""

    children: tuple[ChildSpec, ...] = ()

    @model_validator(mode="after")
    def _check_children(self) -> Self:
        seen: set[str] = set()
        for child in self.children:
            if child.id in seen:
                raise ValueError(f"duplicate child id {child.id!r}; ids are unique among siblings")
            seen.add(child.id)
            if child.significant and self.auto_shutdown is AutoShutdown.NEVER:
                raise ValueError(
                    f"child {child.id!r} is significant but auto_shutdown is 'never';"
                    " use 'any_significant' or 'all_significant'"
                )
        return self


class DynamicSupervisorSpec(SupervisorFlags):
    """A supervisor whose children are added at run time (one_for_one only)."""

    max_children: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_for_one_only(self) -> Self:
        if self.strategy is not Strategy.ONE_FOR_ONE:
            raise ValueError("a dynamic supervisor's strategy must be 'one_for_one'")
        return self


ChildSpec.model_rebuild()
