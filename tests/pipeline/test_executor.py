"""Running pipelines: conditions, retries, error policies, schemas, outputs, budgets, resume."""

from __future__ import annotations

import json
import threading

import pytest
from conftest import Harness

from runtime.errors import InputError
from runtime.providers.mock import MockFailure, MockRule, MockSettings


def test_a_template_reading_a_missing_field_fails_the_step_naming_it(harness: Harness) -> None:
    """An undefined name at run time fails with the name and the closest existing one."""
    harness.write(
        "p.yaml",
        """
        workflow:
          name: t
          steps:
            - {name: data, type: test_echo, value: {score: 3}}
            - {name: use, type: test_echo, value: "{{ steps.data.result.scor }}"}
        """,
    )
    result = harness.run("p.yaml")
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["step"] == "use"
    assert "'scor' is not defined here" in result.error["message"]
    assert "did you mean 'score'?" in result.error["message"]
    assert result.steps["data"]["status"] == "completed"


def test_a_sandbox_escape_in_a_template_is_refused_not_executed(harness: Harness) -> None:
    """`''.__class__.__mro__` raises a template error; nothing reaches Python internals."""
    harness.write(
        "p.yaml",
        """
        workflow:
          name: t
          steps:
            - {name: evil, type: test_echo, value: "{{ ''.__class__.__mro__[1].__subclasses__() }}"}
        """,
    )
    result = harness.run("p.yaml")
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["kind"] == "template"
    assert "refused" in result.error["message"]


def test_a_false_condition_skips_the_step_and_later_steps_see_it(harness: Harness) -> None:
    """Skipped steps are recorded as skipped; the shorthand `x.score` reads step x."""
    harness.write(
        "p.yaml",
        """
        workflow:
          name: t
          steps:
            - {name: judge, type: test_echo, value: {score: 4}}
            - {name: praise, type: test_echo, value: yes, condition: "judge.score > 7"}
            - {name: improve, type: test_echo, value: more, condition: "steps.judge.score <= 7"}
        """,
    )
    result = harness.run("p.yaml")
    assert result.ok
    assert result.steps["praise"]["status"] == "skipped"
    assert result.steps["improve"]["result"] == "more"


def test_retry_backs_off_on_the_injected_clock_and_then_succeeds(harness: Harness) -> None:
    """Two rate limits then success: three calls, two exponential waits, no real sleeping."""
    harness.use_mock(
        MockSettings(
            failures=(MockFailure(match="*", error="rate_limited", times=2),),
            clock=harness.clock,
        )
    )
    harness.write(
        "p.yaml",
        """
        workflow:
          name: t
          steps:
            - name: ask
              type: claude
              prompt: hello
              retry: {max_attempts: 3, base_delay_s: 0.5, backoff: exponential}
        """,
    )
    result = harness.run("p.yaml")
    assert result.ok, result.error
    assert harness.mock.call_count("ask") == 3
    assert harness.clock.sleeps == [0.5, 1.0]
    assert result.steps["ask"]["meta"]["attempts"] == 3


def test_a_failure_that_is_not_retryable_is_not_retried(harness: Harness) -> None:
    """A bad request fails at once even with a retry policy."""
    harness.use_mock(
        MockSettings(failures=(MockFailure(error="bad_request", times=5),), clock=harness.clock)
    )
    harness.write(
        "p.yaml",
        """
        workflow:
          name: t
          steps:
            - {name: ask, type: claude, prompt: hello, retry: {max_attempts: 4}}
        """,
    )
    result = harness.run("p.yaml")
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["kind"] == "bad_request"
    assert harness.mock.call_count("ask") == 1


def test_continue_on_error_records_the_failure_and_runs_on(harness: Harness) -> None:
    """A failed step with continue_on_error keeps its error; the on_error steps see it."""
    harness.write(
        "p.yaml",
        """
        workflow:
          name: t
          steps:
            - name: flaky
              type: test_echo
              fail: true
              message: "disk on fire"
              continue_on_error: true
              on_error:
                - {name: report, type: test_echo, value: "handled {{ error.message }}"}
            - {name: after, type: test_echo, value: "still here"}
        """,
    )
    result = harness.run("p.yaml")
    assert result.ok
    assert result.steps["flaky"]["status"] == "failed"
    assert "disk on fire" in result.steps["flaky"]["error"]["message"]
    assert result.result == "still here"


