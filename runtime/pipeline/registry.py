"""The step registry: step ``type`` name → model and runner.

The core registers its own types on first use; other packages add theirs
through the entry-point group ``elexirion.steps``. An entry point names either
a ``StepType`` or a zero-argument callable returning one or a list of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from runtime.errors import ConfigError
from runtime.pipeline.models import StepSpec, step_type_name

if TYPE_CHECKING:
    from runtime.pipeline.context import StepContext

ENTRY_POINT_GROUP = "elexirion.steps"

StepRunner = Callable[[Any, "StepContext"], Any]


@dataclass(frozen=True, slots=True)
class StepType:
    """A step type: its model (which pins ``type``) and the function that runs it."""

    model: type[StepSpec]
    run: StepRunner
    summary: str = ""

    @property
    def name(self) -> str:
        return step_type_name(self.model)


class StepRegistry:
    def __init__(self) -> None:
        self._types: dict[str, StepType] = {}
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._loaded = False

    def register(self, step_type: StepType, *, replace: bool = False) -> None:
        with self._lock:
            name = step_type.name
            if name in self._types and not replace:
                raise ConfigError(f"step type '{name}' is already registered")
            self._types[name] = step_type

    def unregister(self, name: str) -> None:
        with self._lock:
            self._types.pop(name, None)

    def get(self, name: str) -> StepType | None:
        self._ensure_loaded()
        return self._types.get(name)

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._types)

    def types(self) -> list[StepType]:
        self._ensure_loaded()
        return [self._types[n] for n in sorted(self._types)]

    def _ensure_loaded(self) -> None:
        """Register the core and plugin types once; other threads wait until that is done."""
        if self._loaded:
            return
        with self._load_lock:
            if self._loaded:
                return
            from runtime.pipeline.steps import core_step_types

            for step_type in [*core_step_types(), *_from_entry_points()]:
                self.register(step_type, replace=True)
            self._loaded = True


def _from_entry_points() -> Iterable[StepType]:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = ep.load()
            value = loaded() if callable(loaded) and not isinstance(loaded, StepType) else loaded
        except Exception as exc:  # a broken plugin must not break the core
            raise ConfigError(
                f"step plugin '{ep.name}' ({ep.value}) failed to load: {exc}; "
                f"fix or uninstall the package that provides it"
            ) from exc
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if not isinstance(item, StepType):
                raise ConfigError(
                    f"step plugin '{ep.name}' ({ep.value}) must give a StepType, "
                    f"got {type(item).__name__}"
                )
            yield item


STEP_REGISTRY = StepRegistry()
