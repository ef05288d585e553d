"""A deterministic value generator for JSON schemas (tool-call arguments, structured output).

``example_for(schema, rng)`` returns a JSON value valid for ``schema``, drawn from ``rng`` so the
same seed gives the same value. It covers what function-calling schemas use in practice, and
what pydantic v2's ``model_json_schema()`` emits: ``type`` (one or a list, e.g.
``["string", "null"]``), ``enum``, ``const``, objects (``properties``, ``required``,
``additionalProperties``, ``min/maxProperties``), arrays (``items``, ``prefixItems``,
``min/maxItems``, ``uniqueItems``), strings (``min/maxLength``, a few ``format`` values, a
``pattern`` only when one of a few candidates happens to match), integers and numbers (inclusive
and exclusive bounds, ``multipleOf``), ``anyOf`` / ``oneOf`` (the first branch that works, merged
with its siblings), ``allOf`` (merged) and ``$ref`` into ``$defs`` / ``definitions`` (any local
JSON pointer). Descriptions, titles and defaults are ignored.

Sizes stay small: near the root every property is filled and arrays get one or two items;
below ``_FULL_DEPTH`` only required properties and ``minItems`` items are made, and nullable
branches are preferred, so recursive models end.
"""

from __future__ import annotations

import math
import random
import re
import uuid
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Any, Final

from azml_client.emulator._generate import VOCAB

__all__ = ["SchemaError", "example_for"]

_FULL_DEPTH: Final = 4  # below this depth: required properties only, minimal arrays
_MAX_DEPTH: Final = 32  # a schema that still recurses here cannot be satisfied finitely
_EPOCH: Final = datetime(2026, 1, 1, tzinfo=timezone.utc)
_MERGED_LISTS: Final = ("required",)
_LOWER_BOUNDS: Final = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS: Final = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")


class SchemaError(ValueError):
    """The schema is malformed, or no value can be made for it."""


