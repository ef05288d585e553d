"""The input of a job: JSONL lines parsed one at a time into items or numbered problems."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from typing import Any, TypeGuard

import anyio.to_thread

from ..._exceptions import ConfigurationError
from .._items import Item

__all__ = [
    "InputProblem",
    "JobId",
    "JobItem",
    "aread_input",
    "count_lines",
    "load_json",
    "read_input",
    "valid_id",
]

JobId = str | int
#: Bytes of input lines read per trip to the worker thread.
_READ_HINT = 1 << 16


@dataclass(frozen=True)
class JobItem:
    """One valid input line: its id, line number and the checked item handed to ``client.map``."""

    id: JobId
    line: int
    item: Item


@dataclass(frozen=True)
class InputProblem:
    """One bad input line."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def valid_id(value: Any) -> TypeGuard[JobId]:
    return isinstance(value, str | int) and not isinstance(value, bool)


def load_json(raw: bytes) -> Any:
    """``json.loads``; ``ValueError`` for anything it cannot decode (even 10,000-deep nesting)."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _parse_line(raw: bytes, line: int) -> JobItem | InputProblem:
    try:
        data = load_json(raw)
    except ValueError as exc:  # includes UnicodeDecodeError
        return InputProblem(line, f"invalid JSON ({exc})")
    if not isinstance(data, dict):
        return InputProblem(line, f"expected a JSON object, got {type(data).__name__}")
    item_id = data.get("id", line)
    if not valid_id(item_id):
        return InputProblem(line, f"'id' must be a string or an integer, got {item_id!r:.60}")
    if "prompt" in data and "messages" in data:
        return InputProblem(line, "give either 'prompt' or 'messages', not both")
    if "prompt" not in data and "messages" not in data:
        return InputProblem(line, "no 'prompt' or 'messages'")
    try:  # the one check of the item: the bulk run trusts it as it is
        item = Item.of(data)
    except ConfigurationError as exc:
        return InputProblem(line, str(exc))
    return JobItem(item_id, line, item)


def read_input(path: str | os.PathLike[str]) -> Iterator[JobItem | InputProblem]:
    """Parse the input file lazily, one line at a time (blank lines are skipped).

    Duplicate ids are not detected here (that needs the job's state): see :class:`BatchJob`.
    """
    with open(path, "rb") as fh:
        for line, raw in enumerate(fh, start=1):
            if raw.strip():
                yield _parse_line(raw, line)


async def aread_input(path: str) -> AsyncGenerator[JobItem | InputProblem, None]:
    """:func:`read_input` with the reads in a worker thread, about 64 KiB at a time."""
    with open(path, "rb") as fh:  # noqa: ASYNC230 - opening is quick; the reads are in a thread
        line = 0
        while chunk := await anyio.to_thread.run_sync(fh.readlines, _READ_HINT):
            for raw in chunk:
                line += 1
                if raw.strip():
                    yield _parse_line(raw, line)


def count_lines(path: str | os.PathLike[str]) -> int:
    """Number of non-blank lines (the items :func:`read_input` will yield): a progress total."""
    with open(path, "rb") as fh:
        return sum(1 for raw in fh if raw.strip())
