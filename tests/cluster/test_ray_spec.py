"""`backend: ray` in a tree file: checked at load, inherited by the workers below."""

from __future__ import annotations

import pytest

from runtime.errors import ValidationError
from runtime.supervision import ChildSpec, child_spec as child_spec_module
from runtime.supervision.backend import THREAD
from runtime.supervision.child_spec import Backend, RaySpec
from runtime.supervision.spec_file import parse_tree_spec

TREE = """\
version: 1
root:
  children:
    - id: pipelines
      backend: ray
      ray: {num_cpus: 0.5, namespace: jobs}
      dynamic_supervisor: {max_children: 4}
"""


def test_backend_ray_without_ray_fails_at_load_and_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(child_spec_module, "ray_installed", lambda: False)
    with pytest.raises(ValidationError) as caught:
        parse_tree_spec(TREE, "tree.yaml")
    message = str(caught.value)
    assert "tree.yaml:4" in message
    assert "pip install 'elexirion[ray]'" in message


def test_ray_settings_without_backend_ray_are_refused() -> None:
    with pytest.raises(ValueError, match="'ray' settings need 'backend: ray'"):
        ChildSpec(id="w", actor="actors.placeholder:PlaceholderActor", ray={"num_cpus": 1})


def test_workers_inherit_the_placement_of_their_supervisor_unless_they_say_otherwise() -> None:
    tree = parse_tree_spec(TREE, "tree.yaml")
    pipelines = tree.root.children[0]
    placed = THREAD.below(pipelines)
    assert placed.backend is Backend.RAY
    assert placed.ray == RaySpec(num_cpus=0.5, namespace="jobs")
    local = ChildSpec(id="w", actor="actors.placeholder:PlaceholderActor", backend="thread")
    assert placed.below(local).backend is Backend.THREAD
    inherits = ChildSpec(id="w", actor="actors.placeholder:PlaceholderActor")
    assert placed.below(inherits) == placed
