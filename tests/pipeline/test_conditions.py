"""The condition language: parsing, evaluation, name resolution and its error messages."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from runtime.errors import ConditionError
from runtime.pipeline.conditions import (
    FUNCTIONS,
    MAX_PATTERN_LENGTH,
    Condition,
    evaluate_expression,
    parse_condition,
)

NAMES: dict[str, Any] = {
    "steps": {
        "review": {"score": 8, "passed": True, "result": {"verdict": "approve"}, "tags": ["a"]},
        "draft": {"text": "Hello world", "words": 2, "items": [{"name": "x"}, {"name": "y"}]},
        "empty": {"result": None},
    },
    "state": {"mode": "strict", "review": "state-review", "count": 3},
    "inputs": {"topic": "AI", "limit": 10, "mode": "input-mode"},
    "global_vars": {"threshold": 7, "topic": "global-topic"},
    "loop": {"index": 2, "item": {"id": 5}, "first": False, "last": True},
    "workflow": {"name": "code_review"},
    "run": {"id": "r1"},
}


def value(source: str, names: Mapping[str, Any] = NAMES) -> Any:
    return evaluate_expression(source, names)


def error_for(source: Any, names: Mapping[str, Any] = NAMES, *, where: str = "") -> str:
    with pytest.raises(ConditionError) as info:
        parse_condition(source, where=where).evaluate(names)
    return str(info.value)


# --- literals and operators ---------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("42", 42),
        ("3.5", 3.5),
        ("1e3", 1000.0),
        ("'single'", "single"),
        ('"double"', "double"),
        (r"'it\'s'", "it's"),
        (r'"say \"hi\""', 'say "hi"'),
        (r"'a\nb\tc'", "a\nb\tc"),
        (r"'\u00e9'", "é"),
        (r"'\d+'", r"\d+"),
        ("true", True),
        ("TRUE", True),
        ("False", False),
        ("null", None),
        ("None", None),
        ("NONE", None),
        ("[1, 'a', [true]]", [1, "a", [True]]),
        ("[]", []),
        ("-5", -5),
        ("--5", 5),
    ],
)
def test_literals_evaluate_to_their_values(source: str, expected: Any) -> None:
    """Numbers, quoted strings with escapes, case-insensitive keywords and lists are literals."""
    assert value(source) == expected
    assert type(value(source)) is type(expected)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 4 - 3", 3),
        ("2 * 3 % 4", 2),
        ("-2 * 3", -6),
        ("- (2 + 3)", -5),
        ("1 + 2 > 2", True),
        ("(1 < 2) == true", True),
        ("not 1 == 2", True),
        ("!1 == 2", True),
        ("true or false and false", True),
        ("(true or false) and false", False),
        ("true || false && false", True),
        ("not true or true", True),
        ("not (true or true)", False),
        ("false and 1 / 0", False),
        ("true or 1 / 0", True),
        ("not not true", True),
        ("'ab' + 'cd' == 'abcd'", True),
        ("1 + 2 in [3]", True),
        ("[1] + [2]", [1, 2]),
        ("7 / 2", 3.5),
        ("7 % 3", 1),
    ],
)
def test_operators_follow_the_documented_precedence(source: str, expected: Any) -> None:
    """or < and < not < comparison < + - < * / % < unary minus < postfix."""
    assert value(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 == 1", True),
        ("1 == 1.0", True),
        ("'a' == 'a'", True),
        ("'a' != 'b'", True),
        ("1 == '1'", False),
        ("1 == true", False),
        ("0 == false", False),
        ("null == none", True),
        ("[1, 2] == [1, 2]", True),
        ("2 > 1", True),
        ("1 > 2", False),
        ("2 >= 2", True),
        ("1 < 2", True),
        ("2 <= 1", False),
        ("'b' > 'a'", True),
        ("'abc' contains 'b'", True),
        ("'abc' contains 'z'", False),
        ("[1, 2] contains 2", True),
        ("[1, 2] contains true", False),
        ("review.result contains 'verdict'", True),
        ("'b' in 'abc'", True),
        ("2 in [1, 2]", True),
        ("'verdict' in review.result", True),
        ("3 not_in [1, 2]", True),
        ("2 not in [1, 2]", False),
        ("'x' not in 'abc'", True),
        ("'abc-123' matches '[a-z]+-\\d+'", True),
        ("'abc' matches '^b'", False),
        ("'abc' matches 'b'", True),
    ],
)
def test_comparison_operators_compare_values(source: str, expected: bool) -> None:
    """Each comparison operator, including the word operators and `not in`."""
    assert value(source) is expected


def test_matches_accepts_a_pattern_computed_at_run_time() -> None:
    """A pattern that is not a literal is compiled when evaluated."""
    names = {"state": {"pattern": "^str"}}
    assert value("'strict' matches state.pattern", names) is True


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("'a' > 3", ["str 'a'", "int 3", "'>'"]),
        ("null < 1", ["null", "int 1"]),
        ("true >= false", ["bool true", "bool false"]),
        ("[1] <= [2]", ["list of 1 items", "list of 1 items"]),
        ("'1' > 0", ["str '1'", "int 0"]),
    ],
)
def test_ordering_incompatible_types_names_both_types(source: str, expected: list[str]) -> None:
    """Ordering needs two numbers or two strings; the error names both values' types."""
    message = error_for(source)
    assert "cannot compare" in message
    for part in expected:
        assert part in message


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("1 / 0", "division by zero"),
        ("1 % 0", "division by zero"),
        ("1.5 / 0.0", "division by zero"),
        ("1 + 'a'", "cannot add int 1 and str 'a'"),
        ("'a' - 'b'", "cannot subtract"),
        ("'a' * 3", "cannot multiply"),
        ("-'a'", "cannot negate str 'a'"),
        ("3 contains 1", "'contains' needs a string, list or mapping"),
        ("'abc' contains 1", "needs a string to look for"),
        ("1 in null", "'in' needs a string, list or mapping to look in, got null"),
        ("3 matches 'a'", "'matches' needs a string on the left, got int 3"),
    ],
)
def test_operator_misuse_is_a_condition_error(source: str, fragment: str) -> None:
    """Type errors and division by zero are ConditionErrors naming the problem."""
    assert fragment in error_for(source)


