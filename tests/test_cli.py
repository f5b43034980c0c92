"""`elx` as a user meets it: exit codes, one-line errors, progress and results."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtime.cli import main


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ELX_STATE_DIR", str(tmp_path / ".elexirion"))
    for key in ("ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


GOOD = """
workflow:
  name: good
  inputs: {topic: {type: string, required: true}}
  steps:
    - {name: draft, type: claude, prompt: "Explain {{ inputs.topic }}."}
    - {name: final, type: test_echo, value: "done: {{ steps.draft.text }}"}
"""


def test_validate_prints_ok_and_exits_zero_for_a_good_file(project: Path) -> None:
    """A valid file gets one ok line."""
    path = write(project, "good.yaml", GOOD)
    code, out, _ = invoke("validate", str(path))
    assert code == 0
    assert out.strip() == f"ok: {path} (good, 2 steps)"


def test_validate_lists_every_problem_and_exits_two(project: Path) -> None:
    """Problems go to stderr as file:line:col lines with a count, and no traceback."""
    path = write(
        project,
        "bad.yaml",
        """
        workflow:
          name: bad
          steps:
            - {name: a, type: claud}
            - {name: b, type: test_echo, vaule: 1}
        """,
    )
    code, _, err = invoke("validate", str(path))
    assert code == 2
    assert f"{path}:4:" in err
    assert "did you mean 'claude'?" in err
    assert "2 problems found" in err
    assert "Traceback" not in err


def test_run_prints_the_result_and_a_summary_and_exits_zero(project: Path) -> None:
    """The final step's result goes to stdout; progress, notices and the summary to stderr."""
    path = write(project, "good.yaml", GOOD)
    code, out, err = invoke("run", str(path), "--input", "topic=actors")
    assert code == 0, err
    assert out.startswith("done: [mock] Explain actors.")
    assert "✓ draft (claude)" in err
    assert "notice: anthropic was not available; the mock provider answered" in err
    assert "completed in" in err


def test_run_with_json_prints_one_parseable_document(project: Path) -> None:
    """--json is for scripts: stdout is exactly one JSON object."""
    path = write(project, "good.yaml", GOOD)
    code, out, _ = invoke("run", str(path), "-i", "topic=x", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["status"] == "completed"
    assert report["providers"] == ["mock"]
    assert set(report["steps"]) == {"draft", "final"}


def test_run_with_a_missing_input_exits_two_with_the_input_named(project: Path) -> None:
    """Input problems are configuration errors: exit 2, one line."""
    path = write(project, "good.yaml", GOOD)
    code, _, err = invoke("run", str(path))
    assert code == 2
    assert err.strip() == f"error: {path.resolve()}: missing required input 'topic' (string)"


def test_run_of_malformed_yaml_exits_two_without_a_traceback(project: Path) -> None:
    """A broken file is reported as file:line:col and nothing else."""
    path = write(project, "broken.yaml", "workflow: [\n")
    code, _, err = invoke("run", str(path))
    assert code == 2
    assert err.startswith(f"{path}:2:1: malformed YAML")
    assert "Traceback" not in err


def test_a_bad_input_file_names_the_file_and_position(project: Path) -> None:
    """--input-file with invalid JSON gets file:line:col."""
    path = write(project, "good.yaml", GOOD)
    inputs = write(project, "in.json", '{"topic": }')
    code, _, err = invoke("run", str(path), "--input-file", str(inputs))
    assert code == 2
    assert f"--input-file {inputs}:1:" in err


def test_a_failed_run_exits_one_and_is_resumed_by_its_id(project: Path) -> None:
    """The failure message carries the resume command; resuming skips the finished step."""
    flag = project / "workspace" / "ok"
    path = write(
        project,
        "flaky.yaml",
        """
        workflow:
          name: flaky
          steps:
            - {name: first, type: test_echo, value: 1}
            - name: check
              type: file_ops
              operation: validate
              files: [{path: ok}]
        """,
    )
    code, _, err = invoke("run", str(path))
    assert code == 1
    assert "--resume" in err
    run_id = err.split("--resume ")[1].split()[0]
    flag.parent.mkdir(parents=True, exist_ok=True)
    flag.write_text("now it exists")
    code, _, err = invoke("run", str(path), "--resume", run_id)
    assert code == 0, err
    assert "↺ first (test_echo) restored from checkpoint" in err


def test_schema_is_json_that_accepts_the_shipped_examples(project: Path) -> None:
    """`elx schema` exports a JSON Schema every example pipeline satisfies."""
    import jsonschema

    from runtime.pipeline.yaml_source import parse_yaml

    code, out, _ = invoke("schema")
    assert code == 0
    schema = json.loads(out)
    examples = Path(__file__).resolve().parent.parent / "pipelines" / "examples"
    checked = 0
    for example in sorted(examples.glob("*.yaml")):
        # keys read as YAML 1.2 editors read them (`on:` is a string)
        data = parse_yaml(example.read_text(), str(example)).data
        if isinstance(data, dict) and "workflow" in data:
            jsonschema.validate(data, schema)
            checked += 1
    assert checked >= 1


def test_the_cli_module_does_not_import_heavy_sdks() -> None:
    """`elx --help` stays fast: anthropic, dspy and the pipeline runtime load lazily."""
    code = (
        "import sys, runtime.cli; "
        "heavy = [m for m in ('anthropic', 'dspy', 'google.genai', 'openai', 'pydantic', 'jinja2')"
        " if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
