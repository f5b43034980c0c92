"""instance_for makes deterministic values that validate against the schema they came from."""

from __future__ import annotations

import datetime
import re
import uuid
from typing import Any

import pytest
from jsonschema import validators

from runtime.providers.schema_instance import instance_for


def assert_valid(schema: Any, value: Any) -> None:
    cls = validators.validator_for(schema)
    cls(schema, format_checker=cls.FORMAT_CHECKER).validate(value)


SCHEMAS: list[tuple[str, Any]] = [
    ("string", {"type": "string"}),
    ("integer", {"type": "integer"}),
    ("number", {"type": "number"}),
    ("boolean", {"type": "boolean"}),
    ("null", {"type": "null"}),
    ("empty schema", {}),
    ("true schema", True),
    ("type list", {"type": ["null", "integer"]}),
    ("enum", {"enum": ["low", "medium", "high"]}),
    ("enum filtered by type", {"type": "integer", "enum": ["one", 2, 3]}),
    ("const", {"const": {"fixed": [1, 2]}}),
    (
        "object with all properties",
        {
            "type": "object",
            "properties": {
                "summary": {"type": "string", "minLength": 10},
                "key_points": {"type": "array", "items": {"type": "string"}, "minItems": 3},
                "score": {"type": "number", "minimum": 0, "maximum": 1},
            },
            "required": ["summary"],
            "additionalProperties": False,
        },
    ),
    (
        "required without properties",
        {"type": "object", "required": ["id"], "additionalProperties": {"type": "integer"}},
    ),
    ("min and max properties", {"type": "object", "minProperties": 2, "maxProperties": 3}),
    (
        "prefix items",
        {
            "type": "array",
            "prefixItems": [{"type": "string"}, {"type": "integer"}],
            "items": False,
        },
    ),
    (
        "draft 7 tuple items",
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "array",
            "items": [{"type": "boolean"}, {"type": "null"}],
            "additionalItems": False,
        },
    ),
    ("min and max items", {"type": "array", "items": {"type": "integer"}, "minItems": 5}),
    ("max items zero", {"type": "array", "maxItems": 0}),
    (
        "unique enum items",
        {"type": "array", "items": {"enum": ["a", "b", "c"]}, "minItems": 3, "uniqueItems": True},
    ),
    ("contains", {"type": "array", "contains": {"const": 7}, "minItems": 2}),
    ("exclusive bounds", {"type": "number", "exclusiveMinimum": 1, "exclusiveMaximum": 2}),
    (
        "draft 4 boolean exclusive bounds",
        {
            "$schema": "http://json-schema.org/draft-04/schema#",
            "type": "integer",
            "minimum": 3,
            "exclusiveMinimum": True,
            "maximum": 5,
            "exclusiveMaximum": True,
        },
    ),
    ("integer multipleOf", {"type": "integer", "multipleOf": 7, "minimum": 50, "maximum": 60}),
    ("float multipleOf", {"type": "number", "multipleOf": 0.25, "minimum": 0.3}),
    ("integer with float multipleOf", {"type": "integer", "multipleOf": 2.5}),
    ("short string", {"type": "string", "maxLength": 4}),
    ("long string", {"type": "string", "minLength": 200}),
    ("date", {"type": "string", "format": "date"}),
    ("date-time", {"type": "string", "format": "date-time"}),
    ("email", {"type": "string", "format": "email"}),
    ("uri", {"type": "string", "format": "uri"}),
    ("uuid", {"type": "string", "format": "uuid"}),
    ("pattern with anchors", {"type": "string", "pattern": r"^[A-Z]{3}-\d{4}$"}),
    ("pattern with alternation", {"type": "string", "pattern": r"^(red|green)-[a-f0-9]+$"}),
    ("pattern with negated class", {"type": "string", "pattern": r"^[^a-z]{2,}$"}),
    ("unanchored pattern with min length", {"pattern": r"\d\d", "minLength": 30}),
    (
        "anyOf picks the first satisfiable branch",
        {"anyOf": [{"type": "string", "minLength": 5, "maxLength": 2}, {"type": "integer"}]},
    ),
    (
        "oneOf needs exactly one branch",
        {"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 0}]},
    ),
    (
        "allOf merges",
        {
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "integer", "minimum": 5}}},
                {"properties": {"a": {"maximum": 6}, "b": {"type": "string"}}, "required": ["b"]},
            ]
        },
    ),
    (
        "local refs in $defs and definitions",
        {
            "$defs": {"name": {"type": "string", "minLength": 3}},
            "definitions": {"age": {"type": "integer", "minimum": 18}},
            "type": "object",
            "properties": {
                "name": {"$ref": "#/$defs/name"},
                "age": {"$ref": "#/definitions/age"},
            },
        },
    ),
    (
        "recursive ref ends",
        {
            "$defs": {
                "node": {
                    "type": "object",
                    "properties": {
                        "label": {"type": "string"},
                        "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                    },
                    "required": ["label"],
                }
            },
            "$ref": "#/$defs/node",
        },
    ),
    (
        "dependentRequired",
        {
            "type": "object",
            "properties": {"card": {"type": "string"}},
            "dependentRequired": {"card": ["billing_address"]},
        },
    ),
    (
        "nested objects in arrays",
        {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"title": {"type": "string"}, "done": {"type": "boolean"}},
                "required": ["title", "done"],
            },
            "uniqueItems": True,
        },
    ),
]


