"""The optimizer end to end: the DSPy bridge to the gateway, a step as a program, compiling,
and the pure rules (promote, split, dataset hash) that judge a run."""

from __future__ import annotations

import dataclasses
import importlib.util
import textwrap
from pathlib import Path
from typing import Any

import pytest

from runtime.config import Settings
from runtime.errors import BudgetExceeded, ConfigError
from runtime.optimize.compiler import (
    CompileResult,
    compile_step,
    dataset_hash,
    optimizer_settings,
    promote,
    split,
)
from runtime.optimize.language_model import gateway_lm, load_dspy, using_lm
from runtime.optimize.program import Example, StepProgram
from runtime.optimize.scoring import Exact
from runtime.pipeline.loader import load_pipeline
from runtime.providers.base import LLMRequest, LLMResponse
from runtime.providers.gateway import LocalGateway
from runtime.providers.mock import MockProvider, MockRule, MockSettings
from runtime.telemetry import ProviderCall
from runtime.testing.demo_mock import UNKNOWN_ANSWER, DemoMockProvider, code_for

PIPELINE = textwrap.dedent(
    """\
    workflow:
      name: codes
      global_vars: {style: terse}
      inputs:
        key: {type: string, required: true, description: "a key such as metal:silver"}
        unused: {type: string}
      steps:
        - name: code
          type: llm
          provider: mock
          prompt:
            - "Be {{ global_vars.style }}."
            - "Give the code for {{ inputs.key }}."
        - name: echo
          type: test_echo
          value: "{{ steps.code.result }}"
    """
)

# Each family's secret rule; the provider must learn it from a same-family demo.
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "metal": ("upper", ("silver", "copper", "nickel", "cobalt", "bronze")),
    "river": ("reverse", ("amazon", "danube", "thames", "mekong", "volga")),
    "bird": ("prefix", ("falcon", "parrot", "condor", "pigeon", "eagle")),
    "stone": ("double", ("marble", "granite", "basalt", "quartz", "garnet")),
}
# Four demos taught by four labelled ones: BootstrapFewShot keeps only demos it verified.
FEW_DEMOS = {"max_labeled_demos": 4, "max_bootstrapped_demos": 4}


def family_examples() -> list[Example]:
    """20 examples, the families interleaved: metal, river, bird, stone, metal, ..."""
    examples = []
    for index in range(5):
        for family, (rule, words) in FAMILIES.items():
            key = f"{family}:{words[index]}"
            examples.append(Example({"key": key}, code_for(key, rule)))
    return examples


@pytest.fixture
def program(tmp_path: Path) -> StepProgram:
    path = tmp_path / "codes.yaml"
    path.write_text(PIPELINE)
    return StepProgram.from_pipeline(load_pipeline(path), "code")


def demo_gateway() -> tuple[LocalGateway, DemoMockProvider]:
    provider = DemoMockProvider()
    return LocalGateway({"mock": provider}, Settings.from_env({})), provider


class RecordingGateway:
    """Delegates to a real gateway and keeps every request it saw."""

    def __init__(self, inner: LocalGateway) -> None:
        self.inner = inner
        self.requests: list[LLMRequest] = []

    def complete(self, request: LLMRequest) -> LLMResponse:
        self.requests.append(request)
        return self.inner.complete(request)


class BudgetGateway:
    """Answers ``allowed`` calls through ``inner``, then refuses every call over budget."""

    def __init__(self, inner: LocalGateway, allowed: int) -> None:
        self.inner = inner
        self.allowed = allowed
        self.calls = 0

    def complete(self, request: LLMRequest) -> LLMResponse:
        self.calls += 1
        if self.calls > self.allowed:
            raise BudgetExceeded(
                "the optimizer's token budget is spent", limit="tokens", used=10, allowed=10
            )
        return self.inner.complete(request)


# -- the language model bridge -------------------------------------------------------------


