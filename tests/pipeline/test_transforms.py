"""data_transform operations over lists of objects."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pydantic
import pytest

from runtime.errors import ConditionError, StepError
from runtime.pipeline.transforms import TransformOp, apply_operations

_ADAPTER: pydantic.TypeAdapter[list[TransformOp]] = pydantic.TypeAdapter(list[TransformOp])

ORDERS: list[dict[str, Any]] = [
    {"id": 1, "status": "completed", "total": 120.0, "customer": {"name": "Ada"}, "tags": ["vip"]},
    {"id": 2, "status": "pending", "total": 40, "customer": {"name": "Bob"}, "tags": []},
    {"id": 3, "status": "completed", "total": 75, "customer": {"name": "Cy"}, "tags": ["new"]},
    {"id": 4, "status": "cancelled", "total": None, "customer": {"name": "Di"}, "tags": []},
]


def ops(*raw: dict[str, Any]) -> list[TransformOp]:
    return _ADAPTER.validate_python(list(raw))


def run(data: Any, *raw: dict[str, Any], **kwargs: Any) -> Any:
    return apply_operations(data, ops(*raw), **kwargs)


def ids(items: list[dict[str, Any]]) -> list[Any]:
    return [item["id"] for item in items]


# -- filter -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "operator", "value", "expected"),
    [
        ("status", "==", "completed", [1, 3]),
        ("status", "!=", "completed", [2, 4]),
        ("total", ">", 50, [1, 3]),
        ("total", "<", 75, [2]),
        ("total", ">=", 75, [1, 3]),
        ("total", "<=", 40.0, [2]),
        ("tags", "contains", "vip", [1]),
        ("customer.name", "contains", "D", [4]),
        ("customer.name", "contains", "y", [3]),
        ("status", "in", ["pending", "cancelled"], [2, 4]),
        ("total", "==", None, [4]),
    ],
)
def test_structured_filter_keeps_items_matching_the_comparison(
    field: str, operator: str, value: Any, expected: list[int]
) -> None:
    """field/operator/value filters compare each item's field; null compares false for order."""
    result = run(
        ORDERS, {"operation": "filter", "field": field, "operator": operator, "value": value}
    )
    assert ids(result) == expected


def test_string_condition_uses_the_given_predicate_factory() -> None:
    """A condition string is compiled once by the factory and applied to each item."""
    compiled: list[str] = []

    def factory(expression: str) -> Callable[[Any], bool]:
        compiled.append(expression)
        return lambda item: item["status"] == "completed"

    result = run(
        ORDERS,
        {"operation": "filter", "field": "status", "condition": "status == 'completed'"},
        predicate_factory=factory,
    )
    assert ids(result) == [1, 3]
    assert compiled == ["status == 'completed'"]


def test_string_condition_without_an_evaluator_fails_clearly() -> None:
    """A condition string with no factory is a StepError, not a silent pass."""
    with pytest.raises(StepError, match=r"operations\[0\] \(filter\).*condition evaluator"):
        run(ORDERS, {"operation": "filter", "condition": "total > 5"})


def test_condition_errors_keep_their_kind_and_cause() -> None:
    """A ConditionError from the predicate becomes a StepError with kind condition."""

    def factory(expression: str) -> Callable[[Any], bool]:
        raise ConditionError(f"cannot parse {expression!r}", expression=expression)

    with pytest.raises(StepError) as caught:
        run(ORDERS, {"operation": "filter", "condition": "total >"}, predicate_factory=factory)
    assert caught.value.kind == "condition"
    assert isinstance(caught.value.cause, ConditionError)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"operation": "filter"}, "needs 'condition'"),
        ({"operation": "filter", "field": "a", "operator": "=="}, "needs a 'value'"),
        (
            {"operation": "filter", "condition": "a", "operator": "==", "value": 1},
            "not both",
        ),
        ({"operation": "filter", "field": "a", "operator": "~", "value": 1}, "operator"),
        ({"operation": "filter", "condition": "a", "extra": 1}, "extra"),
    ],
)
def test_malformed_filters_are_rejected_at_load(raw: dict[str, Any], message: str) -> None:
    """Filter models refuse incomplete, mixed or unknown fields."""
    with pytest.raises(pydantic.ValidationError, match=message):
        ops(raw)


