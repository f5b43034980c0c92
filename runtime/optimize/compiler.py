"""Compile one step's program with a DSPy optimizer, and judge whether the result is better.

``compile_step(program, trainset, devset, metric, optimizer=..., settings=..., lm=...)``:

1. scores the program as it is (no demos) on ``devset``: ``before``;
2. compiles it on ``trainset`` with the optimizer —
   ``bootstrap``      ``dspy.BootstrapFewShot``: demos the program itself got right
   ``random_search``  ``dspy.BootstrapFewShotWithRandomSearch``: several demo sets, the best kept
   ``mipro``          ``dspy.MIPROv2``: instructions and demos (needs ``optuna``)
3. scores the compiled program on ``devset``: ``after``.

Scores are the metric's mean over the dev examples, 0..1; an example passes
(and may become a demo) at 0.5. Every call goes to ``lm`` (``gateway_lm``)
inside ``using_lm(lm)`` (a ``dspy.context``) in the calling thread — DSPy's
global settings are never configured. A failed call while scoring fails the run; a
failed example while bootstrapping is DSPy's to count (``max_errors``), but
an error that no retry cures (a budget, a cancel, a key) fails the run.

The ``CompileResult`` is frozen and plain: scores, the compiled instructions
(unchanged by the bootstrap optimizers), the chosen demos as
``{"inputs": {...}, "answer": ...}`` (the shape of a step's ``optimized.demos``),
the optimizer, its settings with defaults filled in, and the hash of the
dataset. Whether to keep it is ``promote(result, threshold)``, a pure rule.

``split(examples, dev_fraction, seed)`` is the deterministic train/dev split;
``dataset_hash`` is ``sha256:`` of the canonical JSON of both parts.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError as PydanticValidationError

from runtime.errors import ConfigError
from runtime.optimize.language_model import gateway_error, load_dspy, using_lm
from runtime.optimize.program import Example, StepProgram
from runtime.optimize.scoring import Metric

__all__ = [
    "OPTIMIZERS",
    "PASS_SCORE",
    "BootstrapSettings",
    "CompileResult",
    "MiproSettings",
    "OptimizerName",
    "RandomSearchSettings",
    "compile_step",
    "dataset_hash",
    "optimizer_settings",
    "promote",
    "split",
]

OptimizerName = Literal["bootstrap", "random_search", "mipro"]
OPTIMIZERS: tuple[str, ...] = get_args(OptimizerName)
PASS_SCORE = 0.5
_EPSILON = 1e-9  # scores are means of floats: 0.7 - 0.4 must count as 0.3


# -- settings: declared once, with their defaults ---------------------------------------


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BootstrapSettings(_Settings):
    """``dspy.BootstrapFewShot``: up to ``max_bootstrapped_demos`` demos the program got
    right (taught by ``max_labeled_demos`` labelled ones), topped up with labelled ones."""

    max_bootstrapped_demos: int = Field(default=4, ge=0)
    max_labeled_demos: int = Field(default=16, ge=0)
    max_rounds: int = Field(default=1, ge=1)
    max_errors: int | None = Field(default=None, ge=1)


class RandomSearchSettings(BootstrapSettings):
    """``dspy.BootstrapFewShotWithRandomSearch``: candidate demo sets scored on the trainset."""

    num_candidate_programs: int = Field(default=8, ge=1)
    num_threads: int = Field(default=1, ge=1)


class MiproSettings(_Settings):
    """``dspy.MIPROv2``: proposed instructions and demo sets, searched with optuna."""

    auto: Literal["light", "medium", "heavy"] | None = "light"
    num_candidates: int | None = Field(default=None, ge=1)
    num_trials: int | None = Field(default=None, ge=1)
    max_bootstrapped_demos: int = Field(default=4, ge=0)
    max_labeled_demos: int = Field(default=4, ge=0)
    seed: int = 9
    num_threads: int = Field(default=1, ge=1)
    minibatch: bool = True


_SETTINGS: Mapping[str, type[_Settings]] = MappingProxyType(
    {
        "bootstrap": BootstrapSettings,
        "random_search": RandomSearchSettings,
        "mipro": MiproSettings,
    }
)


def optimizer_settings(optimizer: str, settings: Mapping[str, Any] | None = None) -> _Settings:
    """``settings`` for ``optimizer``, checked, defaults filled in; a bad one is a ConfigError."""
    model = _SETTINGS.get(optimizer)
    if model is None:
        raise ConfigError(f"unknown optimizer '{optimizer}'; optimizers: {', '.join(OPTIMIZERS)}")
    try:
        return model.model_validate(dict(settings or {}))
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        allowed = ", ".join(model.model_fields)
        raise ConfigError(
            f"optimizer '{optimizer}' settings: {problems} (settings: {allowed})"
        ) from None


# -- the result and the rules over it -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompileResult:
    """What one optimizer run found, and how it scored against the program as it was."""

    step: str
    before: float
    after: float
    instructions: str
    demos: tuple[Mapping[str, Any], ...]
    optimizer: str
    settings: Mapping[str, Any]
    dataset_hash: str
    improved: bool = field(init=False)

    def __post_init__(self) -> None:
        for name in ("before", "after"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"CompileResult.{name} must be a score in 0..1, got {value}")
        object.__setattr__(self, "demos", tuple(_frozen(demo) for demo in self.demos))
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))
        object.__setattr__(self, "improved", self.after > self.before)

    def demos_json(self) -> list[dict[str, Any]]:
        """The demos as plain data: ``[{"inputs": {...}, "answer": ...}, ...]``."""
        return [{"inputs": dict(d["inputs"]), "answer": d["answer"]} for d in self.demos]


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(
        {k: _frozen(v) if isinstance(v, Mapping) else v for k, v in mapping.items()}
    )


def promote(result: CompileResult, threshold: float) -> bool:
    """Keep the compiled prompt only when it gained at least ``threshold`` on the dev set."""
    return result.after - result.before >= threshold - _EPSILON


def split(
    examples: Sequence[Example], dev_fraction: float = 0.3, seed: int = 0
) -> tuple[tuple[Example, ...], tuple[Example, ...]]:
    """(train, dev): ``dev_fraction`` of the examples (at least one each side) picked by
    ``seed``; both parts keep the examples' order. Same input, same seed, same split."""
    if not 0.0 < dev_fraction < 1.0:
        raise ConfigError(f"dev_fraction must be between 0 and 1 (exclusive), got {dev_fraction}")
    count = len(examples)
    if count < 2:
        raise ConfigError(
            f"splitting needs at least 2 examples (one to train on, one to score), got {count}"
        )
    size = min(count - 1, max(1, round(count * dev_fraction)))
    chosen = set(random.Random(seed).sample(range(count), size))
    train = tuple(example for index, example in enumerate(examples) if index not in chosen)
    dev = tuple(example for index, example in enumerate(examples) if index in chosen)
    return train, dev


