"""An incremental Server-Sent Events decoder (no I/O).

Feed it bytes as they arrive, split anywhere (inside a line, inside a UTF-8 character, between
``\\r`` and ``\\n``); it returns the events completed so far. Follows the WHATWG rules that
matter for model endpoints: ``data:`` lines of one event are joined with ``\\n``, a single space
after the colon is dropped, lines starting with ``:`` are comments, a blank line dispatches the
event, and an event without data is not dispatched.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["SSEDecoder", "ServerSentEvent"]


class ServerSentEvent(NamedTuple):
    """One dispatched event (immutable; a tuple, built once per token)."""

    data: str
    event: str = "message"
    id: str | None = None


class SSEDecoder:
    """Turns a byte stream into :class:`ServerSentEvent` objects, incrementally.

    Lines are split on the bytes (``\\n`` and ``\\r`` never occur inside a UTF-8 sequence)
    and each complete line is decoded on its own, which gives the same text as decoding the
    whole stream, and costs one ``decode`` per line rather than an incremental decoder, a
    string buffer and line-ending rewrites per network read (this runs once per token).
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._pending_cr = False
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode ``chunk``; return the events it completed."""
        if not chunk:
            return []
        if (
            chunk.startswith(b"data: ")
            and chunk.endswith(b"\n\n")
            and not (self._buffer or self._data or self._event)
            and 13 not in chunk  # b"\r"
        ):
            # Whole one-line events, "data: ...\n\n" each: what model endpoints send (one per
            # token; the last read often holds the final chunk and "[DONE]").
            if chunk.find(b"\n") == len(chunk) - 2:
                self._pending_cr = False
                return [
                    ServerSentEvent(chunk[6:-2].decode("utf-8", "replace"), "message", self._id)
                ]
            pieces = chunk[:-2].split(b"\n\n")
            if all(p.startswith(b"data: ") and 10 not in p for p in pieces):  # 10: b"\n"
                self._pending_cr = False
                return [
                    ServerSentEvent(p[6:].decode("utf-8", "replace"), "message", self._id)
                    for p in pieces
                ]
        if self._pending_cr and chunk[0] == 10:  # the "\n" of a "\r\n" split in two
            chunk = chunk[1:]
        self._pending_cr = chunk[-1:] == b"\r"
        buffer = self._buffer + chunk if self._buffer else chunk
        if 13 in buffer:  # b"\r"
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()  # the unfinished last line
        events: list[ServerSentEvent] = []
        data = self._data
        for line in lines:
            if line.startswith(b"data: "):  # the common case, once per token
                data.append(line[6:].decode("utf-8", "replace"))
            elif line:
                self._field(line.decode("utf-8", "replace"))
            elif data:  # a blank line dispatches the event
                events.append(ServerSentEvent("\n".join(data), self._event or "message", self._id))
                data.clear()
                self._event = ""
            else:
                self._event = ""
        return events

    def flush(self) -> list[ServerSentEvent]:
        """End of stream: an unterminated last event is dispatched only if it is complete data.

        Per the SSE rules an event is dispatched by a blank line; a stream that ends without one
        loses its last event. We keep that rule, so a cut stream is visible to the caller.
        """
        self._buffer = b""
        self._data, self._event, self._id = [], "", None
        return []

    def _field(self, line: str) -> None:
        """A non-blank line other than ``data: ...``: a comment or a field."""
        if line.startswith(":"):
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
