"""MockProvider answers deterministically: scripted, echoed, schema-shaped, or failing on cue."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from runtime.errors import (
    AuthError,
    ConfigError,
    FailureKind,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    Rejected,
    Unavailable,
)
from runtime.providers.base import (
    FunctionSpec,
    LLMRequest,
    Message,
    OutputFormat,
    Provider,
)
from runtime.providers.mock import (
    MockFailure,
    MockFunctionCall,
    MockProvider,
    MockRule,
    MockSettings,
    load_mock_file,
    load_script,
    mock_requested,
    parse_script,
)
from runtime.testing import FakeClock

WEATHER = FunctionSpec(
    name="get_weather",
    description="Current weather for a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city"],
    },
)
SEARCH = FunctionSpec(
    name="search_documents",
    description="Search the knowledge base documents for passages",
    parameters={"type": "object", "properties": {"query": {"type": "string"}}},
)


def mock(*rules: MockRule, failures: tuple[MockFailure, ...] = (), **kwargs: Any) -> MockProvider:
    return MockProvider(MockSettings(script=rules, failures=failures, clock=FakeClock(), **kwargs))


# -- the protocol and the default answer ---------------------------------------


def test_the_mock_is_a_provider_named_mock() -> None:
    """It satisfies the Provider protocol and reports itself as 'mock'."""
    provider = MockProvider()
    assert isinstance(provider, Provider)
    assert provider.name == "mock"
    assert provider.complete(LLMRequest(prompt="hi")).provider == "mock"


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("Hello world", "[mock] Hello world (2 words)"),
        ("One.", "[mock] One. (1 word)"),
        (
            "Summarize the report. It has three sections.",
            "[mock] Summarize the report.… (7 words)",
        ),
        ("Line one\n\nline   two", "[mock] Line one line two (4 words)"),
        ("word " * 100, "[mock] " + ("word " * 24).strip() + "… (100 words)"),
        ("", "[mock] empty prompt (0 words)"),
    ],
)
def test_without_a_rule_the_mock_echoes_a_short_summary(prompt: str, expected: str) -> None:
    """The first sentence (at most 120 characters) and the word count, ellipsis when cut."""
    assert MockProvider().complete(LLMRequest(prompt=prompt)).text == expected


@pytest.mark.parametrize(
    ("request_", "model", "input_tokens"),
    [
        (LLMRequest(prompt="abcd"), "mock-1", 1),
        (LLMRequest(prompt="abcde", model="claude-x"), "claude-x", 2),
        (LLMRequest(prompt="abcd", system="efgh", history=(Message("user", "ijkl"),)), "mock-1", 3),
    ],
)
def test_usage_estimates_four_characters_per_token_and_costs_nothing(
    request_: LLMRequest, model: str, input_tokens: int
) -> None:
    """Input counts prompt, system and history; output counts the text; cost is zero."""
    response = MockProvider().complete(request_)
    assert response.model == model
    assert response.usage.input_tokens == input_tokens
    assert response.usage.output_tokens == -(-len(response.text) // 4)
    assert response.cost_usd == 0.0
    assert response.stop_reason == "end_turn"


# -- scripted rules ------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("please summarize this", "short"),
        ("please summarize this report", "long"),
        ("translate this", "anything"),
    ],
)
def test_the_longest_matching_pattern_wins_and_the_wildcard_comes_last(
    prompt: str, expected: str
) -> None:
    """Rule order does not matter; specificity does."""
    provider = mock(
        MockRule(match="*", response="anything"),
        MockRule(match="summarize", response="short"),
        MockRule(match="summarize this report", response="long"),
    )
    assert provider.complete(LLMRequest(prompt=prompt)).text == expected


def test_rules_also_match_the_system_prompt_and_history() -> None:
    """A pattern found only in the system prompt or an earlier turn still selects its rule."""
    provider = mock(
        MockRule(match="pirate", response="arr"), MockRule(match="earlier", response="seen")
    )
    assert provider.complete(LLMRequest(prompt="hi", system="talk like a pirate")).text == "arr"
    history = (Message("user", "an earlier turn"),)
    assert provider.complete(LLMRequest(prompt="hi", history=history)).text == "seen"


def test_a_rule_with_a_step_applies_only_to_that_step() -> None:
    """The same prompt answers differently per step when rules say so."""
    provider = mock(
        MockRule(match="text", response="generic"),
        MockRule(match="text", response="classified", step="classify"),
    )
    assert provider.complete(LLMRequest(prompt="text", step="classify")).text == "classified"
    assert provider.complete(LLMRequest(prompt="text", step="other")).text == "generic"


def test_a_mapping_response_comes_back_as_json_text_and_data() -> None:
    """Structured responses fill both text and data, with a fresh copy on every call."""
    provider = mock(MockRule(match="classify", response={"label": "positive", "score": 0.9}))
    first = provider.complete(LLMRequest(prompt="classify this"))
    assert json.loads(first.text) == first.data == {"label": "positive", "score": 0.9}
    first.data["label"] = "mutated"
    assert provider.complete(LLMRequest(prompt="classify this")).data["label"] == "positive"


@pytest.mark.parametrize(
    ("output_format", "expected_data"),
    [(OutputFormat.JSON, {"ok": True}), (OutputFormat.TEXT, None)],
)
def test_a_json_string_response_is_parsed_only_when_json_is_wanted(
    output_format: OutputFormat, expected_data: Any
) -> None:
    """A string rule is text; asked for JSON, its parsed value is the data."""
    provider = mock(MockRule(match="*", response='{"ok": true}'))
    response = provider.complete(LLMRequest(prompt="x", output_format=output_format))
    assert response.text == '{"ok": true}'
    assert response.data == expected_data


def test_a_non_json_string_response_stays_text_even_when_json_is_wanted() -> None:
    """Scripts can return broken JSON on purpose to exercise invalid-output handling."""
    provider = mock(MockRule(match="*", response="not json"))
    response = provider.complete(LLMRequest(prompt="x", output_format=OutputFormat.JSON))
    assert (response.text, response.data) == ("not json", None)


def test_a_function_call_rule_returns_the_scripted_call() -> None:
    """Scripted arguments are returned as given, with the tool_use stop reason."""
    call = MockFunctionCall(name="get_weather", arguments={"city": "Paris"})
    provider = mock(MockRule(match="weather", function_call=call))
    response = provider.complete(LLMRequest(prompt="weather?", functions=(WEATHER,)))
    assert [(c.name, dict(c.arguments)) for c in response.function_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert response.stop_reason == "tool_use"


def test_a_function_call_rule_without_arguments_makes_them_from_the_schema() -> None:
    """Missing arguments are generated from the offered function's parameters."""
    provider = mock(MockRule(match="*", function_call=MockFunctionCall(name="get_weather")))
    response = provider.complete(LLMRequest(prompt="x", functions=(SEARCH, WEATHER)))
    (call,) = response.function_calls
    assert call.name == "get_weather"
    Draft202012Validator(WEATHER.parameters).validate(call.arguments)


