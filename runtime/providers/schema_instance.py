"""Make a value that validates against a JSON Schema, deterministically.

The mock provider answers structured-output requests and function calls with
these values, so a pipeline with ``output_schema`` steps runs end to end with
no model behind it. ``instance_for(schema, seed=...)`` returns the same value
for the same schema and seed; strings are built from property names and the
seed (``"summary of 3fa9c2d1"``), so outputs are readable in demos and differ
between prompts.

Supported: ``type`` (single or list), ``enum``, ``const``, ``properties`` (all
of them are filled, not only ``required``), ``required``,
``additionalProperties``, ``minProperties``/``maxProperties``,
``dependentRequired``, ``items``/``prefixItems``/``additionalItems``,
``contains``, ``minItems``/``maxItems``, ``uniqueItems``, ``minimum``/
``maximum`` and their exclusive forms, ``multipleOf``, ``minLength``/
``maxLength``, ``format`` (date, date-time, time, email, uri, uuid, hostname,
ipv4, ipv6), ``pattern`` (best effort: candidates are checked with ``re``),
``anyOf``/``oneOf`` (the first branch that yields a valid value), ``allOf``
(merged), local ``$ref`` (``#/$defs/...``, ``#/definitions/...``, any JSON
pointer into the document) and ``examples``/``default`` (used when valid).

Every result is validated against the whole schema before it is returned; a
keyword that is not supported, or a value that cannot be satisfied, raises a
``ValueError`` that names the keyword and where it sits in the schema.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import uuid
import zlib
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

from jsonschema import exceptions as jsonschema_exceptions, validators as jsonschema_validators
from jsonschema.protocols import Validator

__all__ = ["instance_for"]

_UNSUPPORTED = frozenset(
    {
        "not",
        "if",
        "then",
        "else",
        "patternProperties",
        "propertyNames",
        "dependentSchemas",
        "unevaluatedItems",
        "contentSchema",
        "$dynamicRef",
        "$recursiveRef",
    }
)
_TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
_FULL_DEPTH = 6
"""Past this nesting depth only required properties and minItems items are made,
so recursive schemas (trees, linked lists) end."""
_MAX_DEPTH = 40
_DEFAULT_ITEMS = 2
_LOWER_BOUNDS = ("minimum", "minLength", "minItems", "minProperties", "exclusiveMinimum")
_UPPER_BOUNDS = ("maximum", "maxLength", "maxItems", "maxProperties", "exclusiveMaximum")
_FIRST_WINS = frozenset(
    {"title", "description", "default", "examples", "$comment", "$id", "$schema", "$anchor"}
)


def instance_for(schema: Mapping[str, Any] | bool, *, seed: str = "") -> Any:
    """Return a value that validates against ``schema``; the same one for the same seed.

    Raises ``ValueError`` naming the keyword when the schema uses a construct
    this generator does not support or cannot be satisfied.
    """
    generator = _Generator(schema, seed)
    value = generator.generate(schema, _Spot("#", "value", "", 0, 0))
    error = jsonschema_exceptions.best_match(generator.validator.iter_errors(value))
    if error is not None:
        where = "#/" + "/".join(str(part) for part in error.absolute_schema_path)
        raise ValueError(
            f"could not generate a value satisfying {error.validator!r} at {where}: "
            f"{error.message}; give that schema an 'examples' entry that is valid"
        )
    return value


class _Spot:
    """Where the generator is: schema path, property name, index suffix, depth, variant."""

    __slots__ = ("depth", "name", "path", "suffix", "variant")

    def __init__(self, path: str, name: str, suffix: str, depth: int, variant: int) -> None:
        self.path = path
        self.name = name
        self.suffix = suffix
        self.depth = depth
        self.variant = variant

    def at(self, path: str) -> _Spot:
        return _Spot(path, self.name, self.suffix, self.depth, self.variant)

    def child(self, path: str, name: str) -> _Spot:
        return _Spot(path, name, self.suffix, self.depth + 1, self.variant)

    def item(self, path: str, index: int) -> _Spot:
        return _Spot(path, self.name, f"{self.suffix} {index + 1}", self.depth + 1, index)

    @property
    def label(self) -> str:
        return f"{self.name.replace('_', ' ')}{self.suffix}"


class _Generator:
    def __init__(self, root: Mapping[str, Any] | bool, seed: str) -> None:
        self._root = root
        self._seed = seed
        cls = jsonschema_validators.validator_for(root)
        try:
            cls.check_schema(root)  # type: ignore[arg-type]  # the stub says dict; bool and Mapping work
        except jsonschema_exceptions.SchemaError as exc:
            parts = [str(part) for part in exc.absolute_path]
            keyword = next((part for part in reversed(parts) if not part.isdigit()), exc.validator)
            raise ValueError(
                f"not a valid JSON Schema: keyword {keyword!r} at #/{'/'.join(parts)}: "
                f"{exc.message}"
            ) from None
        self.validator: Validator = cls(root, format_checker=cls.FORMAT_CHECKER)
        self._types: dict[str, Callable[[Mapping[str, Any], _Spot], Any]] = {
            "object": self._object,
            "array": self._array,
            "string": self._string,
            "number": self._number,
            "integer": self._integer,
            "boolean": self._boolean,
            "null": self._null,
        }

    def is_valid(self, schema: Mapping[str, Any], value: Any) -> bool:
        return self.validator.evolve(schema=schema).is_valid(value)

    def generate(self, schema: Any, spot: _Spot) -> Any:
        if spot.depth > _MAX_DEPTH:
            raise ValueError(
                f"'$ref' recursion deeper than {_MAX_DEPTH} levels at {spot.path}: "
                "the schema has no finite instance"
            )
        node = self._flatten(schema, spot.path, 0)
        if "const" in node:
            return copy.deepcopy(node["const"])
        for candidate in _preferred(node):
            if self.is_valid(node, candidate):
                return copy.deepcopy(candidate)
        if "anyOf" in node or "oneOf" in node:
            return self._one_of(node, spot)
        if "enum" in node:
            return self._enum(node, spot)
        types = _types_of(node, spot.path)
        first_error: ValueError | None = None
        for name in types:
            try:
                value = self._types[name](node, spot)
            except ValueError as exc:
                first_error = first_error or exc
                continue
            if len(types) == 1 or self.is_valid(node, value):
                return value
        if first_error is not None:
            raise first_error
        raise ValueError(f"no type listed in 'type' at {spot.path} yields a valid value")

    # -- schema shaping -------------------------------------------------------

    def _flatten(self, schema: Any, path: str, refs: int) -> dict[str, Any]:
        """Resolve ``$ref`` and merge ``allOf`` so only plain keywords remain."""
        if schema is True:
            return {}
        if schema is False:
            raise ValueError(f"the schema at {path} is 'false': no value satisfies it")
        if not isinstance(schema, Mapping):
            raise ValueError(f"expected a schema object at {path}, got {type(schema).__name__}")
        for keyword in schema:
            if keyword in _UNSUPPORTED:
                raise ValueError(f"JSON Schema keyword {keyword!r} at {path} is not supported")
        dependencies = schema.get("dependencies")
        if isinstance(dependencies, Mapping) and any(
            not isinstance(value, list) for value in dependencies.values()
        ):
            raise ValueError(
                f"JSON Schema keyword 'dependencies' with a schema at {path} is not supported"
            )
        node = {key: value for key, value in schema.items() if key not in ("$ref", "allOf")}
        if "$ref" in schema:
            if refs > _MAX_DEPTH:
                raise ValueError(f"'$ref' at {path} refers to itself without end")
            ref = schema["$ref"]
            target = self._resolve(ref, path)
            node = _merge(self._flatten(target, ref, refs + 1), node, path)
        if "allOf" in schema:
            parts = schema["allOf"]
            for index, part in enumerate(parts):
                node = _merge(node, self._flatten(part, f"{path}/allOf/{index}", refs), path)
        return node

    def _resolve(self, ref: Any, path: str) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise ValueError(
                f"'$ref' {ref!r} at {path} is not supported: only local references "
                "such as '#/$defs/name' or '#/definitions/name' are"
            )
        target: Any = self._root
        pointer = ref[1:]
        if pointer and not pointer.startswith("/"):
            raise ValueError(f"'$ref' {ref!r} at {path} is not supported: use a JSON pointer")
        for raw in pointer.split("/")[1:]:
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(target, Mapping) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                raise ValueError(f"'$ref' {ref!r} at {path} points to nothing in the schema")
        return target

    # -- choices --------------------------------------------------------------

    def _one_of(self, node: Mapping[str, Any], spot: _Spot) -> Any:
        keyword = "anyOf" if "anyOf" in node else "oneOf"
        if "anyOf" in node and "oneOf" in node:
            raise ValueError(f"'anyOf' together with 'oneOf' at {spot.path} is not supported")
        rest = {key: value for key, value in node.items() if key != keyword}
        first_error: ValueError | None = None
        for index, branch in enumerate(node[keyword]):
            path = f"{spot.path}/{keyword}/{index}"
            try:
                merged = _merge(rest, self._flatten(branch, path, 0), spot.path)
                value = self.generate(merged, spot.at(path))
            except ValueError as exc:
                first_error = first_error or exc
                continue
            if self.is_valid(node, value):
                return value
        detail = f" (first problem: {first_error})" if first_error else ""
        raise ValueError(f"no branch of {keyword!r} at {spot.path} yields a valid value{detail}")

    def _enum(self, node: Mapping[str, Any], spot: _Spot) -> Any:
        values = list(node["enum"])
        if values:
            start = spot.variant % len(values)
            for value in values[start:] + values[:start]:
                if self.is_valid(node, value):
                    return copy.deepcopy(value)
        raise ValueError(f"no value in 'enum' at {spot.path} satisfies the rest of the schema")

    # -- one generator per type -----------------------------------------------

    def _object(self, node: Mapping[str, Any], spot: _Spot) -> dict[str, Any]:
        properties: Mapping[str, Any] = node.get("properties", {})
        required: list[str] = list(node.get("required", []))
        full = spot.depth < _FULL_DEPTH
        keys = [key for key in properties if full or key in required]
        keys += [key for key in required if key not in keys]
        dependent = dict(node.get("dependencies", {}))
        dependent.update(node.get("dependentRequired", {}))
        for trigger, needed in dependent.items():
            if trigger in keys:
                keys += [key for key in needed if key not in keys]
        extra = node.get("additionalProperties", True)
        limit = node.get("maxProperties")
        if limit is not None and len(keys) > limit:
            keys = [key for key in keys if key in required] + [
                key for key in keys if key not in required
            ]
            keys = keys[: max(limit, 0)]
        count = 1
        while len(keys) < node.get("minProperties", 0):
            while f"extra_{count}" in keys:
                count += 1
            keys.append(f"extra_{count}")
        result: dict[str, Any] = {}
        for key in keys:
            if key in properties:
                sub, path = properties[key], f"{spot.path}/properties/{_escape(key)}"
            elif extra is False:
                raise ValueError(
                    f"property {key!r} at {spot.path} is required but "
                    "'additionalProperties' is false and 'properties' does not define it"
                )
            else:
                sub, path = extra, f"{spot.path}/additionalProperties"
            result[key] = self.generate(sub, spot.child(path, key))
        return result

    def _array(self, node: Mapping[str, Any], spot: _Spot) -> list[Any]:
        items = node.get("items", True)
        if isinstance(items, list):
            prefix, rest, prefix_key = items, node.get("additionalItems", True), "items"
        else:
            prefix, rest, prefix_key = node.get("prefixItems", []), items, "prefixItems"
        full = spot.depth < _FULL_DEPTH
        count = len(prefix) if prefix else (_DEFAULT_ITEMS if full else 0)
        contains = node.get("contains")
        wanted_matches = node.get("minContains", 1) if contains is not None else 0
        count = max(count, node.get("minItems", 0), wanted_matches)
        if node.get("maxItems") is not None:
            count = min(count, node["maxItems"])
        if rest is False:
            count = min(count, len(prefix))
        values: list[Any] = []
        for index in range(count):
            if index < len(prefix):
                sub, path = prefix[index], f"{spot.path}/{prefix_key}/{index}"
            else:
                sub, path = rest, f"{spot.path}/items"
            if index < wanted_matches:
                sub = {"allOf": [sub, contains]}
            values.append(self.generate(sub, spot.item(path, index)))
        if node.get("uniqueItems"):
            seen: set[str] = set()
            unique = []
            for value in values:
                key = json.dumps(value, sort_keys=True)
                if key not in seen:
                    seen.add(key)
                    unique.append(value)
            if len(unique) >= node.get("minItems", 0):
                values = unique
        return values

    def _string(self, node: Mapping[str, Any], spot: _Spot) -> str:
        key = self._key(spot)
        label = spot.label
        text = f"{label} of {self._seed}" if self._seed else label
        fmt = node.get("format")
        formatter = _FORMATS.get(fmt) if isinstance(fmt, str) else None
        base = formatter(label, key) if formatter else text
        low, high = node.get("minLength", 0), node.get("maxLength")
        pattern = node.get("pattern")
        if pattern is None:
            return _fit(base, low, high)
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValueError(
                f"'pattern' {pattern!r} at {spot.path} is not a valid regex: {exc}"
            ) from None
        for candidate in _pattern_candidates(pattern, base, low, high):
            fits = low <= len(candidate) and (high is None or len(candidate) <= high)
            if fits and compiled.search(candidate):
                return candidate
        raise ValueError(
            f"could not generate a string matching 'pattern' {pattern!r} at {spot.path}; "
            "give that schema an 'examples' entry that matches"
        )

    def _integer(self, node: Mapping[str, Any], spot: _Spot) -> int:
        low, low_open, high, high_open = _bounds(node)
        lo = None if low is None else (math.floor(low) + 1 if low_open else math.ceil(low))
        hi = None if high is None else (math.ceil(high) - 1 if high_open else math.floor(high))
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"'minimum' and 'maximum' at {spot.path} leave no integer")
        target = _target(lo, hi, self._key(spot) % 10, spot.variant)
        step = node.get("multipleOf")
        if step is None:
            return int(target)
        for value in _multiples(step, target, lo, hi):
            if float(value).is_integer() and _is_multiple(int(value), step):
                return int(value)
        raise ValueError(f"no integer at {spot.path} satisfies 'multipleOf' {step} and bounds")

    def _number(self, node: Mapping[str, Any], spot: _Spot) -> float | int:
        low, low_open, high, high_open = _bounds(node)
        step = node.get("multipleOf")
        if step is not None:
            target = _target(low, high, self._key(spot) % 10, spot.variant)
            for value in _multiples(step, target, low, high):
                if _inside(value, low, low_open, high, high_open) and _is_multiple(value, step):
                    return value
            raise ValueError(f"no number at {spot.path} satisfies 'multipleOf' {step} and bounds")
        if low is not None and high is not None:
            if low > high or (low == high and (low_open or high_open)):
                raise ValueError(f"'minimum' and 'maximum' at {spot.path} leave no number")
            share = (spot.variant + 1) / (spot.variant + 2)
            return float(low + (high - low) * share)
        offset = self._key(spot) % 10 + 0.5 + spot.variant
        if low is not None:
            return float(low + offset)
        if high is not None:
            return float(high - offset)
        return float(self._key(spot) % 100) + 0.5 + spot.variant

    def _boolean(self, node: Mapping[str, Any], spot: _Spot) -> bool:
        return spot.variant % 2 == 0

    def _null(self, node: Mapping[str, Any], spot: _Spot) -> None:
        return None

    def _key(self, spot: _Spot) -> int:
        return zlib.crc32(f"{self._seed}\x00{spot.label}".encode())


def _preferred(node: Mapping[str, Any]) -> list[Any]:
    candidates = []
    examples = node.get("examples")
    if isinstance(examples, list) and examples:
        candidates.append(examples[0])
    if "default" in node:
        candidates.append(node["default"])
    return candidates


def _types_of(node: Mapping[str, Any], path: str) -> list[str]:
    declared = node.get("type")
    if declared is None:
        if any(key in node for key in ("properties", "required", "additionalProperties")):
            return ["object"]
        if any(key in node for key in ("items", "prefixItems", "minItems", "contains")):
            return ["array"]
        if any(key in node for key in ("minimum", "maximum", "multipleOf")):
            return ["number"]
        return ["string"]
    names = [declared] if isinstance(declared, str) else list(declared)
    for name in names:
        if name not in _TYPES:
            raise ValueError(f"'type' {name!r} at {path} is not a JSON Schema type")
    # null is the least useful answer: try every other type first.
    return [name for name in names if name != "null"] + [name for name in names if name == "null"]


def _merge(first: Mapping[str, Any], second: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Combine two schemas into one that both hold for (``allOf``)."""
    merged = dict(first)
    for key, value in second.items():
        if key not in merged:
            merged[key] = value
            continue
        if key in _FIRST_WINS or merged[key] == value:
            continue
        old = merged[key]
        if key == "properties":
            properties = dict(old)
            for name, sub in value.items():
                properties[name] = {"allOf": [properties[name], sub]} if name in old else sub
            merged[key] = properties
        elif key == "required":
            merged[key] = list(old) + [name for name in value if name not in old]
        elif key == "type":
            old_types = [old] if isinstance(old, str) else list(old)
            new_types = {value} if isinstance(value, str) else set(value)
            both = [name for name in old_types if name in new_types]
            if "integer" in new_types and "number" in old_types and "integer" not in both:
                both.append("integer")
            if "number" in new_types and "integer" in old_types and "integer" not in both:
                both.append("integer")
            if not both:
                raise ValueError(f"'allOf' at {path} combines 'type' {old!r} and {value!r}")
            merged[key] = both
        elif key in _LOWER_BOUNDS:
            merged[key] = max(old, value)
        elif key in _UPPER_BOUNDS:
            merged[key] = min(old, value)
        elif key == "enum":
            merged[key] = [item for item in old if item in value]
        elif key in ("items", "additionalProperties", "additionalItems", "contains"):
            if old is False or value is False:
                merged[key] = False
            else:
                merged[key] = {"allOf": [old, value]}
        elif key in ("anyOf", "oneOf"):
            # Both lists must hold: one branch from each, every pairing tried in order.
            merged[key] = [{"allOf": [left, right]} for left in old for right in value]
        elif key == "multipleOf":
            merged[key] = _common_multiple(old, value, path)
        elif key == "uniqueItems":
            merged[key] = bool(old or value)
        else:
            raise ValueError(f"'allOf' at {path} combines different {key!r} values")
    return merged


