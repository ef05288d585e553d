"""The formatter registry: model family key -> formatter.

Built-in keys and their aliases are registered at import. A user adds a family without touching
this package::

    from azml_client import ContentFormatterBase, register_formatter

    class MyFormatter(ContentFormatterBase):
        ...

    register_formatter("my-family", MyFormatter(), aliases=["mine"])
    client = EndpointClient(..., formatter="my-family")
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from typing import Any

from .._exceptions import ConfigurationError
from ._base import ContentFormatterBase, check_formatter
from ._dedicated import (
    BartContentFormatter,
    CustomOpenAIChatContentFormatter,
    CustomOpenAIContentFormatter,
    DollyContentFormatter,
    GPT2ContentFormatter,
    HFContentFormatter,
    MistralChatContentFormatter,
    TGIContentFormatter,
    VLLMContentFormatter,
)
from ._openai import OpenAIContentFormatter

__all__ = [
    "FormatterInfo",
    "formatter_from_config",
    "formatter_to_config",
    "get_formatter",
    "list_formatters",
    "register_formatter",
    "unregister_formatter",
]


@dataclass(frozen=True)
class FormatterInfo:
    """One registered family, as :func:`list_formatters` reports it."""

    key: str
    aliases: tuple[str, ...]
    api_types: tuple[str, ...]
    chat: bool
    completion: bool
    formatter: str


_lock = threading.Lock()
_formatters: dict[str, ContentFormatterBase] = {}
_aliases: dict[str, str] = {}


def _norm(key: str) -> str:
    return key.strip().lower().replace("_", "-")


def register_formatter(
    key: str,
    formatter: ContentFormatterBase | type[ContentFormatterBase],
    *,
    aliases: list[str] | tuple[str, ...] = (),
    replace: bool = False,
) -> None:
    """Register ``formatter`` (an instance, or a class built with no arguments) under ``key``.

    Keys are case-insensitive and ``_`` equals ``-``. Registering a taken key or alias raises
    :class:`ConfigurationError` unless ``replace=True``.
    """
    instance = formatter() if isinstance(formatter, type) else formatter
    if not isinstance(instance, ContentFormatterBase):
        raise ConfigurationError(
            f"register_formatter({key!r}, ...) needs a ContentFormatterBase subclass or "
            f"instance, got {type(instance).__name__}"
        )
    check_formatter(instance)
    name = _norm(key)
    if not name:
        raise ConfigurationError("register_formatter() needs a non-empty key")
    names = [_norm(a) for a in aliases]
    with _lock:
        if not replace:
            taken = [n for n in (name, *names) if n in _formatters or n in _aliases]
            if taken:
                raise ConfigurationError(
                    f"formatter key(s) {', '.join(taken)} already registered; pass replace=True "
                    "to override them"
                )
        for stale in [a for a, target in _aliases.items() if target == name]:
            del _aliases[stale]
        _aliases.pop(name, None)
        _formatters[name] = instance
        for alias in names:
            _formatters.pop(alias, None)
            _aliases[alias] = name


def unregister_formatter(key: str) -> None:
    """Remove a family and its aliases (mostly for tests)."""
    name = _aliases.get(_norm(key), _norm(key))
    with _lock:
        if _formatters.pop(name, None) is None:
            raise ConfigurationError(f"no formatter registered under {key!r}")
        for alias in [a for a, target in _aliases.items() if target == name]:
            del _aliases[alias]


def get_formatter(key: str) -> ContentFormatterBase:
    """The formatter registered under ``key`` or one of its aliases."""
    name = _norm(key)
    name = _aliases.get(name, name)
    try:
        return _formatters[name]
    except KeyError:
        known = ", ".join(sorted(_formatters))
        raise ConfigurationError(
            f"unknown formatter {key!r}: use one of {known}, pass a ContentFormatterBase "
            "instance, or register your own with register_formatter()"
        ) from None


def list_formatters() -> list[FormatterInfo]:
    """Every registered family with its aliases and the api types it supports."""
    out = []
    for key, fmt in sorted(_formatters.items()):
        out.append(
            FormatterInfo(
                key=key,
                aliases=tuple(sorted(a for a, target in _aliases.items() if target == key)),
                api_types=tuple(str(t) for t in fmt.supported_api_types),
                chat=fmt.supports_chat,
                completion=fmt.supports_completion,
                formatter=f"{type(fmt).__module__}.{type(fmt).__qualname__}",
            )
        )
    return out


def formatter_to_config(formatter: ContentFormatterBase) -> tuple[str, dict[str, Any]]:
    """``(key or "module:Class", options)`` from which :func:`formatter_from_config` rebuilds it."""
    cls = type(formatter)
    builtin = {
        type(f): key
        for key, f in _formatters.items()
        if type(f).__module__.startswith("azml_client.")
    }
    for klass in cls.__mro__:
        if klass in builtin and cls.__module__.startswith("azml_client."):
            return builtin[klass], formatter.options()
    if "<locals>" in cls.__qualname__:
        raise ConfigurationError(
            f"cannot save formatter {cls.__qualname__}: define it at module level or register "
            "it with register_formatter() so it can be found again on load"
        )
    return f"{cls.__module__}:{cls.__qualname__}", formatter.options()


def formatter_from_config(ref: str, options: dict[str, Any] | None = None) -> ContentFormatterBase:
    """Rebuild a formatter saved by :func:`formatter_to_config`."""
    if ":" not in ref:
        base = get_formatter(ref)
        return type(base)(**options) if options else base
    module_name, _, qualname = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"cannot import formatter {ref!r} ({exc}); make its module importable or register "
            "the formatter under a key"
        ) from None
    if not (isinstance(obj, type) and issubclass(obj, ContentFormatterBase)):
        raise ConfigurationError(f"{ref!r} is not a ContentFormatterBase subclass")
    instance = obj(**(options or {}))
    check_formatter(instance)
    return instance


def _register_builtins() -> None:
    builtins: list[tuple[str, ContentFormatterBase, tuple[str, ...]]] = [
        ("gpt2", GPT2ContentFormatter(), ("distilgpt2",)),
        ("dolly", DollyContentFormatter(), ("dolly-v2",)),
        ("hf", HFContentFormatter(), ("huggingface", "hf-text-generation")),
        ("tgi", TGIContentFormatter(), ("hf-tgi", "text-generation-inference")),
        ("llama", CustomOpenAIContentFormatter(), ("mistral", "phi", "custom-openai")),
        ("llama-chat", CustomOpenAIChatContentFormatter(), ("phi-chat", "chat")),
        ("mistral-chat", MistralChatContentFormatter(), ("mistral-instruct",)),
        ("vllm", VLLMContentFormatter(), ("fms", "foundation-model-serve")),
        ("bart", BartContentFormatter(), ("summarization",)),
        ("openai", OpenAIContentFormatter(), ("serverless", "maas", "openai-compatible")),
    ]
    for key, fmt, aliases in builtins:
        register_formatter(key, fmt, aliases=aliases)


_register_builtins()