def test_output_that_breaks_its_schema_is_invalid_output(harness: Harness) -> None:
    """output_schema is enforced and the message says where the value breaks it."""
    harness.write(
        "p.yaml",
        """
        workflow:
          name: t
          steps:
            - name: data
              type: test_echo
              value: {score: "high"}
              output_schema:
                type: object
                properties: {score: {type: integer}}
                required: [score]
        """,
    )
    result = harness.run("p.yaml")
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["kind"] == "invalid_output"
    assert "score: 'high' is not of type 'integer'" in result.error["message"]


def test_output_to_file_writes_json_inside_the_output_directory(harness: Harness) -> None:
    """Non-text results are written as JSON under output_dir, with subdirectories created."""
    harness.write(
        "p.yaml",
        """
        workflow:
          name: t
          steps:
            - {name: data, type: test_echo, value: {a: 1}, output_to_file: "reports/data.json"}
        """,
    )
    result = harness.run("p.yaml")
    assert result.ok
    written = harness.root / "outputs" / "reports" / "data.json"
    assert json.loads(written.read_text()) == {"a": 1}


def test_a_templated_output_path_escaping_the_output_dir_fails_the_step(harness: Harness) -> None:
    """A path computed at run time is confined too."""
    harness.write(
        "p.yaml",
        """
        workflow:
          name: t
          variables: {target: "../../escaped.txt"}
          steps:
            - {name: data, type: test_echo, value: x, output_to_file: "{{ state.target }}"}
        """,
    )
    result = harness.run("p.yaml")
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["kind"] == "workspace"
    assert not (harness.root.parent / "escaped.txt").exists()


def test_a_while_loop_that_never_ends_stops_at_its_limit_with_a_clear_error(
    harness: Harness,
) -> None:
    """Reaching max_iterations fails and says how to fix it."""
    harness.write(
        "p.yaml",
        """
        workflow:
          name: t
          steps:
            - name: forever
              type: while_loop
              condition: "true"
              max_iterations: 5
              steps: [{name: tick, type: test_echo, value: 1}]
        """,
    )
    result = harness.run("p.yaml")
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["kind"] == "loop_limit"
    assert "reached max_iterations (5)" in result.error["message"]
    assert "on_max: stop" in result.error["message"]


def test_a_missing_required_input_is_refused_before_anything_runs(harness: Harness) -> None:
    """The error names the file and the input."""
    path = harness.write(
        "p.yaml",
        """
        workflow:
          name: t
          inputs: {topic: {type: string, required: true}, n: {type: integer, default: 3}}
          steps: [{name: a, type: test_echo, value: "{{ inputs.topic }} x{{ inputs.n }}"}]
        """,
    )
    with pytest.raises(InputError, match=r"p\.yaml: missing required input 'topic' \(string\)"):
        harness.run("p.yaml")
    result = harness.run("p.yaml", {"topic": "actors", "n": "4"})
    assert result.result == "actors x4"
    assert path.exists()


def test_a_budget_stops_the_run_keeps_results_and_makes_no_further_calls(
    harness: Harness,
) -> None:
    """Crossing max_tokens ends the run as budget_exceeded after the crossing step."""
    harness.write(
        "p.yaml",
        """
        workflow:
          name: t
          budget: {max_tokens: 20}
          steps:
            - {name: one, type: claude, prompt: "a prompt long enough to spend some tokens here"}
            - {name: two, type: claude, prompt: "another"}
        """,
    )
    result = harness.run("p.yaml")
    assert result.status == "budget_exceeded"
    assert result.steps["one"]["status"] == "completed"
    assert "two" not in result.steps
    assert harness.mock.call_count("two") == 0


def test_a_resumed_run_restores_completed_steps_without_calling_them_again(
    harness: Harness,
) -> None:
    """The first run fails at step two; the resume reruns only step two."""
    harness.use_mock(
        MockSettings(
            failures=(MockFailure(match="second", error="unavailable", times=1),),
            clock=harness.clock,
        )
    )
    harness.write(
        "p.yaml",
        """
        workflow:
          name: t
          steps:
            - {name: first, type: claude, prompt: "first question"}
            - {name: second, type: claude, prompt: "second question"}
        """,
    )
    failed = harness.run("p.yaml")
    assert failed.status == "failed"
    resumed = harness.run("p.yaml", run_id=failed.run_id, resume=True)
    assert resumed.ok, resumed.error
    assert resumed.restored_steps == ("first",)
    assert harness.mock.call_count("first") == 1
    assert harness.mock.call_count("second") == 2


