"""Every example of LangChain's Azure ML pages, run with only its import lines changed.

The examples are LangChain's text (docs.langchain.com, "Azure ML" LLM page and
"AzureMLChatOnlineEndpoint" chat page; langchain-ai/docs ``src/oss/python/integrations/llms/
azure_ml.mdx`` and ``.../chat/azureml_chat_endpoint.mdx``). Changed: the
``langchain_community`` import lines now name ``azml_client.langchain``, and
``from langchain.messages import HumanMessage`` (the ``langchain`` package, not installed
here) names ``langchain_core.messages``. The placeholders the pages ask readers to fill in
(``https://<your-endpoint>.<your_region>...`` and ``"my-api-key"``) and the ``*_ENDPOINT_*``
variables are set to the emulator's. Each example is executed as it is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from azml_client.emulator import EmulatorConfig, EmulatorServer

from .conftest import API_KEY, SCORE_KEY, Emulators, SummaryServer

PLACEHOLDER = "https://<your-endpoint>.<your_region>.inference.ml.azure.com"

# -- the LLM page ------------------------------------------------------------------------------

IMPORT = "from azml_client.langchain import AzureMLOnlineEndpoint\n"

LLAMA_DEDICATED = """
from azml_client.langchain import (
    AzureMLEndpointApiType,
    CustomOpenAIContentFormatter,
)
from langchain_core.messages import HumanMessage

llm = AzureMLOnlineEndpoint(
    endpoint_url="https://<your-endpoint>.<your_region>.inference.ml.azure.com/score",
    endpoint_api_type=AzureMLEndpointApiType.dedicated,
    endpoint_api_key="my-api-key",
    content_formatter=CustomOpenAIContentFormatter(),
    model_kwargs={"temperature": 0.8, "max_new_tokens": 400},
)
response = llm.invoke("Write me a song about sparkling water:")
response
"""

PER_CALL_TEMPERATURE = """
response = llm.invoke("Write me a song about sparkling water:", temperature=0.5)
response
"""

SERVERLESS_COMPLETIONS = """
from azml_client.langchain import (
    AzureMLEndpointApiType,
    CustomOpenAIContentFormatter,
)
from langchain_core.messages import HumanMessage