def example_for(schema: Any, rng: random.Random) -> Any:
    """A JSON value valid for ``schema`` (whose ``$ref`` pointers resolve inside it).

    Raises:
        SchemaError: malformed or unsatisfiable schema, unresolvable ``$ref``, or a ``pattern``
            none of the candidate strings matches.
    """
    return _Maker(schema, rng).make(schema, 0)


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Both schemas at once (for ``allOf`` and a chosen ``anyOf`` branch): a shallow merge."""
    out = dict(base)
    for key, value in extra.items():
        if key not in out:
            out[key] = value
        elif key == "properties" and isinstance(value, Mapping):
            out[key] = {**out[key], **value}
        elif key in _MERGED_LISTS and isinstance(value, list):
            out[key] = [*out[key], *(v for v in value if v not in out[key])]
        elif key in _LOWER_BOUNDS and isinstance(value, (int, float)):
            out[key] = max(out[key], value)
        elif key in _UPPER_BOUNDS and isinstance(value, (int, float)):
            out[key] = min(out[key], value)
        elif key == "type":
            out[key] = _common_types(out[key], value)
        else:
            out[key] = value
    return out


def _common_types(one: Any, two: Any) -> list[Any]:
    mine = one if isinstance(one, list) else [one]
    theirs = two if isinstance(two, list) else [two]
    both = [t for t in mine if t in theirs or (t == "integer" and "number" in theirs)]
    both += [t for t in theirs if t == "integer" and "number" in mine and t not in both]
    if not both:
        raise SchemaError(f"types {mine} and {theirs} do not overlap")
    return both


def _infer_type(schema: Mapping[str, Any]) -> str:
    if {"properties", "required", "additionalProperties"} & schema.keys():
        return "object"
    if {"items", "prefixItems", "minItems", "maxItems"} & schema.keys():
        return "array"
    if {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"} & schema.keys():
        return "number"
    return "string"


class _Maker:
    def __init__(self, root: Any, rng: random.Random) -> None:
        self.root = root
        self.rng = rng

    def resolve(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise SchemaError(f"only local $ref pointers are supported, got {ref!r}")
        node = self.root
        for part in filter(None, ref[1:].split("/")):
            key = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or key not in node:
                raise SchemaError(f"$ref {ref!r} does not resolve")
            node = node[key]
        return node

    def make(self, schema: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise SchemaError("the schema recurses without a way to stop")
        if schema is True:
            schema = {}
        if schema is False or not isinstance(schema, Mapping):
            raise SchemaError(f"not a satisfiable schema: {schema!r}")
        if "$ref" in schema:
            target = self.resolve(schema["$ref"])
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            if target is True:
                target = {}
            if not isinstance(target, Mapping):
                raise SchemaError(f"$ref {schema['$ref']!r} is not a schema")
            return self.make(_merge(target, rest), depth + 1)
        if "allOf" in schema:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in self._list(schema, "allOf"):
                merged = _merge(merged, self._deref(part))
            return self.make(merged, depth + 1)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self._branch(schema, key, depth)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            options = self._list(schema, "enum")
            return options[self.rng.randrange(len(options))]
        return self._typed(schema, self._type(schema, depth), depth)

    def _list(self, schema: Mapping[str, Any], key: str) -> list[Any]:
        value = schema[key]
        if not isinstance(value, list) or not value:
            raise SchemaError(f"{key} must be a non-empty list")
        return value

    def _deref(self, part: Any) -> Mapping[str, Any]:
        while isinstance(part, Mapping) and set(part) == {"$ref"}:
            part = self.resolve(part["$ref"])
        if part is True:
            return {}
        if not isinstance(part, Mapping):
            raise SchemaError(f"not a schema: {part!r}")
        return part

    def _branch(self, schema: Mapping[str, Any], key: str, depth: int) -> Any:
        base = {k: v for k, v in schema.items() if k != key}
        branches = [self._deref(b) for b in self._list(schema, key)]
        # Near the root a real value shows more of the schema; deep down, null ends recursion.
        deep = depth >= _FULL_DEPTH
        branches.sort(key=lambda b: (b.get("type") == "null") != deep)
        failure: SchemaError | None = None
        for branch in branches:
            state = self.rng.getstate()
            try:
                return self.make(_merge(base, branch), depth + 1)
            except SchemaError as exc:
                self.rng.setstate(state)  # a failed try must not shift later draws
                failure = failure or exc
        raise SchemaError(f"no {key} branch can be satisfied: {failure}")

    def _type(self, schema: Mapping[str, Any], depth: int) -> str:
        declared = schema.get("type", _infer_type(schema))
        types = declared if isinstance(declared, list) else [declared]
        if not types or not all(isinstance(t, str) for t in types):
            raise SchemaError(f"type must be a string or a list of strings, got {declared!r}")
        if "null" in types and (depth >= _FULL_DEPTH or len(types) == 1):
            return "null"
        return str(next(t for t in types if t != "null"))

    def _typed(self, schema: Mapping[str, Any], kind: str, depth: int) -> Any:
        if kind == "null":
            return None
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, depth)
        if kind in ("integer", "number"):
            return self._number(schema, integer=kind == "integer")
        if kind == "string":
            return self._string(schema)
        raise SchemaError(f"unknown type {kind!r}")

    def _object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties", {})
        required = schema.get("required", [])
        if not isinstance(properties, Mapping) or not isinstance(required, list):
            raise SchemaError("properties must be an object and required a list")
        extra = schema.get("additionalProperties", True)
        optional = (p for p in properties if p not in required and properties[p] is not False)
        wanted = [*required, *optional]
        keep = len(required) if depth >= _FULL_DEPTH else len(wanted)
        keep = max(keep, min(len(wanted), schema.get("minProperties", 0)))
        keep = min(keep, max(len(required), schema.get("maxProperties", keep)))
        out: dict[str, Any] = {}
        for name in wanted[:keep]:
            sub = properties.get(name, extra)
            out[name] = self.make({} if sub is True else sub, depth + 1)
        for n in range(schema.get("minProperties", 0) - len(out)):
            if extra is False:
                raise SchemaError("minProperties cannot be met without additionalProperties")
            out[f"key{n + 1}"] = self.make({} if extra is True else extra, depth + 1)
        return out

    def _array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        prefix = schema.get("prefixItems", [])
        items = schema.get("items", {})
        if isinstance(items, list):  # draft 4-7 tuple form
            prefix, items = items, schema.get("additionalItems", {})
        low = max(schema.get("minItems", 0), len(prefix) if depth < _FULL_DEPTH else 0)
        high = schema.get("maxItems", max(low, 2))
        if items is False:
            high = min(high, len(prefix))
        if low > high:
            raise SchemaError(f"minItems {low} exceeds maxItems {high}")
        count = low if depth >= _FULL_DEPTH else min(high, max(low, self.rng.randint(1, 2)))
        unique = schema.get("uniqueItems") is True
        out: list[Any] = []
        for index in range(count):
            sub = prefix[index] if index < len(prefix) else items
            for _ in range(8 if unique else 1):
                value = self.make(sub, depth + 1)
                if not unique or value not in out:
                    break
            else:
                raise SchemaError("cannot make enough distinct items for uniqueItems")
            out.append(value)
        return out

    def _number(self, schema: Mapping[str, Any], *, integer: bool) -> int | float:
        low, high = schema.get("minimum"), schema.get("maximum")
        ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if ex_low is True or ex_high is True:  # draft 4: booleans beside minimum/maximum
            ex_low, low = (low, None) if ex_low is True else (None, low)
            ex_high, high = (high, None) if ex_high is True else (None, high)
        step = schema.get("multipleOf", 1 if integer else 0.01)
        if isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0:
            raise SchemaError(f"multipleOf must be a positive number, got {step!r}")
        if integer and not float(step).is_integer():
            step = 1  # exact when 1 is a multiple of it (0.5, 0.25...), the usual case
        lo = -math.inf if low is None else low
        hi = math.inf if high is None else high
        if isinstance(ex_low, (int, float)) and not isinstance(ex_low, bool):
            lo = max(lo, ex_low + (step if integer else step / 2))
        if isinstance(ex_high, (int, float)) and not isinstance(ex_high, bool):
            hi = min(hi, ex_high - (step if integer else step / 2))
        if lo == -math.inf:
            lo = min(0, hi - 100)
        if hi == math.inf:
            hi = max(lo + 100, 100)
        first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
        if first > last:
            raise SchemaError(f"no {'integer' if integer else 'number'} between {lo} and {hi}")
        pick: float = self.rng.randint(first, min(last, first + 10_000)) * step
        if integer or not isinstance(step, float):
            return round(pick)
        return round(pick, 10)

    def _string(self, schema: Mapping[str, Any]) -> str:
        candidates = [self._formatted(schema.get("format"))]
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            candidates += ["abc", "ABC", "Abc", "123", "a1", "x", "2026-01-15", "user@example.com"]
        low, high = schema.get("minLength", 0), schema.get("maxLength", math.inf)
        if low > high:
            raise SchemaError(f"minLength {low} exceeds maxLength {high}")
        for text in candidates:
            if len(text) < low:
                text += "x" * (low - len(text))
            if len(text) > high:
                text = text[: int(high)]
            if not isinstance(pattern, str) or re.search(pattern, text):
                return text
        raise SchemaError(f"cannot make a string matching the pattern {pattern!r}")

    def _formatted(self, fmt: Any) -> str:
        moment = _EPOCH + timedelta(minutes=self.rng.randrange(365 * 24 * 60))
        if fmt == "date-time":
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        if fmt == "date":
            return date.isoformat(moment.date())
        if fmt == "time":
            return moment.strftime("%H:%M:%SZ")
        if fmt == "duration":
            return f"PT{self.rng.randint(1, 59)}M"
        if fmt == "email":
            return f"{self.rng.choice(VOCAB)}@example.com"
        if fmt in ("uri", "url", "iri", "uri-reference"):
            return f"https://example.com/{self.rng.choice(VOCAB)}"
        if fmt == "uuid":
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        if fmt == "ipv4":
            return f"192.0.2.{self.rng.randint(1, 254)}"
        words = [self.rng.choice(VOCAB) for _ in range(self.rng.randint(1, 3))]
        return " ".join(words)