# -- functions and JSON without a script ---------------------------------------


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("call get_weather for Paris", "get_weather"),
        ("what is the weather in Paris today?", "get_weather"),
        ("find passages in the knowledge base", "search_documents"),
        ("nothing relevant", "search_documents"),
    ],
)
def test_offered_functions_are_called_by_name_then_by_description_then_first(
    prompt: str, expected: str
) -> None:
    """The call goes to the best-fitting function, with schema-valid arguments."""
    functions = (SEARCH, WEATHER)
    response = MockProvider().complete(LLMRequest(prompt=prompt, functions=functions))
    (call,) = response.function_calls
    assert call.name == expected
    spec = next(f for f in functions if f.name == expected)
    Draft202012Validator(spec.parameters).validate(call.arguments)
    assert response.stop_reason == "tool_use"


def test_json_without_a_schema_has_summary_key_points_and_word_count() -> None:
    """The default JSON answer is small and useful in demos."""
    prompt = "First point here. Second point there! Third? Fourth."
    response = MockProvider().complete(LLMRequest(prompt=prompt, output_format=OutputFormat.JSON))
    assert response.data == {
        "summary": "[mock] First point here.… (8 words)",
        "key_points": ["First point here.", "Second point there!", "Third?"],
        "word_count": 8,
    }
    assert json.loads(response.text) == response.data


