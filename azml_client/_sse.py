"""An incremental Server-Sent Events decoder (no I/O).

Feed it bytes as they arrive, split anywhere (inside a line, inside a UTF-8 character, between
``\\r`` and ``\\n``); it returns the events completed so far. Follows the WHATWG rules that
matter for model endpoints: ``data:`` lines of one event are joined with ``\\n``, a single space
after the colon is dropped, lines starting with ``:`` are comments, a blank line dispatches the
event, and an event without data is not dispatched.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = ["SSEDecoder", "ServerSentEvent"]


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event."""

    data: str
    event: str = "message"
    id: str | None = None


class SSEDecoder:
    """Turns a byte stream into :class:`ServerSentEvent` objects, incrementally."""

    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._pending_cr = False
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode ``chunk``; return the events it completed."""
        text = self._text.decode(chunk)
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]
        self._pending_cr = text.endswith("\r")
        self._buffer += text
        events: list[ServerSentEvent] = []
        lines = self._buffer.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self._buffer = lines.pop()  # the unfinished last line
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[ServerSentEvent]:
        """End of stream: an unterminated last event is dispatched only if it is complete data.

        Per the SSE rules an event is dispatched by a blank line; a stream that ends without one
        loses its last event. We keep that rule, so a cut stream is visible to the caller.
        """
        self._buffer += self._text.decode(b"", final=True)
        self._buffer = ""
        self._data, self._event, self._id = [], "", None
        return []

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = ServerSentEvent(
                data="\n".join(self._data), event=self._event or "message", id=self._id
            )
            self._data, self._event = [], ""
            return event
        if line.startswith("data: "):  # the common case, once per token
            self._data.append(line[6:])
            return None
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None
