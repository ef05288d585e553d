"""Fixtures of the emulator tests: a hand-written SSE reader (the tests parse streams themselves)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

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