@pytest.mark.parametrize(
    ("field", "operator", "value", "message"),
    [
        ("status", ">", 3, "cannot compare status"),
        ("total", "contains", 3, "'contains' needs total"),
        ("status", "in", 3, "'in' needs a list"),
        ("missing", "==", 1, "item 0 has no field 'missing'"),
    ],
)
def test_structured_filter_fails_loudly_on_bad_comparisons(
    field: str, operator: str, value: Any, message: str
) -> None:
    """Type mismatches and missing fields raise instead of filtering silently."""
    with pytest.raises(StepError, match=message):
        run(ORDERS, {"operation": "filter", "field": field, "operator": operator, "value": value})


# -- map --------------------------------------------------------------------------------


def test_map_with_field_and_mapping_replaces_values_by_their_text() -> None:
    """Values are looked up by their text; unmatched values stay."""
    data = [{"p": 1}, {"p": 2}, {"p": 9}, {"p": True}]
    result = run(
        data,
        {"operation": "map", "field": "p", "mapping": {"1": "high", "2": "low", "true": "yes"}},
    )
    assert result == [{"p": "high"}, {"p": "low"}, {"p": 9}, {"p": "yes"}]


def test_map_with_mapping_alone_merges_constants() -> None:
    """pipeline_ex: a mapping without a field is merged into every item."""
    assert run([{"a": 1}], {"operation": "map", "mapping": {"b": 2}}) == [{"a": 1, "b": 2}]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [("uppercase", " HI "), ("lowercase", " hi "), ("trim", "Hi")],
)
def test_map_expressions_rewrite_a_string_field(expression: str, expected: str) -> None:
    """uppercase, lowercase and trim apply to the named string field; null stays null."""
    result = run(
        [{"s": " Hi "}, {"s": None}],
        {"operation": "map", "field": "s", "expression": expression},
    )
    assert result == [{"s": expected}, {"s": None}]


def test_map_fields_copies_dotted_sources_to_new_names() -> None:
    """fields: {new: source.path} adds values, creating nested targets."""
    result = run(
        ORDERS[:1],
        {"operation": "map", "fields": {"who": "customer.name", "meta.first_tag": "tags.0"}},
    )
    assert result[0]["who"] == "Ada"
    assert result[0]["meta"] == {"first_tag": "vip"}
    assert result[0]["id"] == 1


def test_map_does_not_modify_the_input() -> None:
    """Operations return new data; the caller's objects are untouched."""
    data = copy.deepcopy(ORDERS)
    run(data, {"operation": "map", "field": "customer.name", "expression": "uppercase"})
    assert data == ORDERS


def test_map_expression_on_a_non_string_fails() -> None:
    """uppercase on a number is an error naming the item."""
    with pytest.raises(StepError, match="item 0: uppercase needs id to be a string"):
        run(ORDERS, {"operation": "map", "field": "id", "expression": "uppercase"})


@pytest.mark.parametrize(
    "raw",
    [
        {"operation": "map", "field": "a"},
        {"operation": "map", "expression": "uppercase"},
        {"operation": "map", "field": "a", "mapping": {}, "expression": "trim"},
        {"operation": "map", "field": "a", "fields": {"b": "c"}},
        {"operation": "map", "field": "a", "expression": "reverse"},
    ],
)
def test_malformed_maps_are_rejected_at_load(raw: dict[str, Any]) -> None:
    """A map needs exactly one coherent form."""
    with pytest.raises(pydantic.ValidationError):
        ops(raw)


# -- aggregate --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "field", "expected"),
    [
        ("sum", "total", 235.0),
        ("average", "total", 235.0 / 3),
        ("count", "total", 3),
        ("count", None, 4),
        ("min", "total", 40),
        ("max", "total", 120.0),
        ("min", "status", "cancelled"),
        ("first", "status", "completed"),
        ("last", "status", "cancelled"),
        ("unique", "status", ["completed", "pending", "cancelled"]),
    ],
)
def test_aggregate_reduces_field_values_skipping_nulls(
    function: str, field: str | None, expected: Any
) -> None:
    """Each function reduces the non-null values of the field (or the items)."""
    raw: dict[str, Any] = {"operation": "aggregate", "function": function}
    if field is not None:
        raw["field"] = field
    result = run(ORDERS, raw)
    assert result == (pytest.approx(expected) if isinstance(expected, float) else expected)


@pytest.mark.parametrize(
    ("function", "expected"),
    [("sum", 0), ("count", 0), ("average", None), ("min", None), ("first", None)],
)
def test_aggregate_of_nothing_has_a_defined_value(function: str, expected: Any) -> None:
    """Empty input gives 0 for sum/count and null for the others."""
    assert run([], {"operation": "aggregate", "function": function, "field": "x"}) == expected


