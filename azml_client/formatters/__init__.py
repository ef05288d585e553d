"""Formatters: one per model family, plus the registry that maps family keys to them."""

from ._base import ContentFormatterBase as ContentFormatterBase
from ._base import FormatRequest as FormatRequest
from ._base import ParsedOutput as ParsedOutput
from ._dedicated import BartContentFormatter as BartContentFormatter
from ._dedicated import CustomOpenAIChatContentFormatter as CustomOpenAIChatContentFormatter
from ._dedicated import CustomOpenAIContentFormatter as CustomOpenAIContentFormatter
from ._dedicated import DollyContentFormatter as DollyContentFormatter
from ._dedicated import GPT2ContentFormatter as GPT2ContentFormatter
from ._dedicated import HFContentFormatter as HFContentFormatter
from ._dedicated import MistralChatContentFormatter as MistralChatContentFormatter
from ._dedicated import TGIContentFormatter as TGIContentFormatter
from ._dedicated import VLLMContentFormatter as VLLMContentFormatter
from ._deprecated import LlamaChatContentFormatter as LlamaChatContentFormatter
from ._deprecated import LlamaContentFormatter as LlamaContentFormatter
from ._deprecated import OSSContentFormatter as OSSContentFormatter
from ._openai import OpenAIContentFormatter as OpenAIContentFormatter
from ._registry import FormatterInfo as FormatterInfo
from ._registry import get_formatter as get_formatter
from ._registry import list_formatters as list_formatters
from ._registry import register_formatter as register_formatter
from ._registry import unregister_formatter as unregister_formatter

__all__ = [
    "BartContentFormatter",
    "ContentFormatterBase",
    "CustomOpenAIChatContentFormatter",
    "CustomOpenAIContentFormatter",
    "DollyContentFormatter",
    "FormatRequest",
    "FormatterInfo",
    "GPT2ContentFormatter",
    "HFContentFormatter",
    "LlamaChatContentFormatter",
    "LlamaContentFormatter",
    "MistralChatContentFormatter",
    "OSSContentFormatter",
    "OpenAIContentFormatter",
    "ParsedOutput",
    "TGIContentFormatter",
    "VLLMContentFormatter",
    "get_formatter",
    "list_formatters",
    "register_formatter",
    "unregister_formatter",
]
