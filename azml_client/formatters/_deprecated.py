"""Deprecated formatter names kept from the seed API; each warns and names its replacement."""

from __future__ import annotations

import warnings
from typing import Any

from ._dedicated import (
    CustomOpenAIChatContentFormatter,
    CustomOpenAIContentFormatter,
    GPT2ContentFormatter,
)

__all__ = ["LlamaChatContentFormatter", "LlamaContentFormatter", "OSSContentFormatter"]


def _warn(old: str, new: str, key: str) -> None:
    warnings.warn(
        f"{old} is deprecated; use {new} (or formatter={key!r})",
        DeprecationWarning,
        stacklevel=3,
    )


class OSSContentFormatter(GPT2ContentFormatter):
    """Deprecated: use :class:`GPT2ContentFormatter` (family key ``"gpt2"``)."""

    def __init__(self, **kwargs: Any) -> None:
        _warn("OSSContentFormatter", "GPT2ContentFormatter", "gpt2")
        super().__init__(**kwargs)


class LlamaContentFormatter(CustomOpenAIContentFormatter):
    """Deprecated: use :class:`CustomOpenAIContentFormatter` (family key ``"llama"``)."""

    def __init__(self, **kwargs: Any) -> None:
        _warn("LlamaContentFormatter", "CustomOpenAIContentFormatter", "llama")
        super().__init__(**kwargs)


class LlamaChatContentFormatter(CustomOpenAIChatContentFormatter):
    """Deprecated: use :class:`CustomOpenAIChatContentFormatter` (family key ``"llama-chat"``)."""

    def __init__(self, **kwargs: Any) -> None:
        _warn("LlamaChatContentFormatter", "CustomOpenAIChatContentFormatter", "llama-chat")
        super().__init__(**kwargs)