def test_json_with_a_schema_validates_and_depends_only_on_the_prompt() -> None:
    """Same prompt, same value; another prompt, another value; always valid."""
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "tags": {"type": "array"}},
        "required": ["title"],
    }
    provider = MockProvider()

    def ask(prompt: str) -> Any:
        return provider.complete(LLMRequest(prompt=prompt, schema=schema)).data

    Draft202012Validator(schema).validate(ask("a"))
    assert ask("a") == ask("a")
    assert ask("a") != ask("b")


def test_a_schema_the_generator_cannot_handle_is_a_rejected_request() -> None:
    """Unsupported schemas surface as Rejected (bad_request), naming the keyword."""
    request = LLMRequest(prompt="x", schema={"not": {"type": "string"}})
    with pytest.raises(Rejected, match="'not'") as caught:
        MockProvider().complete(request)
    assert caught.value.provider == "mock"


# -- call counting -------------------------------------------------------------


def test_calls_are_counted_in_total_and_per_step() -> None:
    """call_count proves how often each step reached the provider."""
    provider = MockProvider()
    for step in ("plan", "write", "write", None):
        provider.complete(LLMRequest(prompt="x", step=step))
    assert provider.call_count() == 4
    assert provider.call_count("plan") == 1
    assert provider.call_count("write") == 2
    assert provider.call_count("review") == 0
    assert dict(provider.snapshot().calls_by_step) == {"plan": 1, "write": 2, None: 1}


def test_counting_is_exact_under_concurrent_calls() -> None:
    """Threads calling at once lose no counts."""
    provider = MockProvider()
    start = threading.Barrier(8)

    def work() -> None:
        start.wait(timeout=5)
        for _ in range(500):
            provider.complete(LLMRequest(prompt="x", step="s"))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    assert provider.call_count() == provider.call_count("s") == 4000


# -- failures and latency ------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "error_type", "kind"),
    [
        ("timeout", ProviderTimeout, FailureKind.TIMEOUT),
        ("rate_limited", RateLimited, FailureKind.RATE_LIMITED),
        ("overloaded", Overloaded, FailureKind.OVERLOADED),
        ("auth", AuthError, FailureKind.AUTH),
        ("bad_request", Rejected, FailureKind.BAD_REQUEST),
        ("unavailable", Unavailable, FailureKind.UNAVAILABLE),
    ],
)
def test_each_failure_name_raises_its_provider_error(
    error: Any, error_type: type[ProviderError], kind: FailureKind
) -> None:
    """Injected failures use the taxonomy retries and fallbacks classify by."""
    provider = mock(failures=(MockFailure(error=error),))
    with pytest.raises(error_type) as caught:
        provider.complete(LLMRequest(prompt="x"))
    assert caught.value.kind is kind
    assert caught.value.provider == "mock"


def test_a_failure_fails_times_calls_then_lets_calls_succeed() -> None:
    """Retries see exactly `times` failures; failed calls are counted too."""
    failure = MockFailure(error="rate_limited", times=2, retry_after_s=1.5)
    provider = mock(MockRule(response="ok"), failures=(failure,))
    for _ in range(2):
        with pytest.raises(RateLimited) as caught:
            provider.complete(LLMRequest(prompt="x"))
        assert caught.value.retry_after_s == 1.5
    assert provider.complete(LLMRequest(prompt="x")).text == "ok"
    assert provider.call_count() == 3
    assert provider.snapshot().failures_injected == 2


