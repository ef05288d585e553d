"""Clients nobody here wrote, against the emulator: the official openai package on the
serverless and OpenAI v1 routes, and LangChain's AzureMLOnlineEndpoint on /score. They need the
optional ``compat`` extra (installed by .ci/run)."""

from __future__ import annotations

import json
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from azml_client.emulator import EmulatorConfig, EmulatorServer, run_emulator

pytestmark = [pytest.mark.compat, pytest.mark.integration]


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    with run_emulator(EmulatorConfig(api_key="compat-key")) as emu:
        yield emu


async def test_openai_sdk_completes_chats_and_streams(server: EmulatorServer) -> None:
    openai = pytest.importorskip("openai")
    client = openai.AsyncOpenAI(
        base_url=server.serverless_url, api_key=server.api_key, max_retries=0
    )
    try:
        chat = await client.chat.completions.create(
            model="azml-emulator",
            messages=[{"role": "user", "content": "Hello there"}],
            max_tokens=8,
        )
        assert chat.choices[0].message.content
        assert chat.usage is not None and chat.usage.completion_tokens <= 8
        completion = await client.completions.create(
            model="azml-emulator", prompt="Once upon", max_tokens=5
        )
        assert completion.choices[0].text
        stream = await client.chat.completions.create(
            model="azml-emulator",
            messages=[{"role": "user", "content": "Hello there"}],
            max_tokens=8,
            stream=True,
        )
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        assert "".join(parts) == chat.choices[0].message.content
        with pytest.raises(openai.AuthenticationError):
            bad = openai.AsyncOpenAI(base_url=server.serverless_url, api_key="wrong", max_retries=0)
            try:
                await bad.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "x"}]
                )
            finally:
                await bad.close()
    finally:
        await client.close()


def test_langchain_azureml_online_endpoint_gets_answers_from_score(server: EmulatorServer) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # langchain-community warns that it is being sunset
        azureml = pytest.importorskip("langchain_community.llms.azureml_endpoint")
        llm = azureml.AzureMLOnlineEndpoint(
            endpoint_url=server.score_url,
            endpoint_api_type="dedicated",
            endpoint_api_key=server.api_key,
            content_formatter=azureml.CustomOpenAIContentFormatter(),
            model_kwargs={"temperature": 0.5, "max_new_tokens": 10},
        )
        answer = llm.invoke("Write me a song about sparkling water:")
    assert isinstance(answer, str) and answer.strip()
    assert server.stats.by_route["POST /score"] == 1


class WeatherQuery(BaseModel):
    """Arguments of the get_weather tool (the SDK makes a strict schema of it)."""

    city: str
    unit: Literal["celsius", "fahrenheit"]
    days: int = Field(ge=1, le=7)


class Step(BaseModel):
    explanation: str
    output: str


class MathAnswer(BaseModel):
    steps: list[Step]
    final_answer: str
    confidence: float | None = Field(ge=0, le=1)


@pytest.fixture(scope="module")
def v1_server() -> Iterator[EmulatorServer]:
    with run_emulator(EmulatorConfig(api_key="compat-v1-key", seed=3)) as emu:
        yield emu


@pytest.fixture
async def v1_client(v1_server: EmulatorServer) -> AsyncIterator[Any]:
    openai = pytest.importorskip("openai")
    client = openai.AsyncOpenAI(
        base_url=v1_server.openai_v1_url, api_key=v1_server.api_key, max_retries=0
    )
    try:
        yield client
    finally:
        await client.close()


MESSAGES = [{"role": "user", "content": "What is the weather in Oslo this week?"}]


async def test_openai_sdk_tool_calls_on_openai_v1(v1_client: Any) -> None:
    openai = pytest.importorskip("openai")
    tool = openai.pydantic_function_tool(WeatherQuery, name="get_weather")
    chat = await v1_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=[tool])
    assert chat.model == "gpt-4o"
    choice = chat.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and call.id.startswith("call_")
    query = WeatherQuery.model_validate_json(call.function.arguments, strict=True)
    # parse() reads the strict tool's arguments into the pydantic model itself.
    parsed = await v1_client.chat.completions.parse(model="gpt-4o", messages=MESSAGES, tools=[tool])
    (parsed_call,) = parsed.choices[0].message.tool_calls
    assert parsed_call.function.parsed_arguments == query
    # The tool's answer goes back; with tool_choice left to the model it now answers in text.
    history = [*MESSAGES, choice.message.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temp": -3})}]  # fmt: skip
    final = await v1_client.chat.completions.create(model="gpt-4o", messages=history, tools=[tool])
    assert final.choices[0].finish_reason == "stop" and final.choices[0].message.content


async def test_openai_sdk_structured_output_parse(v1_client: Any) -> None:
    completion = await v1_client.chat.completions.parse(
        model="gpt-4o", messages=[{"role": "user", "content": "solve 8x + 31 = 2"}],
        response_format=MathAnswer,
    )  # fmt: skip
    message = completion.choices[0].message
    assert isinstance(message.parsed, MathAnswer)
    assert message.parsed == MathAnswer.model_validate_json(message.content)
    assert message.parsed.steps


async def test_openai_sdk_embeddings_base64_default_matches_float(v1_client: Any) -> None:
    texts = ["the quick brown fox", "jumps over the lazy dog"]
    default = await v1_client.embeddings.create(model="text-embedding-3-small", input=texts)
    floats = await v1_client.embeddings.create(
        model="text-embedding-3-small", input=texts, encoding_format="float"
    )
    assert [d.embedding for d in default.data] == [d.embedding for d in floats.data]
    assert len(default.data[0].embedding) == 256
    assert default.data[0].embedding != default.data[1].embedding
    short = await v1_client.embeddings.create(model="m", input=texts[0], dimensions=16)
    assert len(short.data[0].embedding) == 16
    assert default.usage.prompt_tokens == default.usage.total_tokens == 9


async def test_openai_sdk_stream_with_usage(v1_client: Any) -> None:
    stream = await v1_client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=6, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == len(text.split()) == 6
    assert all(c.usage is None for c in chunks[:-1])
    assert (await v1_client.models.list()).data[0].id == "azml-emulator"


async def test_openai_sdk_maps_a_missing_model_to_bad_request(v1_client: Any) -> None:
    openai = pytest.importorskip("openai")
    with pytest.raises(openai.BadRequestError) as caught:
        await v1_client.post(
            "/chat/completions",
            body={"messages": MESSAGES},
            cast_to=openai.types.chat.ChatCompletion,
        )
    assert caught.value.status_code == 400
    assert caught.value.param == "model" and caught.value.type == "invalid_request_error"