def test_matches_with_a_bad_literal_regex_fails_at_parse_time() -> None:
    """A literal pattern is compiled while parsing, so a bad one never reaches a run."""
    with pytest.raises(ConditionError, match=r"bad regex '\(\['") as info:
        parse_condition("review.text matches '(['")
    assert "column 21" in str(info.value)


def test_matches_with_a_bad_computed_regex_fails_clearly() -> None:
    """A bad pattern found at run time names the pattern and the regex error."""
    message = error_for("'a' matches state.pattern", {"state": {"pattern": "a)"}})
    assert "bad regex 'a)'" in message
    assert "unbalanced parenthesis" in message


def test_matches_rejects_patterns_over_the_length_cap() -> None:
    """Patterns longer than MAX_PATTERN_LENGTH are refused, literal or computed."""
    long_pattern = "a" * (MAX_PATTERN_LENGTH + 1)
    with pytest.raises(ConditionError, match="the limit is 500"):
        parse_condition(f"'a' matches '{long_pattern}'")
    message = error_for("'a' matches state.p", {"state": {"p": long_pattern}})
    assert f"{MAX_PATTERN_LENGTH + 1} characters" in message


# --- functions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("length('abc')", 3),
        ("length([1, 2])", 2),
        ("length(review.result)", 1),
        ("contains('abc', 'c')", True),
        ("contains([1, 2], 3)", False),
        ("startsWith('hello', 'he')", True),
        ("startsWith('hello', 'lo')", False),
        ("endsWith('hello', 'lo')", True),
        ("isEmpty('')", True),
        ("isEmpty([])", True),
        ("isEmpty(null)", True),
        ("isEmpty(empty.result)", True),
        ("isEmpty('x')", False),
        ("isEmpty(0)", False),
        ("any([false, 0, 'x'])", True),
        ("any([])", False),
        ("any(false, true)", True),
        ("all([true, 1])", True),
        ("all([true, 0])", False),
        ("all([])", True),
        ("count([1, 2, 3])", 3),
        ("count([1, 2, 1], 1)", 2),
        ("count('banana', 'an')", 2),
        ("sum([1, 2, 3.5])", 6.5),
        ("sum([])", 0),
        ("sum(1, 2)", 3),
        ("average([1, 2, 3, 4])", 2.5),
        ("min([3, 1, 2])", 1),
        ("min(3, 1)", 1),
        ("max(['a', 'c', 'b'])", "c"),
        ("abs(-3)", 3),
        ("abs(2.5)", 2.5),
        ("round(2.5)", 3),
        ("round(-2.5)", -3),
        ("round(2.675, 2)", 2.68),
        ("round(7)", 7),
    ],
)
def test_functions_compute_their_documented_results(source: str, expected: Any) -> None:
    """Every built-in function, with list and variadic forms where they exist."""
    result = value(source)
    assert result == expected
    assert type(result) is type(expected)


