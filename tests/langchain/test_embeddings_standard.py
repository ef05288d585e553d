"""LangChain's standard test suites for ``AzureMLEmbeddings`` (the integration suite against the
emulator's model inference API, which answers deterministic unit vectors)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")

from langchain_core.embeddings import Embeddings
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from azml_client.emulator import EmulatorServer
from azml_client.langchain import AzureMLEmbeddings

from .conftest import API_KEY

UNIT_URL = "https://my-resource.services.ai.azure.com/models"


class TestAzureMLEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[Embeddings]:
        return AzureMLEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"endpoint_url": UNIT_URL, "api_key": "unit-key", "model": "embed-v-4-0"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"AZUREML_ENDPOINT_URL": UNIT_URL, "AZUREML_ENDPOINT_API_KEY": "env-key"},
            {"model": "embed-v-4-0"},
            {
                "endpoint_url": UNIT_URL,
                "endpoint_api_key": "env-key",
                "endpoint_api_type": "models",
            },
        )


class TestAzureMLEmbeddingsModels(EmbeddingsIntegrationTests):
    server: ClassVar[EmulatorServer | None] = None

    @pytest.fixture(autouse=True)
    def _emulator(self, api_emulator: EmulatorServer) -> None:
        type(self).server = api_emulator

    @property
    def embeddings_class(self) -> type[Embeddings]:
        return AzureMLEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        assert self.server is not None
        return {"endpoint_url": self.server.models_url, "api_key": API_KEY, "model": "embed"}
