"""A local Ray instance (2 CPUs, no dashboard) for the Ray backend's tests, and trees that
place the pipelines' workers on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conformance.ray_cluster import start_local_ray

from runtime.testing.daemon_process import TREE


@pytest.fixture
def local_ray() -> Iterator[Any]:
    yield start_local_ray()


def ray_tree(directory: Path, *, max_jobs: int = 16, **ray: Any) -> Path:
    """supervision.yaml with ``backend: ray`` on the pipelines supervisor."""
    spec = yaml.safe_load(TREE.read_text(encoding="utf-8"))
    for child in spec["root"]["children"]:
        if child["id"] == "pipelines":
            child["backend"] = "ray"
            child["ray"] = {"num_cpus": 0, **ray}
            child["dynamic_supervisor"]["max_children"] = max_jobs
    path = directory / "supervision.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path
