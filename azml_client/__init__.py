"""azml-client: an async-first client for Azure ML online endpoints and serverless endpoints.

::

    from azml_client import EndpointClient

    async with EndpointClient(endpoint_url="https://<endpoint>.<region>.inference.ml.azure.com/score",
                              api_key="...", formatter="llama") as client:
        out = await client.complete("Write me a song about sparkling water:")
        print(out.text)
"""

import importlib as _importlib
import logging as _logging
import typing as _typing

from ._version import __version__ as __version__

# A library logs, the application decides what is shown: nothing unless it configures logging.
_logging.getLogger("azml_client").addHandler(_logging.NullHandler())

if _typing.TYPE_CHECKING:
    from ._bulk import BatchResults as BatchResults
    from ._bulk import BatchRun as BatchRun
    from ._bulk import BatchStats as BatchStats
    from ._bulk import RateBudget as RateBudget
    from ._client import EndpointClient as EndpointClient
    from ._client import load_client as load_client
    from ._config import ClientSettings as ClientSettings
    from ._constants import NOT_GIVEN as NOT_GIVEN
    from ._constants import ApiType as ApiType
    from ._constants import ExtraParameters as ExtraParameters
    from ._constants import NotGiven as NotGiven
    from ._exceptions import APIConnectionError as APIConnectionError
    from ._exceptions import APIStatusError as APIStatusError
    from ._exceptions import APITimeoutError as APITimeoutError
    from ._exceptions import AuthenticationError as AuthenticationError
    from ._exceptions import AzmlError as AzmlError
    from ._exceptions import BadRequestError as BadRequestError
    from ._exceptions import ClientClosedError as ClientClosedError
    from ._exceptions import ConfigurationError as ConfigurationError
    from ._exceptions import CredentialError as CredentialError
    from ._exceptions import EmptyResponseError as EmptyResponseError
    from ._exceptions import ModelError as ModelError
    from ._exceptions import NotFoundError as NotFoundError
    from ._exceptions import PermissionDeniedError as PermissionDeniedError
    from ._exceptions import RateLimitError as RateLimitError
    from ._exceptions import RequestTimeoutError as RequestTimeoutError
    from ._exceptions import ResponseFormatError as ResponseFormatError
    from ._exceptions import ServerError as ServerError
    from ._exceptions import StreamInterruptedError as StreamInterruptedError
    from ._exceptions import StructuredOutputError as StructuredOutputError
    from ._exceptions import UnprocessableEntityError as UnprocessableEntityError
    from ._pricing import Pricing as Pricing
    from ._retry import RetryPolicy as RetryPolicy
    from ._router import EndpointRouter as EndpointRouter
    from ._router import SyncEndpointRouter as SyncEndpointRouter
    from ._router import load_router as load_router
    from ._streaming import AsyncStream as AsyncStream
    from ._sync import SyncEndpointClient as SyncEndpointClient
    from ._sync import SyncStream as SyncStream
    from ._types import ChatCompletion as ChatCompletion
    from ._types import ChatMessage as ChatMessage
    from ._types import Completion as Completion
    from ._types import Embeddings as Embeddings
    from ._types import FunctionCall as FunctionCall
    from ._types import ModelInfo as ModelInfo
    from ._types import StreamChunk as StreamChunk
    from ._types import ToolCall as ToolCall
    from ._types import Usage as Usage
    from .formatters import BartContentFormatter as BartContentFormatter
    from .formatters import ContentFormatterBase as ContentFormatterBase
    from .formatters import CustomOpenAIChatContentFormatter as CustomOpenAIChatContentFormatter
    from .formatters import CustomOpenAIContentFormatter as CustomOpenAIContentFormatter
    from .formatters import DollyContentFormatter as DollyContentFormatter
    from .formatters import FormatRequest as FormatRequest
    from .formatters import FormatterInfo as FormatterInfo
    from .formatters import GPT2ContentFormatter as GPT2ContentFormatter
    from .formatters import HFContentFormatter as HFContentFormatter
    from .formatters import LlamaChatContentFormatter as LlamaChatContentFormatter
    from .formatters import LlamaContentFormatter as LlamaContentFormatter
    from .formatters import MistralChatContentFormatter as MistralChatContentFormatter
    from .formatters import OpenAIContentFormatter as OpenAIContentFormatter
    from .formatters import OSSContentFormatter as OSSContentFormatter
    from .formatters import ParsedOutput as ParsedOutput
    from .formatters import TGIContentFormatter as TGIContentFormatter
    from .formatters import VLLMContentFormatter as VLLMContentFormatter
    from .formatters import get_formatter as get_formatter
    from .formatters import list_formatters as list_formatters
    from .formatters import register_formatter as register_formatter
    from .formatters import unregister_formatter as unregister_formatter