llm = AzureMLOnlineEndpoint(
    endpoint_url="https://<your-endpoint>.<your_region>.inference.ml.azure.com/v1/completions",
    endpoint_api_type=AzureMLEndpointApiType.serverless,
    endpoint_api_key="my-api-key",
    content_formatter=CustomOpenAIContentFormatter(),
    model_kwargs={"temperature": 0.8, "max_new_tokens": 400},
)
response = llm.invoke("Write me a song about sparkling water:")
response
"""

CUSTOM_FORMATTER = '''
import json
import os
from typing import Dict

from azml_client.langchain import (
    AzureMLOnlineEndpoint,
    ContentFormatterBase,
)


class CustomFormatter(ContentFormatterBase):
    content_type = "application/json"
    accepts = "application/json"

    def format_request_payload(self, prompt: str, model_kwargs: Dict) -> bytes:
        input_str = json.dumps(
            {
                "inputs": [prompt],
                "parameters": model_kwargs,
                "options": {"use_cache": False, "wait_for_model": True},
            }
        )
        return str.encode(input_str)

    def format_response_payload(self, output: bytes) -> str:
        response_json = json.loads(output)
        return response_json[0]["summary_text"]


content_formatter = CustomFormatter()

llm = AzureMLOnlineEndpoint(
    endpoint_api_type="dedicated",
    endpoint_api_key=os.getenv("BART_ENDPOINT_API_KEY"),
    endpoint_url=os.getenv("BART_ENDPOINT_URL"),
    model_kwargs={"temperature": 0.8, "max_new_tokens": 400},
    content_formatter=content_formatter,
)
large_text = """On January 7, 2020, Blockberry Creative announced that HaSeul would not participate in the promotion for Loona's
next album because of mental health concerns. She was said to be diagnosed with "intermittent anxiety symptoms" and would be
taking time to focus on her health.[39] On February 5, 2020, Loona released their second EP titled [#] (read as hash), along
with the title track "So What".[40] Although HaSeul did not appear in the title track, her vocals are featured on three other
songs on the album, including "365". Once peaked at number 1 on the daily Gaon Retail Album Chart,[41] the EP then debuted at
number 2 on the weekly Gaon Album Chart. On March 12, 2020, Loona won their first music show trophy with "So What" on Mnet's
M Countdown.[42]
"""
summarized_text = llm.invoke(large_text)
print(summarized_text)
'''

DOLLY_CHAIN = """
from langchain_classic.chains import LLMChain
from azml_client.langchain import DollyContentFormatter
from langchain_core.prompts import PromptTemplate

formatter_template = "Write a {word_count} word essay about {topic}."

prompt = PromptTemplate(
    input_variables=["word_count", "topic"], template=formatter_template
)

content_formatter = DollyContentFormatter()

llm = AzureMLOnlineEndpoint(
    endpoint_api_key=os.getenv("DOLLY_ENDPOINT_API_KEY"),
    endpoint_url=os.getenv("DOLLY_ENDPOINT_URL"),
    model_kwargs={"temperature": 0.8, "max_tokens": 300},
    content_formatter=content_formatter,
)

chain = LLMChain(llm=llm, prompt=prompt)
print(chain.invoke({"word_count": 100, "topic": "how to make friends"}))
"""

SAVE_AND_LOAD = """
from azml_client.langchain import load_llm

save_llm = AzureMLOnlineEndpoint(
    deployment_name="databricks-dolly-v2-12b-4",
    model_kwargs={
        "temperature": 0.2,
        "max_tokens": 150,
        "top_p": 0.8,
        "frequency_penalty": 0.32,
        "presence_penalty": 72e-3,
    },
)
save_llm.save("azureml.json")
loaded_llm = load_llm("azureml.json")

print(loaded_llm)
"""

# -- the chat page -----------------------------------------------------------------------------

CHAT_IMPORT = "from azml_client.langchain import AzureMLChatOnlineEndpoint\n"

CHAT_DEDICATED = """
from azml_client.langchain import (
    AzureMLEndpointApiType,
    CustomOpenAIChatContentFormatter,
)
from langchain_core.messages import HumanMessage

chat = AzureMLChatOnlineEndpoint(
    endpoint_url="https://<your-endpoint>.<your_region>.inference.ml.azure.com/score",
    endpoint_api_type=AzureMLEndpointApiType.dedicated,
    endpoint_api_key="my-api-key",
    content_formatter=CustomOpenAIChatContentFormatter(),
)
response = chat.invoke(
    [HumanMessage(content="Will the Collatz conjecture ever be solved?")]
)
response
"""

CHAT_SERVERLESS = """
chat = AzureMLChatOnlineEndpoint(
    endpoint_url="https://<your-endpoint>.<your_region>.inference.ml.azure.com/v1/chat/completions",
    endpoint_api_type=AzureMLEndpointApiType.serverless,
    endpoint_api_key="my-api-key",
    content_formatter=CustomOpenAIChatContentFormatter,
)
response = chat.invoke(
    [HumanMessage(content="Will the Collatz conjecture ever be solved?")]
)
response
"""

CHAT_MODEL_KWARGS = """
chat = AzureMLChatOnlineEndpoint(
    endpoint_url="https://<your-endpoint>.<your_region>.inference.ml.azure.com/v1/chat/completions",
    endpoint_api_type=AzureMLEndpointApiType.serverless,
    endpoint_api_key="my-api-key",
    content_formatter=CustomOpenAIChatContentFormatter,
    model_kwargs={"temperature": 0.8},
)
"""

CHAT_PER_CALL = """
response = chat.invoke(
    [HumanMessage(content="Will the Collatz conjecture ever be solved?")],
    max_tokens=512,
)
response
"""


def run(source: str, namespace: dict[str, Any], *, base: str = "", key: str = "") -> None:
    """Execute an example in ``namespace`` (the page's cells share one), its placeholders
    filled in with the emulator ``base`` URL and ``key``."""
    filled = source.replace(PLACEHOLDER, base).replace('"my-api-key"', json.dumps(key))
    exec(compile(filled, "<LangChain docs example>", "exec"), namespace)


def score_base(server: EmulatorServer) -> str:
    return server.base_url


def test_llama_on_a_dedicated_endpoint_with_a_per_call_temperature(emulators: Emulators) -> None:
    server = emulators.score["llama"]
    namespace: dict[str, Any] = {}
    run(IMPORT + LLAMA_DEDICATED, namespace, base=score_base(server), key=SCORE_KEY)
    assert isinstance(namespace["response"], str) and namespace["response"].strip()
    run(PER_CALL_TEMPERATURE, namespace)
    assert isinstance(namespace["response"], str) and namespace["response"].strip()
    # The per-call temperature was for that call only.
    assert namespace["llm"].model_kwargs == {"temperature": 0.8, "max_new_tokens": 400}


def test_serverless_completions(emulators: Emulators) -> None:
    namespace: dict[str, Any] = {}
    before = emulators.api.stats.by_route["POST /v1/completions"]
    run(IMPORT + SERVERLESS_COMPLETIONS, namespace, base=emulators.api.base_url, key=API_KEY)
    assert isinstance(namespace["response"], str) and namespace["response"].strip()
    assert emulators.api.stats.by_route["POST /v1/completions"] == before + 1


def test_custom_summarization_formatter(
    summary_server: SummaryServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("BART_ENDPOINT_API_KEY", summary_server.key)
    monkeypatch.setenv("BART_ENDPOINT_URL", summary_server.url)
    namespace: dict[str, Any] = {}
    run(IMPORT + CUSTOM_FORMATTER, namespace)
    headers, body = summary_server.requests[-1]
    sent = {name.lower(): value for name, value in headers.items()}
    assert sent["authorization"] == f"Bearer {summary_server.key}"
    # The prompt reached the model once encoded: quotes and newlines as they were written.
    assert body["inputs"] == [namespace["large_text"]]
    assert body["parameters"] == {"temperature": 0.8, "max_new_tokens": 400}
    assert body["options"] == {"use_cache": False, "wait_for_model": True}
    assert capsys.readouterr().out.startswith("On January 7, 2020")


def test_custom_summarization_formatter_against_the_emulator(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same example against the emulator's Hugging Face summarization deployment."""
    config = EmulatorConfig(api_key=SCORE_KEY, family="hf", response_style="summary_text")
    with EmulatorServer(config) as server:
        monkeypatch.setenv("BART_ENDPOINT_API_KEY", SCORE_KEY)
        monkeypatch.setenv("BART_ENDPOINT_URL", server.score_url)
        namespace: dict[str, Any] = {}
        run(IMPORT + CUSTOM_FORMATTER, namespace)
        assert server.stats.by_route["POST /score"] == 1
    summary = namespace["summarized_text"]
    assert isinstance(summary, str) and summary.strip()
    assert capsys.readouterr().out.strip() == summary.strip()


@pytest.mark.filterwarnings(
    # LLMChain is deprecated upstream (LangChainDeprecationWarning); the docs example uses it.
    "ignore:The class `LLMChain` was deprecated"
)
def test_dolly_in_an_llm_chain(
    emulators: Emulators, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("langchain_classic")
    monkeypatch.setenv("DOLLY_ENDPOINT_API_KEY", SCORE_KEY)
    monkeypatch.setenv("DOLLY_ENDPOINT_URL", emulators.score["dolly"].score_url)
    namespace: dict[str, Any] = {"os": __import__("os")}  # imported by an earlier cell
    run(IMPORT + DOLLY_CHAIN, namespace)
    printed = capsys.readouterr().out
    assert "'topic': 'how to make friends'" in printed and "'text': " in printed


def test_save_and_load(
    emulators: Emulators, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = emulators.score["llama"]
    monkeypatch.setenv("AZUREML_ENDPOINT_URL", server.score_url)
    monkeypatch.setenv("AZUREML_ENDPOINT_API_KEY", SCORE_KEY)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    run(IMPORT + SAVE_AND_LOAD, namespace)
    saved = json.loads((tmp_path / "azureml.json").read_text())
    assert SCORE_KEY not in json.dumps(saved)
    assert saved["endpoint_url"] == server.score_url
    assert saved["api_key_env"] == "AZUREML_ENDPOINT_API_KEY"
    loaded = namespace["loaded_llm"]
    assert loaded.deployment_name == "databricks-dolly-v2-12b-4"
    assert loaded.model_kwargs == namespace["save_llm"].model_kwargs
    before = server.stats.by_deployment["databricks-dolly-v2-12b-4"]
    assert loaded.invoke("Hello").strip()
    assert server.stats.by_deployment["databricks-dolly-v2-12b-4"] == before + 1


def test_chat_on_a_dedicated_endpoint(emulators: Emulators) -> None:
    from langchain_core.messages import AIMessage

    server = emulators.score["llama-chat"]
    namespace: dict[str, Any] = {}
    run(CHAT_IMPORT + CHAT_DEDICATED, namespace, base=score_base(server), key=SCORE_KEY)
    assert isinstance(namespace["response"], AIMessage) and namespace["response"].content


def test_chat_on_a_serverless_endpoint(emulators: Emulators) -> None:
    from langchain_core.messages import AIMessage

    namespace: dict[str, Any] = {}
    base, key = emulators.api.base_url, API_KEY
    run(CHAT_IMPORT + CHAT_DEDICATED.split("chat = ")[0], namespace)  # the imports only
    run(CHAT_SERVERLESS, namespace, base=base, key=key)
    assert isinstance(namespace["response"], AIMessage) and namespace["response"].content
    run(CHAT_MODEL_KWARGS, namespace, base=base, key=key)
    run(CHAT_PER_CALL, namespace)
    response = namespace["response"]
    assert isinstance(response, AIMessage) and response.content
    assert response.usage_metadata is not None
    assert namespace["chat"].model_kwargs == {"temperature": 0.8}
