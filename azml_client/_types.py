"""Result models returned by the client.

Models accept unknown fields (``extra="allow"``) so a new server field never breaks parsing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChatCompletion",
    "ChatMessage",
    "Completion",
    "StreamChunk",
    "Usage",
    "message_from",
    "usage_from",
]


class Usage(BaseModel):
    """Token counts reported by the endpoint (not every model family reports them)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


def usage_from(data: Any) -> Usage | None:
    """Usage from an answer's ``usage`` object; a malformed count is dropped, never raised.

    A server that sends ``{"prompt_tokens": "12"}`` or ``{"total_tokens": -1}`` still gives a
    result: the counts that are whole numbers >= 0 are kept, the rest are left out.
    """
    if not isinstance(data, Mapping):
        return None
    counts = {
        name: value for name in _USAGE_FIELDS if type(value := data.get(name)) is int and value >= 0
    }
    extra = {k: v for k, v in data.items() if isinstance(k, str) and k not in _USAGE_FIELDS}
    try:
        return Usage(**counts, **extra)
    except (TypeError, ValueError):
        return Usage(**counts)


class ChatMessage(BaseModel):
    """One message of a conversation, OpenAI style."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: Any = None


def message_from(data: Any, text: str) -> ChatMessage:
    """The assistant message of an answer; a missing or malformed role becomes "assistant"."""
    fields = dict(data) if isinstance(data, Mapping) else {}
    fields = {k: v for k, v in fields.items() if isinstance(k, str)}
    if not isinstance(fields.get("role"), str):
        fields["role"] = "assistant"
    fields.setdefault("content", text)
    return ChatMessage(**fields)


class Completion(BaseModel):
    """The answer to :meth:`EndpointClient.complete`.

    ``text`` is the generated text; ``raw`` the parsed JSON body as the endpoint sent it.
    """

    model_config = ConfigDict(extra="allow")

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    id: str | None = None
    #: The server's request id (``x-request-id``), else the id the client sent.
    request_id: str | None = None
    #: The ``x-ms-client-request-id`` this client sent (the same on every attempt).
    client_request_id: str | None = None
    #: How many HTTP attempts the call took (1 when it succeeded at once).
    attempts: int = 1
    raw: Any = Field(default=None, repr=False)

    def __str__(self) -> str:
        return self.text


class ChatCompletion(Completion):
    """The answer to :meth:`EndpointClient.chat`: the text plus the assistant message."""

    message: ChatMessage = Field(default_factory=lambda: ChatMessage(role="assistant"))
    tool_calls: list[Any] | None = None


class StreamChunk(BaseModel):
    """One piece of a streamed answer: the new text, and on the last chunk the finish reason."""

    model_config = ConfigDict(extra="allow")

    text: str = ""
    finish_reason: str | None = None
    #: Sent by some endpoints on the last chunk (``stream_options.include_usage``).
    usage: Usage | None = None
    #: 0-based position of this chunk in the stream.
    index: int = 0
    raw: Any = Field(default=None, repr=False)
