"""``AzureMLEndpointApiType``: LangChain's names of the endpoint kinds, and this SDK's two more."""

from __future__ import annotations

import enum

__all__ = ["AzureMLEndpointApiType"]


class AzureMLEndpointApiType(str, enum.Enum):
    """The kind of endpoint, with LangChain's lower-case names (and this SDK's two more).

    ``dedicated``: a managed online endpoint (``.../score``); ``realtime``: deprecated name of
    ``dedicated``; ``serverless``: a pay-as-you-go endpoint with OpenAI-style routes;
    ``models``: the Azure AI model inference API (``.../models``); ``openai_v1``: Foundry /
    Azure OpenAI (``.../openai/v1``).
    """

    dedicated = "dedicated"
    realtime = "realtime"
    serverless = "serverless"
    models = "models"
    openai_v1 = "openai_v1"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def _missing_(cls, value: object) -> AzureMLEndpointApiType | None:
        text = str(getattr(value, "value", value)).strip().lower().replace("-", "_")
        return next((member for member in cls if member.value == text), None)
