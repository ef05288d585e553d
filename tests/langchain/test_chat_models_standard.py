"""LangChain's standard test suites for ``AzureMLChatOnlineEndpoint``.

Unit suite: construction, environment, tool binding, structured output, tracing params, no
network. Integration suites: against the emulator's OpenAI v1 route (``/openai/v1``, model
override included) and its serverless route (``/v1``, unknown body fields refused), where the
emulator answers with deterministic text, tool calls with schema-valid arguments and JSON for a
``json_schema`` response format.

Every standard test runs; the ones marked here fail for a reason written next to them, and
the flags say which features the suites skip and why.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")

from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from azml_client.emulator import EmulatorServer
from azml_client.langchain import AzureMLChatOnlineEndpoint

from .conftest import API_KEY, API_MODEL

UNIT_URL = "https://my-llama.eastus2.inference.ai.azure.com/v1"


class TestAzureMLChatUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return AzureMLChatOnlineEndpoint

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"endpoint_url": UNIT_URL, "api_key": "unit-key", "model": "Llama-3-8B"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {
                "AZUREML_ENDPOINT_URL": UNIT_URL,
                "AZUREML_ENDPOINT_API_KEY": "env-key",
                "AZUREML_DEPLOYMENT_NAME": "llama-blue",
                "AZUREML_TIMEOUT": "90",
            },
            {},
            {
                "endpoint_url": UNIT_URL,
                "endpoint_api_key": "env-key",
                "endpoint_api_type": "serverless",
                "deployment_name": "llama-blue",
                "timeout": 90.0,
            },
        )

    @pytest.mark.xfail(
        reason="load(allowed_objects='all') admits only the classes in LangChain's own "
        "serialization mapping; a class outside langchain packages cannot be loaded by it "
        "(test_arguments.py loads ours with allowed_objects=[...])"
    )
    def test_serdes(self, *args: Any) -> None:
        super().test_serdes(*args)


class TestAzureMLChatOpenAIV1(ChatModelIntegrationTests):
    """Against the emulator's OpenAI v1 API (``/openai/v1``): it answers with the model asked
    for, so the model-override tests run too."""

    server: ClassVar[EmulatorServer | None] = None

    @pytest.fixture(autouse=True)
    def _emulator(self, api_emulator: EmulatorServer) -> None:
        type(self).server = api_emulator

    def url(self) -> str:
        assert self.server is not None
        return self.server.openai_v1_url

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return AzureMLChatOnlineEndpoint

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"endpoint_url": self.url(), "api_key": API_KEY, "model": API_MODEL}

    @property
    def model_override_value(self) -> str | None:
        return "emu-model-override"

    # Tools, tool_choice, structured output and JSON mode are sent on every OpenAI-style route
    # (has_tool_calling, has_tool_choice and has_structured_output follow from bind_tools and
    # with_structured_output being implemented).
    @property
    def supports_json_mode(self) -> bool:
        return True

    # Image parts (OpenAI image_url, LangChain's standard image blocks, URLs) are sent as
    # OpenAI image_url parts; see test_image_inputs below.
    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True

    # Skipped by their flags (False by default): PDF, audio and video parts, images or PDFs
    # inside tool results, and Anthropic-style inputs are not part of these APIs' chat
    # schema; test_stream_time records a VCR cassette of a real endpoint (enable_vcr_tests),
    # which has no meaning for a local emulator.

    @pytest.mark.xfail(
        reason="needs a real model's judgement: the emulator's json_object answer is "
        '{"answer": <text>}, not the keys the prompt asks for (JSON mode itself is sent: '
        "test_chat_models.py checks the request)",
        strict=True,
    )
    def test_json_mode(self, model: BaseChatModel) -> None:
        super().test_json_mode(model)

    @pytest.mark.xfail(
        reason="downloads a PNG from raw.githubusercontent.com and tests reach loopback only; "
        "the same three image forms are sent to the emulator by test_chat_models.py",
        run=False,
    )
    def test_image_inputs(self, model: BaseChatModel) -> None:
        super().test_image_inputs(model)

    @pytest.mark.xfail(
        reason="needs a real model's judgement: it checks the arguments are {'input': 3}, read "
        "from the question; the emulator's arguments are samples valid for the schema",
        strict=True,
    )
    @pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)
    def test_tool_calling(self, model: BaseChatModel) -> None:
        super().test_tool_calling(model)

    @pytest.mark.xfail(
        reason="needs a real model's judgement: it checks the arguments are {'input': 3}, read "
        "from the question; the emulator's arguments are samples valid for the schema",
        strict=True,
    )
    async def test_tool_calling_async(self, model: BaseChatModel) -> None:
        await super().test_tool_calling_async(model)

    @pytest.mark.xfail(
        reason="needs a real model's judgement: the emulator's tool arguments are samples valid "
        "for the schema, not names copied from the prompt (Unicode arguments pass through "
        "unescaped: test_chat_models.py checks it)",
        strict=True,
    )
    def test_unicode_tool_call_integration(
        self,
        model: BaseChatModel,
        *,
        tool_choice: str | None = None,
        force_tool_call: bool = True,
    ) -> None:
        super().test_unicode_tool_call_integration(
            model, tool_choice=tool_choice, force_tool_call=force_tool_call
        )


class TestAzureMLChatServerless(TestAzureMLChatOpenAIV1):
    """Against the emulator's serverless route (``/v1``), which refuses body fields it does
    not know (``extra-parameters: error``): nothing but the documented fields is sent."""

    def url(self) -> str:
        assert self.server is not None
        return self.server.serverless_url

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"endpoint_url": self.url(), "api_key": API_KEY}

    # A serverless endpoint serves one model and ignores `model` (the answer names its own):
    # the model-override tests are skipped here ("model_override_value not specified") and
    # run against the OpenAI v1 route above.
    @property
    def model_override_value(self) -> str | None:
        return None