def _common_multiple(first: float, second: float, path: str) -> float | int:
    a, b = Fraction(str(first)), Fraction(str(second))
    if (a / b).denominator == 1:
        return first
    if (b / a).denominator == 1:
        return second
    if a.denominator == 1 and b.denominator == 1:
        return math.lcm(int(a), int(b))
    raise ValueError(f"'allOf' at {path} combines 'multipleOf' {first} and {second}")


def _bounds(node: Mapping[str, Any]) -> tuple[float | None, bool, float | None, bool]:
    """Lower and upper bounds with openness, reading both draft 4 and 6+ forms."""
    low, low_open = node.get("minimum"), False
    high, high_open = node.get("maximum"), False
    exclusive_low, exclusive_high = node.get("exclusiveMinimum"), node.get("exclusiveMaximum")
    if exclusive_low is True:
        low_open = True
    elif _is_number(exclusive_low) and (low is None or exclusive_low >= low):
        low, low_open = exclusive_low, True
    if exclusive_high is True:
        high_open = True
    elif _is_number(exclusive_high) and (high is None or exclusive_high <= high):
        high, high_open = exclusive_high, True
    return low, low_open, high, high_open


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _target(low: float | None, high: float | None, spread: int, variant: int) -> float:
    if low is not None and high is not None:
        span = math.floor(high - low) + 1
        return low + (spread + variant) % span if span > 0 else low
    if low is not None:
        return low + spread + variant
    if high is not None:
        return high - spread - variant
    return 1 + spread * 7 + variant


