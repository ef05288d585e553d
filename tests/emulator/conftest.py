"""Fixtures of the emulator tests: a hand-written SSE reader (the tests parse streams themselves),
one shared emulator for the API-family tests, and a small JSON-schema checker."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any

import pytest

from azml_client.emulator import EmulatorConfig, EmulatorServer, run_emulator

SSEParser = Callable[[str], list[Any]]


def _parse_sse(text: str) -> list[Any]:
    """Split an SSE body into events; each ``data:`` payload is JSON-decoded except ``[DONE]``."""
    events: list[Any] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        lines = block.split("\n")
        assert all(line.startswith("data: ") for line in lines), block
        data = "\n".join(line[len("data: ") :] for line in lines)
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


@pytest.fixture
def parse_sse() -> SSEParser:
    """The SSE body parser used by the streaming tests."""
    return _parse_sse


#: Key, model name and seed of the shared ``api_emulator``.
API_KEY = "api-emulator-key"
API_MODEL = "emu-model"


@pytest.fixture(scope="session")
def api_emulator() -> Iterator[EmulatorServer]:
    """One emulator for the API tests (OpenAI v1, /models, embeddings, tools), started once.

    Tests that read its stats must compare before/after values: other tests share it.
    """
    config = EmulatorConfig(api_key=API_KEY, model_name=API_MODEL, seed=7)
    with run_emulator(config) as emu:
        yield emu


SchemaCheck = Callable[[Any, Any], list[str]]


def _schema_errors(value: Any, schema: Any, root: Any, path: str) -> list[str]:
    """Where ``value`` breaks ``schema``: a small JSON-schema validator for the generator tests.

    It covers the keywords the emulator's generator claims to handle, written independently of
    it (jsonschema is not a dependency of the project).
    """
    if schema is True or schema == {}:
        return []
    if schema is False:
        return [f"{path}: no value is allowed"]
    if "$ref" in schema:
        target = root
        for part in filter(None, schema["$ref"].lstrip("#").split("/")):
            target = target[part]
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return _schema_errors(value, target, root, path) + _schema_errors(value, rest, root, path)
    errors: list[str] = []
    for sub in schema.get("allOf", []):
        errors += _schema_errors(value, sub, root, path)
    if "anyOf" in schema and all(_schema_errors(value, s, root, path) for s in schema["anyOf"]):
        errors.append(f"{path}: matches no anyOf branch")
    if "oneOf" in schema:
        matches = sum(not _schema_errors(value, s, root, path) for s in schema["oneOf"])
        if matches != 1:
            errors.append(f"{path}: matches {matches} oneOf branches")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: {value!r} is not the const {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not in the enum")
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_is_type(value, name) for name in names):
            return [*errors, f"{path}: {value!r} is not of type {types}"]
    if isinstance(value, dict):
        errors += _object_errors(value, schema, root, path)
    elif isinstance(value, list):
        errors += _array_errors(value, schema, root, path)
    elif isinstance(value, str):
        errors += _string_errors(value, schema, path)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        errors += _number_errors(value, schema, path)
    return errors


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return type(value) is int or (type(value) is float and value.is_integer())
    return {
        "null": value is None,
        "boolean": isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "string": isinstance(value, str),
        "array": isinstance(value, list),
        "object": isinstance(value, dict),
    }[name]


def _object_errors(value: dict[str, Any], schema: Any, root: Any, path: str) -> list[str]:
    errors = [
        f"{path}: missing {name!r}" for name in schema.get("required", []) if name not in value
    ]
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        sub = properties.get(name, extra)
        errors += _schema_errors(item, sub, root, f"{path}.{name}")
    if not schema.get("minProperties", 0) <= len(value) <= schema.get("maxProperties", 1 << 30):
        errors.append(f"{path}: wrong number of properties")
    return errors


def _array_errors(value: list[Any], schema: Any, root: Any, path: str) -> list[str]:
    errors: list[str] = []
    prefix = schema.get("prefixItems", [])
    for index, item in enumerate(value):
        sub = prefix[index] if index < len(prefix) else schema.get("items", True)
        errors += _schema_errors(item, sub, root, f"{path}[{index}]")
    if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", 1 << 30):
        errors.append(f"{path}: {len(value)} items is out of bounds")
    if schema.get("uniqueItems") and len({json.dumps(v, sort_keys=True) for v in value}) < len(
        value
    ):
        errors.append(f"{path}: items are not unique")
    return errors


def _string_errors(value: str, schema: Any, path: str) -> list[str]:
    errors: list[str] = []
    if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", 1 << 30):
        errors.append(f"{path}: length {len(value)} is out of bounds")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: {value!r} does not match {schema['pattern']!r}")
    checks: dict[str, Callable[[str], object]] = {
        "date-time": lambda v: datetime.fromisoformat(v.replace("Z", "+00:00")).tzinfo or 1 / 0,
        "date": date.fromisoformat,
        "uuid": uuid.UUID,
        "email": lambda v: re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]+", v) or 1 / 0,
        "uri": lambda v: re.match(r"https?://\S+$", v) or 1 / 0,
    }
    check = checks.get(schema.get("format", ""))
    if check is not None:
        try:
            check(value)
        except (ValueError, ZeroDivisionError):
            errors.append(f"{path}: {value!r} is not a {schema['format']}")
    return errors


def _number_errors(value: float, schema: Any, path: str) -> list[str]:
    errors: list[str] = []
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: {value} < minimum")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{path}: {value} > maximum")
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        errors.append(f"{path}: {value} <= exclusiveMinimum")
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        errors.append(f"{path}: {value} >= exclusiveMaximum")
    step = schema.get("multipleOf")
    if step is not None and abs(value / step - round(value / step)) > 1e-9:
        errors.append(f"{path}: {value} is not a multiple of {step}")
    return errors


@pytest.fixture(scope="session")
def schema_errors() -> SchemaCheck:
    """``schema_errors(value, schema) -> [problems]``; empty when the value is valid."""
    return lambda value, schema: _schema_errors(value, schema, schema, "$")
