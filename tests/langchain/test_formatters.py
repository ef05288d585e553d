"""LangChain's own formatter objects, used by their methods; and the seed's Mistral formatter.

LangChain's formatters (``langchain_community``'s classes, and a user's subclass of its
``ContentFormatterBase``) reach the endpoint exactly as they build their bodies, and read the
answers with their own ``format_response_payload``, on the LLM and the chat classes alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from azml_client import ConfigurationError
from azml_client.emulator import EmulatorServer
from azml_client.formatters import FormatRequest
from azml_client.formatters._dedicated import fold_system
from azml_client.langchain import (
    AzureMLChatOnlineEndpoint,
    AzureMLOnlineEndpoint,
    LangChainFormatter,
    MistralChatContentFormatter,
    load_llm,
)

from .conftest import API_KEY, RECORDED_SERVERLESS, SCORE_KEY, Recorder, SummaryServer


def llm_on_score(server: EmulatorServer, formatter: Any, deployment: str) -> AzureMLOnlineEndpoint:
    return AzureMLOnlineEndpoint(
        endpoint_url=server.score_url,
        endpoint_api_key=SCORE_KEY,
        deployment_name=deployment,
        content_formatter=formatter,
        model_kwargs={"max_new_tokens": 8},
    )


def test_langchains_gpt2_formatter_on_score(
    seed_llms: ModuleType, score_emulator: EmulatorServer
) -> None:
    llm = llm_on_score(score_emulator, seed_llms.GPT2ContentFormatter(), "gpt2-records")
    assert isinstance(llm.formatter, LangChainFormatter)
    assert llm.invoke("Hello there").strip()


def test_langchains_openai_formatter_on_score_and_serverless(
    seed_llms: ModuleType, score_emulator: EmulatorServer, api_emulator: EmulatorServer
) -> None:
    dedicated = llm_on_score(score_emulator, seed_llms.CustomOpenAIContentFormatter(), "llama")
    assert dedicated.invoke("Write me a song").strip()
    serverless = AzureMLOnlineEndpoint(
        endpoint_url=f"{api_emulator.serverless_url}/completions",
        endpoint_api_type=seed_llms.AzureMLEndpointApiType.serverless,
        endpoint_api_key=API_KEY,
        content_formatter=seed_llms.CustomOpenAIContentFormatter(),
    )
    assert isinstance(serverless.formatter, LangChainFormatter)
    result = serverless.generate(["Write me a song"])
    generation = result.generations[0][0]
    assert generation.text.strip()
    assert generation.generation_info is not None
    assert generation.generation_info["finish_reason"] in ("stop", "length")
    # A formatter that cannot stream: the answer comes as one chunk.
    assert "".join(serverless.stream("Write me a song")).strip()


def test_langchains_chat_formatter_on_score_and_serverless(
    seed_chat: ModuleType, score_emulator: EmulatorServer, api_emulator: EmulatorServer
) -> None:
    messages = [SystemMessage("Be brief."), HumanMessage("Will it rain?")]
    dedicated = AzureMLChatOnlineEndpoint(
        endpoint_url=score_emulator.score_url,
        endpoint_api_key=SCORE_KEY,
        deployment_name="llama-chat-output",
        content_formatter=seed_chat.CustomOpenAIChatContentFormatter(),
    )
    answer = dedicated.invoke(messages)
    assert isinstance(answer, AIMessage) and answer.content
    serverless = AzureMLChatOnlineEndpoint(
        endpoint_url=f"{api_emulator.serverless_url}/chat/completions",
        endpoint_api_type="serverless",
        endpoint_api_key=API_KEY,
        content_formatter=seed_chat.CustomOpenAIChatContentFormatter,  # the class, uncalled
    )
    answer = serverless.invoke(messages)
    assert isinstance(answer, AIMessage) and answer.content
    assert answer.response_metadata["finish_reason"] in ("stop", "length")
    chunks = list(serverless.stream(messages))
    assert chunks[-1].chunk_position == "last" and "".join(str(c.content) for c in chunks)


def test_langchains_mistral_formatter_gets_langchains_realtime(
    seed_chat: ModuleType, score_emulator: EmulatorServer
) -> None:
    seen: list[Any] = []

    class Watching(seed_chat.MistralChatContentFormatter):  # type: ignore[misc,name-defined]
        def format_messages_request_payload(self, messages: Any, kwargs: Any, api_type: Any) -> Any:
            seen.append(api_type)
            return super().format_messages_request_payload(messages, kwargs, api_type)

    with pytest.warns(UserWarning, match="LlamaChatContentFormatter"):  # LangChain's own
        formatter = Watching()
    with pytest.warns(DeprecationWarning, match="realtime"):
        chat = AzureMLChatOnlineEndpoint(
            endpoint_url=score_emulator.score_url,
            endpoint_api_type="realtime",
            endpoint_api_key=SCORE_KEY,
            deployment_name="llama-chat-output",
            content_formatter=formatter,
        )
    answer = chat.invoke([SystemMessage("Be brief."), HumanMessage("Hi")])
    assert answer.content
    assert seen == [seed_chat.AzureMLEndpointApiType.realtime]
    assert type(seen[0]) is seed_chat.AzureMLEndpointApiType


def test_a_users_subclass_of_langchains_base(
    seed_llms: ModuleType, summary_server: SummaryServer
) -> None:
    seen: list[Any] = []

    class Summarizer(seed_llms.ContentFormatterBase):  # type: ignore[misc,name-defined]
        def format_request_payload(self, prompt: str, model_kwargs: Any, api_type: Any) -> bytes:
            seen.append(api_type)
            return json.dumps({"inputs": [prompt], "parameters": model_kwargs}).encode()

        def format_response_payload(self, output: bytes, api_type: Any) -> Any:
            return seed_llms.Generation(text=json.loads(output)[0]["summary_text"])

    llm = AzureMLOnlineEndpoint(
        endpoint_url=summary_server.url,
        endpoint_api_key=summary_server.key,
        content_formatter=Summarizer(),
        model_kwargs={"max_length": 20},
    )
    text = 'A "quoted" line\nand a second one'
    assert llm.invoke(text) == 'A "quoted" line and a second one'
    assert summary_server.requests[-1][1] == {"inputs": [text], "parameters": {"max_length": 20}}
    assert seen == [seed_llms.AzureMLEndpointApiType.dedicated]


def test_a_completion_formatter_cannot_chat(seed_llms: ModuleType) -> None:
    chat = AzureMLChatOnlineEndpoint(
        endpoint_url=RECORDED_SERVERLESS.replace("/v1", "") + "/score",
        api_key="k",
        content_formatter=seed_llms.GPT2ContentFormatter(),
    )
    with pytest.raises(ConfigurationError, match="does not support chat"):
        chat.invoke("Hi")


def test_a_model_with_langchains_formatter_saves_and_loads(
    seed_llms: ModuleType,
    score_emulator: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    llm = llm_on_score(score_emulator, seed_llms.GPT2ContentFormatter(), "gpt2-records")
    llm.save(tmp_path / "gpt2.json")
    saved = json.loads((tmp_path / "gpt2.json").read_text())
    assert (
        saved["content_formatter"]
        == "langchain_community.llms.azureml_endpoint:GPT2ContentFormatter"
    )
    monkeypatch.setenv("AZUREML_ENDPOINT_API_KEY", SCORE_KEY)
    loaded = load_llm(tmp_path / "gpt2.json")
    assert isinstance(loaded.formatter, LangChainFormatter)
    assert isinstance(loaded.formatter.wrapped, seed_llms.GPT2ContentFormatter)
    assert loaded.invoke("Hello there").strip()


def test_a_formatter_defined_in_a_function_is_not_saved_silently(
    seed_llms: ModuleType, tmp_path: Path
) -> None:
    class Local(seed_llms.GPT2ContentFormatter):  # type: ignore[misc,name-defined]
        pass

    llm = AzureMLOnlineEndpoint(
        endpoint_url=RECORDED_SERVERLESS.replace("/v1", "") + "/score",
        api_key="k",
        content_formatter=Local(),
    )
    with pytest.raises(ConfigurationError, match="define it at module level"):
        llm.save(tmp_path / "local.json")


# -- the seed's Mistral formatter ----------------------------------------------------------------


def test_the_system_prompt_is_folded_into_the_first_turn() -> None:
    assert fold_system(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    ) == [{"role": "user", "content": "Be brief.\n\nHi"}]
    assert fold_system([{"role": "system", "content": "Only this."}]) == [
        {"role": "user", "content": "Only this."}
    ]
    parts = [{"type": "text", "text": "Hi"}]
    assert fold_system(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": parts}]
    ) == [{"role": "user", "content": [{"type": "text", "text": "Be brief."}, *parts]}]


def test_mistral_chat_works_on_score_and_serverless(recorder: Recorder) -> None:
    body = MistralChatContentFormatter().build_request(
        FormatRequest(
            messages=[{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
        )
    )
    assert body == {"input_data": {"input_string": [{"role": "user", "content": "S\n\nU"}]}}
    chat = AzureMLChatOnlineEndpoint(
        endpoint_url=RECORDED_SERVERLESS,
        api_key="k",
        content_formatter=MistralChatContentFormatter(),
        client_kwargs={"transport": recorder.transport},
    )
    chat.invoke([SystemMessage("Be brief."), HumanMessage("Hi")])
    # Serverless routes speak the OpenAI wire format, whose Mistral API takes a system message.
    assert recorder.last["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