def test_aggregate_with_group_by_returns_one_value_per_group() -> None:
    """group_by turns the result into {key: value}."""
    result = run(
        ORDERS,
        {"operation": "aggregate", "function": "sum", "field": "total", "group_by": "status"},
    )
    assert result == {"completed": 195.0, "pending": 40, "cancelled": 0}


def test_aggregate_sum_of_text_fails() -> None:
    """Summing strings is an error naming the function and the bad value."""
    with pytest.raises(StepError, match=r"operations\[0\] \(aggregate\).*sum needs numbers"):
        run(ORDERS, {"operation": "aggregate", "function": "sum", "field": "status"})


def test_aggregate_default_function_is_sum() -> None:
    """pipeline_ex's default aggregate function is sum."""
    assert run([{"n": 1}, {"n": 2}], {"operation": "aggregate", "field": "n"}) == 3


# -- join -------------------------------------------------------------------------------

CUSTOMERS = [{"cid": 1, "tier": "gold"}, {"cid": 2, "tier": "silver"}]
PURCHASES = [{"pid": "a", "cid": 1}, {"pid": "b", "cid": 3}, {"pid": "c", "cid": 2}]


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("left", [("a", "gold"), ("b", None), ("c", "silver")]),
        ("inner", [("a", "gold"), ("c", "silver")]),
    ],
)
def test_join_merges_matching_right_items(how: str, expected: list[tuple[str, Any]]) -> None:
    """left keeps unmatched items; inner drops them; right fields win."""
    result = run(PURCHASES, {"operation": "join", "with": CUSTOMERS, "on": "cid", "how": how})
    assert [(item["pid"], item.get("tier")) for item in result] == expected


def test_join_with_left_on_and_right_on() -> None:
    """Different key names on each side."""
    right = [{"key": 1, "tier": "gold"}]
    result = run(
        [{"cid": 1}], {"operation": "join", "right": right, "left_on": "cid", "right_on": "key"}
    )
    assert result == [{"cid": 1, "key": 1, "tier": "gold"}]


def test_join_pipeline_ex_form_resolves_right_source() -> None:
    """left_field/right_source/join_key work; the caller resolves the source."""
    asked: list[str] = []

    def resolve(source: str) -> Any:
        asked.append(source)
        return CUSTOMERS

    result = run(
        [{"customer": 2}],
        {
            "operation": "join",
            "left_field": "customer",
            "right_source": "previous_response:customers",
            "join_key": "cid",
        },
        resolve_source=resolve,
    )
    assert result == [{"customer": 2, "cid": 2, "tier": "silver"}]
    assert asked == ["previous_response:customers"]


def test_join_emits_a_row_per_match_and_numbers_match_across_int_and_float() -> None:
    """Several matches give several rows; 1 and 1.0 are the same key, "1" is not."""
    right = [{"k": 1.0, "v": "x"}, {"k": 1, "v": "y"}, {"k": "1", "v": "z"}]
    result = run([{"k": 1}], {"operation": "join", "right": right, "on": "k", "how": "inner"})
    assert [item["v"] for item in result] == ["x", "y"]


@pytest.mark.parametrize(
    "raw",
    [
        {"operation": "join", "on": "k"},
        {"operation": "join", "right": [], "right_source": "x", "on": "k"},
        {"operation": "join", "right": []},
        {"operation": "join", "right": [], "on": "k", "join_key": "k"},
        {"operation": "join", "right": [], "on": "k", "how": "outer"},
    ],
)
def test_malformed_joins_are_rejected_at_load(raw: dict[str, Any]) -> None:
    """A join needs one right dataset, coherent keys and a known `how`."""
    with pytest.raises(pydantic.ValidationError):
        ops(raw)


def test_join_without_a_resolver_for_right_source_fails() -> None:
    """right_source with no resolver is a StepError."""
    with pytest.raises(StepError, match="source resolver"):
        run([], {"operation": "join", "right_source": "x", "on": "k"})


# -- group_by / sort / select / limit ------------------------------------------------------


def test_group_by_groups_items_under_the_text_of_their_value() -> None:
    """Keys are strings in order of first appearance; null groups under "null"."""
    result = run(ORDERS, {"operation": "group_by", "field": "total"})
    assert list(result) == ["120.0", "40", "75", "null"]
    grouped = run(ORDERS, {"operation": "group_by", "field": "status"})
    assert {key: ids(items) for key, items in grouped.items()} == {
        "completed": [1, 3],
        "pending": [2],
        "cancelled": [4],
    }


