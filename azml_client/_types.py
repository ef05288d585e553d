"""Result models returned by the client.

Models accept unknown fields (``extra="allow"``) so a new server field never breaks parsing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from . import _json
from ._exceptions import ResponseFormatError

__all__ = [
    "ChatCompletion",
    "ChatMessage",
    "Completion",
    "Embeddings",
    "FunctionCall",
    "ModelInfo",
    "StreamChunk",
    "ToolCall",
    "Usage",
    "message_from",
    "tool_calls_from",
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


class FunctionCall(BaseModel):
    """The function a tool call names, and its arguments as the JSON string the model wrote."""

    model_config = ConfigDict(extra="allow")

    name: str
    arguments: str = "{}"

    def parsed_arguments(self) -> Any:
        """The arguments decoded (a :class:`ResponseFormatError` when they are not JSON)."""
        try:
            return _json.loads(self.arguments or "{}")
        except ValueError as exc:
            raise ResponseFormatError(
                f"the arguments of tool call {self.name!r} are not JSON ({exc})",
                formatter="tools",
                body=self.arguments,
            ) from None


class ToolCall(BaseModel):
    """One tool call of an assistant message, in the OpenAI shape."""

    model_config = ConfigDict(extra="allow")

    id: str
    type: str = "function"
    function: FunctionCall


def tool_calls_from(data: Any) -> list[ToolCall] | None:
    """Typed tool calls from a message's ``tool_calls`` list (``None`` when there are none).

    Arguments sent as an object instead of a JSON string are encoded; a call without a function
    name is an error (dropping it would lose what the model asked for).
    """
    if not isinstance(data, list) or not data:
        return None
    calls = []
    for i, raw in enumerate(data):
        function = raw.get("function") if isinstance(raw, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        if (
            not isinstance(raw, Mapping)
            or not isinstance(function, Mapping)
            or not isinstance(name, str)
            or not name
        ):
            raise ResponseFormatError(
                f"tool call {i} has no function name", formatter="tools", body=repr(raw)[:300]
            )
        arguments = function.get("arguments")
        if arguments is None:
            arguments = "{}"
        elif not isinstance(arguments, str):
            try:
                arguments = json.dumps(arguments, ensure_ascii=False)
            except (TypeError, ValueError):
                raise ResponseFormatError(
                    f"tool call {i} has arguments that are not JSON",
                    formatter="tools",
                    body=repr(arguments)[:300],
                ) from None
        ident = raw.get("id")
        kind = raw.get("type")
        calls.append(
            ToolCall(
                id=ident if isinstance(ident, str) and ident else f"call_{i}",
                type=kind if isinstance(kind, str) and kind else "function",
                function=FunctionCall(name=name, arguments=arguments),
            )
        )
    return calls


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
    #: The endpoint that answered (a router's results tell its endpoints apart by it), and the
    #: deployment that answered (the ``azureml-model-deployment`` header, else the one asked).
    endpoint_url: str | None = None
    deployment: str | None = None
    raw: Any = Field(default=None, repr=False)

    def __str__(self) -> str:
        return self.text


class ChatCompletion(Completion):
    """The answer to :meth:`EndpointClient.chat`: the text plus the assistant message.

    ``tool_calls`` holds the typed calls when the model called tools (``finish_reason`` is then
    ``"tool_calls"``); ``parsed`` the decoded answer of a ``response_format`` request: a dict,
    or an instance of the pydantic model passed as ``response_format``.
    """

    message: ChatMessage = Field(default_factory=lambda: ChatMessage(role="assistant"))
    tool_calls: list[ToolCall] | None = None
    parsed: Any = None


class Embeddings(BaseModel):
    """The answer to :meth:`EndpointClient.embed`: one vector per input, in input order."""

    model_config = ConfigDict(extra="allow")

    vectors: list[list[float]]
    usage: Usage | None = None
    model: str | None = None
    request_id: str | None = None
    client_request_id: str | None = None
    attempts: int = 1
    endpoint_url: str | None = None
    deployment: str | None = None
    raw: Any = Field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.vectors)


class ModelInfo(BaseModel):
    """What ``GET /info`` says of the model behind an endpoint (model inference API)."""

    model_config = ConfigDict(extra="allow")

    model_name: str
    #: ``chat-completions``, ``embeddings``, ``text-generation``, ... as the endpoint says it.
    model_type: str
    model_provider_name: str


class StreamChunk(BaseModel):
    """One piece of a streamed answer: the new text, and on the last chunk the finish reason."""

    model_config = ConfigDict(extra="allow")

    text: str = ""
    finish_reason: str | None = None
    #: Sent by some endpoints on the last chunk (``stream_options.include_usage``).
    usage: Usage | None = None
    #: 0-based position of this chunk in the stream.
    index: int = 0
    #: The chunk's ``choices[0].delta`` as sent (OpenAI-style streams): tool-call pieces too.
    delta: Any = Field(default=None, repr=False)
    raw: Any = Field(default=None, repr=False)