def test_now_returns_the_current_utc_time_as_iso_text() -> None:
    """now() is an ISO 8601 string in UTC, comparable as text with other ISO stamps."""
    before = datetime.now(UTC)
    stamp = value("now()")
    parsed = datetime.fromisoformat(stamp)
    assert parsed.tzinfo is not None
    assert parsed.utcoffset() == before.utcoffset()
    assert before <= parsed <= datetime.now(UTC)
    assert value("now() > '2000-01-01'") is True


def test_every_documented_function_is_registered() -> None:
    """The function table is exactly the documented set."""
    assert set(FUNCTIONS) == {
        "length",
        "contains",
        "startsWith",
        "endsWith",
        "isEmpty",
        "any",
        "all",
        "count",
        "sum",
        "average",
        "min",
        "max",
        "abs",
        "round",
        "now",
    }


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("length(3)", "length() needs a string, list or mapping, got int 3"),
        ("length(null)", "got null"),
        ("startsWith(1, 'a')", "startsWith() needs two strings, got int 1 and str 'a'"),
        ("any('abc')", "any() needs a list, got str 'abc'"),
        ("sum(['a'])", "sum() needs numbers, got str 'a'"),
        ("average([])", "average() of an empty list"),
        ("min([])", "min() of an empty list"),
        ("max([1, 'a'])", "max() needs all numbers or all strings, got int, str"),
        ("abs('x')", "abs() needs a number"),
        ("round('x')", "round() needs a number"),
        ("round(1.5, 1.5)", "integer number of digits"),
        ("round(1.5, 40)", "round() cannot round float 1.5 to 40 digits"),
    ],
)
def test_functions_reject_bad_arguments_with_the_types_named(source: str, fragment: str) -> None:
    """A function given the wrong kind of value says what it needs and what it got."""
    assert fragment in error_for(source)


def test_arithmetic_overflow_is_a_condition_error() -> None:
    """An int too large for a float fails with a ConditionError, not OverflowError."""
    message = error_for("average(state.big) > 1", {"state": {"big": [10**400]}})
    assert "cannot evaluate 'average(state.big) > 1'" in message
    assert "too large" in message


@pytest.mark.parametrize(
    ("source", "suggestion"),
    [
        ("startswith(a, 'b')", "did you mean 'startsWith'?"),
        ("lenght(x)", "did you mean 'length'?"),
        ("isempty(x)", "did you mean 'isEmpty'?"),
        ("xyz(x)", "functions are length, contains"),
    ],
)
def test_unknown_functions_fail_at_parse_time_with_a_suggestion(
    source: str, suggestion: str
) -> None:
    """Calling a function that does not exist is a parse error naming it."""
    name = source.split("(")[0]
    with pytest.raises(ConditionError) as info:
        parse_condition(source)
    assert f"unknown function '{name}'" in str(info.value)
    assert suggestion in str(info.value)


@pytest.mark.parametrize(
    ("source", "takes"),
    [("abs(1, 2)", "it takes 1"), ("now(1)", "it takes 0"), ("round()", "it takes 1-2")],
)
def test_function_arity_is_checked_at_parse_time(source: str, takes: str) -> None:
    """A wrong number of arguments is caught before any run."""
    with pytest.raises(ConditionError, match="wrong number of arguments") as info:
        parse_condition(source)
    assert takes in str(info.value)