def test_every_dspy_call_goes_through_the_gateway_as_one_request_for_the_optimizer_step(
    program: StepProgram,
) -> None:
    """System text, demo turns as history and the live input as prompt reach the provider."""
    mock = MockProvider(
        MockSettings(
            script=[MockRule(response="[[ ## answer ## ]]\nSILVER\n\n[[ ## completed ## ]]")]
        )
    )
    gateway = RecordingGateway(LocalGateway({"mock": mock}, Settings.from_env({})))
    events: list[Any] = []
    lm = gateway_lm(gateway, "mock", telemetry=events.append)
    dspy = load_dspy()
    predict = program.module()
    predict.demos = [dspy.Example(key="metal:copper", answer="COPPER").with_inputs("key")]

    with using_lm(lm):
        prediction = predict(key="metal:silver")

    assert prediction.answer == "SILVER"
    assert mock.call_count() == 1 and mock.call_count("optimizer") == 1
    (request,) = gateway.requests
    assert request.step == "optimizer" and request.provider == "mock"
    assert request.system is not None and "Give the code for `key`." in request.system
    assert [m.role for m in request.history] == ["user", "assistant"]
    assert "metal:copper" in request.history[0].content
    assert "COPPER" in request.history[1].content
    assert "metal:silver" in request.prompt and "metal:copper" not in request.prompt
    assert lm.history[-1]["usage"]["prompt_tokens"] > 0
    assert [(e.provider, e.outcome) for e in events if isinstance(e, ProviderCall)] == [
        ("mock", "ok")
    ]


def test_the_bridge_makes_real_calls_each_time_because_dspy_caching_is_off(
    program: StepProgram,
) -> None:
    """The same question twice is two gateway calls: optimizer runs never read a cache."""
    gateway, provider = demo_gateway()
    lm = gateway_lm(gateway, "mock", step="tuning")
    with using_lm(lm):
        for _ in range(2):
            assert program.module()(key="metal:silver").answer == UNKNOWN_ANSWER
    assert lm.cache is False
    assert provider.call_count("tuning") == 2


def test_json_answers_travel_as_json_requests_with_the_signature_schema(
    program: StepProgram,
) -> None:
    """Under DSPy's JSONAdapter the bridge asks the gateway for JSON against the output schema."""
    gateway = RecordingGateway(demo_gateway()[0])
    dspy = load_dspy()
    predict = program.module()
    predict.demos = [dspy.Example(key="river:danube", answer="ebunad").with_inputs("key")]
    with using_lm(gateway_lm(gateway)), dspy.context(adapter=dspy.JSONAdapter()):
        prediction = predict(key="river:thames")
    assert prediction.answer == "semaht"
    (request,) = gateway.requests
    assert request.wants_json and request.schema is not None
    assert list(request.schema["properties"]) == ["answer"]


def test_a_budget_exceeded_behind_dspy_fails_the_compile_with_our_own_error(
    program: StepProgram,
) -> None:
    """DSPy wraps and counts failures; the compiler re-raises the gateway's BudgetExceeded."""
    inner, provider = demo_gateway()
    gateway = BudgetGateway(inner, allowed=8)
    train, dev = split(family_examples(), 0.3, seed=7)
    events: list[Any] = []
    lm = gateway_lm(gateway, telemetry=events.append)
    with pytest.raises(BudgetExceeded, match="budget is spent"):
        compile_step(program, train, dev, Exact(), settings=FEW_DEMOS, lm=lm)
    assert provider.call_count() == 8
    assert gateway.calls == 9  # after the first refusal the engine stops asking
    assert [e.error_kind for e in events if e.outcome == "error"] == ["budget_exceeded"]


# -- the demonstration-learning provider ---------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "answer"),
    [
        ("Give the code for metal:iron.", UNKNOWN_ANSWER),
        (
            "Examples:\n\nInput: key: river:volga\nAnswer: aglov\n\nCode for metal:iron?",
            UNKNOWN_ANSWER,
        ),
        ("Examples:\n\nInput: key: metal:tin\nAnswer: TIN\n\nCode for metal:iron?", "IRON"),
        ("Input: key: metal:tin\nAnswer: TI\n\nCode for metal:iron?", UNKNOWN_ANSWER),
        ("Input: key: bird:heron\nAnswer: HER\n\nCode for bird:robin?", "ROB"),
    ],
)
def test_the_demo_mock_answers_only_by_a_rule_a_same_family_demo_teaches(
    prompt: str, answer: str
) -> None:
    """No demo, another family's demo, or a demo no rule explains: the answer is UNKNOWN."""
    provider = DemoMockProvider()
    response = provider.complete(LLMRequest(prompt=prompt, step="check"))
    assert response.text == answer
    assert provider.call_count("check") == 1


# -- the program ---------------------------------------------------------------------------


def test_a_step_becomes_a_program_over_the_inputs_its_prompt_reads(program: StepProgram) -> None:
    """Referenced inputs become fields; the static prompt, rendered, is the instructions."""
    assert program.input_names == ("key",)
    assert program.inputs[0].description == "a key such as metal:silver"
    assert program.instructions == "Be terse.\nGive the code for `key`."
    assert program.providers == ("mock",) and program.output == "answer"
    signature = program.signature()
    assert list(signature.input_fields) == ["key"]
    assert list(signature.output_fields) == ["answer"]
    assert signature.instructions == program.instructions


