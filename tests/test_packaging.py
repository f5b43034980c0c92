"""The installed packages are this project's, and the public API is tidy."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["runtime", "actors"])
def test_generic_top_level_names_resolve_inside_this_project(name: str) -> None:
    """`runtime` and `actors` are generic names; they must be ours, not a stray install."""
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().parent == ROOT / name


def test_runtime_all_is_sorted_and_every_name_exists() -> None:
    """`runtime.__all__` is sorted and every listed name is importable."""
    import runtime

    assert list(runtime.__all__) == sorted(runtime.__all__)
    for name in runtime.__all__:
        assert hasattr(runtime, name), name
