"""Rows in, columns out: a Ray Data batch read as plain Python, and the columns of its results.

Ray hands a batch over as a ``pyarrow.Table`` (``batch_format="pyarrow"``, what :func:`infer`
asks for) or as a mapping of column names to values: numpy arrays by default (object arrays for
lists and structs, numpy scalars for numbers), lists, or a pandas DataFrame. Every value is made
plain Python before it reaches the client: arrays become lists, numpy scalars Python numbers,
and ``None`` entries of dicts are dropped, because Arrow gives every struct of a column every
field any row has (a message without ``name`` beside one with it gets ``"name": None``; a row's
``params`` get the other rows' parameters as nulls).

Nothing here imports numpy, pyarrow or Ray: numpy values are recognised by their ``tolist``, and
pyarrow is imported only when a batch is a ``pyarrow.Table``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._bulk import Item
from .._bulk._jobs._summary import error_message
from .._exceptions import ConfigurationError

__all__ = [
    "OUTPUT_COLUMNS",
    "OUTPUT_SCHEMA",
    "Outcome",
    "add_columns",
    "batch_items",
    "check_columns",
    "column",
    "output_columns",
    "plain",
    "rows_in",
]

#: The columns :class:`~azml_client.ray.EndpointUDF` adds, with their Arrow types.
OUTPUT_SCHEMA: tuple[tuple[str, str], ...] = (
    ("text", "string"),
    ("finish_reason", "string"),
    ("prompt_tokens", "int64"),
    ("completion_tokens", "int64"),
    ("error_type", "string"),
    ("status", "int64"),
    ("error_message", "string"),
    ("attempts", "int64"),
    ("latency_ms", "int64"),
)
#: Their names, in order.
OUTPUT_COLUMNS: tuple[str, ...] = tuple(name for name, _ in OUTPUT_SCHEMA)
#: Longest error message kept in ``error_message``.
_MESSAGE_CHARS = 500


def plain(value: Any) -> Any:
    """``value`` as plain Python: numpy arrays and scalars converted, ``None`` dict entries
    dropped, a float NaN (pandas' and Ray's "missing") made ``None``, recursively."""
    if isinstance(value, float):  # numpy's float64 too
        return None if math.isnan(value) else float(value)
    if isinstance(value, str):  # numpy's str_ too
        return str(value)
    if isinstance(value, bytes | int | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars, pyarrow scalars' values
    if callable(tolist):
        return plain(tolist())
    return value


def _is_table(batch: Any) -> bool:
    return type(batch).__module__.split(".")[0] == "pyarrow" and hasattr(batch, "column_names")


def _names(batch: Any) -> list[str]:
    if _is_table(batch):
        return list(batch.column_names)
    return [str(name) for name in batch]


def column(batch: Any, name: str) -> list[Any]:
    """One column of a batch as plain Python values (see :func:`plain`)."""
    names = _names(batch)
    if name not in names:
        raise ConfigurationError(
            f"the dataset has no column {name!r} (columns: {', '.join(names)}): name the "
            "right one (prompt_column=, messages_column=, params_column=) or rename it with "
            "ds.rename_columns()"
        )
    if _is_table(batch):
        return [plain(v) for v in batch.column(name).to_pylist()]
    return [plain(v) for v in batch[name]]


def rows_in(batch: Any) -> int:
    """The number of rows of a batch."""
    if _is_table(batch):
        return int(batch.num_rows)
    names = _names(batch)
    return len(batch[names[0]]) if names else 0


def batch_items(
    batch: Any,
    *,
    prompt_column: str | None,
    messages_column: str | None,
    params_column: str | None,
) -> list[Item | ConfigurationError]:
    """The item of each row (a prompt or a chat, with the row's ``params``), or the
    :class:`ConfigurationError` that says why the row cannot be sent."""
    count = rows_in(batch)
    names = set(_names(batch))
    empty: list[Any] = [None] * count
    # The prompt column may be absent when messages are given (a chat-only dataset).
    prompts = (
        column(batch, prompt_column)
        if prompt_column and (prompt_column in names or not messages_column)
        else empty
    )
    chats = column(batch, messages_column) if messages_column else empty
    params = column(batch, params_column) if params_column else empty
    return [_item(p, m, q) for p, m, q in zip(prompts, chats, params, strict=True)]


def _item(prompt: Any, messages: Any, params: Any) -> Item | ConfigurationError:
    if params is not None and not isinstance(params, Mapping):
        return ConfigurationError(
            f"a row's params must be a mapping of model parameters, got {type(params).__name__}"
        )
    if prompt is not None and messages is not None:
        return ConfigurationError("a row has both a prompt and messages: give one of them")
    try:
        if messages is not None:
            return Item.of({"messages": messages, "params": params})
        if prompt is not None:
            return Item.of({"prompt": prompt, "params": params})
    except ConfigurationError as exc:
        return exc
    return ConfigurationError("a row has no prompt and no messages")


@dataclass(frozen=True)
class Outcome:
    """What became of one row: its result (a completion or the error) and its latency."""

    result: Any
    latency_ms: int | None = None

    def values(self) -> tuple[Any, ...]:
        """The row's output values, in the order of :data:`OUTPUT_SCHEMA`."""
        result = self.result
        if isinstance(result, BaseException):
            sent = not isinstance(result, ConfigurationError)  # refused before sending
            message = error_message(result)
            return (
                None,
                None,
                None,
                None,
                type(result).__name__,
                getattr(result, "status_code", None),
                " ".join(str(message).split())[:_MESSAGE_CHARS],
                getattr(result, "attempts", 1) if sent else 0,
                self.latency_ms,
            )
        usage = getattr(result, "usage", None)
        return (
            getattr(result, "text", None),
            getattr(result, "finish_reason", None),
            getattr(usage, "prompt_tokens", None),
            getattr(usage, "completion_tokens", None),
            None,
            None,
            None,
            getattr(result, "attempts", 1),
            self.latency_ms,
        )


def output_columns(outcomes: Sequence[Outcome]) -> dict[str, list[Any]]:
    """The output columns of a batch's outcomes, in row order."""
    rows = [o.values() for o in outcomes]
    return {name: [row[i] for row in rows] for i, name in enumerate(OUTPUT_COLUMNS)}


def add_columns(batch: Any, columns: Mapping[str, list[Any]]) -> Any:
    """The batch with the output columns added (replacing input columns of the same names).

    A ``pyarrow.Table`` comes back as a table whose input columns are untouched and whose new
    columns have the types of :data:`OUTPUT_SCHEMA`; any other batch as a dict of columns
    (Ray converts it, as it converts every UDF's output).
    """
    if _is_table(batch):
        import pyarrow as pa

        table = batch
        for name, kind in OUTPUT_SCHEMA:
            array = pa.array(columns[name], type=pa.type_for_alias(kind))
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name, array)
            else:
                table = table.append_column(name, array)
        return table
    out = {name: batch[name] for name in _names(batch)}
    out.update(columns)
    return out


def check_columns(*names: str | None) -> None:
    """Refuse input columns that the output would overwrite."""
    taken = set(OUTPUT_COLUMNS)
    for name in names:
        if name in taken:
            raise ConfigurationError(
                f"the input column {name!r} would be overwritten by the output column of that "
                f"name: rename it first, e.g. ds.rename_columns({{{name!r}: 'prompt'}})"
            )