def dataset_hash(trainset: Sequence[Example], devset: Sequence[Example]) -> str:
    """``sha256:<hex>`` of the canonical JSON of both parts (order and split included)."""
    data = {
        "train": [example.to_json() for example in trainset],
        "dev": [example.to_json() for example in devset],
    }
    canonical = json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# -- compiling ------------------------------------------------------------------------------


def compile_step(
    program: StepProgram,
    trainset: Sequence[Example],
    devset: Sequence[Example],
    metric: Metric,
    *,
    optimizer: OptimizerName = "bootstrap",
    settings: Mapping[str, Any] | None = None,
    lm: Any,
    current_demos: Sequence[Mapping[str, Any]] = (),
) -> CompileResult:
    """Score ``program`` on ``devset``, compile it on ``trainset``, score it again.

    ``current_demos`` are the demonstrations the step already has (its promoted
    ``optimized`` block), so ``before`` is the score of the prompt in use now.
    """
    chosen = optimizer_settings(optimizer, settings)
    if not trainset:
        raise ConfigError(f"step '{program.step}': no training examples; add some, or split more")
    if not devset:
        raise ConfigError(f"step '{program.step}': no dev examples to score on; split some off")
    if optimizer == "mipro":
        _require_mipro()
    train = [program.dspy_example(ex, f"training example {i + 1}") for i, ex in enumerate(trainset)]
    for index, example in enumerate(devset):
        program.inputs_of(example, f"dev example {index + 1}")
    dspy = load_dspy()
    try:
        with using_lm(lm):
            current = program.module()
            if current_demos:
                current.demos = [
                    program.dspy_example(Example(dict(d["inputs"]), d["answer"]), "current demo")
                    for d in current_demos
                ]
            before = _score(program, current, devset, metric)
            student = program.module()
            compiled = _compile(dspy, optimizer, chosen, student, train, _dspy_metric(metric))
            _check_engine(lm)  # DSPy counts failed examples and goes on; a spent budget must not
            after = _score(program, compiled, devset, metric)
    except Exception as exc:
        ours = gateway_error(exc)
        if ours is not None and ours is not exc:
            raise ours from None
        raise
    return CompileResult(
        step=program.step,
        before=before,
        after=after,
        instructions=str(compiled.signature.instructions),
        demos=tuple(_demos(program, compiled)),
        optimizer=optimizer,
        settings=chosen.model_dump(),
        dataset_hash=dataset_hash(trainset, devset),
    )


