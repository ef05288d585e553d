"""Today's endpoint kinds through respx: the OpenAI v1 API and the model inference API (routes,
auth header, model, api-version, token audience), embeddings, /info, tools, structured output,
images in messages, and how a formatter follows the route."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from pydantic import BaseModel

from azml_client import (
    ApiType,
    BadRequestError,
    ConfigurationError,
    EndpointClient,
    ResponseFormatError,
    StructuredOutputError,
    SyncEndpointClient,
    ToolCall,
    Usage,
)
from azml_client._tools import Structured
from azml_client._types import FunctionCall, tool_calls_from

from .conftest import CANARY_KEY, DEDICATED_URL, SERVERLESS_URL

V1_BASE = "https://my-resource.openai.azure.com/openai/v1"
MODELS_BASE = "https://my-resource.services.ai.azure.com/models"
VERSION = "api-version=2024-05-01-preview"


def chat_answer(message: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chat-1",
        "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": finish, "message": message}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


def text_answer(text: str, finish: str = "stop") -> dict[str, Any]:
    return chat_answer({"role": "assistant", "content": text}, finish)


def client_for(url: str, **kwargs: Any) -> EndpointClient:
    kwargs.setdefault("api_key", CANARY_KEY)
    kwargs.setdefault("max_retries", 0)
    return EndpointClient(endpoint_url=url, **kwargs)


def body_of(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content)


# -- endpoint kinds --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "chat_url"),
    [
        (f"{V1_BASE}", ApiType.OPENAI_V1, f"{V1_BASE}/chat/completions"),
        (f"{V1_BASE}/", ApiType.OPENAI_V1, f"{V1_BASE}/chat/completions"),
        (f"{V1_BASE}/chat/completions", ApiType.OPENAI_V1, f"{V1_BASE}/chat/completions"),
        (
            "https://r.openai.azure.com",
            ApiType.OPENAI_V1,
            "https://r.openai.azure.com/openai/v1/chat/completions",
        ),
        (
            "https://r.services.ai.azure.com/",
            ApiType.OPENAI_V1,
            "https://r.services.ai.azure.com/openai/v1/chat/completions",
        ),
        (MODELS_BASE, ApiType.MODELS, f"{MODELS_BASE}/chat/completions"),
        (f"{MODELS_BASE}/embeddings", ApiType.MODELS, f"{MODELS_BASE}/chat/completions"),
        (
            "http://127.0.0.1:8080/v1",
            ApiType.SERVERLESS,
            "http://127.0.0.1:8080/v1/chat/completions",
        ),
        (
            "http://127.0.0.1:8080/openai/v1",
            ApiType.OPENAI_V1,
            "http://127.0.0.1:8080/openai/v1/chat/completions",
        ),
        (
            "http://127.0.0.1:8080/models",
            ApiType.MODELS,
            "http://127.0.0.1:8080/models/chat/completions",
        ),
        ("http://127.0.0.1:8080/score", ApiType.DEDICATED, "http://127.0.0.1:8080/score"),
        (SERVERLESS_URL, ApiType.SERVERLESS, SERVERLESS_URL),
    ],
)
def test_the_kind_and_routes_come_from_the_url(url: str, kind: ApiType, chat_url: str) -> None:
    client = client_for(url)
    assert client.api_type is kind
    assert client.routes.chat == chat_url


def test_each_kind_has_its_routes() -> None:
    v1 = client_for(V1_BASE).routes
    assert v1.embeddings == f"{V1_BASE}/embeddings"
    assert v1.info is None and v1.image_embeddings is None  # the v1 API has neither
    models = client_for(MODELS_BASE).routes
    assert models.info == f"{MODELS_BASE}/info"
    assert models.image_embeddings == f"{MODELS_BASE}/images/embeddings"
    assert client_for(DEDICATED_URL).routes.embeddings is None


def test_an_unknown_api_type_lists_all_four() -> None:
    with pytest.raises(ConfigurationError, match="openai_v1"):
        client_for(V1_BASE, api_type="openai")


@respx.mock
async def test_openai_v1_sends_the_key_as_api_key_and_the_model_in_the_body() -> None:
    route = respx.post(f"{V1_BASE}/chat/completions").mock(
        return_value=httpx.Response(200, json=text_answer("hi"))
    )
    async with client_for(V1_BASE, model="gpt-4o-mini", deployment_name="ignored") as client:
        await client.chat([{"role": "user", "content": "Hi"}])
        await client.chat([{"role": "user", "content": "Hi"}], model="other")
    first = route.calls[0].request
    assert first.headers["api-key"] == CANARY_KEY
    assert "authorization" not in first.headers
    assert "azureml-model-deployment" not in first.headers  # the deployment is the model here
    assert "api-version" not in str(first.url)
    assert body_of(route, 0)["model"] == "gpt-4o-mini"
    assert body_of(route, 1)["model"] == "other"


@respx.mock
async def test_openai_v1_takes_the_deployment_name_as_the_model() -> None:
    route = respx.post(f"{V1_BASE}/completions").mock(
        return_value=httpx.Response(200, json={"choices": [{"index": 0, "text": "x"}]})
    )
    async with client_for(V1_BASE, deployment_name="my-gpt") as client:
        await client.complete("go")
    assert body_of(route)["model"] == "my-gpt"


async def test_openai_v1_without_a_model_says_how_to_give_one() -> None:
    async with client_for(V1_BASE) as client:
        with pytest.raises(ConfigurationError, match=r"needs the model.*model=") as caught:
            await client.chat([{"role": "user", "content": "Hi"}])
        assert CANARY_KEY not in str(caught.value)
        with pytest.raises(ConfigurationError, match="needs the model"):
            await client.embed("x")


@respx.mock
async def test_models_sends_api_version_api_key_and_extra_parameters() -> None:
    route = respx.post(f"{MODELS_BASE}/chat/completions").mock(
        return_value=httpx.Response(200, json=text_answer("hi"))
    )
    async with client_for(MODELS_BASE, extra_parameters="pass-through") as client:
        out = await client.chat([{"role": "user", "content": "Hi"}], safe_prompt=True)
    request = route.calls[0].request
    assert VERSION in str(request.url)
    assert request.headers["api-key"] == CANARY_KEY
    assert request.headers["extra-parameters"] == "pass-through"
    assert "model" not in body_of(route)  # optional on the model inference API
    assert out.text == "hi"


def test_extra_parameters_is_refused_on_the_v1_api() -> None:
    with pytest.raises(ConfigurationError, match="serverless and models"):
        client_for(V1_BASE, model="m")._plan(
            f"{V1_BASE}/chat/completions", b"{}", _opts(extra_parameters="drop")
        )


def _opts(**kwargs: Any) -> Any:
    from azml_client._options import CallOptions

    return CallOptions(**kwargs)


class _Credential:
    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        self.scopes.extend(scopes)
        return ("token-abc", 4102444800)


@pytest.mark.parametrize(
    ("url", "override", "scope"),
    [
        (V1_BASE, None, "https://cognitiveservices.azure.com/.default"),
        (MODELS_BASE, None, "https://cognitiveservices.azure.com/.default"),
        (
            "https://r.cognitiveservices.azure.com/openai/v1",
            None,
            "https://cognitiveservices.azure.com/.default",
        ),
        (DEDICATED_URL, None, "https://ml.azure.com/.default"),
        ("https://x.eastus2.models.ai.azure.com/v1", None, "https://ml.azure.com/.default"),
        (V1_BASE, "api://custom/.default", "api://custom/.default"),
    ],
)
@respx.mock
async def test_the_token_audience_follows_the_host(
    url: str, override: str | None, scope: str
) -> None:
    respx.post(url__regex=r".*").mock(return_value=httpx.Response(200, json=text_answer("ok")))
    credential = _Credential()
    client = EndpointClient(
        endpoint_url=url, credential=credential, token_scope=override, model="m", max_retries=0
    )
    async with client:
        await client.invoke({"any": "payload"})
    assert credential.scopes == [scope]
    assert respx.calls.last.request.headers["authorization"] == "Bearer token-abc"


# -- embeddings and /info --------------------------------------------------------------------


def _embedding_answer(vectors: list[Any], order: list[int] | None = None) -> dict[str, Any]:
    order = order if order is not None else list(range(len(vectors)))
    data = [{"object": "embedding", "index": i, "embedding": vectors[i]} for i in order]
    return {
        "object": "list",
        "data": data,
        "model": "embed-v3",
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }


@respx.mock
async def test_embed_sends_the_options_and_returns_vectors_in_input_order() -> None:
    route = respx.post(f"{MODELS_BASE}/embeddings").mock(
        return_value=httpx.Response(200, json=_embedding_answer([[1.0, 0.0], [0.0, 1.0]], [1, 0]))
    )
    async with client_for(MODELS_BASE) as client:
        out = await client.embed(["a", "b"], input_type="query", dimensions=2)
    assert out.vectors == [[1.0, 0.0], [0.0, 1.0]]
    assert len(out) == 2 and out.model == "embed-v3"
    assert out.usage is not None and out.usage.prompt_tokens == 4
    assert body_of(route) == {"input": ["a", "b"], "input_type": "query", "dimensions": 2}
    assert VERSION in str(route.calls[0].request.url)


@respx.mock
async def test_base64_embeddings_are_decoded_to_floats() -> None:
    packed = base64.b64encode(struct.pack("<3f", 0.5, -1.0, 2.0)).decode()
    route = respx.post(f"{V1_BASE}/embeddings").mock(
        return_value=httpx.Response(200, json=_embedding_answer([packed]))
    )
    async with client_for(V1_BASE, model="te3") as client:
        out = await client.embed("one text", encoding_format="base64")
    assert out.vectors == [[0.5, -1.0, 2.0]]
    assert body_of(route) == {"input": ["one text"], "encoding_format": "base64", "model": "te3"}


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"data": [{"index": 0, "embedding": [1.0]}]}, r"no embedding for input\(s\) \[1\]"),
        ({"data": [{"index": 0, "embedding": [1]}, {"index": 0, "embedding": [2]}]}, "repeated"),
        ({"data": [{"index": 0, "embedding": "%%%"}, {"index": 1, "embedding": [1]}]}, "base64"),
        ({"data": [{"index": 0, "embedding": ["x"]}, {"index": 1, "embedding": [1]}]}, "numbers"),
        ({"vectors": []}, "'data' list"),
    ],
)
@respx.mock
async def test_a_malformed_embeddings_answer_is_a_typed_error(
    answer: dict[str, Any], message: str
) -> None:
    respx.post(f"{MODELS_BASE}/embeddings").mock(
        return_value=httpx.Response(200, json=answer, headers={"x-request-id": "rid-9"})
    )
    async with client_for(MODELS_BASE) as client:
        with pytest.raises(ResponseFormatError, match=message) as caught:
            await client.embed(["a", "b"])
    assert caught.value.request_id == "rid-9"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input": 42}, "string or a list of strings"),
        ({"input": ["a", 1]}, "input 1 is a int"),
        ({"input": []}, "at least one"),
        ({"input": "a", "input_type": "search"}, "text, query, document"),
        ({"input": "a", "encoding_format": "hex"}, "float, base64"),
        ({"input": "a", "dimensions": 0}, "positive integer"),
    ],
)
async def test_bad_embed_arguments_fail_before_sending(
    kwargs: dict[str, Any], message: str
) -> None:
    async with client_for(MODELS_BASE) as client:
        with pytest.raises(ConfigurationError, match=message):
            await client.embed(**kwargs)


async def test_embeddings_on_a_score_endpoint_point_to_invoke() -> None:
    async with client_for(DEDICATED_URL) as client:
        with pytest.raises(ConfigurationError, match=r"embed\(\) needs a serverless.*invoke"):
            await client.embed("x")


@respx.mock
async def test_embed_images_sends_data_urls(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8
    path = tmp_path / "cat.jpg"
    path.write_bytes(b"\xff\xd8\xff" + b"\x00" * 8)
    route = respx.post(f"{MODELS_BASE}/images/embeddings").mock(
        return_value=httpx.Response(200, json=_embedding_answer([[1.0], [2.0], [3.0]]))
    )
    async with client_for(MODELS_BASE) as client:
        out = await client.embed_images([png, path, {"image": "https://x/y.png", "text": "a cat"}])
    sent = body_of(route)["input"]
    assert sent[0]["image"].startswith("data:image/png;base64,")
    assert base64.b64decode(sent[0]["image"].split(",", 1)[1]) == png
    assert sent[1]["image"].startswith("data:image/jpeg;base64,")
    assert sent[2] == {"image": "https://x/y.png", "text": "a cat"}
    assert out.vectors == [[1.0], [2.0], [3.0]]


async def test_embed_images_refuses_what_is_not_an_image() -> None:
    async with client_for(MODELS_BASE) as client:
        with pytest.raises(ConfigurationError, match="image 0 must be bytes"):
            await client.embed_images(["not a url"])
    async with client_for(V1_BASE, model="m") as client:
        with pytest.raises(ConfigurationError, match="embed_images"):
            await client.embed_images([b"\x89PNG"])


@respx.mock
async def test_embed_many_batches_keeps_order_and_sums_usage() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["input"]
        vectors = [[float(len(t)), float(ord(t[0]))] for t in texts]
        body = _embedding_answer(vectors)
        body["usage"] = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
        return httpx.Response(200, json=body)

    route = respx.post(f"{MODELS_BASE}/embeddings").mock(side_effect=answer)
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]
    async with client_for(MODELS_BASE) as client:
        out = await client.embed_many(iter(texts), batch_size=2, concurrency=2)
    assert out.vectors == [[float(len(t)), float(ord(t[0]))] for t in texts]
    assert sorted(len(body_of(route, i)["input"]) for i in range(3)) == [1, 2, 2]
    assert route.call_count == 3
    assert out.usage is not None and out.usage.prompt_tokens == 5


@respx.mock
async def test_embed_many_raises_a_failed_batch_instead_of_leaving_a_hole() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["input"]
        if "bad" in texts:
            return httpx.Response(400, json={"error": {"message": "input too long"}})
        return httpx.Response(200, json=_embedding_answer([[1.0]] * len(texts)))

    respx.post(f"{MODELS_BASE}/embeddings").mock(side_effect=answer)
    async with client_for(MODELS_BASE) as client:
        with pytest.raises(BadRequestError, match="input too long"):
            await client.embed_many(["a", "b", "bad", "c"], batch_size=1)


@respx.mock
async def test_info_gets_the_model_info() -> None:
    route = respx.get(f"{MODELS_BASE}/info").mock(
        return_value=httpx.Response(
            200,
            json={
                "model_name": "phi3-mini",
                "model_type": "chat-completions",
                "model_provider_name": "Microsoft",
            },
        )
    )
    with SyncEndpointClient(endpoint_url=MODELS_BASE, api_key=CANARY_KEY) as client:
        info = client.info()
    assert (info.model_name, info.model_type, info.model_provider_name) == (
        "phi3-mini",
        "chat-completions",
        "Microsoft",
    )
    request = route.calls[0].request
    assert request.method == "GET" and VERSION in str(request.url)
    assert request.headers["api-key"] == CANARY_KEY


@respx.mock
async def test_a_malformed_info_answer_is_a_typed_error() -> None:
    respx.get(f"{MODELS_BASE}/info").mock(return_value=httpx.Response(200, json={"name": "x"}))
    async with client_for(MODELS_BASE) as client:
        with pytest.raises(ResponseFormatError, match="not a model info object"):
            await client.info()
    async with client_for(V1_BASE) as client:
        with pytest.raises(ConfigurationError, match=r"info\(\) needs a models or serverless"):
            await client.info()


# -- tools and structured output -------------------------------------------------------------


class GetWeather(BaseModel):
    """Get the weather of a city."""

    city: str
    unit: str = "celsius"


class Joke(BaseModel):
    setup: str
    punchline: str


@respx.mock
async def test_tools_go_out_in_the_openai_shape_and_calls_come_back_typed() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "GetWeather", "arguments": '{"city": "Paris"}'}},
            {"id": "call_2", "type": "function",
             "function": {"name": "lookup", "arguments": {"q": "x"}}},
        ],
    }  # fmt: skip
    route = respx.post(SERVERLESS_URL).mock(
        return_value=httpx.Response(200, json=chat_answer(message, "tool_calls"))
    )
    raw_tool = {"type": "function", "function": {"name": "lookup", "parameters": {}}}
    async with client_for(SERVERLESS_URL) as client:
        out = await client.chat(
            [{"role": "user", "content": "Weather in Paris?"}],
            tools=[GetWeather, raw_tool],
            tool_choice="auto",
        )
    sent = body_of(route)
    function = sent["tools"][0]["function"]
    assert function["name"] == "GetWeather"
    assert function["description"] == "Get the weather of a city."
    assert function["parameters"]["required"] == ["city"]
    assert sent["tools"][1] == raw_tool and sent["tool_choice"] == "auto"
    assert out.finish_reason == "tool_calls"
    assert out.tool_calls is not None and all(isinstance(c, ToolCall) for c in out.tool_calls)
    first, second = out.tool_calls
    assert (first.id, first.function.name) == ("call_1", "GetWeather")
    assert GetWeather(**first.function.parsed_arguments()) == GetWeather(city="Paris")
    assert json.loads(second.function.arguments) == {"q": "x"}  # an object sent back as JSON
    assert out.parsed is None


@respx.mock
async def test_a_tool_call_without_a_name_is_a_typed_error() -> None:
    message = {"role": "assistant", "tool_calls": [{"id": "c", "function": {"arguments": "{}"}}]}
    respx.post(SERVERLESS_URL).mock(return_value=httpx.Response(200, json=chat_answer(message)))
    async with client_for(SERVERLESS_URL) as client:
        with pytest.raises(ResponseFormatError, match="no function name"):
            await client.chat([{"role": "user", "content": "x"}], tools=[GetWeather])


@pytest.mark.parametrize(
    "calls",
    [
        pytest.param(["call f"], id="call-not-an-object"),
        pytest.param([{"id": "c", "function": "f"}], id="function-not-an-object"),
        pytest.param([{"id": "c", "function": None}], id="function-null"),
        pytest.param([{"id": "c", "function": {"name": 7}}], id="name-not-a-string"),
        pytest.param([{"id": "c", "function": {"name": ["f"]}}], id="name-a-list"),
        pytest.param([{"id": "c", "function": {"name": ""}}], id="name-empty"),
        pytest.param([{"function": {"name": "f"}}, 42], id="second-call-a-number"),
    ],
)
def test_malformed_tool_calls_are_response_format_errors(calls: list[Any]) -> None:
    with pytest.raises(ResponseFormatError, match=r"tool call \d has no function name"):
        tool_calls_from(calls)


def test_tool_call_arguments_that_cannot_be_json_are_a_response_format_error() -> None:
    """Only a custom formatter hands over such values (a set, a NaN with no JSON form)."""
    with pytest.raises(ResponseFormatError, match="tool call 0 has arguments that are not JSON"):
        tool_calls_from([{"function": {"name": "f", "arguments": {"a": {1, 2}}}}])


@pytest.mark.parametrize("data", [None, [], {}, "tool_calls", 3, {"function": {"name": "f"}}])
def test_tool_calls_that_are_not_a_list_are_dropped(data: Any) -> None:
    assert tool_calls_from(data) is None


def test_malformed_optional_fields_of_a_tool_call_are_replaced() -> None:
    calls = tool_calls_from(
        [
            {"id": 5, "type": [], "function": {"name": "f", "arguments": None}},
            {"id": "", "type": None, "function": {"name": "g", "arguments": 12}},
            {"id": "c2", "function": {"name": "h", "arguments": {"q": [1, "é"]}}},
        ]
    )
    assert calls == [
        ToolCall(id="call_0", type="function", function=FunctionCall(name="f", arguments="{}")),
        ToolCall(id="call_1", type="function", function=FunctionCall(name="g", arguments="12")),
        ToolCall(id="c2", function=FunctionCall(name="h", arguments='{"q": [1, "é"]}')),
    ]


@pytest.mark.parametrize(
    ("tool_calls", "error"),
    [
        ([{"id": "c", "function": {"name": {"n": "f"}, "arguments": "{}"}}], True),
        ([{"id": "c", "type": "function", "function": [["name", "f"]]}], True),
        ("not a list", False),
        ([], False),
    ],
)
@respx.mock
async def test_an_answer_with_malformed_tool_calls_is_a_typed_error_or_none(
    tool_calls: Any, error: bool
) -> None:
    message = {"role": "assistant", "content": "", "tool_calls": tool_calls}
    respx.post(SERVERLESS_URL).mock(
        return_value=httpx.Response(200, json=chat_answer(message, "tool_calls"))
    )
    async with client_for(SERVERLESS_URL) as client:
        if not error:
            out = await client.chat([{"role": "user", "content": "x"}], tools=[GetWeather])
            assert out.tool_calls is None
            return
        with pytest.raises(ResponseFormatError, match="tool call 0 has no function name") as info:
            await client.chat([{"role": "user", "content": "x"}], tools=[GetWeather])
    assert info.value.request_id is not None


async def test_tools_on_a_formatter_that_cannot_send_them_fail_before_sending() -> None:
    async with client_for(DEDICATED_URL, formatter="llama-chat") as client:
        with pytest.raises(ConfigurationError, match=r"cannot send tools.*vllm"):
            await client.chat([{"role": "user", "content": "x"}], tools=[GetWeather])
        with pytest.raises(ConfigurationError, match="tools must be a list"):
            await client.chat([{"role": "user", "content": "x"}], tools=GetWeather)


@respx.mock
async def test_vllm_on_score_passes_tools_and_reads_its_tool_calls() -> None:
    call = {"id": "c9", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    route = respx.post(DEDICATED_URL).mock(
        return_value=httpx.Response(
            200,
            json={
                "output": "",
                "message": {"role": "assistant", "content": None},
                "tool_calls": [call],
                "finish_reason": "tool_calls",
            },
        )
    )
    async with client_for(DEDICATED_URL, formatter="vllm") as client:
        out = await client.chat([{"role": "user", "content": "x"}], tools=[GetWeather])
    assert (
        body_of(route)["input_data"]["parameters"]["tools"][0]["function"]["name"] == "GetWeather"
    )
    assert out.tool_calls is not None and out.tool_calls[0].id == "c9"


@respx.mock
async def test_response_format_from_a_model_class_is_strict_and_parsed() -> None:
    route = respx.post(f"{V1_BASE}/chat/completions").mock(
        return_value=httpx.Response(200, json=text_answer('{"setup": "S", "punchline": "P"}'))
    )
    async with client_for(V1_BASE, model="gpt") as client:
        out = await client.chat([{"role": "user", "content": "joke"}], response_format=Joke)
    assert out.parsed == Joke(setup="S", punchline="P")
    sent = body_of(route)["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Joke"
    assert sent["json_schema"]["strict"] is True
    schema = sent["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["setup", "punchline"]


@pytest.mark.parametrize(
    ("content", "finish", "message"),
    [
        ('{"setup": "S"}', "stop", "does not fit Joke: punchline"),
        ('{"setup": "S", "punch', "length", "cut off.*max_tokens"),
        ("Sure! Here is a joke", "stop", "not JSON"),
    ],
)
@respx.mock
async def test_an_answer_that_misses_the_schema_is_a_typed_error(
    content: str, finish: str, message: str
) -> None:
    respx.post(SERVERLESS_URL).mock(
        return_value=httpx.Response(200, json=text_answer(content, finish))
    )
    async with client_for(SERVERLESS_URL) as client:
        with pytest.raises(StructuredOutputError, match=message) as caught:
            await client.chat([{"role": "user", "content": "joke"}], response_format=Joke)
    assert caught.value.text == content
    assert caught.value.finish_reason == finish


@pytest.mark.parametrize("content", ['{"setup": "S"}', "Sure! Here is a joke"])
def test_a_structured_output_error_carries_the_usage(content: str) -> None:
    usage = Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)
    with pytest.raises(StructuredOutputError) as caught:
        Structured(Joke).parse(content, "stop", "rid-1", usage=usage)
    assert caught.value.usage == usage
    assert (caught.value.text, caught.value.finish_reason) == (content, "stop")
    with pytest.raises(StructuredOutputError) as bare:
        Structured(Joke).parse(content, "stop", "rid-1")
    assert bare.value.usage is None


@respx.mock
async def test_a_chat_whose_answer_misses_the_schema_reports_its_usage() -> None:
    respx.post(SERVERLESS_URL).mock(
        return_value=httpx.Response(200, json=text_answer('{"setup": "S"}'))
    )
    async with client_for(SERVERLESS_URL) as client:
        with pytest.raises(StructuredOutputError) as caught:
            await client.chat([{"role": "user", "content": "joke"}], response_format=Joke)
    assert caught.value.usage == Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)


@respx.mock
async def test_json_object_answers_are_decoded_to_a_dict() -> None:
    route = respx.post(SERVERLESS_URL).mock(
        return_value=httpx.Response(200, json=text_answer('{"a": [1, 2]}'))
    )
    async with client_for(SERVERLESS_URL) as client:
        out = await client.chat(
            [{"role": "user", "content": "x"}], response_format={"type": "json_object"}
        )
        plain = await client.chat([{"role": "user", "content": "x"}])
    assert out.parsed == {"a": [1, 2]}
    assert plain.parsed is None
    assert body_of(route, 0)["response_format"] == {"type": "json_object"}


# -- images in messages, formatters following the route ---------------------------------------

IMAGE_MESSAGE = {
    "role": "user",
    "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ],
}


@respx.mock
async def test_image_parts_pass_through_on_openai_routes() -> None:
    route = respx.post(SERVERLESS_URL).mock(return_value=httpx.Response(200, json=text_answer("a")))
    async with client_for(SERVERLESS_URL) as client:
        await client.chat([IMAGE_MESSAGE])
    assert body_of(route)["messages"] == [IMAGE_MESSAGE]


@respx.mock
async def test_a_dedicated_chat_formatter_joins_text_parts_and_refuses_images() -> None:
    route = respx.post(DEDICATED_URL).mock(return_value=httpx.Response(200, json={"output": "ok"}))
    text_only = {
        "role": "user",
        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
    }
    async with client_for(DEDICATED_URL, formatter="llama-chat") as client:
        await client.chat([text_only])
        with pytest.raises(ConfigurationError, match=r"'image_url' content part.*cannot send"):
            await client.chat([IMAGE_MESSAGE])
    assert body_of(route)["input_data"]["input_string"] == [{"role": "user", "content": "a\nb"}]
    assert route.call_count == 1


@respx.mock
async def test_family_formatters_speak_openai_on_openai_routes() -> None:
    base = SERVERLESS_URL.removesuffix("/chat/completions")
    chat = respx.post(f"{base}/chat/completions").mock(
        return_value=httpx.Response(200, json=text_answer("hi"))
    )
    completions = respx.post(f"{base}/completions").mock(
        return_value=httpx.Response(200, json={"choices": [{"index": 0, "text": "t"}]})
    )
    for family in ("llama", "llama-chat", "gpt2"):
        async with client_for(SERVERLESS_URL, formatter=family) as client:
            assert (await client.chat([{"role": "user", "content": "x"}])).text == "hi"
            assert (await client.complete("go")).text == "t"
    assert all("messages" in json.loads(c.request.content) for c in chat.calls)
    assert all(json.loads(c.request.content).get("prompt") == "go" for c in completions.calls)
    assert chat.call_count == completions.call_count == 3


# -- invoke() is not complete() ----------------------------------------------------------------


async def test_invoke_with_a_prompt_or_model_arguments_points_to_complete() -> None:
    async with client_for(DEDICATED_URL) as client:
        with pytest.raises(ConfigurationError, match=r"not JSON: for a prompt use complete"):
            await client.invoke("Write me a song")
        with pytest.raises(ConfigurationError, match=r"temperature.*complete\(prompt"):
            await client.invoke({"input_data": ["x"]}, temperature=0.5)


@respx.mock
async def test_invoke_still_sends_json_text_and_bytes_verbatim() -> None:
    route = respx.post(DEDICATED_URL).mock(return_value=httpx.Response(200, json={"ok": 1}))
    async with client_for(DEDICATED_URL) as client:
        assert await client.invoke('{"input_data": ["x"]}') == {"ok": 1}
        await client.invoke(b"raw bytes")
    assert route.calls[0].request.content == b'{"input_data": ["x"]}'
    assert route.calls[1].request.content == b"raw bytes"


# -- streams: usage by default, tool-call deltas, parsed ----------------------------------------


def _sse(*events: dict[str, Any]) -> bytes:
    lines = [f"data: {json.dumps(e)}\n\n" for e in events]
    return ("".join(lines) + "data: [DONE]\n\n").encode()


@respx.mock
async def test_a_stream_assembles_tool_call_deltas() -> None:
    def delta(d: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}

    pieces = [
        delta(
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_7",
                        "type": "function",
                        "function": {"name": "GetWeather", "arguments": ""},
                    }
                ],
            }
        ),
        delta({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
        delta({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
        delta({}, "tool_calls"),
        {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}},
    ]
    route = respx.post(SERVERLESS_URL).mock(
        return_value=httpx.Response(
            200, content=_sse(*pieces), headers={"content-type": "text/event-stream"}
        )
    )
    client = client_for(SERVERLESS_URL)
    async with (
        client,
        client.stream([{"role": "user", "content": "x"}], tools=[GetWeather]) as stream,
    ):
        chunks = [chunk async for chunk in stream]
    assert chunks[1].delta == {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}
    calls = stream.tool_calls
    assert calls is not None and len(calls) == 1
    assert (calls[0].id, calls[0].function.name) == ("call_7", "GetWeather")
    assert calls[0].function.parsed_arguments() == {"city": "Oslo"}
    assert stream.finish_reason == "tool_calls"
    assert stream.usage is not None and stream.usage.total_tokens == 13
    assert body_of(route)["tools"][0]["function"]["name"] == "GetWeather"


@respx.mock
async def test_stream_options_are_the_callers_when_given() -> None:
    route = respx.post(SERVERLESS_URL).mock(
        return_value=httpx.Response(
            200,
            content=_sse(
                {
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"content": '{"setup": "a", "punchline": "b"}'},
                            "finish_reason": "stop",
                        }
                    ]
                }
            ),
            headers={"content-type": "text/event-stream"},
        )
    )
    async with client_for(SERVERLESS_URL) as client:
        async with client.stream(
            [{"role": "user", "content": "x"}], stream_options=None, response_format=Joke
        ) as stream:
            _ = [c async for c in stream]
        assert stream.parsed == Joke(setup="a", punchline="b")
        async with client.stream(
            [{"role": "user", "content": "y"}], stream_options={"include_usage": False}
        ) as other:
            _ = [c async for c in other]
    assert "stream_options" not in body_of(route, 0)
    assert body_of(route, 1)["stream_options"] == {"include_usage": False}


@respx.mock
async def test_batch_items_with_input_are_embedded() -> None:
    route = respx.post(f"{MODELS_BASE}/embeddings").mock(
        return_value=httpx.Response(200, json=_embedding_answer([[0.5]]))
    )
    items = [{"input": "a"}, {"input": ["b"], "params": {"input_type": "query"}}, {"input": 3}]
    async with client_for(MODELS_BASE) as client:
        results = await client.batch(items, concurrency=1, dimensions=1)
    assert [type(r).__name__ for r in results] == ["Embeddings", "Embeddings", "ConfigurationError"]
    assert results.stats.succeeded == 2
    assert body_of(route, 0) == {"input": ["a"], "dimensions": 1}
    assert body_of(route, 1) == {"input": ["b"], "input_type": "query", "dimensions": 1}
    async with client_for(MODELS_BASE) as client:
        (bad,) = await client.batch([{"input": "a"}], temperature=0.5)
    assert isinstance(bad, ConfigurationError) and "not temperature" in str(bad)


@pytest.mark.parametrize("cls", [EndpointClient, SyncEndpointClient])
def test_langchain_argument_names_get_the_azml_name(cls: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        cls(
            endpoint_url=DEDICATED_URL,
            endpoint_api_key=CANARY_KEY,
            content_formatter="llama",
            timout=3,
        )
    message = str(caught.value)
    assert "endpoint_api_key (LangChain's name): use api_key" in message
    assert "content_formatter (LangChain's name): use formatter" in message
    assert "timout: did you mean timeout?" in message
    assert "azml_client.langchain" in message
    assert CANARY_KEY not in message


def test_api_type_takes_langchains_lower_case_members() -> None:
    aliases: Any = ApiType  # mypy reads enum aliases as members of their own
    assert aliases.dedicated is ApiType.DEDICATED
    assert aliases.serverless is ApiType.SERVERLESS
    assert client_for(DEDICATED_URL, api_type=ApiType.dedicated).api_type is ApiType.DEDICATED
    assert [t.value for t in ApiType] == ["dedicated", "serverless", "models", "openai_v1"]
