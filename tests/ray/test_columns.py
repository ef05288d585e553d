"""Batches in, columns out: numpy and Arrow values made plain, rows made items, results made
columns (plain functions; no Ray, no endpoint)."""

from __future__ import annotations

from typing import Any

import pytest

from azml_client import APIConnectionError, ConfigurationError, ServerError
from azml_client._bulk import Item
from azml_client._types import Completion, Usage
from azml_client.ray import OUTPUT_COLUMNS
from azml_client.ray._columns import (
    Outcome,
    add_columns,
    batch_items,
    check_columns,
    output_columns,
    plain,
)

np = pytest.importorskip("numpy")
pa = pytest.importorskip("pyarrow")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.int64(3), 3),
        (np.float32(0.5), 0.5),
        (np.str_("hi"), "hi"),
        (np.bool_(True), True),
        (float("nan"), None),
        (np.array([1, 2]), [1, 2]),
        ({"max_tokens": np.int64(5), "temperature": None}, {"max_tokens": 5}),
        (
            np.array([{"role": "user", "content": "hi", "name": None}], dtype=object),
            [{"role": "user", "content": "hi"}],
        ),
        (
            {"content": np.array([{"type": "text", "text": "x", "image_url": None}])},
            {"content": [{"type": "text", "text": "x"}]},
        ),
        ("plain", "plain"),
        (None, None),
    ],
)
def test_values_are_made_plain_python(value: Any, expected: Any) -> None:
    out = plain(value)
    assert out == expected
    assert type(out) is type(expected)


def test_rows_of_a_numpy_batch_become_items() -> None:
    batch = {
        "prompt": np.array(["a prompt", None, None, "both", None], dtype=object),
        "messages": np.array(
            [
                None,
                np.array([{"role": "user", "content": "hi", "name": None}], dtype=object),
                None,
                np.array([{"role": "user", "content": "x"}], dtype=object),
                None,
            ],
            dtype=object,
        ),
        "params": np.array([{"max_tokens": np.int64(4)}, None, None, None, 3.0], dtype=object),
    }
    items = batch_items(
        batch, prompt_column="prompt", messages_column="messages", params_column="params"
    )
    first, chat, empty, both, bad_params = items
    assert first == Item("completion", "a prompt", {"max_tokens": 4})
    assert type(first.params["max_tokens"]) is int
    assert isinstance(chat, Item) and chat.kind == "chat"
    assert chat.payload == [{"role": "user", "content": "hi"}]
    assert isinstance(empty, ConfigurationError) and "no prompt" in str(empty)
    assert isinstance(both, ConfigurationError) and "both" in str(both)
    assert isinstance(bad_params, ConfigurationError) and "mapping" in str(bad_params)


def test_rows_of_an_arrow_table_become_items() -> None:
    table = pa.table(
        {
            "messages": [
                [{"role": "user", "content": "hi", "name": None}],
                [{"role": "user", "content": "yo", "name": "ann"}],
            ],
            "params": [{"max_tokens": 2, "temperature": None}, None],
        }
    )
    items = batch_items(
        table, prompt_column="prompt", messages_column="messages", params_column="params"
    )
    assert items == [
        Item("chat", [{"role": "user", "content": "hi"}], {"max_tokens": 2}),
        Item("chat", [{"role": "user", "content": "yo", "name": "ann"}], {}),
    ]


def test_a_missing_column_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"no column 'text'.*columns: prompt"):
        batch_items(
            {"prompt": np.array(["x"])},
            prompt_column="text",
            messages_column=None,
            params_column=None,
        )


def test_input_columns_named_like_outputs_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="rename_columns"):
        check_columns("text")
    check_columns("prompt", None)


def _outcomes() -> list[Outcome]:
    ok = Completion(
        text="hello",
        finish_reason="stop",
        usage=Usage(prompt_tokens=3, completion_tokens=1),
        attempts=2,
    )
    failed = ServerError("boom", status_code=503, body="", attempts=3)
    return [
        Outcome(ok, 12),
        Outcome(failed, 40),
        Outcome(ConfigurationError("a row has no prompt and no messages")),
        Outcome(APIConnectionError("connection reset")),
    ]


def test_outcomes_become_columns_with_errors_as_values() -> None:
    columns = output_columns(_outcomes())
    assert list(columns) == list(OUTPUT_COLUMNS)
    assert columns["text"] == ["hello", None, None, None]
    assert columns["finish_reason"] == ["stop", None, None, None]
    assert columns["prompt_tokens"] == [3, None, None, None]
    assert columns["completion_tokens"] == [1, None, None, None]
    assert columns["error_type"] == [
        None,
        "ServerError",
        "ConfigurationError",
        "APIConnectionError",
    ]
    assert columns["status"] == [None, 503, None, None]
    assert columns["error_message"][0] is None and "boom" in columns["error_message"][1]
    assert columns["attempts"] == [2, 3, 0, 1]  # a refused row was never sent
    assert columns["latency_ms"] == [12, 40, None, None]


def test_an_arrow_batch_keeps_its_columns_and_gets_typed_outputs() -> None:
    table = pa.table({"id": [1, 2, 3, 4], "text": ["old", "old", "old", "old"]})
    out = add_columns(table, output_columns(_outcomes()))
    assert out.column_names == ["id", "text", *OUTPUT_COLUMNS[1:]]  # "text" replaced in place
    assert out.column("id").to_pylist() == [1, 2, 3, 4]
    assert out.schema.field("prompt_tokens").type == pa.int64()
    assert out.schema.field("error_type").type == pa.string()
    assert out.column("text").to_pylist() == ["hello", None, None, None]


def test_a_mapping_batch_comes_back_as_a_dict() -> None:
    batch = {"id": np.arange(4)}
    out = add_columns(batch, output_columns(_outcomes()))
    assert out["id"] is batch["id"]
    assert out["status"] == [None, 503, None, None]
