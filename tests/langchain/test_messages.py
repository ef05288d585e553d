"""Message conversion, as plain functions: LangChain messages out, replies and chunks in."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core")

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from azml_client import ChatCompletion, FunctionCall, ToolCall, Usage
from azml_client.langchain._messages import (
    ai_message,
    chunk_from_delta,
    last_chunk,
    openai_tool_calls,
    to_openai_messages,
)

CALL = {"name": "add", "args": {"a": 1, "b": 2}, "id": "call_1", "type": "tool_call"}


def test_roles_names_and_tool_turns() -> None:
    wire = to_openai_messages(
        [
            SystemMessage("Be brief."),
            HumanMessage("What is 1 + 2?", name="ada"),
            AIMessage("", tool_calls=[CALL]),
            ToolMessage('{"result": 3}', tool_call_id="call_1", name="add", status="error"),
            ChatMessage(role="user", content="Thanks"),
        ]
    )
    assert wire[0] == {"role": "system", "content": "Be brief."}
    assert wire[1] == {"role": "user", "name": "ada", "content": "What is 1 + 2?"}
    assert wire[2]["role"] == "assistant"
    assert wire[2]["tool_calls"] == [
        {
            "type": "function",
            "id": "call_1",
            "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
        }
    ]
    # A tool result carries the call id and its content only.
    assert wire[3] == {"role": "tool", "tool_call_id": "call_1", "content": '{"result": 3}'}
    assert wire[4] == {"role": "user", "content": "Thanks"}


def test_image_blocks_become_openai_image_parts() -> None:
    (wire,) = to_openai_messages(
        [
            HumanMessage(
                content=[
                    {"type": "text", "text": "Describe these."},
                    {"type": "image", "base64": "iVBORw0KGgo=", "mime_type": "image/png"},
                    {"type": "image", "url": "https://example.com/cat.png"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}},
                ]
            )
        ]
    )
    assert wire["content"] == [
        {"type": "text", "text": "Describe these."},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}},
    ]


def test_an_ai_turns_content_blocks_leave_only_text() -> None:
    anthropic_style = AIMessage(
        content=[
            {"type": "text", "text": "Let me add."},
            {"type": "tool_use", "id": "call_1", "name": "add", "input": {"a": 1, "b": 2}},
        ],
        tool_calls=[CALL],
    )
    v1_style = AIMessage(
        content=[
            {"type": "text", "text": "Let me add."},
            {"type": "tool_call", "id": "call_1", "name": "add", "args": {"a": 1, "b": 2}},
        ],
        tool_calls=[CALL],
    )
    for message in (anthropic_style, v1_style):
        (wire,) = to_openai_messages([message])
        assert wire["content"] == "Let me add."
        assert [c["id"] for c in wire["tool_calls"]] == ["call_1"]


def reply(**fields: object) -> ChatCompletion:
    defaults: dict[str, object] = {
        "text": "",
        "finish_reason": "tool_calls",
        "usage": Usage(prompt_tokens=9, completion_tokens=4, total_tokens=13),
        "model": "Phi-4",
        "id": "chatcmpl-7",
        "request_id": "req-1",
    }
    return ChatCompletion.model_validate({**defaults, **fields})


def test_a_reply_becomes_an_ai_message() -> None:
    calls = [
        ToolCall(id="call_1", function=FunctionCall(name="add", arguments='{"a": 1, "b": 2}')),
        ToolCall(id="call_2", function=FunctionCall(name="add", arguments='{"a": 1,')),
    ]
    message = ai_message(reply(tool_calls=calls), model_name="fallback")
    assert message.tool_calls == [
        {"name": "add", "args": {"a": 1, "b": 2}, "id": "call_1", "type": "tool_call"}
    ]
    assert [c["id"] for c in message.invalid_tool_calls] == ["call_2"]
    assert message.usage_metadata == {"input_tokens": 9, "output_tokens": 4, "total_tokens": 13}
    assert message.response_metadata == {
        "model_name": "Phi-4",
        "finish_reason": "tool_calls",
        "request_id": "req-1",
        "id": "chatcmpl-7",
    }
    plain = ai_message(reply(text="Hi", model=None, usage=None), model_name="fallback")
    assert plain.content == "Hi" and plain.usage_metadata is None
    assert plain.response_metadata["model_name"] == "fallback"


def test_stream_pieces_add_up_to_tool_calls() -> None:
    pieces = [
        chunk_from_delta("", {"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function",
             "function": {"name": "add", "arguments": ""}}]}),
        chunk_from_delta("", {"tool_calls": [{"index": 0, "function": {"arguments": '{"a": 1, '}}]}),
        chunk_from_delta("", {"tool_calls": [{"index": 0, "function": {"arguments": '"b": 2}'}}]}),
        last_chunk(
            usage=Usage(prompt_tokens=3, completion_tokens=5, total_tokens=8),
            response_metadata={"model_name": "m", "finish_reason": "tool_calls"},
        ),
    ]  # fmt: skip
    total = pieces[0]
    for piece in pieces[1:]:
        total = total + piece
    assert isinstance(total, AIMessageChunk)
    assert total.chunk_position == "last"
    assert total.tool_calls == [
        {"name": "add", "args": {"a": 1, "b": 2}, "id": "call_1", "type": "tool_call"}
    ]
    assert total.usage_metadata == {"input_tokens": 3, "output_tokens": 5, "total_tokens": 8}
    assert total.response_metadata["model_name"] == "m"


def test_langchain_tool_calls_in_the_openai_shape() -> None:
    assert openai_tool_calls([{"name": "greet", "args": {"name": "你好"}, "id": None}]) == [
        {
            "id": "call_0",
            "type": "function",
            "function": {"name": "greet", "arguments": '{"name": "你好"}'},
        }
    ]