def _multiples(step: float, target: float, low: float | None, high: float | None) -> list[float]:
    """Multiples of ``step`` near ``target``, then near each bound."""
    anchors = [target] + [bound for bound in (low, high) if bound is not None]
    values: list[float] = []
    for anchor in anchors:
        base = math.floor(anchor / step)
        for k in (base, base + 1, base - 1, base + 2, base - 2, base + 10, base - 10):
            value = k * step
            if isinstance(step, int) or float(value).is_integer():
                value = round(value)
            values.append(value)
    return [v for v in values if (low is None or v >= low) and (high is None or v <= high)]


def _inside(
    value: float, low: float | None, lo_open: bool, high: float | None, hi_open: bool
) -> bool:
    if low is not None and (value < low or (lo_open and value == low)):
        return False
    return not (high is not None and (value > high or (hi_open and value == high)))


def _is_multiple(value: float, step: float) -> bool:
    """The test jsonschema applies, including its float arithmetic."""
    if isinstance(step, float):
        quotient = value / step
        return int(quotient) == quotient
    return value % step == 0


def _fit(text: str, low: int, high: int | None) -> str:
    if len(text) < low:
        text = ((text + " ") * (low // (len(text) + 1) + 1))[:low] if text else "x" * low
    if high is not None and len(text) > high:
        trimmed = text[:high].rstrip()
        text = trimmed if len(trimmed) >= low else text[:high]
    return text


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _slug(label: str, separator: str) -> str:
    return re.sub(r"[^a-z0-9]+", separator, label.lower()).strip(separator) or "value"


def _date(key: int) -> str:
    return f"2024-{1 + key % 12:02d}-{1 + (key >> 4) % 28:02d}"


def _time(key: int) -> str:
    return f"{(key >> 8) % 24:02d}:{(key >> 13) % 60:02d}:00Z"


def _uuid(label: str, key: int) -> str:
    digest = hashlib.blake2b(f"{label}\x00{key}".encode(), digest_size=16).digest()
    return str(uuid.UUID(bytes=digest, version=4))


_FORMATS: dict[str, Callable[[str, int], str]] = {
    "date": lambda label, key: _date(key),
    "date-time": lambda label, key: f"{_date(key)}T{_time(key)}",
    "time": lambda label, key: _time(key),
    "email": lambda label, key: f"{_slug(label, '.')}@example.com",
    "idn-email": lambda label, key: f"{_slug(label, '.')}@example.com",
    "uri": lambda label, key: f"https://example.com/{_slug(label, '-')}",
    "iri": lambda label, key: f"https://example.com/{_slug(label, '-')}",
    "uri-reference": lambda label, key: f"https://example.com/{_slug(label, '-')}",
    "uuid": _uuid,
    "hostname": lambda label, key: f"{_slug(label, '-')}.example.com",
    "ipv4": lambda label, key: f"192.0.2.{1 + key % 254}",
    "ipv6": lambda label, key: f"2001:db8::{1 + key % 65534:x}",
}


# -- sample strings for simple regular expressions ---------------------------

_Node = tuple[Any, ...]
_CLASS_SAMPLES = {"d": "0", "w": "a", "s": " ", "D": "a", "W": "-", "S": "a"}
_ZERO_WIDTH = frozenset("bBAZz")
_NEGATED_PICKS = "aA0x_-. #"


class _UnsupportedRegex(Exception):
    pass


def _pattern_candidates(pattern: str, base: str, low: int, high: int | None) -> list[str]:
    candidates = [base, _fit(base, low, high)]
    try:
        tree = _RegexParser(pattern).parse()
    except _UnsupportedRegex:
        return candidates
    for extra in (0, 1, 2, 3, 5, 8, 16, 32, 64):
        sample = _sample(tree, extra)
        candidates += [sample, _fit(f"{base} {sample}", low, high), f"{sample} {base}"]
    return candidates


def _sample(node: _Node, extra: int) -> str:
    kind = node[0]
    if kind == "char":
        return str(node[1])
    if kind == "seq":
        return "".join(_sample(part, extra) for part in node[1])
    if kind == "alt":
        return _sample(node[1][0], extra)
    if kind == "repeat":
        _, inner, least, most = node
        count = least + extra if most is None else min(most, least + extra)
        return "".join(_sample(inner, extra) for _ in range(count))
    return ""


class _RegexParser:
    """Parses the subset of regex syntax that schema patterns use into a sample tree."""

    def __init__(self, pattern: str) -> None:
        self._text = pattern
        self._at = 0

    def parse(self) -> _Node:
        node = self._alternatives()
        if self._at != len(self._text):
            raise _UnsupportedRegex
        return node

    def _peek(self) -> str:
        return self._text[self._at] if self._at < len(self._text) else ""

    def _next(self) -> str:
        if self._at >= len(self._text):
            raise _UnsupportedRegex
        char = self._text[self._at]
        self._at += 1
        return char

    def _alternatives(self) -> _Node:
        branches = [self._sequence()]
        while self._peek() == "|":
            self._at += 1
            branches.append(self._sequence())
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def _sequence(self) -> _Node:
        parts = []
        while self._peek() not in ("", "|", ")"):
            parts.append(self._quantified(self._atom()))
        return ("seq", parts)

    def _atom(self) -> _Node:
        char = self._next()
        if char == "(":
            if self._text.startswith("?:", self._at):
                self._at += 2
            elif self._text.startswith("?P<", self._at) or (
                self._text.startswith("?<", self._at)
                and self._text[self._at + 2 : self._at + 3] not in ("=", "!")
            ):
                self._at = self._text.index(">", self._at) + 1
            elif self._peek() == "?":
                raise _UnsupportedRegex
            inner = self._alternatives()
            if self._next() != ")":
                raise _UnsupportedRegex
            return inner
        if char == "[":
            return ("char", self._class())
        if char == ".":
            return ("char", "a")
        if char in "^$":
            return ("empty",)
        if char == "\\":
            escaped = self._next()
            if escaped in _ZERO_WIDTH:
                return ("empty",)
            if escaped.isdigit():
                raise _UnsupportedRegex
            return ("char", _escape_sample(escaped))
        if char in "*+?{)":
            raise _UnsupportedRegex
        return ("char", char)

    def _quantified(self, atom: _Node) -> _Node:
        char = self._peek()
        if char in ("*", "+", "?"):
            self._at += 1
            least, most = {"*": (0, None), "+": (1, None), "?": (0, 1)}[char]
        elif char == "{":
            match = re.compile(r"\{(\d*)(,?)(\d*)\}").match(self._text, self._at)
            if match is None or not (match.group(1) or match.group(3)):
                return atom
            self._at = match.end()
            least = int(match.group(1) or 0)
            most = int(match.group(3)) if match.group(3) else (None if match.group(2) else least)
        else:
            return atom
        if self._peek() in ("?", "+"):
            self._at += 1
        return ("repeat", atom, least, most)

    def _class(self) -> str:
        negated = self._peek() == "^"
        if negated:
            self._at += 1
        members: list[tuple[str, str]] = []
        first = True
        while True:
            char = self._next()
            if char == "]" and not first:
                break
            first = False
            if char == "\\":
                escaped = self._next()
                if escaped in _CLASS_SAMPLES:
                    members += _class_ranges(escaped)
                    continue
                char = _escape_sample(escaped)
            if self._peek() == "-" and self._text[self._at + 1 : self._at + 2] not in ("]", ""):
                self._at += 1
                end = self._next()
                if end == "\\":
                    end = _escape_sample(self._next())
                members.append((char, end))
            else:
                members.append((char, char))
        if not negated:
            if not members:
                raise _UnsupportedRegex
            return members[0][0]
        for pick in _NEGATED_PICKS:
            if not any(lo <= pick <= hi for lo, hi in members):
                return pick
        raise _UnsupportedRegex


def _escape_sample(escaped: str) -> str:
    if escaped in _CLASS_SAMPLES:
        return _CLASS_SAMPLES[escaped]
    return {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v"}.get(escaped, escaped)


def _class_ranges(escaped: str) -> list[tuple[str, str]]:
    if escaped == "d":
        return [("0", "9")]
    if escaped == "w":
        return [("a", "z"), ("A", "Z"), ("0", "9"), ("_", "_")]
    if escaped == "s":
        return [(" ", " "), ("\t", "\t"), ("\n", "\n")]
    # Negated classes inside a class: approximate with a character that fits.
    return [(_CLASS_SAMPLES[escaped], _CLASS_SAMPLES[escaped])]
