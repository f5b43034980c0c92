"""Loading and validating pipelines: every problem located, all of them at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Harness

from runtime.errors import ValidationError
from runtime.pipeline.loader import load_pipeline
from runtime.pipeline.models import ClaudeStep, ForLoopStep, SwitchStep


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        load_pipeline(path)
    return [str(p) for p in caught.value.problems]


def test_a_valid_pipeline_loads_into_frozen_typed_steps(harness: Harness) -> None:
    """Steps come back as their own models, nested lists included, and cannot be mutated."""
    path = harness.write(
        "ok.yaml",
        """
        workflow:
          name: ok
          steps:
            - name: ask
              type: claude
              prompt: "hello"
            - name: each
              type: for_loop
              data_source: [1, 2]
              steps:
                - {name: echo, type: test_echo, value: "{{ loop.item }}"}
            - name: pick
              type: switch
              on: "1 + 1"
              cases:
                "2": [{name: two, type: test_echo, value: 2}]
        """,
    )
    workflow = load_pipeline(path).workflow
    ask, each, pick = workflow.steps
    assert isinstance(ask, ClaudeStep)
    assert isinstance(each, ForLoopStep)
    assert each.steps[0].name == "echo"
    assert isinstance(pick, SwitchStep)
    assert pick.on == "1 + 1"  # `on:` stays a key, not YAML 1.1's True
    with pytest.raises(ValueError, match="frozen"):
        ask.name = "other"  # type: ignore[misc]


def test_malformed_yaml_names_the_file_line_and_column(harness: Harness) -> None:
    """A YAML syntax error is one problem with the position PyYAML found."""
    path = harness.write("bad.yaml", "workflow:\n  name: x\n  steps: [\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:4:")
    assert "malformed YAML" in problem


def test_a_root_that_is_not_a_mapping_is_refused(harness: Harness) -> None:
    """A list at the root says what was expected."""
    path = harness.write("list.yaml", "- a\n- b\n")
    (problem,) = problems_of(path)
    assert problem == f"{path}:1:1: the root must be a mapping with a 'workflow' key, got a list"


def test_a_missing_workflow_key_suggests_the_near_miss(harness: Harness) -> None:
    """`workfow:` gets a did-you-mean."""
    path = harness.write("typo.yaml", "workfow:\n  name: x\n")
    (problem,) = problems_of(path)
    assert "missing the 'workflow' key" in problem
    assert "did you mean 'workflow'?" in problem
    assert problem.startswith(f"{path}:1:1:")


def test_an_unknown_step_type_is_located_with_a_suggestion(harness: Harness) -> None:
    """The problem points at the `type:` key and names the closest known type."""
    path = harness.write(
        "t.yaml",
        """
        workflow:
          name: t
          steps:
            - name: first
              type: claud
              prompt: hi
        """,
    )
    (problem,) = problems_of(path)
    assert problem == (
        f"{path}:5:7: step 'first': unknown step type 'claud'; did you mean 'claude'?"
    )


def test_unknown_fields_are_located_and_suggested_at_every_depth(harness: Harness) -> None:
    """Unknown keys in a step, its options and a nested loop step are each reported."""
    path = harness.write(
        "fields.yaml",
        """
        workflow:
          name: t
          steps:
            - name: a
              type: claude
              promt: hi
            - name: b
              type: claude
              prompt: hi
              claude_options:
                max_turn: 3
            - name: c
              type: for_loop
              data_source: [1]
              steps:
                - name: d
                  type: test_echo
                  valu: 1
        """,
    )
    problems = problems_of(path)
    assert f"{path}:6:7: step 'a': unknown field 'promt'; did you mean 'prompt'?" in problems
    assert (
        f"{path}:11:9: step 'b': unknown field 'claude_options.max_turn'; did you mean 'max_turns'?"
    ) in problems
    assert f"{path}:18:11: step 'd': unknown field 'valu'; did you mean 'value'?" in problems
    assert any("step 'a': missing required field 'prompt'" in p for p in problems)


def test_duplicate_step_names_point_at_the_second_one(harness: Harness) -> None:
    """A duplicate name, even inside a loop body, names the line of the first use."""
    path = harness.write(
        "dup.yaml",
        """
        workflow:
          name: t
          steps:
            - {name: same, type: test_echo, value: 1}
            - name: loop
              type: for_loop
              data_source: [1]
              steps:
                - {name: same, type: test_echo, value: 2}
        """,
    )
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:9:")
    assert "duplicate step name 'same' (first used on line 4)" in problem


def test_duplicate_yaml_keys_are_not_silently_collapsed(harness: Harness) -> None:
    """PyYAML keeps the last of two equal keys; we report it."""
    path = harness.write(
        "keys.yaml",
        """
        workflow:
          name: t
          name: u
          steps: [{name: a, type: test_echo}]
        """,
    )
    (problem,) = problems_of(path)
    assert problem == (
        f"{path}:3:3: duplicate key 'name' (the earlier value would be silently lost)"
    )


def test_template_references_to_unknown_steps_are_caught_before_running(harness: Harness) -> None:
    """`steps.anlyze` in a prompt names the closest step."""
    path = harness.write(
        "ref.yaml",
        """
        workflow:
          name: t
          steps:
            - {name: analyze, type: test_echo, value: 1}
            - name: report
              type: claude
              prompt: "Summarize {{ steps.anlyze.result }}"
        """,
    )
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:7:")
    assert "reference to unknown step 'anlyze'; did you mean 'analyze'?" in problem


def test_previous_response_and_gemini_function_references_are_checked(harness: Harness) -> None:
    """Both kinds of reference are validated with suggestions."""
    path = harness.write(
        "refs.yaml",
        """
        workflow:
          name: t
          gemini_functions:
            score_code: {description: "score", parameters: {type: object}}
          steps:
            - {name: first, type: test_echo, value: 1}
            - name: second
              type: gemini
              functions: [score_cod]
              prompt:
                - {type: previous_response, step: frist}
        """,
    )
    problems = problems_of(path)
    assert any(
        "unknown gemini function 'score_cod'; did you mean 'score_code'?" in p for p in problems
    )
    assert any(
        "previous_response names unknown step 'frist'; did you mean 'first'?" in p for p in problems
    )


def test_a_nested_pipeline_that_includes_itself_is_refused(harness: Harness) -> None:
    """a.yaml → b.yaml → a.yaml is a cycle, reported at the pipeline_file key."""
    harness.write(
        "a.yaml",
        """
        workflow:
          name: a
          steps:
            - {name: call_b, type: pipeline, pipeline_file: b.yaml}
        """,
    )
    harness.write(
        "b.yaml",
        """
        workflow:
          name: b
          steps:
            - {name: call_a, type: pipeline, pipeline_file: a.yaml}
        """,
    )
    problems = problems_of(harness.root / "a.yaml")
    assert any("nested pipeline includes itself (a.yaml → b.yaml → a.yaml)" in p for p in problems)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("output_to_file", "../escape.txt", "output_to_file '../escape.txt' must stay inside"),
        ("output_to_file", "/etc/passwd", "output_to_file '/etc/passwd' must stay inside"),
    ],
)
def test_paths_that_escape_their_directory_are_refused_at_load(
    harness: Harness, field: str, value: str, expected: str
) -> None:
    """Escaping output paths are caught statically, at the offending key."""
    path = harness.write(
        "esc.yaml",
        f"""
        workflow:
          name: t
          steps:
            - name: a
              type: test_echo
              value: 1
              {field}: "{value}"
        """,
    )
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:7:")
    assert expected in problem


def test_a_prompt_file_outside_the_allowed_directories_is_refused(harness: Harness) -> None:
    """A prompt `file` part may not climb out of the pipeline's directory."""
    path = harness.write(
        "pf.yaml",
        """
        workflow:
          name: t
          steps:
            - name: a
              type: claude
              prompt:
                - {type: file, path: ../../secrets.txt}
        """,
    )
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:7:")
    assert "prompt file '../../secrets.txt' must stay inside" in problem


