"""Clients nobody here wrote, against the emulator: the official openai package on the
serverless routes, and LangChain's AzureMLOnlineEndpoint on /score. They need the optional
``compat`` extra (installed by .ci/run)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

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
