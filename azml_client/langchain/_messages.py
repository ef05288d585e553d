"""LangChain messages to OpenAI-style dicts and back: pure functions, no I/O.

Out: system, human, AI (with ``tool_calls``), tool and generic chat messages become
``{"role", "content", ...}`` dicts; LangChain's standard content blocks (``{"type": "image",
"base64": ...}``, ``{"type": "image", "url": ...}``) become OpenAI ``image_url`` parts, and
blocks no endpoint reads (Anthropic ``tool_use``, reasoning) are dropped
(``langchain_core.messages.convert_to_openai_messages`` does the conversion).

In: a :class:`ChatCompletion` becomes an ``AIMessage`` with ``tool_calls`` (arguments that are
not JSON become ``invalid_tool_calls``), ``usage_metadata`` and ``response_metadata``
(``model_name``, ``finish_reason``, ``request_id``); a stream chunk's raw ``delta`` becomes an
``AIMessageChunk`` with ``tool_call_chunks``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from langchain_core.exceptions import OutputParserException
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    InvalidToolCall,
    ToolCall,
    ToolCallChunk,
    UsageMetadata,
    convert_to_openai_messages,
)
from langchain_core.messages.tool import tool_call, tool_call_chunk
from langchain_core.output_parsers.openai_tools import make_invalid_tool_call, parse_tool_call

from .._types import ChatCompletion, Usage
from .._types import ToolCall as WireToolCall

__all__ = [
    "ai_message",
    "chunk_from_delta",
    "last_chunk",
    "metadata",
    "model_of",
    "openai_tool_calls",
    "to_openai_messages",
    "usage_metadata",
]

#: What a tool message may carry on OpenAI-style routes (``name`` is not part of it).
_TOOL_MESSAGE_KEYS = ("role", "tool_call_id", "content")


def to_openai_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """The conversation as OpenAI chat dicts (see the module docstring)."""
    # An AI message's list content (LangChain's v1 output, Anthropic-style turns) repeats its
    # tool calls as blocks; only its text goes back, the calls go as tool_calls.
    plain = [
        m.model_copy(update={"content": m.text})
        if isinstance(m, AIMessage) and isinstance(m.content, list)
        else m
        for m in messages
    ]
    converted = convert_to_openai_messages(plain)
    out: list[dict[str, Any]] = []
    for message in converted:
        if message.get("role") == "tool":
            message = {key: message[key] for key in _TOOL_MESSAGE_KEYS if key in message}
        out.append(message)
    return out


def usage_metadata(usage: Usage | None) -> UsageMetadata | None:
    """LangChain's token counts from the endpoint's ``usage`` (``None`` when it sent none)."""
    if usage is None:
        return None
    prompt = usage.prompt_tokens or 0
    completion = usage.completion_tokens or 0
    total = usage.total_tokens if usage.total_tokens is not None else prompt + completion
    # A cast: langchain-core types the optional keys with typing.NotRequired (Python 3.11),
    # which mypy does not see when it checks for 3.10.
    return cast(
        UsageMetadata, {"input_tokens": prompt, "output_tokens": completion, "total_tokens": total}
    )


def metadata(
    *,
    model_name: str,
    finish_reason: str | None,
    request_id: str | None,
    response_id: str | None = None,
) -> dict[str, Any]:
    """``response_metadata`` of a reply (keys with no value are left out)."""
    out: dict[str, Any] = {"model_name": model_name}
    if finish_reason is not None:
        out["finish_reason"] = finish_reason
    if request_id is not None:
        out["request_id"] = request_id
    if response_id is not None:
        out["id"] = response_id
    return out


def _tool_calls(calls: Iterable[WireToolCall]) -> tuple[list[ToolCall], list[InvalidToolCall]]:
    valid: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    for call in calls:
        raw = {
            "id": call.id,
            "type": "function",
            "function": {"name": call.function.name, "arguments": call.function.arguments},
        }
        try:
            parsed = parse_tool_call(raw, return_id=True)
        except OutputParserException as exc:
            invalid.append(make_invalid_tool_call(raw, str(exc)))
        else:
            if parsed is not None:
                valid.append(tool_call(name=parsed["name"], args=parsed["args"], id=parsed["id"]))
    return valid, invalid


def ai_message(reply: ChatCompletion, *, model_name: str) -> AIMessage:
    """The ``AIMessage`` of a chat reply; ``model_name`` when the answer names no model."""
    valid, invalid = _tool_calls(reply.tool_calls or [])
    return AIMessage(
        content=reply.text,
        tool_calls=valid,
        invalid_tool_calls=invalid,
        usage_metadata=usage_metadata(reply.usage),
        response_metadata=metadata(
            model_name=reply.model or model_name,
            finish_reason=reply.finish_reason,
            request_id=reply.request_id,
            response_id=reply.id,
        ),
        id=reply.id,
    )


def chunk_from_delta(text: str, delta: Any) -> AIMessageChunk:
    """A streamed piece: its text and the tool-call pieces of its raw ``delta``."""
    pieces: list[ToolCallChunk] = []
    calls = delta.get("tool_calls") if isinstance(delta, Mapping) else None
    for position, piece in enumerate(calls if isinstance(calls, list) else ()):
        if not isinstance(piece, Mapping):
            continue
        function = piece.get("function")
        function = function if isinstance(function, Mapping) else {}
        index = piece.get("index", position)
        pieces.append(
            tool_call_chunk(
                name=function.get("name") or None,
                args=function.get("arguments"),
                id=piece.get("id") or None,
                index=index if isinstance(index, int) else position,
            )
        )
    return AIMessageChunk(content=text, tool_call_chunks=pieces)


def last_chunk(
    *, usage: Usage | None, response_metadata: dict[str, Any], text: str = ""
) -> AIMessageChunk:
    """The chunk that ends a stream: the only one with token counts and metadata (LangChain
    adds chunks up, so counts and names set on several chunks would be summed or joined)."""
    return AIMessageChunk(
        content=text,
        usage_metadata=usage_metadata(usage),
        response_metadata=response_metadata,
        chunk_position="last",
    )


def openai_tool_calls(calls: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """LangChain tool calls in the OpenAI wire shape (arguments as a JSON string)."""
    return [
        {
            "id": call.get("id") or f"call_{i}",
            "type": "function",
            "function": {
                "name": call["name"],
                "arguments": json.dumps(call.get("args") or {}, ensure_ascii=False),
            },
        }
        for i, call in enumerate(calls)
    ]


def model_of(raw: Any) -> str | None:
    """The ``model`` an answer (or a stream chunk) names, if any."""
    model = raw.get("model") if isinstance(raw, Mapping) else None
    return model if isinstance(model, str) and model else None
