"""The JSON-schema value generator behind tool calls and structured output (pure functions)."""

from __future__ import annotations

import enum
import json
import random
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal, Optional, Union

import pytest
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from azml_client.emulator._schema import SchemaError, example_for

SchemaCheck = Callable[[Any, Any], list[str]]


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 5


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")
    street: str = Field(description="street and number", min_length=3, max_length=40)
    zip_code: Annotated[str, Field(pattern=r"^\d+$")] = "12345"
    country: Literal["FR", "DE", "US"]


class Person(BaseModel):
    name: str
    age: int = Field(ge=0, le=130)
    height_m: float = Field(gt=0.3, lt=2.5)
    score: float = Field(multiple_of=0.5, ge=-10, le=10)
    favourite: Color
    priority: Priority = Priority.LOW
    born: date
    updated_at: datetime
    address: Address
    previous: Optional[Address] = None  # noqa: UP045 - the pydantic spelling under test
    nickname: str | None = None
    tags: list[str] = Field(min_length=1, max_length=3)
    scores: dict[str, int] = {}
    pair: tuple[int, str]
    active: bool


class Node(BaseModel):
    value: int
    children: list[Node] = []
    parent: Node | None = None


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int = Field(ge=1, le=9)


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool


class Pet(BaseModel):
    pet: Union[Cat, Dog] = Field(discriminator="kind")  # noqa: UP007
    others: list[Annotated[Cat | Dog, Field(discriminator="kind")]]


def make(schema: Any, seed: int = 0) -> Any:
    value = example_for(schema, random.Random(seed))
    json.dumps(value)  # always JSON
    return value


def test_the_checker_catches_wrong_values(schema_errors: SchemaCheck) -> None:
    # The tests below rely on this checker; make sure it can fail.
    schema = Person.model_json_schema()
    good = json.loads(json.dumps(make(schema)))
    assert schema_errors(good, schema) == []
    for broken in (
        {**good, "age": 131},
        {**good, "favourite": "blue"},
        {**good, "tags": []},
        {**good, "address": {**good["address"], "planet": "Mars"}},
        {**good, "updated_at": "yesterday"},
        {**good, "score": 0.25},
        {k: v for k, v in good.items() if k != "name"},
    ):
        assert schema_errors(broken, schema), broken


@pytest.mark.parametrize("model", [Person, Node, Pet, Address])
@pytest.mark.parametrize("seed", range(12))
def test_pydantic_models_validate(
    model: type[BaseModel], seed: int, schema_errors: SchemaCheck
) -> None:
    schema = model.model_json_schema()
    value = make(schema, seed)
    assert schema_errors(value, schema) == []
    model.model_validate_json(json.dumps(value), strict=True)


def test_near_the_root_optional_values_are_filled() -> None:
    person = make(Person.model_json_schema())
    assert person["previous"] is not None and person["nickname"] is not None
    assert set(person) == set(Person.model_fields)


def test_recursive_models_end() -> None:
    def depth(node: dict[str, Any]) -> int:
        kids = [*node.get("children", []), *([node["parent"]] if node.get("parent") else [])]
        return 1 + max((depth(k) for k in kids), default=0)

    assert 2 <= depth(make(Node.model_json_schema())) <= 8


def test_the_same_seed_gives_the_same_value_and_others_differ() -> None:
    schema = Person.model_json_schema()
    assert make(schema, 3) == make(schema, 3)
    assert len({json.dumps(make(schema, s), sort_keys=True) for s in range(6)}) == 6


HAND_WRITTEN: list[dict[str, Any]] = [
    {"type": "object", "properties": {"location": {"type": "string"},
     "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["location"]},
    {"type": ["string", "null"]},
    {"type": ["null", "integer"], "minimum": 5, "maximum": 5},
    {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 2},
    {"type": "number", "minimum": -1, "maximum": -0.5},
    {"type": "integer", "multipleOf": 7, "minimum": 8, "maximum": 20},
    {"const": {"fixed": [1, 2]}},
    {"enum": [None, 3, "x"]},
    {"type": "array", "items": {"type": "boolean"}, "minItems": 3, "maxItems": 3},
    {"type": "array", "items": {"enum": [1, 2, 3]}, "minItems": 3, "uniqueItems": True},
    {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False},
    {"type": "object", "additionalProperties": {"type": "integer"}, "minProperties": 2},
    {"type": "object", "properties": {}, "additionalProperties": False},
    {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
               {"properties": {"b": {"type": "string"}}, "required": ["b"]}]},
    {"anyOf": [{"type": "string", "minLength": 5, "maxLength": 2}, {"type": "integer"}]},
    {"oneOf": [{"type": "object", "properties": {"k": {"const": "a"}}, "required": ["k"]},
               {"type": "object", "properties": {"k": {"const": "b"}}, "required": ["k"]}]},
    {"$ref": "#/definitions/thing", "definitions": {"thing": {"type": "string", "format": "date"}}},
    {"$defs": {"t": {"type": "string", "format": "date-time"}}, "type": "array",
     "items": {"$ref": "#/$defs/t"}, "minItems": 1},
    {"type": "string", "format": "uuid"},
    {"type": "string", "format": "email"},
    {"type": "string", "format": "uri"},
    {"type": "string", "pattern": "^[a-z]+$", "minLength": 2},
    {"type": "string", "minLength": 30},
    {"properties": {"x": {"type": "null"}}, "required": ["x"]},
    {"description": "anything at all"},
    {},
]  # fmt: skip


@pytest.mark.parametrize("schema", HAND_WRITTEN, ids=lambda s: json.dumps(s)[:60])
def test_hand_written_schemas(schema: dict[str, Any], schema_errors: SchemaCheck) -> None:
    for seed in range(5):
        value = make(schema, seed)
        assert schema_errors(value, schema) == [], value


def test_unions_take_a_workable_branch_and_draws_stay_deterministic() -> None:
    schema = {"anyOf": [{"type": "integer", "minimum": 3, "maximum": 1}, {"const": "second"}]}
    assert make(schema) == "second"
    nullable = TypeAdapter(Optional[int]).json_schema()  # noqa: UP045
    assert isinstance(make(nullable), int)  # near the root the non-null branch is shown


@pytest.mark.parametrize(
    "schema",
    [
        {"enum": []},
        {"type": "integer", "minimum": 5, "maximum": 4},
        {"type": "array", "minItems": 3, "maxItems": 1},
        {"$ref": "#/$defs/missing"},
        {"$ref": "https://example.com/schema.json"},
        {"type": "string", "pattern": "^[0-9]{5}-Z$"},
        {"type": "object", "required": ["a"], "properties": {}, "additionalProperties": False},
        {"type": "array", "items": {"enum": [1]}, "minItems": 2, "uniqueItems": True},
        {"type": "integer", "multipleOf": 0},
        {"type": "tuple"},
        {"properties": {"me": {"$ref": "#"}}, "required": ["me"]},
        False,
        "string",
    ],
    ids=repr,
)
def test_unsatisfiable_schemas_raise(schema: Any) -> None:
    with pytest.raises(SchemaError):
        make(schema)