@pytest.mark.parametrize(
    ("order", "expected"),
    [("asc", [2, 3, 1, 4]), ("desc", [1, 3, 2, 4])],
)
def test_sort_orders_items_with_nulls_last(order: str, expected: list[int]) -> None:
    """Sorting by a field puts nulls last in both directions."""
    assert ids(run(ORDERS, {"operation": "sort", "field": "total", "order": order})) == expected


def test_sort_is_stable_for_equal_keys() -> None:
    """Items with equal keys keep their order, ascending and descending."""
    data = [{"k": 1, "i": 0}, {"k": 0, "i": 1}, {"k": 1, "i": 2}]
    for order, expected in (("asc", [1, 0, 2]), ("desc", [0, 2, 1])):
        result = run(data, {"operation": "sort", "field": "k", "order": order})
        assert [item["i"] for item in result] == expected


def test_sort_of_mixed_types_fails() -> None:
    """Numbers and strings in one sort field are an error listing the types."""
    data = [{"k": 1}, {"k": "a"}]
    with pytest.raises(StepError, match=r"operations\[0\] \(sort\).*number, string"):
        run(data, {"operation": "sort", "field": "k"})


def test_select_keeps_only_the_named_fields() -> None:
    """Dotted paths are kept nested."""
    result = run(ORDERS[:2], {"operation": "select", "fields": ["id", "customer.name"]})
    assert result == [
        {"id": 1, "customer": {"name": "Ada"}},
        {"id": 2, "customer": {"name": "Bob"}},
    ]


@pytest.mark.parametrize(
    ("count", "offset", "expected"),
    [(2, 0, [1, 2]), (2, 3, [4]), (0, 0, []), (10, 0, [1, 2, 3, 4])],
)
def test_limit_keeps_count_items_after_offset(count: int, offset: int, expected: list[int]) -> None:
    """limit slices the list."""
    result = run(ORDERS, {"operation": "limit", "count": count, "offset": offset})
    assert ids(result) == expected


# -- chaining and errors -----------------------------------------------------------------


def test_operations_chain_in_order() -> None:
    """Each operation receives the previous result."""
    result = run(
        ORDERS,
        {"operation": "filter", "field": "status", "operator": "==", "value": "completed"},
        {"operation": "sort", "field": "total", "order": "desc"},
        {"operation": "select", "fields": ["id"]},
        {"operation": "limit", "count": 1},
    )
    assert result == [{"id": 1}]


def test_empty_operation_list_returns_the_input() -> None:
    """No operations: the data comes back unchanged."""
    assert apply_operations(ORDERS, []) is ORDERS


@pytest.mark.parametrize(
    "data",
    [{"items": []}, "text", 3, None],
)
def test_non_list_input_fails_with_the_operation_index(data: Any) -> None:
    """Operations over items refuse a non-list, naming the failing operation."""
    with pytest.raises(
        StepError, match=r"operations\[0\] \(sort\) failed: the input must be a list"
    ):
        run(data, {"operation": "sort", "field": "k"})


def test_a_grouped_result_cannot_be_sorted_further() -> None:
    """group_by returns an object, so a following sort fails at index 1."""
    with pytest.raises(StepError, match=r"operations\[1\] \(sort\).*must be a list"):
        run(
            ORDERS,
            {"operation": "group_by", "field": "status"},
            {"operation": "sort", "field": "k"},
        )


def test_missing_field_names_the_item_and_the_known_fields() -> None:
    """A missing field says which item and which fields it has."""
    with pytest.raises(StepError, match=r"item 1 has no field 'k' \(item has fields: j\)"):
        run([{"k": 1}, {"j": 2}], {"operation": "sort", "field": "k"}, step="tidy")


def test_step_name_is_carried_on_the_error() -> None:
    """The caller's step name is attached to the StepError."""
    with pytest.raises(StepError) as caught:
        run("x", {"operation": "limit", "count": 1}, step="tidy")
    assert caught.value.step == "tidy"


def test_non_object_items_are_refused() -> None:
    """Operations that read fields need objects."""
    with pytest.raises(StepError, match=r"item 0 must be an object, not 3"):
        run([3], {"operation": "select", "fields": ["a"]})


def test_unknown_operation_is_rejected_at_load() -> None:
    """The discriminator refuses an operation name it does not know."""
    with pytest.raises(pydantic.ValidationError, match="flatten"):
        ops({"operation": "flatten"})


def test_models_are_frozen() -> None:
    """Parsed operations cannot be changed."""
    (op,) = ops({"operation": "limit", "count": 1})
    with pytest.raises(pydantic.ValidationError):
        op.count = 2  # type: ignore[misc,union-attr]
