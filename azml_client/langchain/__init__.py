"""LangChain integration: drop-in ``AzureMLOnlineEndpoint`` and ``AzureMLChatOnlineEndpoint``.

Install with ``pip install "azml-client[langchain]"``. Migrating from
``langchain_community`` is changing the import line::

    # from langchain_community.llms.azureml_endpoint import (
    from azml_client.langchain import (
        AzureMLEndpointApiType,
        AzureMLOnlineEndpoint,
        CustomOpenAIContentFormatter,
    )

    llm = AzureMLOnlineEndpoint(
        endpoint_url="https://<endpoint>.<region>.inference.ml.azure.com/score",
        endpoint_api_type=AzureMLEndpointApiType.dedicated,
        endpoint_api_key="...",
        content_formatter=CustomOpenAIContentFormatter(),
        model_kwargs={"temperature": 0.8, "max_new_tokens": 400},
    )

The formatter names are azml-client's formatters (prompts are JSON-encoded once, every answer
shape of the catalog is read); LangChain's own formatter objects work too. Also here:
:class:`AzureMLEmbeddings` and :func:`load_llm`.
"""

try:
    import langchain_core as _langchain_core  # noqa: F401
except ImportError as _error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "azml_client.langchain needs langchain-core: pip install 'azml-client[langchain]'"
    ) from _error

from ..formatters import ContentFormatterBase as ContentFormatterBase
from ..formatters import CustomOpenAIChatContentFormatter as CustomOpenAIChatContentFormatter
from ..formatters import CustomOpenAIContentFormatter as CustomOpenAIContentFormatter
from ..formatters import DollyContentFormatter as DollyContentFormatter
from ..formatters import GPT2ContentFormatter as GPT2ContentFormatter
from ..formatters import HFContentFormatter as HFContentFormatter
from ..formatters import LlamaChatContentFormatter as LlamaChatContentFormatter
from ..formatters import LlamaContentFormatter as LlamaContentFormatter
from ..formatters import OSSContentFormatter as OSSContentFormatter
from ._api_type import AzureMLEndpointApiType as AzureMLEndpointApiType
from ._formatters import LangChainFormatter as LangChainFormatter
from ._formatters import MistralChatContentFormatter as MistralChatContentFormatter
from ._loading import load_llm as load_llm
from .chat_models import AzureMLChatOnlineEndpoint as AzureMLChatOnlineEndpoint
from .embeddings import AzureMLEmbeddings as AzureMLEmbeddings
from .llms import AzureMLOnlineEndpoint as AzureMLOnlineEndpoint

__all__ = [
    "AzureMLChatOnlineEndpoint",
    "AzureMLEmbeddings",
    "AzureMLEndpointApiType",
    "AzureMLOnlineEndpoint",
    "ContentFormatterBase",
    "CustomOpenAIChatContentFormatter",
    "CustomOpenAIContentFormatter",
    "DollyContentFormatter",
    "GPT2ContentFormatter",
    "HFContentFormatter",
    "LangChainFormatter",
    "LlamaChatContentFormatter",
    "LlamaContentFormatter",
    "MistralChatContentFormatter",
    "OSSContentFormatter",
    "load_llm",
]
