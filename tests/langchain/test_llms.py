"""``AzureMLOnlineEndpoint`` calls: bulk batches, per-call parameters, stop, streaming, async,
save and load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.language_models import LanguageModelInput

from azml_client import ConfigurationError, EndpointClient, RateBudget
from azml_client.emulator import EmulatorServer
from azml_client.langchain import AzureMLOnlineEndpoint, DollyContentFormatter, load_llm

from .conftest import API_KEY, RECORDED_SCORE, RECORDED_SERVERLESS, SCORE_KEY, Recorder

PROMPTS: list[LanguageModelInput] = [
    f"Prompt number {i}: tell me about {topic}" for i, topic in enumerate("abcdefgh")
]


def shared(server: EmulatorServer, budget: RateBudget) -> EndpointClient:
    return EndpointClient(server.score_url, SCORE_KEY, budget=budget, max_retries=0)


def test_batch_goes_through_the_bulk_engine_in_order(score_emulator: EmulatorServer) -> None:
    budget = RateBudget()
    llm = AzureMLOnlineEndpoint(client=shared(score_emulator, budget))
    one_by_one = [llm.invoke(prompt) for prompt in PROMPTS]
    before = score_emulator.stats.by_route["POST /score"]
    assert budget.sent == 0  # single calls do not use the bulk engine
    assert llm.batch(PROMPTS) == one_by_one
    assert budget.sent == len(PROMPTS)
    assert score_emulator.stats.by_route["POST /score"] == before + len(PROMPTS)
    # With max_concurrency LangChain hands over chunks of prompts: each chunk is one bulk run.
    assert llm.batch(PROMPTS, config={"max_concurrency": 3}) == one_by_one
    assert budget.sent == 2 * len(PROMPTS)


async def test_abatch_goes_through_the_bulk_engine_in_order(
    score_emulator: EmulatorServer,
) -> None:
    budget = RateBudget()
    async with shared(score_emulator, budget) as client:  # the caller's client: it closes it
        llm = AzureMLOnlineEndpoint(client=client)
        one_by_one = [await llm.ainvoke(prompt) for prompt in PROMPTS[:4]]
        assert await llm.abatch(PROMPTS[:4]) == one_by_one
    assert budget.sent == 4


def test_per_call_parameters_never_reach_model_kwargs(recorder: Recorder) -> None:
    llm = AzureMLOnlineEndpoint(
        endpoint_url=RECORDED_SCORE,
        api_key="k",
        model_kwargs={"temperature": 0.8, "max_new_tokens": 400},
        client_kwargs={"transport": recorder.transport},
    )
    llm.invoke("Hi", temperature=0.5, stop=["\n"], timeout=5, deployment_name="green")
    first = recorder.last["input_data"]["parameters"]
    assert first == {"temperature": 0.5, "max_new_tokens": 400, "stop": ["\n"]}
    assert recorder.requests[-1].headers["azureml-model-deployment"] == "green"
    llm.invoke("Hi again")
    assert recorder.last["input_data"]["parameters"] == {"temperature": 0.8, "max_new_tokens": 400}
    assert "azureml-model-deployment" not in recorder.requests[-1].headers
    llm.batch(["a", "b"], temperature=0.1, stop=["x"])
    assert [b["input_data"]["parameters"]["temperature"] for b in recorder.bodies[-2:]] == [
        0.1,
        0.1,
    ]
    assert llm.model_kwargs == {"temperature": 0.8, "max_new_tokens": 400}
    assert llm._identifying_params["model_kwargs"] == {"temperature": 0.8, "max_new_tokens": 400}


def test_prompts_are_encoded_once(recorder: Recorder) -> None:
    llm = AzureMLOnlineEndpoint(
        endpoint_url=RECORDED_SCORE, api_key="k", client_kwargs={"transport": recorder.transport}
    )
    prompt = 'Say "hi"\nthen stop'
    llm.invoke(prompt)
    assert recorder.last["input_data"]["input_string"] == [prompt]


def test_stop_ends_the_text(api_emulator: EmulatorServer) -> None:
    llm = AzureMLOnlineEndpoint(
        endpoint_url=f"{api_emulator.serverless_url}/completions", api_key=API_KEY
    )
    prompt = "Tell me a long story about the sea"
    full = llm.invoke(prompt)
    word = full.split()[3]
    cut = llm.invoke(prompt, stop=[f" {word}"])
    assert full.startswith(cut) and len(cut) < len(full)
    assert (
        AzureMLOnlineEndpoint(
            endpoint_url=f"{api_emulator.serverless_url}/completions",
            api_key=API_KEY,
            stop=[f" {word}"],
        ).invoke(prompt)
        == cut
    )


def test_streams_on_serverless_and_answers_in_one_chunk_on_score(
    api_emulator: EmulatorServer, score_emulator: EmulatorServer
) -> None:
    serverless = AzureMLOnlineEndpoint(endpoint_url=api_emulator.serverless_url, api_key=API_KEY)
    pieces = list(serverless.stream("Once upon a time"))
    assert len(pieces) > 2 and "".join(pieces) == serverless.invoke("Once upon a time")
    streamed = serverless.model_copy(update={"streaming": True})
    result = streamed.generate(["Once upon a time"])
    info = result.generations[0][0].generation_info
    assert info is not None and info["finish_reason"] in ("stop", "length")
    assert info["token_usage"]["completion_tokens"] > 0
    dedicated = AzureMLOnlineEndpoint(endpoint_url=score_emulator.score_url, api_key=SCORE_KEY)
    (whole,) = list(dedicated.stream("Once upon a time"))
    assert whole == dedicated.invoke("Once upon a time")


async def test_async_calls_and_streams(api_emulator: EmulatorServer) -> None:
    llm = AzureMLOnlineEndpoint(endpoint_url=api_emulator.serverless_url, api_key=API_KEY)
    text = await llm.ainvoke("Once upon a time", max_tokens=12)
    pieces = [piece async for piece in llm.astream("Once upon a time", max_tokens=12)]
    assert "".join(pieces) == text


def test_a_batch_with_extra_headers_says_what_to_do_instead(recorder: Recorder) -> None:
    llm = AzureMLOnlineEndpoint(
        endpoint_url=RECORDED_SCORE, api_key="k", client_kwargs={"transport": recorder.transport}
    )
    with pytest.raises(ConfigurationError, match="default_headers"):
        llm.batch(["a", "b"], extra_headers={"x-trace": "1"})


# -- save and load -----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_save_keeps_everything_but_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    llm = AzureMLOnlineEndpoint(
        endpoint_url=RECORDED_SCORE,
        endpoint_api_key="secret-key",
        api_key_env="MY_ENDPOINT_KEY",
        deployment_name="blue",
        content_formatter=DollyContentFormatter(schema="v2"),
        model_kwargs={"temperature": 0.2},
        timeout=30,
    )
    path = tmp_path / f"llm{suffix}"
    llm.save(path)
    assert "secret-key" not in path.read_text()
    if suffix == ".json":
        saved = json.loads(path.read_text())
        assert saved["_type"] == "azureml_endpoint"
        assert saved["content_formatter"] == "dolly"
        assert saved["formatter_options"] == {"schema": "v2"}
        assert saved["api_key_env"] == "MY_ENDPOINT_KEY"
    monkeypatch.setenv("MY_ENDPOINT_KEY", "secret-key")
    loaded = load_llm(path)
    assert loaded.endpoint_url == RECORDED_SCORE
    assert loaded.endpoint_api_key is not None
    assert loaded.endpoint_api_key.get_secret_value() == "secret-key"
    assert (loaded.deployment_name, loaded.timeout) == ("blue", 30.0)
    assert isinstance(loaded.formatter, DollyContentFormatter)
    assert loaded.formatter.schema == "v2"
    assert loaded.model_kwargs == {"temperature": 0.2}


def test_load_reads_langchains_file_with_the_formatter_as_an_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What langchain_community's AzureMLOnlineEndpoint.save() writes.
    langchain_file = {
        "deployment_name": "databricks-dolly-v2-12b-4",
        "model_kwargs": {"temperature": 0.2, "max_tokens": 150},
        "_type": "azureml_endpoint",
    }
    path = tmp_path / "azureml.json"
    path.write_text(json.dumps(langchain_file))
    monkeypatch.setenv("AZUREML_ENDPOINT_URL", RECORDED_SCORE)
    monkeypatch.setenv("AZUREML_ENDPOINT_API_KEY", "k")
    loaded = load_llm(path, content_formatter=DollyContentFormatter())
    assert loaded.deployment_name == "databricks-dolly-v2-12b-4"
    assert isinstance(loaded.formatter, DollyContentFormatter)
    assert loaded.model_kwargs == {"temperature": 0.2, "max_tokens": 150}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"_type": "openai", "model_name": "gpt"}, "load it with langchain_community"),
        ({"_type": "azureml_endpoint", "endpoint_api_key": "k"}, "holds an API key"),
    ],
)
def test_load_refuses_other_files(tmp_path: Path, content: dict[str, Any], message: str) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigurationError, match=message):
        load_llm(path)


def test_served_model_name_is_reported(api_emulator: EmulatorServer) -> None:
    llm = AzureMLOnlineEndpoint(endpoint_url=RECORDED_SERVERLESS, api_key="k")
    assert llm._identifying_params["endpoint_url"] == RECORDED_SERVERLESS
    served = AzureMLOnlineEndpoint(endpoint_url=api_emulator.serverless_url, api_key=API_KEY)
    result = served.generate(["Hi"])
    assert result.llm_output is not None
    info = result.generations[0][0].generation_info
    assert info is not None and info["model_name"] == "emu-model" and info["request_id"]