@pytest.mark.parametrize(("label", "schema"), SCHEMAS, ids=[label for label, _ in SCHEMAS])
def test_every_schema_in_the_table_gets_a_valid_instance(label: str, schema: Any) -> None:
    """Each supported construct yields a value that jsonschema accepts, formats included."""
    assert_valid(schema, instance_for(schema, seed="3fa9c2d1"))


@pytest.mark.parametrize(("label", "schema"), SCHEMAS, ids=[label for label, _ in SCHEMAS])
def test_the_same_schema_and_seed_give_the_same_value(label: str, schema: Any) -> None:
    """Generation is a pure function of the schema and the seed."""
    assert instance_for(schema, seed="abc") == instance_for(schema, seed="abc")


def test_strings_are_built_from_the_property_name_and_the_seed() -> None:
    """Strings read like 'summary of <seed>', so outputs differ between prompts."""
    schema = {"type": "object", "properties": {"summary": {"type": "string"}}}
    assert instance_for(schema, seed="3fa9c2d1") == {"summary": "summary of 3fa9c2d1"}
    assert instance_for(schema) == {"summary": "summary"}


def test_all_properties_are_filled_not_only_the_required_ones() -> None:
    """Optional properties appear too, so downstream templates find every field."""
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
        "required": ["a"],
    }
    assert set(instance_for(schema)) == {"a", "b"}


def test_array_items_differ_from_each_other() -> None:
    """Items carry their position, so a list of strings has no duplicates."""
    value = instance_for({"type": "array", "items": {"type": "string"}, "minItems": 3}, seed="s")
    assert value == ["value 1 of s", "value 2 of s", "value 3 of s"]


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string", "examples": ["first", "second"], "default": "d"}, "first"),
        ({"type": "string", "default": "fallback"}, "fallback"),
        ({"type": "string", "maxLength": 3, "examples": ["too long"], "default": "ok"}, "ok"),
        ({"type": "integer", "examples": ["not an int"], "minimum": 4, "maximum": 4}, 4),
    ],
)
def test_examples_then_default_are_preferred_when_they_are_valid(
    schema: dict[str, Any], expected: Any
) -> None:
    """A valid examples[0] wins over default, and an invalid one is skipped."""
    assert instance_for(schema) == expected


@pytest.mark.parametrize(
    ("fmt", "parse"),
    [
        ("date", datetime.date.fromisoformat),
        ("date-time", lambda text: datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))),
        ("uuid", uuid.UUID),
    ],
)
def test_formatted_strings_parse_with_the_standard_library(fmt: str, parse: Any) -> None:
    """Dates, timestamps and UUIDs are real ones, not just strings."""
    parse(instance_for({"type": "string", "format": fmt}, seed="x"))


def test_a_pattern_is_matched_by_the_generated_string() -> None:
    """Patterns are honoured for the simple expressions schemas use."""
    value = instance_for({"type": "string", "pattern": r"^INV-\d{6}$"})
    assert re.fullmatch(r"INV-\d{6}", value)


def test_a_recursive_schema_without_end_is_reported() -> None:
    """A $ref to itself with nothing else cannot produce a value and says so."""
    with pytest.raises(ValueError, match=r"\$ref"):
        instance_for({"$defs": {"loop": {"$ref": "#/$defs/loop"}}, "$ref": "#/$defs/loop"})


@pytest.mark.parametrize(
    ("schema", "keyword"),
    [
        ({"not": {"type": "string"}}, "'not'"),
        ({"if": {"type": "string"}, "then": {"minLength": 2}}, "'if'"),
        ({"type": "object", "patternProperties": {"^x": {}}}, "'patternProperties'"),
        ({"type": "object", "propertyNames": {"maxLength": 3}}, "'propertyNames'"),
        ({"$ref": "https://example.com/schema.json"}, "'\\$ref'"),
        ({"$ref": "#/$defs/missing"}, "'\\$ref'"),
        ({"type": "strnig"}, "'type'"),
        ({"type": "integer", "minimum": 5, "maximum": 4}, "'minimum'"),
        ({"type": "string", "pattern": "(?=lookahead)x"}, "'pattern'"),
        ({"type": "string", "minLength": 3, "enum": ["a", "b"]}, "'enum'"),
        ({"allOf": [{"type": "string"}, {"type": "integer"}]}, "'type'"),
        ({"type": "object", "required": ["x"], "additionalProperties": False}, "'additional"),
        (False, "'false'"),
    ],
)
def test_unsupported_or_unsatisfiable_schemas_raise_a_value_error_naming_the_keyword(
    schema: Any, keyword: str
) -> None:
    """The error says which keyword could not be handled."""
    with pytest.raises(ValueError, match=keyword):
        instance_for(schema)
