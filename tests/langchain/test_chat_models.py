"""``AzureMLChatOnlineEndpoint`` features beyond the standard suites: what goes on the wire for
tools, tool choice, structured output and images, streamed usage and tool calls, a reply that is
not the JSON asked for, and a /score chat that cannot stream."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from azml_client.emulator import EmulatorServer
from azml_client.langchain import AzureMLChatOnlineEndpoint

from .conftest import API_KEY, API_MODEL, RECORDED_SERVERLESS, SCORE_KEY, Recorder, openai_answer

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="


class Joke(BaseModel):
    """A joke to tell."""

    setup: str = Field(description="the question")
    punchline: str = Field(description="the answer")


@tool
def get_weather(city: str) -> str:
    """Get the weather of a city."""
    return "sunny"


@tool
def get_time(zone: str) -> str:
    """Get the time in a zone."""
    return "noon"


def recorded(recorder: Recorder, **kwargs: Any) -> AzureMLChatOnlineEndpoint:
    return AzureMLChatOnlineEndpoint(
        endpoint_url=RECORDED_SERVERLESS,
        api_key="k",
        client_kwargs={"transport": recorder.transport},
        **kwargs,
    )


@pytest.fixture
def emulated(api_emulator: EmulatorServer) -> AzureMLChatOnlineEndpoint:
    return AzureMLChatOnlineEndpoint(endpoint_url=api_emulator.serverless_url, api_key=API_KEY)


def test_replies_carry_usage_and_metadata(emulated: AzureMLChatOnlineEndpoint) -> None:
    reply = emulated.invoke("Hello")
    assert isinstance(reply, AIMessage)
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] > 0
    meta = reply.response_metadata
    assert meta["model_name"] == API_MODEL
    assert meta["finish_reason"] == "stop"
    assert meta["request_id"]


def test_a_stream_counts_input_tokens_once_and_ends_with_the_last_chunk(
    emulated: AzureMLChatOnlineEndpoint,
) -> None:
    chunks = list(emulated.stream("Write two haikus"))
    counted = [c for c in chunks if c.usage_metadata and c.usage_metadata["input_tokens"]]
    assert len(counted) == 1 and counted[0] is chunks[-1]
    assert chunks[-1].chunk_position == "last"
    assert [c for c in chunks if c.response_metadata.get("model_name")] == [chunks[-1]]
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert total.content == emulated.invoke("Write two haikus").content


def test_tool_choice_forms_on_the_wire(recorder: Recorder) -> None:
    chat = recorded(recorder)
    chat.bind_tools([get_weather, get_time], tool_choice="any").invoke("Weather?")
    assert recorder.last["tool_choice"] == "required"
    assert [t["function"]["name"] for t in recorder.last["tools"]] == ["get_weather", "get_time"]
    chat.bind_tools([get_weather, get_time], tool_choice="get_time").invoke("Time?")
    assert recorder.last["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}
    chat.bind_tools([get_weather], tool_choice=True).invoke("Weather?")
    assert recorder.last["tool_choice"] == "required"
    chat.bind_tools([get_weather], tool_choice="auto").invoke("Weather?")
    assert recorder.last["tool_choice"] == "auto"
    chat.bind_tools([get_weather]).invoke("Weather?")
    assert "tool_choice" not in recorder.last


def test_tool_calls_invoked_and_streamed(emulated: AzureMLChatOnlineEndpoint) -> None:
    bound = emulated.bind_tools([get_weather], tool_choice="get_weather")
    reply = bound.invoke("What is the weather in Paris?")
    assert isinstance(reply, AIMessage) and len(reply.tool_calls) == 1
    assert reply.tool_calls[0]["name"] == "get_weather"
    assert isinstance(reply.tool_calls[0]["args"]["city"], str)
    assert reply.response_metadata["finish_reason"] == "tool_calls"
    chunks = [c for c in bound.stream("What is the weather in Paris?")]
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert any(isinstance(c, AIMessageChunk) and c.tool_call_chunks for c in chunks)
    total: Any = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert isinstance(total, AIMessageChunk)
    assert total.tool_calls == reply.tool_calls


def test_tool_arguments_keep_unicode() -> None:
    def answer(body: dict[str, Any]) -> Any:
        call = {"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "東京"}'}}  # fmt: skip
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        return {"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}

    chat = recorded(Recorder(answer))
    reply = chat.bind_tools([get_weather]).invoke("Weather in 東京?")
    assert reply.tool_calls[0]["args"] == {"city": "東京"}


def test_structured_output_methods_on_the_wire(recorder: Recorder) -> None:
    def joke(body: dict[str, Any]) -> Any:
        if body.get("tools"):
            call = {"id": "c", "type": "function",
                    "function": {"name": "Joke", "arguments": '{"setup": "s", "punchline": "p"}'}}  # fmt: skip
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            return {"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}
        return openai_answer(body, text='{"setup": "s", "punchline": "p"}')

    recorder = Recorder(joke)
    chat = recorded(recorder)
    assert chat.with_structured_output(Joke).invoke("A joke") == Joke(setup="s", punchline="p")
    response_format = recorder.last["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "Joke"
    assert set(response_format["json_schema"]["schema"]["properties"]) == {"setup", "punchline"}
    calling = chat.with_structured_output(Joke, method="function_calling")
    assert calling.invoke("A joke") == Joke(setup="s", punchline="p")
    assert recorder.last["tool_choice"] == {"type": "function", "function": {"name": "Joke"}}
    json_mode = chat.with_structured_output(None, method="json_mode")
    assert json_mode.invoke("A joke as JSON") == {"setup": "s", "punchline": "p"}
    assert recorder.last["response_format"] == {"type": "json_object"}
    strict = chat.with_structured_output(Joke, strict=True)
    strict.invoke("A joke")
    assert recorder.last["response_format"]["json_schema"]["strict"] is True


def test_structured_output_against_the_emulator(emulated: AzureMLChatOnlineEndpoint) -> None:
    joke = emulated.with_structured_output(Joke).invoke("Tell me a joke")
    assert isinstance(joke, Joke)
    raw = emulated.with_structured_output(Joke, include_raw=True).invoke("Tell me a joke")
    assert isinstance(raw["raw"], AIMessage) and isinstance(raw["parsed"], Joke)
    assert raw["parsing_error"] is None


def test_a_reply_that_is_not_the_json_asked_for_reaches_the_parser() -> None:
    chat = recorded(Recorder(lambda body: openai_answer(body, text="Sorry, no joke today")))
    result = chat.with_structured_output(Joke, include_raw=True).invoke("Tell me a joke")
    assert result["parsed"] is None and result["parsing_error"] is not None
    assert result["raw"].content == "Sorry, no joke today"


def test_images_go_as_openai_parts(recorder: Recorder, emulated: AzureMLChatOnlineEndpoint) -> None:
    content: list[str | dict[str, Any]] = [
        {"type": "text", "text": "Describe it."},
        {"type": "image", "base64": PNG, "mime_type": "image/png"},
        {"type": "image", "url": "https://example.com/cat.png"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    recorded(recorder).invoke([HumanMessage(content=content)])
    parts = recorder.last["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url", "image_url"]
    assert parts[1]["image_url"]["url"] == f"data:image/png;base64,{PNG}"
    assert parts[2]["image_url"]["url"] == "https://example.com/cat.png"
    assert emulated.invoke([HumanMessage(content=content)]).content


def test_json_mode_is_sent_and_answered(emulated: AzureMLChatOnlineEndpoint) -> None:
    answer = emulated.with_structured_output(None, method="json_mode").invoke("JSON please")
    assert isinstance(answer, dict) and "answer" in answer


def test_a_score_chat_answers_a_stream_in_one_last_chunk(score_emulator: EmulatorServer) -> None:
    chat = AzureMLChatOnlineEndpoint(
        endpoint_url=score_emulator.score_url, api_key=SCORE_KEY, deployment_name="llama-chat"
    )
    chunks = list(chat.stream("Hello"))
    assert len(chunks) == 1 and chunks[0].chunk_position == "last" and chunks[0].content


async def test_async_chat_and_stream(emulated: AzureMLChatOnlineEndpoint) -> None:
    reply = await emulated.ainvoke("Hello")
    chunks = [chunk async for chunk in emulated.astream("Hello")]
    assert "".join(str(c.content) for c in chunks) == reply.content
    assert chunks[-1].usage_metadata is not None


def test_streaming_true_streams_invoke(api_emulator: EmulatorServer) -> None:
    tokens: list[str] = []

    from langchain_core.callbacks import BaseCallbackHandler

    class Collect(BaseCallbackHandler):
        def on_llm_new_token(self, token: str | list[str | dict[str, Any]], **kwargs: Any) -> None:
            assert isinstance(token, str)
            tokens.append(token)

    chat = AzureMLChatOnlineEndpoint(
        endpoint_url=api_emulator.serverless_url, api_key=API_KEY, streaming=True
    )
    reply = chat.invoke("Hello", config={"callbacks": [Collect()]})
    assert "".join(tokens) == reply.content and len(tokens) > 2


def test_http_errors_stay_typed(api_emulator: EmulatorServer) -> None:
    from azml_client import AuthenticationError

    chat = AzureMLChatOnlineEndpoint(
        endpoint_url=api_emulator.serverless_url, api_key="wrong", max_retries=0
    )
    with pytest.raises(AuthenticationError) as caught:
        chat.invoke("Hello")
    assert "wrong" not in str(caught.value)