# --- names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("steps.review.score", 8),
        ("steps.review.result.verdict", "approve"),
        ("steps['review']['score']", 8),
        ("steps.draft.items[1].name", "y"),
        ("steps.draft.items.1.name", "y"),
        ("steps.draft.items[-1].name", "y"),
        ("steps.draft.items[loop.index - 1].name", "y"),
        ("steps[workflow.name == 'code_review' and 'review' or 'draft'].score", 8),
        ("steps.draft.text[0]", "H"),
        ("steps.draft.items.length", 2),
        ("steps.draft.text.length", 11),
        ("steps.review.result.length", 1),
        ("[1, 2, 3].length", 3),
        ("(steps.review).score", 8),
        ("loop.item.id", 5),
        ("workflow.name", "code_review"),
        ("run.id", "r1"),
    ],
)
def test_dotted_paths_walk_mappings_and_lists(source: str, expected: Any) -> None:
    """Mappings by key, lists by integer index, `.length` as len()."""
    assert value(source) == expected


@pytest.mark.parametrize(
    ("source", "expected", "reason"),
    [
        ("review.score", 8, "a step wins over a state variable of the same name"),
        ("draft.words", 2, "step shorthand"),
        ("mode", "strict", "state wins over inputs"),
        ("count", 3, "state shorthand, even though count is also a function name"),
        ("limit", 10, "inputs shorthand"),
        ("topic", "AI", "inputs win over global_vars"),
        ("threshold", 7, "global_vars shorthand"),
        ("state.review", "state-review", "an explicit top-level name is used as written"),
        ("inputs.mode", "input-mode", "an explicit top-level name is used as written"),
    ],
)
def test_shorthand_names_resolve_in_steps_state_inputs_global_vars_order(
    source: str, expected: Any, reason: str
) -> None:
    """A first segment that is not a top-level name is looked up in each scope in turn."""
    assert value(source) == expected, reason


def test_a_top_level_name_wins_over_a_step_with_the_same_name() -> None:
    """`loop.index` is the loop variable even if a step is called `loop`."""
    names = {"loop": {"index": 1}, "steps": {"loop": {"index": 99}}}
    assert value("loop.index", names) == 1


def test_shorthand_skips_scopes_that_are_absent() -> None:
    """Only the scopes present in `names` are searched."""
    assert value("threshold", {"global_vars": {"threshold": 7}}) == 7


def test_a_mapping_key_called_length_wins_over_len() -> None:
    """`x.length` reads a real `length` key before falling back to len()."""
    assert value("state.box.length", {"state": {"box": {"length": 42}}}) == 42


def test_an_unknown_first_name_suggests_the_closest_known_name() -> None:
    """The message names the unknown segment and the closest of all candidates."""
    message = error_for("reveiw.score > 7")
    assert "unknown name 'reveiw'" in message
    assert "did you mean 'review'?" in message
    assert "cannot evaluate 'reveiw.score > 7'" in message


@pytest.mark.parametrize(
    ("source", "suggestion"),
    [
        ("threshhold > 1", "threshold"),
        ("stpes.review.score", "steps"),
        ("tpic == 'AI'", "topic"),
        ("mdoe", "mode"),
    ],
)
def test_unknown_names_are_matched_against_every_scope(source: str, suggestion: str) -> None:
    """Candidates are top-level names, step names and state, input and global var names."""
    assert f"did you mean '{suggestion}'?" in error_for(source)


def test_an_unknown_name_with_no_close_match_lists_the_top_level_names() -> None:
    """Without a suggestion the message lists what does exist."""
    message = error_for("zzzz", {"steps": {}, "state": {}})
    assert "unknown name 'zzzz'" in message
    assert "known top-level names: state, steps" in message


def test_a_missing_key_names_the_path_the_key_and_the_closest_keys_first() -> None:
    """The full path, the missing key and the available keys, closest first."""
    message = error_for("steps.review.scroe > 7")
    assert "'steps.review.scroe' does not exist" in message
    assert "'steps.review' has no key 'scroe'" in message
    assert "did you mean 'score'?" in message
    assert "available keys (closest first): score," in message
    for key in ("passed", "result", "tags"):
        assert key in message