@pytest.mark.parametrize(
    ("failure", "request_", "fails"),
    [
        (MockFailure(match="flaky", error="overloaded"), LLMRequest(prompt="a flaky one"), True),
        (MockFailure(match="flaky", error="overloaded"), LLMRequest(prompt="a solid one"), False),
        (
            MockFailure(error="timeout", step="draft"),
            LLMRequest(prompt="x", step="draft"),
            True,
        ),
        (
            MockFailure(error="timeout", step="draft"),
            LLMRequest(prompt="x", step="review"),
            False,
        ),
        (MockFailure(error="timeout", times=0), LLMRequest(prompt="x"), False),
    ],
)
def test_a_failure_applies_only_to_calls_it_matches(
    failure: MockFailure, request_: LLMRequest, fails: bool
) -> None:
    """Failures are scoped by substring, by step, and by their count."""
    provider = mock(failures=(failure,))
    if fails:
        with pytest.raises(ProviderError):
            provider.complete(request_)
    else:
        provider.complete(request_)


def test_latency_is_waited_on_the_clock() -> None:
    """A FakeClock records the wait and the response reports it, with no real sleep."""
    clock = FakeClock()
    provider = MockProvider(MockSettings(latency_s=0.25, clock=clock))
    response = provider.complete(LLMRequest(prompt="x"))
    assert clock.sleeps == [0.25]
    assert response.latency_s == pytest.approx(0.25)


def test_failing_calls_also_take_the_latency() -> None:
    """A slow provider is slow to fail too."""
    clock = FakeClock()
    failure = MockFailure(error="unavailable")
    provider = MockProvider(MockSettings(latency_s=0.5, failures=[failure], clock=clock))
    with pytest.raises(Unavailable):
        provider.complete(LLMRequest(prompt="x"))
    assert clock.sleeps == [0.5]


def test_negative_latency_is_a_config_error() -> None:
    """Settings refuse a latency below zero."""
    with pytest.raises(ConfigError, match="latency"):
        MockSettings(latency_s=-1)


# -- streaming -----------------------------------------------------------------


def test_stream_yields_a_few_chunks_that_join_to_the_text() -> None:
    """Streaming gives the complete() text, split at spaces."""
    request = LLMRequest(prompt="A fairly long prompt with many words in it to split. " * 3)
    chunks = list(MockProvider().stream(request))
    assert 1 < len(chunks) <= 5
    assert "".join(chunks) == MockProvider().complete(request).text


def test_stream_raises_injected_failures() -> None:
    """A failing call fails its stream as well."""
    provider = mock(failures=(MockFailure(error="overloaded"),))
    with pytest.raises(Overloaded):
        list(provider.stream(LLMRequest(prompt="x")))


# -- script files --------------------------------------------------------------


def test_a_script_file_holds_rules_and_failures(tmp_path: Path) -> None:
    """The structured form gives rules, function calls, steps and failures."""
    path = tmp_path / "script.yaml"
    path.write_text(
        """
rules:
  - match: Summarize
    response: A short summary.
  - match: weather
    function_call: {name: get_weather, arguments: {city: Paris}}
  - match: classify
    step: classify
    response: {label: positive}
failures:
  - match: "*"
    error: rate_limited
    times: 2
    retry_after_s: 1.5
""",
        encoding="utf-8",
    )
    script = load_mock_file(path)
    assert [rule.match for rule in script.rules] == ["Summarize", "weather", "classify"]
    assert script.rules[2].step == "classify"
    assert script.failures == (
        MockFailure(match="*", error="rate_limited", times=2, retry_after_s=1.5),
    )
    assert load_script(path) == list(script.rules)


