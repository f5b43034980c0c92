"""A/B tests of candidate prompts: the arm split, the stated rule, and promotion in a daemon."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from runtime.optimize.experiment import Arm, decide
from runtime.pipeline.loader import load_pipeline
from runtime.pipeline.prompts import ab_arm
from runtime.protocol import Request
from runtime.testing.daemon_thread import running_daemon, settings_in

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 30.0


def test_the_candidate_gets_a_stable_share_of_runs() -> None:
    arms = [ab_arm(f"job{n}", "answer", 0.25) for n in range(4000)]
    assert 0.22 < arms.count("candidate") / len(arms) < 0.28
    assert ab_arm("job7", "answer", 0.25) == ab_arm("job7", "answer", 0.25)
    assert ab_arm("x", "answer", 0.0) == "current" and ab_arm("x", "answer", 1.0) == "candidate"


@pytest.mark.parametrize(
    ("current", "candidate", "action"),
    [
        (Arm(29, 10), Arm(40, 40), "continue"),  # too few runs on one arm
        (Arm(50, 25), Arm(50, 45), "promote"),  # 50 % vs 90 %
        (Arm(50, 45), Arm(50, 25), "retire"),  # worse
        (Arm(50, 40), Arm(50, 42), "continue"),  # not significant yet
        (Arm(1000, 800), Arm(1000, 805), "retire"),  # never significant: keep the current
    ],
)
def test_the_rule_promotes_retires_or_waits(current: Arm, candidate: Arm, action: str) -> None:
    verdict = decide(current, candidate)
    assert verdict.action == action, verdict.reason


PIPELINE = textwrap.dedent(
    """\
    # an A/B test between two prompt versions
    workflow:
      name: abtest
      inputs:
        n: {type: integer}
      steps:
        - name: answer
          type: claude
          prompt: "Question {{ inputs.n }}"
          optimized: {version: 1, date: "2026-11-01", instructions: "BREAKS-THE-MODEL"}
          candidate: {version: 2, date: "2026-11-28", instructions: "Answer plainly."}
          ab_fraction: 0.5
    """
)


def test_a_better_candidate_is_promoted_from_live_outcomes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "mock.yaml"  # the current instructions make every call fail
    script.write_text(
        "failures:\n  - {match: BREAKS-THE-MODEL, error: bad_request, times: 100000}\n"
    )
    monkeypatch.setenv("ELX_MOCK_SCRIPT", str(script))
    pipeline = tmp_path / "abtest.yaml"
    pipeline.write_text(PIPELINE)
    with running_daemon(settings_in(tmp_path), ROOT / "supervision.yaml") as ctx:
        jobs = [ctx.jobs.submit(str(pipeline), {"n": n}).id for n in range(90)]
        ended = [ctx.jobs.wait(job, WAIT_S)["status"] for job in jobs]
        assert set(ended) == {"completed", "failed"}
        state = ctx.api(Request(1, "ab", {"pipeline": str(pipeline)}), None)["steps"][0]
        assert state["action"] == "promote", state["reason"]
        assert state["candidate"]["runs"] + state["current"]["runs"] == 90
        assert state["current"]["successes"] == 0
        applied = ctx.api(Request(2, "ab", {"pipeline": str(pipeline), "apply": True}), None)
    assert applied["steps"][0]["applied"]
    step = load_pipeline(pipeline).workflow.steps[0]
    assert step.optimized is not None and step.optimized.instructions == "Answer plainly."
    assert step.candidate is None and step.ab_fraction == 0.0
    assert pipeline.read_text().startswith("# an A/B test between two prompt versions")
