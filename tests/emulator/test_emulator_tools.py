"""Tool calls, structured output, image parts and their streams on every chat route."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, Field

from azml_client.emulator import EmulatorServer

SSEParser = Callable[[str], list[Any]]
SchemaCheck = Callable[[Any, Any], list[str]]
CHAT_ROUTES = ["/openai/v1/chat/completions", "/models/chat/completions",
               "/v1/chat/completions", "/chat/completions"]  # fmt: skip
ASK = [{"role": "user", "content": "What is the weather in Paris and in Oslo?"}]
WEATHER = {"type": "object", "properties": {
    "city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]},
    "days": {"type": "integer", "minimum": 1, "maximum": 7}}, "required": ["city", "unit"],
    "additionalProperties": False}  # fmt: skip
TIME = {"type": "object", "properties": {"zone": {"type": "string", "format": "date-time"}},
        "required": ["zone"]}  # fmt: skip


class Forecast(BaseModel):
    city: str
    temperatures: list[float] = Field(min_length=1, max_length=5)
    rain: bool | None = None


def tool(name: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name, "description": f"the {name} tool"}
    if parameters is not None:
        function["parameters"] = parameters
    return {"type": "function", "function": function}


TOOLS = [tool("get_weather", WEATHER), tool("get_time", TIME)]


@pytest.fixture(scope="module")
def http(api_emulator: EmulatorServer) -> Iterator[httpx.Client]:
    headers = {"api-key": api_emulator.api_key, "Authorization": f"Bearer {api_emulator.api_key}"}
    params = {"api-version": "2025-04-01"}
    with httpx.Client(base_url=api_emulator.base_url, headers=headers, params=params) as client:
        yield client


def chat(http: httpx.Client, route: str = CHAT_ROUTES[0], **body: Any) -> httpx.Response:
    return http.post(route, json={"model": "m", "messages": ASK, **body})


def answer(response: httpx.Response) -> tuple[dict[str, Any], str]:
    assert response.status_code == 200, response.text
    (choice,) = response.json()["choices"]
    return choice["message"], choice["finish_reason"]


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


@pytest.mark.parametrize("route", CHAT_ROUTES)
def test_the_first_tool_is_called_with_valid_arguments(
    http: httpx.Client, route: str, schema_errors: SchemaCheck
) -> None:
    # On serverless routes "model" is a known field; the call does not depend on it.
    message, finish = answer(chat(http, route, tools=TOOLS))
    assert finish == "tool_calls"
    assert message["role"] == "assistant" and message["content"] is None
    (call,) = message["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert re.fullmatch(r"call_[0-9a-f]{24}", call["id"])
    arguments = json.loads(call["function"]["arguments"])
    assert schema_errors(arguments, WEATHER) == []


def test_calls_are_deterministic_and_depend_on_the_prompt(http: httpx.Client) -> None:
    first = answer(chat(http, tools=TOOLS))[0]["tool_calls"][0]
    again = answer(chat(http, tools=TOOLS))[0]["tool_calls"][0]
    other_prompt = [{"role": "user", "content": "And in Rome?"}]
    other = answer(chat(http, tools=TOOLS, messages=other_prompt))[0]["tool_calls"][0]
    assert first == again
    assert other["id"] != first["id"]


def test_usage_counts_the_argument_tokens(http: httpx.Client) -> None:
    response = chat(http, tools=TOOLS)
    arguments = answer(response)[0]["tool_calls"][0]["function"]["arguments"]
    usage = response.json()["usage"]
    assert usage["completion_tokens"] == -(-len(arguments) // 4)  # 4 characters per token
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_a_named_tool_choice(http: httpx.Client, schema_errors: SchemaCheck) -> None:
    named = {"type": "function", "function": {"name": "get_time"}}
    (call,) = answer(chat(http, tools=TOOLS, tool_choice=named))[0]["tool_calls"]
    assert call["function"]["name"] == "get_time"
    assert schema_errors(json.loads(call["function"]["arguments"]), TIME) == []


def test_a_tool_without_parameters_gets_empty_arguments(http: httpx.Client) -> None:
    (call,) = answer(chat(http, tools=[tool("ping")]))[0]["tool_calls"]
    assert call["function"] == {"name": "ping", "arguments": "{}"}


@pytest.mark.parametrize("route", [CHAT_ROUTES[0], CHAT_ROUTES[1]])
def test_an_unknown_named_tool_is_400(http: httpx.Client, route: str) -> None:
    named = {"type": "function", "function": {"name": "get_stock_price"}}
    error = error_of(chat(http, route, tools=TOOLS, tool_choice=named))
    assert "get_stock_price" in error["message"]
    if route.startswith("/openai"):
        assert error["param"] == "tool_choice"


@pytest.mark.parametrize(
    "body",
    [
        {"tools": TOOLS, "tool_choice": "sometimes"},
        {"tools": TOOLS, "tool_choice": {"type": "function"}},
        {"tool_choice": "required"},
        {"tool_choice": {"type": "function", "function": {"name": "get_time"}}},
        {"tools": {"get_weather": WEATHER}},
        {"tools": [{"type": "retrieval"}]},
        {"tools": [{"type": "function", "function": {"description": "no name"}}]},
        {"tools": [tool("bad", parameters=[])]},  # type: ignore[arg-type]
        {"tools": [tool("bad", {"type": "integer", "minimum": 3, "maximum": 1})]},
    ],
)
def test_malformed_tools_are_400(http: httpx.Client, body: dict[str, Any]) -> None:
    error = error_of(chat(http, **body))
    assert error["param"] in ("tools", "tool_choice")


def test_the_tool_result_rule(http: httpx.Client) -> None:
    call = answer(chat(http, tools=TOOLS))[0]["tool_calls"][0]
    conversation = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": '{"temperature": 21}'},
    ]
    for choice in (None, "auto"):
        extra = {} if choice is None else {"tool_choice": choice}
        message, finish = answer(chat(http, tools=TOOLS, messages=conversation, **extra))
        assert finish == "stop" and message["content"] and "tool_calls" not in message
    forced: list[object] = [
        "required",
        "any",
        {"type": "function", "function": {"name": "get_time"}},
    ]
    for force in forced:
        message, finish = answer(chat(http, tools=TOOLS, messages=conversation, tool_choice=force))
        assert finish == "tool_calls" and message["tool_calls"]


def test_tool_choice_none_answers_in_text(http: httpx.Client) -> None:
    message, finish = answer(chat(http, tools=TOOLS, tool_choice="none"))
    assert finish == "stop" and isinstance(message["content"], str) and message["content"]
    assert answer(chat(http, tools=[]))[1] == "stop"


@pytest.mark.parametrize("route", CHAT_ROUTES)
def test_a_streamed_call_reassembles_to_the_same_call(
    http: httpx.Client, route: str, parse_sse: SSEParser
) -> None:
    whole = chat(http, route, tools=TOOLS)
    (expected,) = answer(whole)[0]["tool_calls"]
    body = {"tools": TOOLS, "stream": True, "stream_options": {"include_usage": True}}
    events = parse_sse(chat(http, route, **body).text)
    assert events[-1] == "[DONE]"
    *chunks, usage_chunk = events[:-1]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    head = deltas[0]["tool_calls"][0]
    assert deltas[0]["role"] == "assistant"
    assert head == {"index": 0, "id": expected["id"], "type": "function",
                    "function": {"name": "get_weather", "arguments": ""}}  # fmt: skip
    pieces = [d["tool_calls"][0] for d in deltas[1:-1]]
    assert len(pieces) > 1 and all(set(p) == {"index", "function"} for p in pieces)
    assert "".join(p["function"]["arguments"] for p in pieces) == expected["function"]["arguments"]
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "tool_calls"}
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == whole.json()["usage"]


def test_an_explicit_max_tokens_cuts_the_arguments(http: httpx.Client) -> None:
    full = answer(chat(http, tools=TOOLS))[0]["tool_calls"][0]["function"]["arguments"]
    message, finish = answer(chat(http, tools=TOOLS, max_tokens=2))
    assert finish == "length"
    assert message["tool_calls"][0]["function"]["arguments"] == full[:8]


def test_json_object_response_format(http: httpx.Client) -> None:
    message, finish = answer(chat(http, response_format={"type": "json_object"}))
    assert finish == "stop"
    content = json.loads(message["content"])
    assert isinstance(content, dict) and isinstance(content["answer"], str) and content["answer"]


@pytest.mark.parametrize("route", CHAT_ROUTES)
def test_json_schema_response_format(
    http: httpx.Client, route: str, schema_errors: SchemaCheck
) -> None:
    schema = Forecast.model_json_schema()
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "forecast", "schema": schema, "strict": True},
    }
    message, finish = answer(chat(http, route, response_format=fmt))
    assert finish == "stop" and "tool_calls" not in message
    Forecast.model_validate_json(message["content"], strict=True)
    assert schema_errors(json.loads(message["content"]), schema) == []


def test_structured_output_streams_in_pieces(http: httpx.Client, parse_sse: SSEParser) -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "f", "schema": Forecast.model_json_schema()},
    }
    whole = answer(chat(http, response_format=fmt))[0]["content"]
    body: dict[str, Any] = {"response_format": fmt, "stream": True,
                            "stream_options": {"include_usage": True}}  # fmt: skip
    events = parse_sse(chat(http, **body).text)
    *chunks, usage_chunk = events[:-1]
    texts = [c["choices"][0]["delta"].get("content") or "" for c in chunks]
    assert "".join(texts) == whole and sum(bool(t) for t in texts) > 1
    assert usage_chunk["usage"]["completion_tokens"] == sum(bool(t) for t in texts)


def test_text_response_format_is_plain_text(http: httpx.Client) -> None:
    plain = answer(chat(http))[0]["content"]
    assert answer(chat(http, response_format={"type": "text"}))[0]["content"] == plain


@pytest.mark.parametrize(
    "response_format",
    [
        "json",
        {"type": "xml"},
        {"type": "json_schema"},
        {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": "object"}},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {}, "strict": "yes"}},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"enum": []}}},
    ],
)
@pytest.mark.parametrize("route", [CHAT_ROUTES[0], CHAT_ROUTES[2]])
def test_malformed_response_format_is_400(
    http: httpx.Client, route: str, response_format: object
) -> None:
    error = error_of(chat(http, route, response_format=response_format))
    assert "response_format" in error["message"] or error.get("param") == "response_format"


IMAGE_PARTS = [
    {"type": "text", "text": "What is shown in this image?"},
    {"type": "image_url", "image_url": {"url": "https://example.com/stop.jpg"}},
    {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
    },
]


@pytest.mark.parametrize("route", CHAT_ROUTES)
def test_image_parts_are_accepted_and_counted(http: httpx.Client, route: str) -> None:
    text_only = chat(http, route, messages=[{"role": "user", "content": IMAGE_PARTS[:1]}])
    with_images = chat(http, route, messages=[{"role": "user", "content": IMAGE_PARTS}])
    assert text_only.status_code == with_images.status_code == 200
    assert text_only.json()["usage"]["prompt_tokens"] == 6
    assert with_images.json()["usage"]["prompt_tokens"] == 6 + 2 * 85


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": "https://example.com/x.png"},
        {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}},
        {"type": "image_url", "image_url": {}},
        {"type": "text", "text": 42},
        {"type": "audio", "audio": "..."},
        "plain string part",
    ],
)
@pytest.mark.parametrize("route", [CHAT_ROUTES[0], CHAT_ROUTES[1], CHAT_ROUTES[2]])
def test_malformed_parts_are_400(http: httpx.Client, route: str, part: object) -> None:
    response = chat(http, route, messages=[{"role": "user", "content": [part]}])
    error = error_of(response)
    if route.startswith("/openai"):
        assert error["param"] == "messages"