def test_a_missing_step_through_steps_suggests_the_closest_step() -> None:
    """`steps.revew` suggests `review`."""
    message = error_for("steps.revew.score")
    assert "'steps' has no key 'revew' (did you mean 'review'?)" in message


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("empty.result.score", "cannot read 'score' of 'empty.result': it is null"),
        ("review.score.value", "cannot read 'value' of 'review.score': it is int 8"),
        ("draft.items[5]", "'draft.items[5]' does not exist: index 5 is out of range for 2 items"),
        ("draft.items.name", "it is a list of 2 items; use an integer index"),
        ("draft.text[40]", "out of range for 11 characters"),
        ("review.result[0]", "is a mapping with no key 0"),
        ("review[review.tags]", "must be a string or integer, got list of 1 items"),
        ("review[true]", "must be a string or integer, got bool true"),
        ("(1 + 1).x", "cannot read 'x' of '1 + 1': it is int 2"),
    ],
)
def test_bad_paths_explain_what_was_found_instead(source: str, fragment: str) -> None:
    """Null, scalars, short lists and wrong index types each get a specific message."""
    assert fragment in error_for(source)


class AttributeTrap(Mapping[str, Any]):
    """A Mapping view that fails the test if anything reaches past the Mapping protocol."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"attribute {name!r} was read")


class Record:
    """A plain object whose attribute must never be read by a condition."""

    score = 99


def test_custom_mapping_views_are_read_only_through_the_mapping_protocol() -> None:
    """Executor views work as names, and their attributes are never touched."""
    names = AttributeTrap(
        {"steps": AttributeTrap({"review": AttributeTrap({"score": 8})}), "state": {}}
    )
    assert parse_condition("review.score > 7 and steps.review.score.length == null").source
    assert value("review.score > 7", names) is True
    assert value("steps.review.length", names) == 1
    assert "has no key 'x'" in error_for("review.x", names)


def test_attributes_of_plain_objects_are_never_read() -> None:
    """An object that is not a mapping or list has no readable fields."""
    message = error_for("steps.rec.score", {"steps": {"rec": Record()}})
    assert "cannot read 'score' of 'steps.rec': it is a Record, not a mapping or list" in message


# --- safety -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "__import__('os')",
        "().__class__",
        "steps.__class__",
        "steps._private",
        "_x == 1",
        "''.__class__.__mro__",
        "open('/etc/passwd')",
        "exec('1')",
        "steps.review.score.bit_length()",
        "lambda: 1",
        "review.score; 1",
        "`id`",
        "a if b else c",
    ],
)
def test_code_is_never_executed_and_escapes_fail_at_parse_time(source: str) -> None:
    """Dunder names, private names, calls and Python syntax are rejected before evaluation."""
    with pytest.raises(ConditionError):
        parse_condition(source)


def test_private_names_are_rejected_naming_the_name() -> None:
    """The message says which name and why."""
    with pytest.raises(ConditionError, match="names starting with '_' are not allowed") as info:
        parse_condition("().__class__")
    assert "'__class__'" in str(info.value)


def test_deep_nesting_is_a_parse_error_not_a_recursion_error() -> None:
    """Pathological nesting is refused with a message, for each kind of nesting."""
    for source in ("(" * 100 + "1" + ")" * 100, "not " * 100 + "true", "[" * 100 + "]" * 100):
        with pytest.raises(ConditionError, match="nesting too deep"):
            parse_condition(source)


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        (" + ".join(["1"] * 300), "expression too deep"),
        ("x" * 10_001, "condition is 10001 characters; the limit is 10000"),
        ("1" * 200, "number too long"),
    ],
)
def test_oversized_expressions_are_refused_at_parse_time(source: str, fragment: str) -> None:
    """Huge inputs give a ConditionError, never a RecursionError or a slow parse."""
    with pytest.raises(ConditionError, match=fragment):
        parse_condition(source)


def test_a_long_but_reasonable_expression_parses() -> None:
    """The limits leave room for real conditions."""
    assert value(" + ".join(["1"] * 150)) == 150


# --- syntax errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("a > (b", "unexpected end of expression at column 7 in 'a > (b'; expected ')'"),
        ("a > b)", "unexpected ')' at column 6 in 'a > b)'"),
        ("", "empty condition at column 1"),
        ("a >", "unexpected end of expression at column 4"),
        ("a = 1", "unexpected character '=' at column 3 in 'a = 1'; use '==' to compare"),
        ("a & b", "use 'and' or '&&'"),
        ("a | b", "use 'or' or '||'"),
        ("a @ b", "unexpected character '@' at column 3"),
        ("'abc", "unterminated string at column 1"),
        ("a < b < c", "chained comparison at column 7"),
        ("a AND b", "unexpected 'AND' at column 3 in 'a AND b'"),
        ("a.", "unexpected end of expression at column 3 in 'a.'; expected a name after '.'"),
        ("a.'b'", "expected a name after '.'"),
        ("[1 2]", "unexpected '2' at column 4 in '[1 2]'; expected ','"),
        ("and", "unexpected 'and' at column 1 in 'and'; expected a value"),
        ("a not b", "unexpected 'not' at column 3"),
        ("x.score(1)", "only built-in functions can be called, and 'x.score' is not one"),
    ],
)
def test_syntax_errors_point_at_the_column(source: str, expected: str) -> None:
    """Parse errors quote the expression and give the 1-based column of the problem."""
    with pytest.raises(ConditionError) as info:
        parse_condition(source)
    assert expected in str(info.value)
    assert info.value.expression == source


def test_syntax_errors_draw_a_caret_under_the_problem() -> None:
    """The message's last two lines show the expression and a caret under the column."""
    with pytest.raises(ConditionError) as info:
        parse_condition("a > (b))")
    first, line, caret = str(info.value).split("\n")
    assert first.startswith("unexpected ')' at column 8")
    assert line.strip() == "a > (b))"
    assert caret.index("^") == line.index("a > (b))") + 7


