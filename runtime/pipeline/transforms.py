"""The operations of a ``data_transform`` step, over JSON-like data.

``apply_operations(data, operations)`` runs the operations in order, each on
the previous one's result. Most operations take a list of objects (dicts) and
return one; ``group_by`` returns ``{key: [items]}`` and ``aggregate`` a value
(or ``{key: value}`` with ``group_by``).

=========  ==============================================================
operation  fields
=========  ==============================================================
filter     ``condition`` (an expression, evaluated per item by the caller's
           condition evaluator), or ``field`` + ``operator`` + ``value`` with
           operators ``== != > < >= <= contains in``
map        ``field`` + ``mapping`` (replace the value by its entry in the
           table; unmatched values stay), ``mapping`` alone (merge constants
           into every item), ``field`` + ``expression`` (uppercase, lowercase,
           trim), or ``fields: {new_name: source.path}`` (copy values)
aggregate  ``function`` (sum, average, count, min, max, first, last, unique),
           optional ``field`` and ``group_by``
join       other dataset as ``right`` (alias ``with``, inline data) or
           ``right_source`` (a reference resolved by the caller); keys ``on``
           or ``left_on``/``right_on`` (pipeline_ex: ``left_field``,
           ``join_key``); ``how``: left (default) or inner
group_by   ``field``
sort       ``field``, ``order`` asc/desc; nulls sort last either way
select     ``fields``: the dotted paths to keep
limit      ``count`` and optional ``offset``
=========  ==============================================================

Field paths are dotted (``author.name``, ``items.0``). Unlike pipeline_ex,
nothing fails silently: a missing field, a non-list input, values that cannot
be compared or summed raise ``StepError`` naming the operation's index and
name. Null values are tolerated: they compare false (except ``==``/``!=``),
sort last, and are skipped by aggregates. A ``field`` next to a string
``condition`` is accepted for pipeline_ex files; the condition sees the item.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from runtime.errors import ElexirionError, StepError

__all__ = [
    "AggregateOp",
    "FilterOp",
    "GroupByOp",
    "JoinOp",
    "LimitOp",
    "MapOp",
    "PredicateFactory",
    "SelectOp",
    "SortOp",
    "SourceResolver",
    "TransformOp",
    "apply_operations",
]

Predicate = Callable[[Any], bool]
PredicateFactory = Callable[[str], Predicate]
"""Compiles a condition string into a predicate over one item."""
SourceResolver = Callable[[str], Any]
"""Returns the data a ``right_source`` reference (``previous_response:users``) names."""

Comparison = Literal["==", "!=", ">", "<", ">=", "<=", "contains", "in"]


class _Op(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class FilterOp(_Op):
    """Keep the items a condition holds for."""

    operation: Literal["filter"]
    condition: str | None = None
    field: str | None = None
    operator: Comparison | None = None
    value: Any = None

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        if self.condition is not None:
            if self.operator is not None or "value" in self.model_fields_set:
                raise ValueError("give either 'condition' or 'field'/'operator'/'value', not both")
        elif self.field is None or self.operator is None:
            raise ValueError("a filter needs 'condition', or 'field' and 'operator' (and 'value')")
        elif "value" not in self.model_fields_set:
            raise ValueError(f"operator {self.operator!r} needs a 'value' to compare with")
        return self


class MapOp(_Op):
    """Rewrite every item."""

    operation: Literal["map"]
    field: str | None = None
    mapping: dict[str, Any] | None = None
    expression: Literal["uppercase", "lowercase", "trim"] | None = None
    fields: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        given = [
            name for name in ("mapping", "expression", "fields") if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError("a map needs exactly one of 'mapping', 'expression' or 'fields'")
        if self.expression is not None and self.field is None:
            raise ValueError("'expression' needs the 'field' it applies to")
        if self.fields is not None and self.field is not None:
            raise ValueError("'fields' names its own targets; drop 'field'")
        return self


class AggregateOp(_Op):
    """Reduce the items (or each group of them) to one value."""

    operation: Literal["aggregate"]
    function: Literal["sum", "average", "count", "min", "max", "first", "last", "unique"] = "sum"
    field: str | None = None
    group_by: str | None = None


class JoinOp(_Op):
    """Merge each item with the items of another dataset whose key matches."""

    operation: Literal["join"]
    right: Any = Field(default=None, validation_alias=AliasChoices("right", "with"))
    right_source: str | None = None
    on: str | None = None
    left_on: str | None = None
    right_on: str | None = None
    left_field: str | None = None
    join_key: str | None = None
    how: Literal["left", "inner"] = "left"

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        has_right = "right" in self.model_fields_set
        if has_right == (self.right_source is not None):
            raise ValueError("a join needs exactly one of 'right' (or 'with') and 'right_source'")
        if self.on is not None and self.join_key is not None:
            raise ValueError("'on' and 'join_key' mean the same; give one")
        if self.left_on is not None and self.left_field is not None:
            raise ValueError("'left_on' and 'left_field' mean the same; give one")
        if self.left_key is None or self.right_key is None:
            raise ValueError("a join needs 'on', or 'left_on' and 'right_on'")
        return self

    @property
    def left_key(self) -> str | None:
        return self.left_on or self.left_field or self.on or self.join_key

    @property
    def right_key(self) -> str | None:
        return self.right_on or self.on or self.join_key


class GroupByOp(_Op):
    """Group the items by a field's value into ``{key: [items]}``."""

    operation: Literal["group_by"]
    field: str