#: Where each public name lives: imported on first use, so ``import azml_client`` costs
#: only what the names a program touches need (the emulator, bulk runs, the sync client and
#: the transport load when used).
_LAZY: dict[str, str] = {
    "APIConnectionError": "._exceptions",
    "APIStatusError": "._exceptions",
    "APITimeoutError": "._exceptions",
    "ApiType": "._constants",
    "AsyncStream": "._streaming",
    "AuthenticationError": "._exceptions",
    "AzmlError": "._exceptions",
    "BadRequestError": "._exceptions",
    "BartContentFormatter": ".formatters",
    "BatchResults": "._bulk",
    "BatchRun": "._bulk",
    "BatchStats": "._bulk",
    "RateBudget": "._bulk",
    "ChatCompletion": "._types",
    "ChatMessage": "._types",
    "ClientClosedError": "._exceptions",
    "ClientSettings": "._config",
    "Completion": "._types",
    "ConfigurationError": "._exceptions",
    "ContentFormatterBase": ".formatters",
    "CredentialError": "._exceptions",
    "CustomOpenAIChatContentFormatter": ".formatters",
    "CustomOpenAIContentFormatter": ".formatters",
    "DollyContentFormatter": ".formatters",
    "EmptyResponseError": "._exceptions",
    "EndpointClient": "._client",
    "ExtraParameters": "._constants",
    "FormatRequest": ".formatters",
    "FormatterInfo": ".formatters",
    "GPT2ContentFormatter": ".formatters",
    "HFContentFormatter": ".formatters",
    "MistralChatContentFormatter": ".formatters",
    "LlamaChatContentFormatter": ".formatters",
    "LlamaContentFormatter": ".formatters",
    "ModelError": "._exceptions",
    "NOT_GIVEN": "._constants",
    "NotFoundError": "._exceptions",
    "NotGiven": "._constants",
    "OSSContentFormatter": ".formatters",
    "OpenAIContentFormatter": ".formatters",
    "ParsedOutput": ".formatters",
    "PermissionDeniedError": "._exceptions",
    "RateLimitError": "._exceptions",
    "RequestTimeoutError": "._exceptions",
    "ResponseFormatError": "._exceptions",
    "RetryPolicy": "._retry",
    "ServerError": "._exceptions",
    "StreamChunk": "._types",
    "StreamInterruptedError": "._exceptions",
    "SyncEndpointClient": "._sync",
    "SyncStream": "._sync",
    "TGIContentFormatter": ".formatters",
    "UnprocessableEntityError": "._exceptions",
    "Usage": "._types",
    "VLLMContentFormatter": ".formatters",
    "get_formatter": ".formatters",
    "list_formatters": ".formatters",
    "load_client": "._client",
    "register_formatter": ".formatters",
    "unregister_formatter": ".formatters",
    "Embeddings": "._types",
    "FunctionCall": "._types",
    "ModelInfo": "._types",
    "ToolCall": "._types",
    "StructuredOutputError": "._exceptions",
    "Pricing": "._pricing",
    "EndpointRouter": "._router",
    "SyncEndpointRouter": "._router",
    "load_router": "._router",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [  # noqa: RUF022 - plain sorted(), as tests/test_public_api.py checks
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "ApiType",
    "AsyncStream",
    "AuthenticationError",
    "AzmlError",
    "BadRequestError",
    "BartContentFormatter",
    "BatchResults",
    "BatchRun",
    "BatchStats",
    "ChatCompletion",
    "ChatMessage",
    "ClientClosedError",
    "ClientSettings",
    "Completion",
    "ConfigurationError",
    "ContentFormatterBase",
    "CredentialError",
    "CustomOpenAIChatContentFormatter",
    "CustomOpenAIContentFormatter",
    "DollyContentFormatter",
    "Embeddings",
    "EmptyResponseError",
    "EndpointClient",
    "EndpointRouter",
    "ExtraParameters",
    "FormatRequest",
    "FormatterInfo",
    "FunctionCall",
    "GPT2ContentFormatter",
    "HFContentFormatter",
    "LlamaChatContentFormatter",
    "LlamaContentFormatter",
    "MistralChatContentFormatter",
    "ModelError",
    "ModelInfo",
    "NOT_GIVEN",
    "NotFoundError",
    "NotGiven",
    "OSSContentFormatter",
    "OpenAIContentFormatter",
    "ParsedOutput",
    "PermissionDeniedError",
    "Pricing",
    "RateBudget",
    "RateLimitError",
    "RequestTimeoutError",
    "ResponseFormatError",
    "RetryPolicy",
    "ServerError",
    "StreamChunk",
    "StreamInterruptedError",
    "StructuredOutputError",
    "SyncEndpointClient",
    "SyncEndpointRouter",
    "SyncStream",
    "TGIContentFormatter",
    "ToolCall",
    "UnprocessableEntityError",
    "Usage",
    "VLLMContentFormatter",
    "get_formatter",
    "list_formatters",
    "load_client",
    "load_router",
    "register_formatter",
    "unregister_formatter",
]
