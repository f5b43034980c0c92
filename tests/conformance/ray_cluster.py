"""A local Ray instance for the tests: 2 CPUs, no dashboard, the project and tests importable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def ray_init_options() -> dict[str, Any]:
    """What every test's ``ray.init`` says: our namespace, quiet, tests importable."""
    path = os.pathsep.join([str(TESTS), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {
        "log_to_driver": False,
        "configure_logging": False,
        "namespace": "elexirion",
        "runtime_env": {"env_vars": {"PYTHONPATH": path}},
    }


def start_local_ray(num_cpus: int = 2) -> Any:
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=num_cpus, include_dashboard=False, **ray_init_options())
    return ray