def test_a_step_that_is_not_an_llm_step_is_refused_with_the_steps_that_can_be(
    tmp_path: Path,
) -> None:
    """Asking for a non-LLM step names the steps that can be optimized."""
    path = tmp_path / "codes.yaml"
    path.write_text(PIPELINE)
    with pytest.raises(ConfigError, match="steps that can be optimized: code"):
        StepProgram.from_pipeline(load_pipeline(path), "echo")


def test_an_example_without_an_input_the_step_reads_is_refused_by_position(
    program: StepProgram,
) -> None:
    """A training example that lacks a field names itself and the field."""
    train = [Example({"key": "metal:silver"}, "SILVER"), Example({"other": "x"}, "X")]
    with pytest.raises(ConfigError, match="training example 2 lacks input key"):
        compile_step(program, train, train[:1], Exact(), lm=None)


# -- compiling -----------------------------------------------------------------------------


def test_bootstrapping_demos_raises_the_dev_score_by_the_families_they_cover(
    program: StepProgram,
) -> None:
    """No demos score 0; the chosen demos are right, and every dev key of their families is."""
    gateway, provider = demo_gateway()
    train, dev = split(family_examples(), 0.3, seed=7)

    result = compile_step(program, train, dev, Exact(), settings=FEW_DEMOS, lm=gateway_lm(gateway))

    print(f"dev score before {result.before:.3f}, after {result.after:.3f}")
    assert result.before == 0.0
    assert result.after >= result.before + 0.5
    assert result.improved and result.optimizer == "bootstrap"
    assert len(result.demos) == 4
    truth = {ex.inputs["key"]: ex.answer for ex in train}
    assert all(truth[demo["inputs"]["key"]] == demo["answer"] for demo in result.demos)
    covered = {demo["inputs"]["key"].partition(":")[0] for demo in result.demos}
    in_covered = [ex for ex in dev if ex.inputs["key"].partition(":")[0] in covered]
    assert result.after == pytest.approx(len(in_covered) / len(dev))
    assert result.instructions == program.instructions
    assert result.settings == {**optimizer_settings("bootstrap").model_dump(), **FEW_DEMOS}
    assert result.dataset_hash == dataset_hash(train, dev)
    assert provider.call_count("optimizer") > 2 * len(dev)


def test_compiling_twice_on_the_same_data_gives_the_same_result(program: StepProgram) -> None:
    """Same examples, settings and provider: same scores, demos and hash."""
    train, dev = split(family_examples(), 0.3, seed=7)
    results = [
        compile_step(program, train, dev, Exact(), settings=FEW_DEMOS, lm=gateway_lm(gateway))
        for gateway, _ in (demo_gateway(), demo_gateway())
    ]
    assert results[0] == results[1]


def test_default_bootstrap_settings_fill_the_prompt_with_demos_and_cover_every_family(
    program: StepProgram,
) -> None:
    """With DSPy's defaults (16 labelled demos) every family is shown, so dev scores 1."""
    gateway, _ = demo_gateway()
    train, dev = split(family_examples(), 0.3, seed=7)
    result = compile_step(program, train, dev, Exact(), lm=gateway_lm(gateway))
    print(f"dev score before {result.before:.3f}, after {result.after:.3f}")
    assert (result.before, result.after) == (0.0, 1.0)
    assert len(result.demos) == len(train)


def test_random_search_keeps_a_demo_set_that_beats_no_demos(program: StepProgram) -> None:
    """BootstrapFewShotWithRandomSearch runs through the same bridge and improves the step."""
    gateway, _ = demo_gateway()
    train, dev = split(family_examples(), 0.3, seed=7)
    settings = {"max_labeled_demos": 2, "max_bootstrapped_demos": 2, "num_candidate_programs": 3}
    result = compile_step(
        program,
        train,
        dev,
        Exact(),
        optimizer="random_search",
        settings=settings,
        lm=gateway_lm(gateway),
    )
    print(f"dev score before {result.before:.3f}, after {result.after:.3f}")
    assert result.optimizer == "random_search" and result.improved
    assert result.settings["num_candidate_programs"] == 3


@pytest.mark.skipif(
    importlib.util.find_spec("optuna") is not None, reason="optuna is installed: MIPROv2 can run"
)
def test_mipro_without_optuna_is_a_config_error_that_says_what_to_install(
    program: StepProgram,
) -> None:
    """MIPROv2 needs optuna; without it the run stops before any call, naming the package."""
    gateway, provider = demo_gateway()
    train, dev = split(family_examples(), 0.3, seed=7)
    with pytest.raises(ConfigError, match=r"pip install 'dspy\[optuna\]'"):
        compile_step(program, train, dev, Exact(), optimizer="mipro", lm=gateway_lm(gateway))
    assert provider.call_count() == 0


