"""supervision.yaml parsing: each problem names file, line, key path, value and allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.errors import ValidationError
from runtime.supervision import ChildSpec, ShutdownMode, load_tree_spec, parse_tree_spec

ACTOR = "actors.placeholder:PlaceholderActor"


def tree_yaml(child: str) -> str:
    return f"root:\n  children:\n    - id: a\n      actor: {ACTOR}\n{child}"


@pytest.mark.parametrize(
    ("snippet", "line", "expected"),
    [
        (
            "      restart: sometimes\n",
            5,
            "root.children[0].restart: Input should be 'permanent', 'transient' or 'temporary';"
            " got 'sometimes'",
        ),
        (
            "      shutdown: soon\n",
            5,
            "root.children[0].shutdown: shutdown must be 'brutal_kill', 'infinity' or a number"
            " of seconds > 0; got 'soon'",
        ),
        ("      shutdown: -1\n", 5, "got -1"),
        (
            "      colour: blue\n",
            5,
            "root.children[0].colour: unknown key; allowed keys: actor, args, backend, crash_on",
        ),
        ("      args: [1, 2]\n", 5, "root.children[0].args: Input should be a valid dictionary"),
        (
            "      crash_on: [builtins.NoSuchError]\n",
            5,
            "root.children[0].crash_on: module 'builtins' has no attribute 'NoSuchError'",
        ),
    ],
)
def test_bad_child_values_are_reported_with_location_value_and_allowed_values(
    snippet: str, line: int, expected: str
) -> None:
    """Each bad value names the file, its line, its key path and what would be accepted."""
    with pytest.raises(ValidationError) as caught:
        parse_tree_spec(tree_yaml(snippet), "sup.yaml")
    problem = caught.value.problems[0]
    assert problem.file == "sup.yaml"
    assert problem.line == line
    assert expected in problem.message


def test_bad_supervisor_flags_are_all_reported_at_once() -> None:
    """Several problems in one file come back together, sorted by line."""
    text = "root:\n  strategy: one_for_some\n  intensity: -1\n  period_s: 0\n  children: []\n"
    with pytest.raises(ValidationError) as caught:
        parse_tree_spec(text, "sup.yaml")
    messages = [str(problem) for problem in caught.value.problems]
    assert messages[0].startswith(
        "sup.yaml:2:13: root.strategy: Input should be 'one_for_one', 'one_for_all' or"
        " 'rest_for_one'"
    )
    assert messages[1].startswith(
        "sup.yaml:3:14: root.intensity: Input should be greater than or equal to 0; got -1"
    )
    assert messages[2].startswith("sup.yaml:4:13: root.period_s")
    assert "3 problems found" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "root:\n  children:\n    - id: a\n      actor: nowhere.module:Thing\n",
            "cannot import module 'nowhere.module'",
        ),
        (
            "root:\n  children:\n    - id: a\n      actor: runtime.errors:Problem\n",
            "is not a pykka.ThreadingActor subclass",
        ),
        (
            f"root:\n  children:\n    - id: a\n      actor: {ACTOR}\n"
            f"    - id: a\n      actor: {ACTOR}\n",
            "duplicate child id 'a'",
        ),
        (
            "root:\n  children:\n    - id: a\n",
            "exactly one of 'actor', 'supervisor', 'dynamic_supervisor'",
        ),
        (
            "root:\n  children:\n    - id: d\n      dynamic_supervisor: {strategy: one_for_all}\n",
            "strategy must be 'one_for_one'",
        ),
        ("root:\n  backoff: {min_s: 2, max_s: 1}\n", "max_s (1.0) must be ≥ min_s (2.0)"),
        (
            "root:\n  children:\n    - id: bad/id\n",
            "root.children[0].id: String should match pattern",
        ),
        ("root: [\n", "not valid YAML"),
        ("", "the file is empty"),
        ("version: 2\nroot: {}\n", "version: Input should be 1"),
        ("{}\n", "root: required key is missing"),
        ("root:\n  intensity: 1\n  intensity: 2\n", "root.intensity: duplicate key"),
    ],
)
def test_invalid_files_are_rejected_with_a_clear_message(text: str, expected: str) -> None:
    """Imports, ids, exclusivity, flags, YAML syntax and structure are all checked."""
    with pytest.raises(ValidationError) as caught:
        parse_tree_spec(text, "sup.yaml")
    assert expected in str(caught.value)


def test_missing_file_is_a_validation_error_naming_it(tmp_path: Path) -> None:
    """A file that cannot be read is reported with its path."""
    with pytest.raises(ValidationError, match="cannot read the file"):
        load_tree_spec(tmp_path / "absent.yaml")


def test_repository_supervision_yaml_parses_with_defaults_filled_in() -> None:
    """The shipped file is valid; workers default to 5 s shutdown, supervisors to infinity."""
    tree = load_tree_spec(Path(__file__).resolve().parents[2] / "supervision.yaml")
    children = {child.id: child for child in tree.root.children}
    assert children["telemetry"].shutdown == 5.0
    assert children["providers"].shutdown is ShutdownMode.INFINITY
    assert children["pipelines"].dynamic_supervisor is not None


def test_child_spec_is_frozen() -> None:
    """Specs cannot be changed after parsing."""
    spec = ChildSpec(id="a", actor=ACTOR)
    with pytest.raises(Exception, match="frozen"):
        spec.id = "b"  # type: ignore[misc]