def test_syntax_errors_in_multiline_sources_give_line_and_column() -> None:
    """A block-scalar condition reports the line as well as the column."""
    with pytest.raises(ConditionError, match="at line 2 column 10"):
        parse_condition("a and\n  b and (")


def test_where_prefixes_parse_and_evaluation_errors() -> None:
    """The caller's location, e.g. a step and field, starts every message."""
    where = "step 'review' field 'condition'"
    with pytest.raises(ConditionError, match=r"^step 'review' field 'condition': unexpected"):
        parse_condition("a >", where=where)
    assert error_for("nope", where=where).startswith(f"{where}: cannot evaluate 'nope'")


def test_a_hyphenated_step_name_needs_brackets() -> None:
    """`a-b` is subtraction; `steps['code-review']` reaches a hyphenated step."""
    names = {"steps": {"code-review": {"ok": True}}}
    assert value("steps['code-review'].ok", names) is True
    assert "unknown name 'code'" in error_for("code-review.ok", names)


# --- condition forms ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (True, True),
        (False, False),
        ("review.passed", True),
        ("review.score", True),
        ("empty.result", False),
        ("''", False),
        ("[]", False),
        ({"and": ["review.passed", "review.score > 7"]}, True),
        ({"and": ["review.passed", "review.score > 8"]}, False),
        ({"or": ["review.score > 8", "draft.words == 2"]}, True),
        ({"or": ["review.score > 8", False]}, False),
        ({"not": "review.score > 8"}, True),
        ({"not": {"and": [True, {"or": [False, "mode == 'strict'"]}]}}, False),
        (["review.passed", "review.score > 7"], True),
        (["review.passed", {"not": True}], False),
        ([["review.passed"], [True, "limit == 10"]], True),
        ([], True),
        ({"and": []}, True),
        ({"or": []}, False),
    ],
)
def test_condition_forms_evaluate_to_python_truthiness(source: Any, expected: bool) -> None:
    """Strings, and/or/not mappings, lists meaning all, and bools, nested freely."""
    assert parse_condition(source).evaluate(NAMES) is expected


def test_and_or_short_circuit_across_mapping_forms() -> None:
    """A later part is not evaluated once the answer is known."""
    assert parse_condition({"or": [True, "missing.name"]}).evaluate(NAMES) is True
    assert parse_condition(["review.score > 100", "missing.name"]).evaluate(NAMES) is False


def test_mapping_forms_render_a_readable_source() -> None:
    """A structured condition's `source` reads as the equivalent expression."""
    condition = parse_condition({"and": ["a > 1", {"not": "b"}, {"or": ["c", True]}]})
    assert condition.source == "(a > 1) and (not (b)) and ((c) or (true))"
    assert str(condition) == condition.source