def test_a_plain_mapping_script_maps_patterns_to_responses(tmp_path: Path) -> None:
    """Short scripts can skip the rules list."""
    path = tmp_path / "script.yaml"
    path.write_text('hello: "hi there"\nreport: {pages: 3}\n', encoding="utf-8")
    provider = mock(*load_script(path))
    assert provider.complete(LLMRequest(prompt="hello you")).text == "hi there"
    assert provider.complete(LLMRequest(prompt="the report")).data == {"pages": 3}


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ("rules:\n  - match: x\n", ["rules[0] (match 'x')", "'response' or a 'function_call'"]),
        ("rules:\n  - match: x\n    respond: y\n", ["rules[0] (match 'x').respond", "Extra"]),
        ("failures:\n  - error: exploded\n", ["failures[0].error", "'timeout'"]),
        ("failures:\n  - error: auth\n    times: -1\n", ["failures[0].times"]),
        ("greeting: {a: [1, 2}\n", ["1:", "not valid YAML"]),
        ("- just\n- a list\n", ["expected a mapping", "list"]),
        ("hello: null\n", ["entry 'hello'"]),
    ],
)
def test_a_bad_script_is_a_config_error_naming_the_file_and_entry(
    tmp_path: Path, content: str, fragments: list[str]
) -> None:
    """Errors point at the file and the entry so the script can be fixed."""
    path = tmp_path / "bad.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_script(path)
    message = str(caught.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_a_missing_script_file_is_a_config_error(tmp_path: Path) -> None:
    """The message names the file and the variable that points at it."""
    with pytest.raises(ConfigError, match="ELX_MOCK_SCRIPT"):
        load_script(tmp_path / "absent.yaml")


def test_an_empty_script_has_no_rules() -> None:
    """An empty YAML document is an empty script."""
    assert parse_script(None).rules == ()


# -- environment ---------------------------------------------------------------


def test_settings_come_from_the_environment(tmp_path: Path) -> None:
    """ELX_MOCK_SCRIPT and ELX_MOCK_LATENCY_MS configure the mock."""
    path = tmp_path / "script.yaml"
    path.write_text("rules:\n  - match: ping\n    response: pong\n", encoding="utf-8")
    clock = FakeClock()
    settings = MockSettings.from_env(
        {"ELX_MOCK_SCRIPT": str(path), "ELX_MOCK_LATENCY_MS": "250"}, clock=clock
    )
    assert settings.latency_s == 0.25
    assert settings.clock is clock
    assert MockProvider(settings).complete(LLMRequest(prompt="ping")).text == "pong"


def test_an_empty_environment_gives_default_settings() -> None:
    """No variables: no script, no latency, no failures."""
    settings = MockSettings.from_env({})
    assert (tuple(settings.script), settings.latency_s, tuple(settings.failures)) == ((), 0, ())


@pytest.mark.parametrize("value", ["fast", "-5", "nan"])
def test_a_bad_latency_variable_is_a_config_error(value: str) -> None:
    """The message names the variable and the value."""
    with pytest.raises(ConfigError, match=f"ELX_MOCK_LATENCY_MS.*{value}"):
        MockSettings.from_env({"ELX_MOCK_LATENCY_MS": value})


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"TEST_MODE": "mock"}, True),
        ({"TEST_MODE": " MOCK "}, True),
        ({"TEST_MODE": "e2e"}, False),
        ({}, False),
    ],
)
def test_test_mode_mock_requests_the_mock(environ: dict[str, str], expected: bool) -> None:
    """TEST_MODE=mock routes every provider call to the mock."""
    assert mock_requested(environ) is expected


# -- speed ---------------------------------------------------------------------


@pytest.mark.skipif(sys.gettrace() is not None, reason="tracing (coverage, debugger) slows calls")
def test_simple_calls_run_faster_than_fifty_thousand_per_second() -> None:
    """With no latency the mock stays out of the way of pipeline benchmarks."""
    provider = mock(MockRule(match="never matches", response="x"))
    request = LLMRequest(prompt="Summarize the quarterly report. It has three sections.")
    best = 0.0
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(5_000):
            provider.complete(request)
        best = max(best, 5_000 / (time.perf_counter() - started))
    assert best > 50_000
