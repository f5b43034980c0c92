"""A/B tests of a candidate prompt: the stated rule that promotes or retires it.

A step with a ``candidate`` block and ``ab_fraction: F`` sends a stable share
F of runs (by a hash of the run id and the step) to the candidate; every
finished run records its arm and whether the step succeeded. The rule, a
two-sided two-proportion z-test on those success rates:

* until each arm has ``min_samples`` runs: **continue**;
* if the candidate's success rate is higher and p < ``alpha``: **promote**
  (the candidate becomes the step's ``optimized`` block);
* if it is lower and p < ``alpha``: **retire** (the candidate is removed);
* otherwise, once both arms have ``max_samples``: **retire** (no evidence it
  is better, so the current prompt stays); else **continue**.

``decide`` is pure; `elx prompts ab PIPELINE` shows each step's arms and the
decision, and ``--apply`` carries it out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MIN_SAMPLES = 30
MAX_SAMPLES = 1000
ALPHA = 0.05


@dataclass(frozen=True)
class Arm:
    runs: int
    successes: int

    @property
    def rate(self) -> float:
        return self.successes / self.runs if self.runs else 0.0


@dataclass(frozen=True)
class Verdict:
    action: str  # continue | promote | retire
    z: float
    p: float
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "z": round(self.z, 4),
            "p": round(self.p, 6),
            "reason": self.reason,
        }


def z_test(current: Arm, candidate: Arm) -> tuple[float, float]:
    """z and the two-sided p for candidate rate - current rate (pooled standard error)."""
    n1, n2 = current.runs, candidate.runs
    if n1 == 0 or n2 == 0:
        return 0.0, 1.0
    pooled = (current.successes + candidate.successes) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (candidate.rate - current.rate) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


def decide(
    current: Arm,
    candidate: Arm,
    *,
    min_samples: int = MIN_SAMPLES,
    max_samples: int = MAX_SAMPLES,
    alpha: float = ALPHA,
) -> Verdict:
    z, p = z_test(current, candidate)
    rates = (
        f"candidate {candidate.rate:.1%} of {candidate.runs}, "
        f"current {current.rate:.1%} of {current.runs}"
    )
    if min(current.runs, candidate.runs) < min_samples:
        return Verdict("continue", z, p, f"{rates}; each arm needs {min_samples} runs")
    if p < alpha and z > 0:
        return Verdict("promote", z, p, f"{rates}; better with p = {p:.4f} < {alpha}")
    if p < alpha and z < 0:
        return Verdict("retire", z, p, f"{rates}; worse with p = {p:.4f} < {alpha}")
    if min(current.runs, candidate.runs) >= max_samples:
        return Verdict("retire", z, p, f"{rates}; no significant gain after {max_samples} runs")
    return Verdict("continue", z, p, f"{rates}; p = {p:.4f}, not yet significant")


def review(
    pipeline_path: Any, store: Any, versions: Any, *, apply: bool = False
) -> list[dict[str, Any]]:
    """Each step with a candidate: its arms and the verdict; with ``apply``, carry it out.

    Promote: the candidate becomes the step's ``optimized`` block (a new version).
    Retire: the candidate and its traffic share are removed. Both clear the step's
    recorded outcomes, so a new experiment starts from zero.
    """
    from pathlib import Path

    from runtime.optimize.writeback import write_step_edit
    from runtime.pipeline.loader import load_pipeline

    path = Path(pipeline_path)
    loaded = load_pipeline(path)
    counts = store.ab_counts(path.stem)
    out = []
    for step in loaded.workflow.steps:
        candidate = getattr(step, "candidate", None)
        if candidate is None:
            continue
        current = Arm(*counts.get((step.name, "current"), (0, 0)))
        trial = Arm(*counts.get((step.name, "candidate"), (0, 0)))
        verdict = decide(current, trial)
        entry: dict[str, Any] = {
            "step": step.name,
            "fraction": getattr(step, "ab_fraction", 0.0),
            "current": {"runs": current.runs, "successes": current.successes},
            "candidate": {"runs": trial.runs, "successes": trial.successes},
            **verdict.to_json(),
            "applied": False,
        }
        if apply and verdict.action in ("promote", "retire"):
            if verdict.action == "promote":
                block = candidate.model_dump(mode="json", exclude_none=True)
                written = write_step_edit(
                    path, step.name, {"optimized": block}, ("candidate", "ab_fraction")
                )
            else:
                written = write_step_edit(path, step.name, {}, ("candidate", "ab_fraction"))
            versions.record(
                path,
                step.name,
                written.before,
                written.after,
                {"ab": verdict.to_json()},
                kind=f"ab_{verdict.action}",
            )
            store.clear_ab(path.stem, step.name)
            entry["applied"] = True
        out.append(entry)
    return out