def test_errors_inside_mapping_forms_say_which_part_failed() -> None:
    """A nested part's error names its position and quotes that part's own text."""
    where = "step 'review' field 'condition'"
    with pytest.raises(ConditionError) as info:
        parse_condition({"and": ["a", {"or": ["b", "c >"]}]}, where=where)
    assert str(info.value).startswith(f"{where}, in and[1], in or[1]: unexpected end")
    assert "in 'c >'" in str(info.value)
    message = error_for(["review.passed", "nope"])
    assert message.startswith("in all[1]: cannot evaluate 'nope': unknown name 'nope'")


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ({}, "exactly one key, 'and', 'or' or 'not'; got no keys"),
        ({"and": [], "or": []}, "got 'and', 'or'"),
        ({"adn": ["a"]}, "got 'adn'; did you mean 'and'?"),
        ({"and": "a"}, "'and' takes a list of conditions, got str 'a'"),
        ({"or": {"not": "a"}}, "'or' takes a list of conditions, got mapping"),
        (3, "a condition is a string, list, mapping (and/or/not) or bool, got int 3"),
        (None, "got null"),
        ([1.5], "in all[0]: a condition is a string"),
    ],
)
def test_malformed_condition_forms_are_rejected(source: Any, fragment: str) -> None:
    """Unknown keys, non-list and/or values and other types fail with a message."""
    with pytest.raises(ConditionError) as info:
        parse_condition(source)
    assert fragment in str(info.value)


# --- references, caching, values ---------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("steps.x.score > 7 and steps.y.ok", (("steps", "x", "score"), ("steps", "y", "ok"))),
        ("review.score > threshold", (("review", "score"), ("threshold",))),
        ("a.b[0].c", (("a", "b"),)),
        ("a['b c'].d", (("a", "b c", "d"),)),
        ("a[b.c].d", (("a",), ("b", "c"))),
        ("length(a.items) > count(b) + 1", (("a", "items"), ("b",))),
        ("a.x or a.x", (("a", "x"),)),
        ("[a, 'lit', 3] contains b.length", (("a",), ("b", "length"))),
        ("(a or b).c", (("a",), ("b",))),
        ("1 + 2 == 3", ()),
        ({"and": ["a", {"not": "b.c"}, ["d"]]}, (("a",), ("b", "c"), ("d",))),
        (True, ()),
    ],
)
def test_references_list_every_name_path_as_written(source: Any, expected: Any) -> None:
    """Paths stop at an integer or computed index; shorthand is not resolved; no repeats."""
    assert parse_condition(source).references() == expected


def test_string_sources_are_parsed_once_and_shared() -> None:
    """The same text (and where) gives the same immutable Condition object."""
    first = parse_condition("review.score > 7", where="w")
    assert parse_condition("review.score > 7", where="w") is first
    assert isinstance(first, Condition)
    with pytest.raises(AttributeError):
        first.source = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("review.result.verdict", "approve"),
        ("draft.items", [{"name": "x"}, {"name": "y"}]),
        ("review.score > 7", True),
        ("true and 'yes'", "yes"),
        ("0 or 'fallback'", "fallback"),
        ("empty.result", None),
    ],
)
def test_evaluate_expression_returns_the_value_not_its_truth(source: str, expected: Any) -> None:
    """`switch: on:` needs the value itself; and/or return an operand like Python's."""
    assert value(source) == expected


def test_evaluate_expression_errors_name_the_expression() -> None:
    """Errors from evaluate_expression carry the expression as an attribute too."""
    with pytest.raises(ConditionError) as info:
        evaluate_expression("missing.x", NAMES)
    assert info.value.expression == "missing.x"
    assert "unknown name 'missing'" in str(info.value)


def test_a_typical_condition_evaluates_in_well_under_twenty_microseconds() -> None:
    """Evaluation is a tree walk over a parsed, cached tree; the bound here is generous."""
    condition = parse_condition("steps.x.score > 7 and steps.y.ok")
    names = {"steps": {"x": {"score": 8}, "y": {"ok": True}}}
    assert condition.evaluate(names) is True
    rounds = 2000
    started = time.perf_counter()
    for _ in range(rounds):
        condition.evaluate(names)
    per_call = (time.perf_counter() - started) / rounds
    assert per_call < 100e-6  # about 1 us on a laptop; the margin absorbs slow CI