def _require_mipro() -> None:
    dspy = load_dspy()
    if getattr(dspy, "MIPROv2", None) is None or importlib.util.find_spec("optuna") is None:
        raise ConfigError(
            "the 'mipro' optimizer needs dspy.MIPROv2 and its optional dependency optuna; "
            "install it with `pip install 'dspy[optuna]'` (or `pip install optuna`), "
            "or use optimizer 'bootstrap' or 'random_search'"
        )


def _compile(
    dspy: Any,
    optimizer: str,
    settings: _Settings,
    student: Any,
    train: list[Any],
    metric: Any,
) -> Any:
    values = settings.model_dump()
    try:
        if optimizer == "bootstrap":
            teleprompter = dspy.BootstrapFewShot(metric=metric, **values)
            return teleprompter.compile(student, trainset=train)
        if optimizer == "random_search":
            teleprompter = dspy.BootstrapFewShotWithRandomSearch(metric=metric, **values)
            return teleprompter.compile(student, trainset=train)
        trials = values.pop("num_trials")
        minibatch = values.pop("minibatch")
        teleprompter = dspy.MIPROv2(metric=metric, verbose=False, track_stats=False, **values)
        return teleprompter.compile(
            student,
            trainset=train,
            num_trials=trials,
            minibatch=minibatch and len(train) > 1,
            minibatch_size=max(1, min(35, len(train))),
        )
    except ValueError as exc:
        if gateway_error(exc) is not None:
            raise
        raise ConfigError(f"optimizer '{optimizer}' refused its settings: {exc}") from None


def _dspy_metric(metric: Metric) -> Any:
    """DSPy's metric: a score while evaluating, pass/fail (at 0.5) while bootstrapping."""

    def score(example: Any, prediction: Any, trace: Any = None) -> float | bool:
        value = metric.score(getattr(prediction, "answer", None), example.answer)
        return value >= PASS_SCORE if trace is not None else value

    return score


def _score(program: StepProgram, module: Any, devset: Sequence[Example], metric: Metric) -> float:
    """Mean of the metric over ``devset``, one call per example, in order."""
    total = 0.0
    for example in devset:
        prediction = module(**program.inputs_of(example))
        value = float(metric.score(getattr(prediction, program.output, None), example.answer))
        if math.isnan(value):
            raise ConfigError(f"metric '{metric.name}' scored an answer as NaN")
        total += min(1.0, max(0.0, value))
    return total / len(devset)


def _check_engine(lm: Any) -> None:
    failure = getattr(getattr(lm, "engine", None), "failure", None)
    if failure is not None:
        raise failure


def _demos(program: StepProgram, compiled: Any) -> list[dict[str, Any]]:
    demos: list[dict[str, Any]] = []
    for _, predictor in compiled.named_predictors():
        for demo in predictor.demos:
            values = dict(demo.items()) if hasattr(demo, "items") else dict(demo)
            inputs = {name: values[name] for name in program.input_names if name in values}
            demos.append({"inputs": inputs, "answer": values.get(program.output)})
    return demos