class SortOp(_Op):
    """Sort the items by a field; nulls go last in both orders; ties keep their order."""

    operation: Literal["sort"]
    field: str
    order: Literal["asc", "desc"] = "asc"


class SelectOp(_Op):
    """Keep only the given fields of every item."""

    operation: Literal["select"]
    fields: tuple[str, ...] = Field(min_length=1)


class LimitOp(_Op):
    """Keep ``count`` items, after skipping ``offset``."""

    operation: Literal["limit"]
    count: int = Field(ge=0)
    offset: int = Field(default=0, ge=0)


TransformOp = Annotated[
    FilterOp | MapOp | AggregateOp | JoinOp | GroupByOp | SortOp | SelectOp | LimitOp,
    Field(discriminator="operation"),
]


class _Failure(Exception):
    """One operation failed; ``apply_operations`` adds which one."""

    def __init__(self, message: str, cause: ElexirionError | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause


def apply_operations(
    data: Any,
    operations: Sequence[TransformOp],
    *,
    predicate_factory: PredicateFactory | None = None,
    resolve_source: SourceResolver | None = None,
    step: str | None = None,
) -> Any:
    """Apply ``operations`` in order and return the result; ``data`` is not modified.

    ``predicate_factory`` compiles string conditions of ``filter``;
    ``resolve_source`` resolves ``right_source`` of ``join``. Each is needed
    only if an operation uses it. Raises ``StepError`` naming the operation.
    """
    result = data
    for index, op in enumerate(operations):
        try:
            result = _apply(result, op, predicate_factory, resolve_source)
        except _Failure as failure:
            kind = failure.cause.kind if failure.cause is not None else None
            raise StepError(
                f"data_transform operations[{index}] ({op.operation}) failed: {failure.message}",
                step=step,
                kind=kind,
                cause=failure.cause,
            ) from failure.cause
    return result


def _apply(
    data: Any,
    op: TransformOp,
    predicate_factory: PredicateFactory | None,
    resolve_source: SourceResolver | None,
) -> Any:
    items = _require_list(data, "the input")
    match op:
        case FilterOp():
            return _filter(items, op, predicate_factory)
        case MapOp():
            return [_map_item(item, i, op) for i, item in enumerate(items)]
        case AggregateOp():
            return _aggregate(items, op)
        case JoinOp():
            return _join(items, op, resolve_source)
        case GroupByOp():
            return _groups(items, op.field, "field")
        case SortOp():
            return _sort(items, op)
        case SelectOp():
            return [_select(item, i, op.fields) for i, item in enumerate(items)]
        case LimitOp():
            return items[op.offset : op.offset + op.count]


# -- filter ---------------------------------------------------------------------------


def _filter(
    items: list[Any], op: FilterOp, predicate_factory: PredicateFactory | None
) -> list[Any]:
    if op.condition is not None:
        if predicate_factory is None:
            raise _Failure("a string condition needs a condition evaluator; none was given")
        try:
            predicate = predicate_factory(op.condition)
            return [item for item in items if predicate(item)]
        except ElexirionError as error:
            raise _Failure(f"condition {op.condition!r}: {error}", error) from error
    assert op.field is not None and op.operator is not None  # guaranteed by the model
    return [
        item
        for i, item in enumerate(items)
        if _compare(_field(item, op.field, i), op.operator, op.value, op.field)
    ]


def _compare(left: Any, operator: Comparison, right: Any, field: str) -> bool:
    match operator:
        case "==":
            return bool(left == right)
        case "!=":
            return bool(left != right)
        case "contains":
            return _contains(left, right, field)
        case "in":
            if left is None:
                return False
            if isinstance(right, str) and isinstance(left, str):
                return left in right
            if isinstance(right, list):
                return left in right
            raise _Failure(f"'in' needs a list (or a string) as value, not {_describe(right)}")
    if left is None or right is None:
        return False
    if _order_class(left) != _order_class(right) or _order_class(left) is None:
        raise _Failure(
            f"cannot compare {field} = {_describe(left)} with {_describe(right)} using {operator}"
        )
    match operator:
        case ">":
            return bool(left > right)
        case "<":
            return bool(left < right)
        case ">=":
            return bool(left >= right)
        case _:
            return bool(left <= right)


def _contains(haystack: Any, needle: Any, field: str) -> bool:
    if haystack is None:
        return False
    if isinstance(haystack, str):
        if not isinstance(needle, str):
            raise _Failure(f"{field} is a string; 'contains' needs a string, not {needle!r}")
        return needle in haystack
    if isinstance(haystack, list | dict):
        return needle in haystack
    raise _Failure(f"'contains' needs {field} to be a string, list or object, not {haystack!r}")


# -- map / select -----------------------------------------------------------------------


def _map_item(item: Any, index: int, op: MapOp) -> Any:
    obj = _require_object(item, index)
    if op.fields is not None:
        result = dict(obj)
        for target, source in op.fields.items():
            result = _set(result, target, _field(obj, source, index))
        return result
    if op.mapping is not None and op.field is None:
        return {**obj, **op.mapping}
    assert op.field is not None
    current = _field(obj, op.field, index)
    if op.mapping is not None:
        return _set(obj, op.field, op.mapping.get(_key_string(current), current))
    if current is None:
        return obj
    if not isinstance(current, str):
        raise _Failure(
            f"item {index}: {op.expression} needs {op.field} to be a string, "
            f"not {_describe(current)}"
        )
    match op.expression:
        case "uppercase":
            return _set(obj, op.field, current.upper())
        case "lowercase":
            return _set(obj, op.field, current.lower())
        case _:
            return _set(obj, op.field, current.strip())


def _select(item: Any, index: int, fields: tuple[str, ...]) -> dict[str, Any]:
    obj = _require_object(item, index)
    result: dict[str, Any] = {}
    for path in fields:
        result = _set(result, path, _field(obj, path, index))
    return result


# -- aggregate / group_by -----------------------------------------------------------------


def _aggregate(items: list[Any], op: AggregateOp) -> Any:
    if op.group_by is None:
        return _reduce(_values(items, op.field), op)
    return {
        key: _reduce(_values(group, op.field), op)
        for key, group in _groups(items, op.group_by, "group_by").items()
    }


def _values(items: list[Any], field: str | None) -> list[Any]:
    if field is None:
        return items
    values = (_field(item, field, i) for i, item in enumerate(items))
    return [value for value in values if value is not None]


def _reduce(values: list[Any], op: AggregateOp) -> Any:
    match op.function:
        case "count":
            return len(values)
        case "first":
            return values[0] if values else None
        case "last":
            return values[-1] if values else None
        case "unique":
            seen: set[str] = set()
            unique = []
            for value in values:
                marker = json.dumps(value, sort_keys=True, default=repr)
                if marker not in seen:
                    seen.add(marker)
                    unique.append(value)
            return unique
        case "sum" | "average":
            numbers = _numbers(values, op)
            if op.function == "sum":
                return sum(numbers)
            return sum(numbers) / len(numbers) if numbers else None
        case _:
            if not values:
                return None
            classes = {_order_class(value) for value in values}
            if len(classes) != 1 or None in classes:
                raise _Failure(
                    f"{op.function} needs all numbers or all strings in {op.field or 'the items'}; "
                    f"found {_type_names(values)}"
                )
            return min(values) if op.function == "min" else max(values)


def _numbers(values: list[Any], op: AggregateOp) -> list[int | float]:
    bad = [value for value in values if _order_class(value) != "number"]
    if bad:
        raise _Failure(
            f"{op.function} needs numbers in {op.field or 'the items'}; found {_describe(bad[0])}"
        )
    return values


def _groups(items: list[Any], field: str, what: str) -> dict[str, list[Any]]:
    groups: dict[str, list[Any]] = {}
    for index, item in enumerate(items):
        value = _field(item, field, index)
        if isinstance(value, dict | list):
            raise _Failure(f"item {index}: cannot group by {what} {field}, a {_type_name(value)}")
        groups.setdefault(_key_string(value), []).append(item)
    return groups


# -- join -------------------------------------------------------------------------------


def _join(items: list[Any], op: JoinOp, resolve_source: SourceResolver | None) -> list[Any]:
    if op.right_source is not None:
        if resolve_source is None:
            raise _Failure(f"right_source {op.right_source!r} needs a source resolver; none given")
        try:
            right = resolve_source(op.right_source)
        except ElexirionError as error:
            raise _Failure(f"right_source {op.right_source!r}: {error}", error) from error
    else:
        right = op.right
    if isinstance(right, dict):
        right = [right]
    right_items = _require_list(right, "the right dataset")
    left_key, right_key = op.left_key, op.right_key
    assert left_key is not None and right_key is not None  # guaranteed by the model

    index: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for position, candidate in enumerate(right_items):
        obj = _require_object(candidate, position, "right item")
        key = _join_key(_field(obj, right_key, position, "right item"))
        if key is not None:
            index.setdefault(key, []).append(obj)

    joined: list[Any] = []
    for position, item in enumerate(items):
        obj = _require_object(item, position)
        key = _join_key(_field(obj, left_key, position))
        matches = index.get(key, []) if key is not None else []
        if matches:
            joined.extend({**obj, **match} for match in matches)
        elif op.how == "left":
            joined.append(obj)
    return joined


def _join_key(value: Any) -> tuple[str, Any] | None:
    if value is None:
        return None
    kind = _order_class(value)
    if kind is None:
        # Objects and lists match by their JSON form.
        return ("json", json.dumps(value, sort_keys=True, default=repr))
    return (kind, value)


# -- sort -------------------------------------------------------------------------------


def _sort(items: list[Any], op: SortOp) -> list[Any]:
    keyed = [(_field(item, op.field, i), item) for i, item in enumerate(items)]
    present = [(value, item) for value, item in keyed if value is not None]
    nulls = [item for value, item in keyed if value is None]
    classes = {_order_class(value) for value, _ in present}
    if None in classes or len(classes) > 1:
        raise _Failure(
            f"cannot sort by {op.field}: its values must all be numbers, all strings or all "
            f"booleans; found {_type_names([value for value, _ in present])}"
        )
    ordered = sorted(present, key=lambda pair: pair[0], reverse=op.order == "desc")
    return [item for _, item in ordered] + nulls


# -- helpers ----------------------------------------------------------------------------


def _require_list(data: Any, what: str) -> list[Any]:
    if not isinstance(data, list):
        raise _Failure(
            f"{what} must be a list, not {_describe(data)}; "
            "point input_source at a list, or use a dotted path to one"
        )
    return data


def _require_object(item: Any, index: int, what: str = "item") -> dict[str, Any]:
    if not isinstance(item, dict):
        raise _Failure(f"{what} {index} must be an object, not {_describe(item)}")
    return item


def _field(item: Any, path: str, index: int, what: str = "item") -> Any:
    current = item
    walked: list[str] = []
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            where = ".".join(walked) or what
            if isinstance(current, dict):
                known = ", ".join(sorted(map(str, current))) or "none"
                raise _Failure(
                    f"{what} {index} has no field {path!r} ({where} has fields: {known})"
                )
            raise _Failure(
                f"{what} {index} has no field {path!r} ({where} is {_describe(current)})"
            )
        walked.append(part)
    return current


def _set(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``obj`` with ``path`` set, copying the dicts along the way."""
    head, _, rest = path.partition(".")
    if not rest:
        return {**obj, head: value}
    child = obj.get(head)
    return {**obj, head: _set(child if isinstance(child, dict) else {}, rest, value)}


def _order_class(value: Any) -> str | None:
    """Values of the same class can be ordered against each other."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _key_string(value: Any) -> str:
    """The text a value is looked up by in a mapping table or grouped under."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "list", str: "string", bool: "boolean"}.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )


def _type_names(values: list[Any]) -> str:
    return ", ".join(sorted({_type_name(value) for value in values}))


def _describe(value: Any) -> str:
    text = json.dumps(value, default=repr)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({_type_name(value)})"
