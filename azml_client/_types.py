"""Result models returned by the client.

Models accept unknown fields (``extra="allow"``) so a new server field never breaks parsing.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ChatCompletion", "ChatMessage", "Completion", "StreamChunk", "Usage"]


class Usage(BaseModel):
    """Token counts reported by the endpoint (not every model family reports them)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


class ChatMessage(BaseModel):
    """One message of a conversation, OpenAI style."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: Any = None


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