@pytest.mark.parametrize(
    ("optimizer", "settings", "message"),
    [
        ("bootstrap", {"max_demos": 3}, r"max_demos: Extra inputs .*settings: max_bootstrapped"),
        ("bootstrap", {"max_rounds": 0}, "max_rounds: Input should be greater than or equal to 1"),
        ("genetic", {}, "unknown optimizer 'genetic'; optimizers: bootstrap, random_search, mipro"),
    ],
)
def test_bad_optimizer_settings_are_config_errors_naming_the_setting(
    optimizer: str, settings: dict[str, Any], message: str
) -> None:
    """A misspelt or out-of-range setting is refused before anything runs."""
    with pytest.raises(ConfigError, match=message):
        optimizer_settings(optimizer, settings)


# -- the pure rules ------------------------------------------------------------------------


def result_with(before: float, after: float) -> CompileResult:
    return CompileResult(
        step="code",
        before=before,
        after=after,
        instructions="Give the code.",
        demos=(),
        optimizer="bootstrap",
        settings={},
        dataset_hash="sha256:0",
    )


@pytest.mark.parametrize(
    ("before", "after", "threshold", "promoted"),
    [
        (0.4, 0.7, 0.3, True),  # 0.7 - 0.4 is 0.29999999999999993 in floats: still a gain of 0.3
        (0.5, 0.79, 0.3, False),
        (0.2, 0.9, 0.05, True),
        (0.6, 0.6, 0.0, True),
        (0.6, 0.5, 0.0, False),
        (0.9, 0.2, -1.0, True),
    ],
)
def test_promote_keeps_a_result_only_when_it_gained_at_least_the_threshold(
    before: float, after: float, threshold: float, promoted: bool
) -> None:
    """promote() is after - before >= threshold, and nothing else."""
    assert promote(result_with(before, after), threshold) is promoted


def test_a_result_knows_whether_it_improved_and_refuses_scores_outside_0_to_1() -> None:
    """improved is after > before; a score of 1.5 is a bug, not a result."""
    assert result_with(0.2, 0.4).improved and not result_with(0.4, 0.4).improved
    with pytest.raises(ValueError, match=r"after must be a score in 0\.\.1"):
        result_with(0.2, 1.5)


def test_split_is_deterministic_and_keeps_every_example_once() -> None:
    """Same seed, same split; another seed, another split; order kept inside each part."""
    examples = family_examples()
    train, dev = split(examples, 0.3, seed=7)
    assert (train, dev) == split(examples, 0.3, seed=7)
    assert (len(train), len(dev)) == (14, 6)
    assert sorted(map(examples.index, train + dev)) == list(range(20))
    assert list(map(examples.index, dev)) == sorted(map(examples.index, dev))
    assert split(examples, 0.3, seed=8)[1] != dev


@pytest.mark.parametrize(
    ("count", "fraction", "sizes"),
    [(2, 0.3, (1, 1)), (3, 0.01, (2, 1)), (3, 0.99, (1, 2)), (10, 0.25, (8, 2))],
)
def test_split_leaves_at_least_one_example_on_each_side(
    count: int, fraction: float, sizes: tuple[int, int]
) -> None:
    """Rounding never empties the train or the dev part."""
    train, dev = split(family_examples()[:count], fraction, seed=1)
    assert (len(train), len(dev)) == sizes


@pytest.mark.parametrize(("count", "fraction"), [(1, 0.3), (10, 0.0), (10, 1.0)])
def test_split_refuses_what_cannot_be_split(count: int, fraction: float) -> None:
    """One example, or a fraction of 0 or 1, is a ConfigError."""
    with pytest.raises(ConfigError):
        split(family_examples()[:count], fraction, seed=1)


def test_the_dataset_hash_is_stable_and_changes_with_any_example() -> None:
    """Equal data hashes equal (key order aside); an edited answer or a moved example does not."""
    train, dev = split(family_examples(), 0.3, seed=7)
    digest = dataset_hash(train, dev)
    assert digest.startswith("sha256:") and len(digest) == len("sha256:") + 64
    assert dataset_hash(list(train), list(dev)) == digest
    reordered = [Example(dict(reversed(list(ex.inputs.items()))), ex.answer) for ex in train]
    assert dataset_hash(reordered, dev) == digest
    edited = [*train[:-1], dataclasses.replace(train[-1], answer="WRONG")]
    assert dataset_hash(edited, dev) != digest
    assert dataset_hash(train[1:], (train[0], *dev)) != digest
