"""The client against the real emulator on a loopback port (no mocks) for today's endpoint
kinds: the OpenAI v1 API and the model inference API, embeddings, /info, tools, structured
output, images and streamed usage. The emulator is a server nobody here had to mock."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from azml_client import (
    ApiType,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    EndpointClient,
    NotFoundError,
    SyncEndpointClient,
)
from azml_client.emulator import EmulatorConfig, EmulatorServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(seed=7)) as running:
        yield running


def client(server: EmulatorServer, kind: str, **kwargs: Any) -> EndpointClient:
    url = {
        "openai_v1": server.openai_v1_url,
        "models": server.models_url,
        "serverless": server.serverless_url,
    }[kind]
    kwargs.setdefault("api_key", server.api_key)
    kwargs.setdefault("max_retries", 0)
    if kind == "openai_v1":
        kwargs.setdefault("model", "gpt-4o-mini")
    return EndpointClient(endpoint_url=url, **kwargs)


KINDS = ["openai_v1", "models", "serverless"]


class Weather(BaseModel):
    """Get the current weather of a city."""

    city: str
    unit: Literal["celsius", "fahrenheit"]
    days: int


class Person(BaseModel):
    name: str
    age: int
    tags: list[str]


@pytest.mark.parametrize("kind", KINDS)
async def test_each_kind_is_inferred_and_chats(server: EmulatorServer, kind: str) -> None:
    async with client(server, kind) as c:
        assert c.api_type is ApiType(kind)
        reply = await c.chat([{"role": "user", "content": "Say hi"}], max_tokens=8)
        done = await c.complete("Once upon a time", max_tokens=4)
    assert reply.text and reply.usage is not None and reply.usage.completion_tokens
    assert done.text and done.finish_reason in ("stop", "length")


async def test_the_v1_api_wants_a_model_and_the_right_key(server: EmulatorServer) -> None:
    async with client(server, "openai_v1", model="my-deployment") as c:
        reply = await c.chat([{"role": "user", "content": "Hi"}])
    assert reply.model == "my-deployment"  # the emulator echoes the model it was sent
    async with client(server, "openai_v1", api_key="wrong") as c:
        with pytest.raises(AuthenticationError):
            await c.chat([{"role": "user", "content": "Hi"}])
    async with client(server, "openai_v1", model=None) as c:
        with pytest.raises(ConfigurationError, match="needs the model"):
            await c.chat([{"role": "user", "content": "Hi"}])


async def test_the_models_api_gets_its_api_version(server: EmulatorServer) -> None:
    async with client(server, "models") as c:
        assert (await c.chat([{"role": "user", "content": "Hi"}])).text
    async with client(server, "models", api_version="1999-01-01") as c:
        with pytest.raises(BadRequestError, match="api-version"):
            await c.chat([{"role": "user", "content": "Hi"}])


@pytest.mark.parametrize("kind", KINDS)
async def test_embeddings_are_deterministic_unit_vectors(server: EmulatorServer, kind: str) -> None:
    async with client(server, kind) as c:
        first = await c.embed(["a red apple", "a green pear"], dimensions=32)
        again = await c.embed("a green pear", dimensions=32, encoding_format="base64")
    assert len(first.vectors) == 2 and all(len(v) == 32 for v in first.vectors)
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-5) for v in first.vectors)
    assert first.vectors[0] != first.vectors[1]
    assert again.vectors[0] == pytest.approx(first.vectors[1], abs=1e-6)  # base64 decoded
    assert first.usage is not None and first.usage.prompt_tokens


async def test_embed_many_and_batch_items_match_single_calls(server: EmulatorServer) -> None:
    texts = [f"text number {i}" for i in range(23)]
    async with client(server, "models") as c:
        many = await c.embed_many(texts, batch_size=5, dimensions=8)
        single = await c.embed(texts[17], dimensions=8)
        results = await c.batch([{"input": t} for t in texts[:3]], dimensions=8)
    assert len(many.vectors) == 23
    assert many.vectors[17] == pytest.approx(single.vectors[0])
    assert [r.vectors[0] for r in results] == [pytest.approx(v) for v in many.vectors[:3]]  # type: ignore[union-attr]
    assert results.stats.succeeded == 3


async def test_image_embeddings_and_info(server: EmulatorServer) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(16)
    async with client(server, "models") as c:
        out = await c.embed_images([png, {"image": "https://example.com/cat.png", "text": "cat"}])
        info = await c.info()
    assert len(out.vectors) == 2
    assert info.model_name and info.model_type
    async with client(server, "openai_v1") as c:
        with pytest.raises(ConfigurationError, match="no such route"):
            await c.info()
        with pytest.raises(NotFoundError):
            await c.invoke({}, url=f"{server.openai_v1_url}/info")


@pytest.mark.parametrize("kind", KINDS)
async def test_tool_calls_validate_against_the_schema(server: EmulatorServer, kind: str) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Oslo?"}]
    async with client(server, kind) as c:
        reply = await c.chat(messages, tools=[Weather], tool_choice="required")
        assert reply.finish_reason == "tool_calls" and reply.tool_calls
        call = reply.tool_calls[0]
        args = Weather.model_validate(call.function.parsed_arguments())  # valid for the schema
        assert call.function.name == "Weather"
        # the conversation ends after the tool's result
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": f"{args.city}: sunny"},
        ]
        final = await c.chat(messages, tools=[Weather])
    assert final.tool_calls is None and final.text


async def test_a_stream_assembles_the_same_tool_call(server: EmulatorServer) -> None:
    messages = [{"role": "user", "content": "Weather in Rome?"}]
    async with client(server, "openai_v1") as c:
        whole = await c.chat(messages, tools=[Weather], tool_choice="required", seed=1)
        async with c.stream(messages, tools=[Weather], tool_choice="required", seed=1) as stream:
            chunks = [chunk async for chunk in stream]
    assert any(chunk.delta and "tool_calls" in chunk.delta for chunk in chunks)
    assert stream.tool_calls is not None and whole.tool_calls is not None
    assert stream.tool_calls[0].function.name == whole.tool_calls[0].function.name
    assert stream.tool_calls[0].function.parsed_arguments() == (
        whole.tool_calls[0].function.parsed_arguments()
    )
    assert stream.usage is not None and stream.usage.completion_tokens  # asked for by default


@pytest.mark.parametrize("kind", KINDS)
async def test_structured_output_is_parsed_into_the_model(
    server: EmulatorServer, kind: str
) -> None:
    messages = [{"role": "user", "content": "Describe a person"}]
    async with client(server, kind) as c:
        reply = await c.chat(messages, response_format=Person)
        loose = await c.chat(messages, response_format={"type": "json_object"})
        async with c.stream(messages, response_format=Person) as stream:
            _ = [chunk async for chunk in stream]
    assert isinstance(reply.parsed, Person)
    assert isinstance(loose.parsed, dict)
    assert isinstance(stream.parsed, Person)


async def test_images_in_messages_count_as_prompt(server: EmulatorServer) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    text = {"type": "text", "text": "What is in the picture?"}
    async with client(server, "models") as c:
        plain = await c.chat([{"role": "user", "content": [text]}])
        with_image = await c.chat([{"role": "user", "content": [text, image]}])
    assert plain.usage is not None and with_image.usage is not None
    assert (with_image.usage.prompt_tokens or 0) > (plain.usage.prompt_tokens or 0)


def test_the_sync_client_speaks_the_v1_api(server: EmulatorServer) -> None:
    with SyncEndpointClient(
        endpoint_url=server.openai_v1_url, api_key=server.api_key, model="m"
    ) as c:
        vectors = c.embed(["x", "y"]).vectors
        with c.stream([{"role": "user", "content": "Hi"}], max_tokens=5) as stream:
            text = "".join(chunk.text for chunk in stream)
    assert len(vectors) == 2
    assert text == stream.text and stream.usage is not None


async def test_results_say_which_endpoint_and_deployment_answered(server: EmulatorServer) -> None:
    async with client(server, "serverless") as c:
        reply = await c.chat([{"role": "user", "content": "Hi"}])
        vectors = await c.embed("x")
    assert reply.endpoint_url == server.serverless_url
    assert vectors.endpoint_url == server.serverless_url
    async with EndpointClient(endpoint_url=server.score_url, api_key=server.api_key) as c:
        out = await c.complete("Hi")
    assert out.endpoint_url == server.score_url
    assert out.deployment  # the front door names the deployment that answered
