"""Settings: environment variables, URL and api type validation, save / load round trips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from azml_client import (
    ApiType,
    ConfigurationError,
    ContentFormatterBase,
    EndpointClient,
    FormatRequest,
    GPT2ContentFormatter,
    ParsedOutput,
    RetryPolicy,
    SyncEndpointClient,
    load_client,
)
from azml_client._config import config_arguments

from .conftest import CANARY_KEY, DEDICATED_URL, SERVERLESS_URL


class ModuleLevelFormatter(ContentFormatterBase):
    """A custom formatter importable as tests.test_config:ModuleLevelFormatter."""

    def build_request(self, request: FormatRequest) -> Any:
        return {"text": request.prompt}

    def parse_response(self, data: Any, request: FormatRequest) -> ParsedOutput:
        return ParsedOutput(text=data["answer"])


def test_environment_variables_fill_what_is_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZUREML_ENDPOINT_URL", DEDICATED_URL)
    monkeypatch.setenv("AZUREML_ENDPOINT_API_KEY", CANARY_KEY)
    monkeypatch.setenv("AZUREML_DEPLOYMENT_NAME", "blue")
    monkeypatch.setenv("AZUREML_ENDPOINT_API_TYPE", "dedicated")
    monkeypatch.setenv("AZUREML_TIMEOUT", "12.5")
    s = EndpointClient().settings
    assert s.endpoint_url == DEDICATED_URL
    assert s.api_key is not None and s.api_key.get_secret_value() == CANARY_KEY
    assert (s.deployment_name, s.api_type, s.timeout) == ("blue", ApiType.DEDICATED, 12.5)
    # Explicit arguments win.
    s = EndpointClient(deployment_name="green", timeout=3).settings
    assert (s.deployment_name, s.timeout) == ("green", 3)


def test_missing_url_and_key_name_the_fix() -> None:
    with pytest.raises(ConfigurationError, match="AZUREML_ENDPOINT_URL"):
        EndpointClient(api_key="k")
    with pytest.raises(ConfigurationError, match="AZUREML_ENDPOINT_API_KEY"):
        EndpointClient(endpoint_url=DEDICATED_URL)


def test_bad_timeout_env_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZUREML_TIMEOUT", "soon")
    with pytest.raises(ConfigurationError, match="AZUREML_TIMEOUT='soon'"):
        EndpointClient(endpoint_url=DEDICATED_URL, api_key="k")


@pytest.mark.parametrize(
    ("url", "api_type"),
    [
        (DEDICATED_URL, ApiType.DEDICATED),
        (SERVERLESS_URL, ApiType.SERVERLESS),
        ("https://x.eastus2.inference.ai.azure.com", ApiType.SERVERLESS),
        ("https://x.westus3.models.ai.azure.com/v1/completions", ApiType.SERVERLESS),
        ("http://127.0.0.1:8000/chat/completions", ApiType.SERVERLESS),
    ],
)
def test_api_type_is_inferred_from_the_url(url: str, api_type: ApiType) -> None:
    assert EndpointClient(endpoint_url=url, api_key="k").api_type is api_type


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"endpoint_url": "https://e.eastus.inference.ml.azure.com"}, r"/score"),
        ({"endpoint_url": "https://example.com/predict"}, "pass api_type"),
        ({"endpoint_url": "not a url"}, "malformed endpoint URL"),
        ({"endpoint_url": "ftp://host/score"}, "malformed endpoint URL"),
        ({"endpoint_url": SERVERLESS_URL, "api_type": "dedicated"}, "ends with /score"),
        ({"endpoint_url": DEDICATED_URL, "api_type": "serverless"}, "api_type='dedicated'"),
        ({"endpoint_url": DEDICATED_URL, "api_type": "batch"}, "unknown api_type"),
        ({"endpoint_url": DEDICATED_URL, "timeout": -1}, "timeout"),
        ({"endpoint_url": DEDICATED_URL, "max_retries": -1}, "max_retries"),
        ({"endpoint_url": DEDICATED_URL, "formatter": "nope"}, "unknown formatter"),
        ({"endpoint_url": DEDICATED_URL, "formatter": "openai"}, "formatter='llama'"),
        ({"endpoint_url": SERVERLESS_URL, "extra_parameters": "ignore"}, "pass-through"),
        ({"endpoint_url": DEDICATED_URL, "formatter": 42}, "family key"),
        ({"endpoint_url": DEDICATED_URL, "api_key": "  "}, "empty"),
    ],
)
def test_invalid_arguments_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    kwargs.setdefault("api_key", "k")
    with pytest.raises(ConfigurationError, match=message):
        EndpointClient(**kwargs)


def test_realtime_is_a_deprecated_alias_of_dedicated() -> None:
    with pytest.warns(DeprecationWarning, match="dedicated"):
        client = EndpointClient(endpoint_url=DEDICATED_URL, api_key="k", api_type="realtime")
    assert client.api_type is ApiType.DEDICATED


def test_plain_http_with_a_key_is_refused_unless_local_or_opted_in() -> None:
    with pytest.raises(ConfigurationError, match="plain http"):
        EndpointClient(endpoint_url="http://10.0.0.5/score", api_key="k")
    EndpointClient(endpoint_url="http://10.0.0.5/score", api_key="k", allow_insecure_http=True)
    EndpointClient(endpoint_url="http://127.0.0.1:5001/score", api_key="k")
    EndpointClient(endpoint_url="http://localhost:5001/score", api_key="k")


def test_defaults_by_api_type() -> None:
    assert EndpointClient(endpoint_url=DEDICATED_URL, api_key="k").formatter.name == "llama"
    assert EndpointClient(endpoint_url=SERVERLESS_URL, api_key="k").formatter.name == "openai"


def _round_trip(client: EndpointClient, path: Path) -> tuple[dict[str, Any], EndpointClient]:
    client.save(path)
    data = json.loads(path.read_text())
    return data, load_client(path)


def test_save_and_load_round_trip_every_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_KEY_VAR", CANARY_KEY)
    client = EndpointClient(
        endpoint_url=DEDICATED_URL,
        api_key=CANARY_KEY,
        api_key_env="MY_KEY_VAR",
        deployment_name="llama-2-7b-1",
        formatter="llama",
        model_kwargs={"temperature": 0.8, "max_new_tokens": 400},
        timeout=httpx.Timeout(30, connect=4),
        deadline=90,
        retry=RetryPolicy(max_retries=5, backoff_base=0.25, backoff_max=4, max_retry_after=20),
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
    )
    data, loaded = _round_trip(client, tmp_path / "azureml.json")
    assert CANARY_KEY not in (tmp_path / "azureml.json").read_text()
    assert "api_key" not in data
    assert data["api_key_env"] == "MY_KEY_VAR"
    original = client.settings.model_dump()
    assert loaded.settings.model_dump() == original
    assert loaded.settings.api_key is not None
    assert loaded.settings.api_key.get_secret_value() == CANARY_KEY


def test_save_load_formatter_instance_with_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZUREML_ENDPOINT_API_KEY", "k")
    client = EndpointClient(
        endpoint_url=DEDICATED_URL, api_key="k", formatter=GPT2ContentFormatter(schema="v1")
    )
    data, loaded = _round_trip(client, tmp_path / "c.json")
    assert (data["formatter"], data["formatter_options"]) == ("gpt2", {"schema": "v1"})
    assert isinstance(loaded.formatter, GPT2ContentFormatter)
    assert loaded.formatter.schema == "v1"


def test_save_load_custom_formatter_by_import_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZUREML_ENDPOINT_API_KEY", "k")
    client = EndpointClient(
        endpoint_url=DEDICATED_URL, api_key="k", formatter=ModuleLevelFormatter()
    )
    data, loaded = _round_trip(client, tmp_path / "c.json")
    assert data["formatter"] == f"{__name__}:ModuleLevelFormatter"
    assert type(loaded.formatter) is ModuleLevelFormatter


def test_save_refuses_a_formatter_that_cannot_be_found_again(tmp_path: Path) -> None:
    class Local(ModuleLevelFormatter):
        pass

    client = EndpointClient(endpoint_url=DEDICATED_URL, api_key="k", formatter=Local())
    with pytest.raises(ConfigurationError, match="module level"):
        client.save(tmp_path / "c.json")


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no client config"):
        load_client(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        load_client(bad)
    other = tmp_path / "other.json"
    other.write_text('{"endpoint_url": "x"}')
    with pytest.raises(ConfigurationError, match="not an azml-client config"):
        load_client(other)
    leaked = tmp_path / "leaked.json"
    leaked.write_text(
        json.dumps({"azml_client_config": 1, "endpoint_url": DEDICATED_URL, "api_key": "k"})
    )
    with pytest.raises(ConfigurationError, match="holds an API key"):
        load_client(leaked)


def test_load_overrides_and_sync_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZUREML_ENDPOINT_API_KEY", "k")
    EndpointClient(endpoint_url=SERVERLESS_URL, api_key="k").save(tmp_path / "c.json")
    client = load_client(tmp_path / "c.json", timeout=7)
    assert client.settings.timeout == 7
    with SyncEndpointClient.from_config(tmp_path / "c.json") as sync:
        assert sync.settings.api_type is ApiType.SERVERLESS


def test_config_arguments_take_a_files_content_as_well_as_its_path(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    client = EndpointClient(
        endpoint_url=SERVERLESS_URL,
        api_key=CANARY_KEY,
        timeout=httpx.Timeout(30, connect=4),
        retry=RetryPolicy(max_retries=5, backoff_base=0.25),
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
    )
    client.save(path)
    content = json.loads(path.read_text())
    kept = dict(content)
    from_content = config_arguments(content, {"deadline": 9})
    assert from_content == {**config_arguments(path, {}), "deadline": 9}
    assert from_content["timeout"] == httpx.Timeout(30, connect=4)
    assert from_content["retry"].max_retries == 5
    assert from_content["limits"].max_keepalive_connections == 8
    assert "api_key" not in from_content and content == kept  # the mapping is not changed
    with pytest.raises(ConfigurationError, match="mapping given holds an API key"):
        config_arguments({**content, "api_key": CANARY_KEY}, {})
    with pytest.raises(ConfigurationError, match="mapping given is not an azml-client config"):
        config_arguments({"endpoint_url": SERVERLESS_URL}, {})