def test_every_problem_is_reported_at_once_sorted_by_line(harness: Harness) -> None:
    """Three independent mistakes give three problems in file order."""
    path = harness.write(
        "many.yaml",
        """
        workflow:
          name: t
          steps:
            - {name: a, type: nope}
            - {name: b, type: test_echo, extra: 1}
            - {name: c, type: while_loop, condition: "true", steps: []}
        """,
    )
    problems = problems_of(path)
    assert len(problems) == 3
    lines = [int(p.split(":")[1]) for p in problems]
    assert lines == sorted(lines)


def test_loading_the_same_unchanged_file_is_served_from_the_cache(harness: Harness) -> None:
    """The loader caches by content hash and reloads after an edit."""
    path = harness.write("c.yaml", "workflow: {name: c, steps: [{name: a, type: test_echo}]}\n")
    first = load_pipeline(path)
    assert load_pipeline(path) is first
    path.write_text("workflow: {name: d, steps: [{name: a, type: test_echo}]}\n")
    assert load_pipeline(path).workflow.name == "d"


def test_a_state_variable_that_is_never_set_is_reported(harness: Harness) -> None:
    """`{{ state.count + 1 }}` with no `count` anywhere is caught before running."""
    path = harness.write(
        "state.yaml",
        """
        workflow:
          name: t
          variables: {counter: 0}
          steps:
            - {name: a, type: test_echo, value: "{{ state.count + 1 }}"}
        """,
    )
    (problem,) = problems_of(path)
    assert "state variable 'count' is never set" in problem
    assert "did you mean 'counter'?" in problem


def test_loop_break_conditions_may_use_the_iterator_name(harness: Harness) -> None:
    """break_condition runs inside an iteration, so the iterator is in scope."""
    path = harness.write(
        "brk.yaml",
        """
        workflow:
          name: t
          steps:
            - name: each
              type: for_loop
              iterator: service
              data_source: [{owner: a}, {owner: payments}]
              break_condition: "service.owner == 'payments'"
              steps: [{name: look, type: test_echo, value: "{{ loop.service.owner }}"}]
        """,
    )
    assert load_pipeline(path).workflow.steps[0].name == "each"