def test_a_cancelled_run_ends_cancelled_without_provider_calls(harness: Harness) -> None:
    """Cancellation is checked before every step and every call."""
    harness.write("p.yaml", "workflow: {name: t, steps: [{name: a, type: claude, prompt: x}]}\n")
    cancel = threading.Event()
    cancel.set()
    result = harness.run("p.yaml", cancel=cancel)
    assert result.status == "cancelled"
    assert harness.mock.call_count() == 0


def test_a_step_timeout_turns_a_slow_provider_into_a_timeout_failure(harness: Harness) -> None:
    """A mock slower than timeout_seconds fails the step as a timeout (on the fake clock)."""
    harness.use_mock(MockSettings(latency_s=5.0, clock=harness.clock))
    harness.write(
        "p.yaml",
        """
        workflow:
          name: t
          steps: [{name: slow, type: claude, prompt: x, timeout_seconds: 1}]
        """,
    )
    result = harness.run("p.yaml")
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["kind"] == "timeout"
    assert harness.clock.sleeps == [1.0]


def test_a_provider_fallback_chain_moves_on_when_the_first_fails(harness: Harness) -> None:
    """With `provider: [claude, mock]` and the first failing, the next answers."""
    harness.use_mock(
        MockSettings(
            script=(MockRule(match="hello", response="scripted hello"),),
            failures=(MockFailure(error="overloaded", times=1),),
            clock=harness.clock,
        )
    )
    harness.write(
        "p.yaml",
        """
        workflow:
          name: t
          steps: [{name: a, type: claude, prompt: hello, provider: [claude, mock]}]
        """,
    )
    result = harness.run("p.yaml")
    assert result.ok, result.error
    assert result.result == "scripted hello"
    assert harness.mock.call_count("a") == 2


def test_a_json_text_answer_exposes_its_fields_to_conditions_and_templates(
    harness: Harness,
) -> None:
    """`analyze.score > 7` works when the answer is JSON text, as previous_response does."""
    harness.use_mock(
        MockSettings(
            script=(MockRule(match="Analyze", response='{"score": 9, "notes": ["ok"]}'),),
            clock=harness.clock,
        )
    )
    harness.write(
        "p.yaml",
        """
        workflow:
          name: t
          steps:
            - {name: analyze, type: claude, prompt: "Analyze this"}
            - name: ship
              type: test_echo
              condition: "analyze.score > 7"
              value: "notes: {{ steps.analyze.notes }}"
        """,
    )
    result = harness.run("p.yaml")
    assert result.ok, result.error
    assert result.result == 'notes: ["ok"]'


def test_local_variables_stay_inside_their_loop_iteration(harness: Harness) -> None:
    """scope: local writes only the enclosing body; global state is untouched."""
    harness.write(
        "p.yaml",
        """
        workflow:
          name: t
          variables: {label: outer}
          steps:
            - name: each
              type: for_loop
              data_source: [a, b]
              steps:
                - name: mark
                  type: set_variable
                  scope: local
                  variables: {label: "{{ loop.item }}"}
                - {name: show, type: test_echo, value: "{{ state.label }}"}
            - {name: after, type: test_echo, value: "{{ state.label }}"}
        """,
    )
    result = harness.run("p.yaml")
    assert result.ok, result.error
    assert result.steps["each"]["result"]["results"] == ["a", "b"]
    assert result.result == "outer"


def test_after_a_parallel_loop_the_inner_step_holds_the_last_items_result(
    harness: Harness,
) -> None:
    """Whatever order iterations finish in, steps.<inner> is the highest index's result."""
    harness.write(
        "p.yaml",
        """
        workflow:
          name: t
          steps:
            - name: each
              type: for_loop
              parallel: true
              max_parallel: 4
              data_source: [1, 2, 3, 4, 5, 6, 7, 8]
              steps: [{name: square, type: test_echo, value: "{{ loop.item * loop.item }}"}]
            - {name: last, type: test_echo, value: "{{ steps.square.result }}"}
        """,
    )
    result = harness.run("p.yaml")
    assert result.ok, result.error
    assert result.result == 64
