"""Construction of the LangChain classes: both spellings of every argument, the environment,
the formatter forms, ``client=``, clear errors, and the key kept out of every rendering."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.load import dumpd, dumps, load
from pydantic import SecretStr, ValidationError

from azml_client import ApiType, ConfigurationError, EndpointClient, RateBudget
from azml_client.formatters import DollyContentFormatter, OpenAIContentFormatter
from azml_client.langchain import (
    AzureMLChatOnlineEndpoint,
    AzureMLEmbeddings,
    AzureMLEndpointApiType,
    AzureMLOnlineEndpoint,
    CustomOpenAIChatContentFormatter,
    GPT2ContentFormatter,
    LangChainFormatter,
)

from ..conftest import CANARY_KEY
from .conftest import RECORDED_SCORE, RECORDED_SERVERLESS

SERVERLESS_CHAT = f"{RECORDED_SERVERLESS}/chat/completions"


def test_langchain_and_azml_spellings_build_the_same_model() -> None:
    seed_style = AzureMLOnlineEndpoint(
        endpoint_url=RECORDED_SCORE,
        endpoint_api_type="dedicated",
        endpoint_api_key="k",
        content_formatter=DollyContentFormatter(),
        deployment_name="blue",
        timeout=30,
        max_retries=4,
    )
    ours = AzureMLOnlineEndpoint(
        endpoint_url=RECORDED_SCORE,
        api_type="dedicated",
        api_key="k",
        formatter="dolly",
        deployment_name="blue",
        timeout=30,
        max_retries=4,
    )
    for llm in (seed_style, ours):
        assert llm.endpoint_api_type is AzureMLEndpointApiType.dedicated
        assert llm.api_type is ApiType.DEDICATED
        assert isinstance(llm.endpoint_api_key, SecretStr)
        assert llm.endpoint_api_key.get_secret_value() == "k"
        assert llm.formatter.name == "dolly"
        assert (llm.deployment_name, llm.timeout, llm.max_retries) == ("blue", 30.0, 4)


@pytest.mark.parametrize(
    "value",
    ["serverless", "Serverless", ApiType.SERVERLESS, AzureMLEndpointApiType.serverless],
)
def test_api_type_accepts_strings_and_enums(value: Any) -> None:
    llm = AzureMLOnlineEndpoint(endpoint_url=RECORDED_SERVERLESS, api_key="k", api_type=value)
    assert llm.endpoint_api_type is AzureMLEndpointApiType.serverless


def test_api_type_accepts_langchains_enum(seed_llms: ModuleType) -> None:
    llm = AzureMLOnlineEndpoint(
        endpoint_url=RECORDED_SERVERLESS,
        endpoint_api_key="k",
        endpoint_api_type=seed_llms.AzureMLEndpointApiType.serverless,
    )
    assert llm.endpoint_api_type is AzureMLEndpointApiType.serverless


def test_realtime_is_dedicated_with_a_deprecation_warning() -> None:
    with pytest.warns(DeprecationWarning, match="use 'dedicated'"):
        llm = AzureMLOnlineEndpoint(
            endpoint_url=RECORDED_SCORE, endpoint_api_key="k", endpoint_api_type="realtime"
        )
    assert llm.endpoint_api_type is AzureMLEndpointApiType.realtime
    assert llm.api_type is ApiType.DEDICATED


def test_api_type_members_are_langchains_and_ours() -> None:
    assert [m.value for m in AzureMLEndpointApiType] == [
        "dedicated",
        "realtime",
        "serverless",
        "models",
        "openai_v1",
    ]


def test_settings_come_from_the_azureml_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZUREML_ENDPOINT_URL", RECORDED_SCORE)
    monkeypatch.setenv("AZUREML_ENDPOINT_API_KEY", "env-key")
    monkeypatch.setenv("AZUREML_DEPLOYMENT_NAME", "green")
    monkeypatch.setenv("AZUREML_ENDPOINT_API_TYPE", "dedicated")
    monkeypatch.setenv("AZUREML_TIMEOUT", "120")
    llm = AzureMLOnlineEndpoint()
    assert llm.endpoint_url == RECORDED_SCORE
    assert llm.endpoint_api_key is not None
    assert llm.endpoint_api_key.get_secret_value() == "env-key"
    assert llm.deployment_name == "green"
    assert llm.endpoint_api_type is AzureMLEndpointApiType.dedicated
    assert llm.timeout == 120.0
    explicit = AzureMLOnlineEndpoint(api_key="given", deployment_name="blue", timeout=5)
    assert explicit.endpoint_api_key is not None
    assert explicit.endpoint_api_key.get_secret_value() == "given"
    assert (explicit.deployment_name, explicit.timeout) == ("blue", 5.0)


def test_a_missing_url_says_which_variable_to_set() -> None:
    with pytest.raises(ValidationError, match="AZUREML_ENDPOINT_URL"):
        AzureMLOnlineEndpoint(api_key="k")


@pytest.mark.parametrize(
    ("argument", "hint"),
    [
        ("http_client", "client="),
        ("endpoint_api_kye", "did you mean endpoint_api_key"),
        ("top_p", "model_kwargs"),
    ],
)
def test_unknown_arguments_name_the_right_one(argument: str, hint: str) -> None:
    with pytest.raises(ValidationError, match=hint):
        AzureMLOnlineEndpoint(endpoint_url=RECORDED_SCORE, api_key="k", **{argument: 1})


def test_the_formatter_may_be_a_key_a_class_an_instance_or_langchains(
    seed_llms: ModuleType,
) -> None:
    def formatter_of(value: Any) -> Any:
        return AzureMLOnlineEndpoint(
            endpoint_url=RECORDED_SCORE, api_key="k", content_formatter=value
        ).formatter

    assert formatter_of("gpt2").name == "gpt2"
    assert isinstance(formatter_of(GPT2ContentFormatter), GPT2ContentFormatter)
    given = GPT2ContentFormatter(schema="v1")
    assert formatter_of(given) is given
    wrapped = formatter_of(seed_llms.GPT2ContentFormatter())
    assert isinstance(wrapped, LangChainFormatter)
    assert isinstance(wrapped.wrapped, seed_llms.GPT2ContentFormatter)
    from_class = formatter_of(seed_llms.DollyContentFormatter)
    assert isinstance(from_class, LangChainFormatter)
    with pytest.raises(ValidationError, match="content_formatter must be"):
        formatter_of(42)


def test_a_credential_in_the_url_stays_out_of_every_rendering(tmp_path: Path) -> None:
    """A URL with ?code= (Azure Functions) or a password: repr, traces and dumpd() show it
    without the credential, and save() refuses it (a saved model never holds one)."""
    code = "fUnCtIoNkEy-0123456789"
    url = f"{RECORDED_SCORE}?code={code}"
    llm = AzureMLOnlineEndpoint(endpoint_url=url, endpoint_api_key=CANARY_KEY)
    chat = AzureMLChatOnlineEndpoint(endpoint_url=url, api_key=CANARY_KEY, formatter="vllm")
    renderings = [
        repr(llm),
        str(llm),
        repr(chat),
        json.dumps(dumpd(llm)),
        dumps(chat),
        json.dumps(dict(llm._identifying_params)),
        json.dumps(dict(chat._identifying_params)),
    ]
    for text in renderings:
        assert code not in text
    assert "code=[REDACTED]" in repr(llm)
    assert dumpd(llm)["kwargs"]["endpoint_url"]["id"] == ["AZUREML_ENDPOINT_URL"]
    with pytest.raises(ConfigurationError, match="carries a credential"):
        llm.save(tmp_path / "llm.json")
    assert not (tmp_path / "llm.json").exists()
    assert llm.endpoint_url == url  # the model itself still sends it


# langchain_core.load.load() is marked beta upstream (LangChainBetaWarning).
@pytest.mark.filterwarnings("ignore:The function `load` is in beta")
def test_formatters_by_key_or_class_are_recorded_by_name(tmp_path: Path) -> None:
    llm = AzureMLOnlineEndpoint(
        endpoint_url=RECORDED_SCORE,
        api_key="k",
        content_formatter="gpt2",
        formatter_options={"schema": "v1"},
    )
    assert isinstance(llm.formatter, GPT2ContentFormatter) and llm.formatter.schema == "v1"
    kwargs = dumpd(llm)["kwargs"]
    assert (kwargs["content_formatter"], kwargs["formatter_options"]) == ("gpt2", {"schema": "v1"})
    loaded = load(
        dumpd(llm),
        allowed_objects=[AzureMLOnlineEndpoint],
        valid_namespaces=["azml_client"],
        secrets_map={"AZUREML_ENDPOINT_API_KEY": "k"},
    )
    assert isinstance(loaded.formatter, GPT2ContentFormatter) and loaded.formatter.schema == "v1"
    chat = AzureMLChatOnlineEndpoint(
        endpoint_url=RECORDED_SCORE, api_key="k", content_formatter=CustomOpenAIChatContentFormatter
    )
    assert dumpd(chat)["kwargs"]["content_formatter"] == "llama-chat"
    with pytest.raises(ValidationError, match="formatter_options apply to"):
        AzureMLOnlineEndpoint(
            endpoint_url=RECORDED_SCORE,
            api_key="k",
            content_formatter=GPT2ContentFormatter(),
            formatter_options={"schema": "v1"},
        )


def test_every_formatter_name_of_langchains_pages_is_here() -> None:
    import azml_client.langchain as module

    for name in (
        "ContentFormatterBase",
        "GPT2ContentFormatter",
        "DollyContentFormatter",
        "HFContentFormatter",
        "CustomOpenAIContentFormatter",
        "CustomOpenAIChatContentFormatter",
        "MistralChatContentFormatter",
    ):
        assert name in module.__all__
    for old, new in (
        ("OSSContentFormatter", "GPT2ContentFormatter"),
        ("LlamaContentFormatter", "CustomOpenAIContentFormatter"),
        ("LlamaChatContentFormatter", "CustomOpenAIChatContentFormatter"),
    ):
        with pytest.warns(DeprecationWarning, match=new):
            formatter = getattr(module, old)()
        assert isinstance(formatter, getattr(module, new))


def test_the_chat_model_picks_a_chat_formatter_for_score() -> None:
    chat = AzureMLChatOnlineEndpoint(endpoint_url=RECORDED_SCORE, api_key="k")
    assert isinstance(chat.formatter, CustomOpenAIChatContentFormatter)
    serverless = AzureMLChatOnlineEndpoint(endpoint_url=SERVERLESS_CHAT, api_key="k")
    assert isinstance(serverless.formatter, OpenAIContentFormatter)


def test_a_shared_client_is_used_and_keeps_its_settings() -> None:
    budget = RateBudget()
    client = EndpointClient(RECORDED_SERVERLESS, "shared-key", budget=budget)
    chat = AzureMLChatOnlineEndpoint(client=client, model="phi-4", temperature=0.2)
    assert chat.endpoint_url == client.settings.endpoint_url
    assert chat.model == "phi-4"
    assert chat.endpoint_api_key is not None
    assert chat.endpoint_api_key.get_secret_value() == "shared-key"
    with pytest.raises(ValidationError, match="either client= or connection settings"):
        AzureMLChatOnlineEndpoint(client=client, endpoint_url=RECORDED_SERVERLESS)


def test_the_key_stays_out_of_every_rendering(tmp_path: Path) -> None:
    llm = AzureMLOnlineEndpoint(
        endpoint_url=RECORDED_SCORE,
        endpoint_api_key=CANARY_KEY,
        model_kwargs={"temperature": 0.1},
        client_kwargs={"default_headers": {"x-team": "search"}},
    )
    chat = AzureMLChatOnlineEndpoint(endpoint_url=SERVERLESS_CHAT, api_key=CANARY_KEY)
    embeddings = AzureMLEmbeddings(endpoint_url=RECORDED_SERVERLESS, api_key=CANARY_KEY)
    llm.save(tmp_path / "llm.json")
    llm.save(tmp_path / "llm.yaml")
    renderings = [
        repr(llm),
        str(llm),
        repr(chat),
        repr(embeddings),
        json.dumps(dumpd(llm)),
        dumps(chat),
        json.dumps(llm.asdict()),
        json.dumps(dict(chat._identifying_params)),
        (tmp_path / "llm.json").read_text(),
        (tmp_path / "llm.yaml").read_text(),
    ]
    for text in renderings:
        assert CANARY_KEY not in text
    secret = dumpd(chat)["kwargs"]["endpoint_api_key"]
    assert secret == {"lc": 1, "type": "secret", "id": ["AZUREML_ENDPOINT_API_KEY"]}


# langchain_core.load.load() is marked beta upstream (LangChainBetaWarning).
@pytest.mark.filterwarnings("ignore:The function `load` is in beta")
def test_dumpd_and_load_round_trip_with_the_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chat = AzureMLChatOnlineEndpoint(
        endpoint_url=SERVERLESS_CHAT,
        api_key="from-env",
        api_key_env="MY_AZURE_KEY",
        model_kwargs={"temperature": 0.3},
        max_tokens=20,
    )
    data = dumpd(chat)
    assert data["id"] == ["azml_client", "langchain", "AzureMLChatOnlineEndpoint"]
    assert data["kwargs"]["endpoint_api_key"]["id"] == ["MY_AZURE_KEY"]
    monkeypatch.setenv("MY_AZURE_KEY", "from-env")
    loaded = load(
        data,
        allowed_objects=[AzureMLChatOnlineEndpoint],
        valid_namespaces=["azml_client"],
        secrets_from_env=True,
    )
    assert isinstance(loaded, AzureMLChatOnlineEndpoint)
    assert loaded.endpoint_api_key is not None
    assert loaded.endpoint_api_key.get_secret_value() == "from-env"
    assert loaded.model_kwargs == {"temperature": 0.3}
    assert loaded.max_tokens == 20
    assert loaded.endpoint_url == chat.endpoint_url


def test_trace_params_name_the_provider_and_the_model() -> None:
    chat = AzureMLChatOnlineEndpoint(
        endpoint_url=RECORDED_SCORE, api_key="k", deployment_name="mistral-7b", temperature=0.1
    )
    params = chat._get_ls_params(stop=["x"], max_tokens=7)
    assert params["ls_provider"] == "azureml"
    assert params["ls_model_name"] == "mistral-7b"
    assert params["ls_model_type"] == "chat"
    assert (params.get("ls_temperature"), params.get("ls_max_tokens")) == (0.1, 7)
    assert params.get("ls_stop") == ["x"]
    llm = AzureMLOnlineEndpoint(endpoint_url=RECORDED_SCORE, api_key="k")
    assert llm._get_ls_params()["ls_model_name"] == "my-endpoint"  # the endpoint's name
    assert llm._get_ls_params()["ls_model_type"] == "llm"
