"""The input of a job: JSONL lines parsed one at a time into items or numbered problems.

What a line must hold depends on the job's task: ``generate`` (the default) reads ``prompt`` or
``messages``, ``embeddings`` reads ``input`` (a string or a list of strings). Other keys are
ignored, so a prompt file with an ``input`` field kept as metadata runs as it did before.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

import anyio.to_thread

from ..._exceptions import ConfigurationError
from .._items import Item

__all__ = [
    "EMBEDDING_OPTIONS",
    "TASKS",
    "InputProblem",
    "JobId",
    "JobItem",
    "Task",
    "aread_input",
    "count_lines",
    "load_json",
    "read_input",
    "valid_id",
]

JobId = str | int
#: What a job does with each line: generate text (prompts, chats) or embed texts.
Task = Literal["generate", "embeddings"]
TASKS: tuple[Task, ...] = ("generate", "embeddings")
#: What an embeddings line's ``params`` (and the job's) may set.
EMBEDDING_OPTIONS = frozenset({"input_type", "encoding_format", "dimensions", "model"})
#: Bytes of input lines read per trip to the worker thread.
_READ_HINT = 1 << 16


@dataclass(frozen=True)
class JobItem:
    """One valid input line: its id, line number and the checked item handed to ``client.map``."""

    id: JobId
    line: int
    item: Item
    #: An embeddings line whose ``input`` is one string (not a list): its result is written as
    #: one ``vector`` rather than a list of ``vectors``.
    single: bool = False


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


def _generate_item(data: dict[str, Any], line: int) -> Item | InputProblem:
    if "prompt" in data and "messages" in data:
        return InputProblem(line, "give either 'prompt' or 'messages', not both")
    if "prompt" not in data and "messages" not in data:
        hint = " (an 'input' line is embedded with --task embeddings)" if "input" in data else ""
        return InputProblem(line, f"no 'prompt' or 'messages'{hint}")
    # Only the keys of this task: an extra "input" field does not turn a prompt into texts.
    return Item.of({k: data[k] for k in ("prompt", "messages", "params") if k in data})


def _embeddings_item(data: dict[str, Any], line: int) -> Item | InputProblem:
    if "input" not in data:
        hint = (
            "; 'prompt' and 'messages' lines need the default --task generate"
            if "prompt" in data or "messages" in data
            else ""
        )
        return InputProblem(line, f"no 'input' (the text or list of texts to embed{hint})")
    item = Item.of({"input": data["input"], "params": data.get("params")})
    unknown = sorted(set(item.params) - EMBEDDING_OPTIONS)
    if unknown:
        return InputProblem(
            line,
            f"'params' of an embeddings line may set {', '.join(sorted(EMBEDDING_OPTIONS))}; "
            f"not {', '.join(unknown)}",
        )
    return item


def _parse_line(raw: bytes, line: int, task: Task = "generate") -> JobItem | InputProblem:
    try:
        data = load_json(raw)
    except ValueError as exc:  # includes UnicodeDecodeError
        return InputProblem(line, f"invalid JSON ({exc})")
    if not isinstance(data, dict):
        return InputProblem(line, f"expected a JSON object, got {type(data).__name__}")
    item_id = data.get("id", line)
    if not valid_id(item_id):
        return InputProblem(line, f"'id' must be a string or an integer, got {item_id!r:.60}")
    try:  # the one check of the item: the bulk run trusts it as it is
        item = _embeddings_item(data, line) if task == "embeddings" else _generate_item(data, line)
    except ConfigurationError as exc:
        return InputProblem(line, str(exc))
    if isinstance(item, InputProblem):
        return item
    single = task == "embeddings" and isinstance(data["input"], str)
    return JobItem(item_id, line, item, single=single)


def read_input(
    path: str | os.PathLike[str], task: Task = "generate"
) -> Iterator[JobItem | InputProblem]:
    """Parse the input file lazily, one line at a time (blank lines are skipped).

    Duplicate ids are not detected here (that needs the job's state): see :class:`BatchJob`.
    """
    with open(path, "rb") as fh:
        for line, raw in enumerate(fh, start=1):
            if raw.strip():
                yield _parse_line(raw, line, task)


async def aread_input(
    path: str, task: Task = "generate"
) -> AsyncGenerator[JobItem | InputProblem, None]:
    """:func:`read_input` with the reads in a worker thread, about 64 KiB at a time."""
    with open(path, "rb") as fh:  # noqa: ASYNC230 - opening is quick; the reads are in a thread
        line = 0
        while chunk := await anyio.to_thread.run_sync(fh.readlines, _READ_HINT):
            for raw in chunk:
                line += 1
                if raw.strip():
                    yield _parse_line(raw, line, task)


def count_lines(path: str | os.PathLike[str]) -> int:
    """Number of non-blank lines (the items :func:`read_input` will yield): a progress total."""
    with open(path, "rb") as fh:
        return sum(1 for raw in fh if raw.strip())
