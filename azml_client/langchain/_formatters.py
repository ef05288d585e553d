"""Formatters as LangChain users pass them: ours, LangChain's own, or a family key.

* azml-client's formatter classes (re-exported under the seed's names) go to the client as they
  are, instances or classes (the chat docs pass ``CustomOpenAIChatContentFormatter`` uncalled).
* A formatter written for LangChain (an instance or class of a ``langchain_community``
  ``ContentFormatterBase`` subclass, or anything with its methods) is recognised by its methods
  and wrapped in :class:`LangChainFormatter`, which calls them the way LangChain does:
  ``format_request_payload(prompt, model_kwargs, api_type)`` or, for chat,
  ``format_messages_request_payload(messages, model_kwargs, api_type)`` with LangChain message
  objects, each returning ``bytes`` or ``str``; ``format_response_payload(output, api_type)``
  with the raw answer, returning a ``Generation``, a ``ChatGeneration``, a message or a
  ``str``. ``api_type`` is LangChain's own ``AzureMLEndpointApiType`` member when the
  formatter's module has the enum.
* :class:`MistralChatContentFormatter` (the ``mistral-chat`` family of
  :mod:`azml_client.formatters`) is the seed's chat formatter that folds the system prompt
  into the first user turn, re-exported here under the seed's name.
"""

from __future__ import annotations

import enum
import importlib
import sys
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import convert_to_messages

from .._constants import ApiType
from .._exceptions import ConfigurationError
from ..formatters import MistralChatContentFormatter
from ..formatters._base import (
    ContentFormatterBase,
    FormatRequest,
    ParsedOutput,
    _positional_arity,
    dump_json,
)
from ..formatters._registry import formatter_from_config, formatter_to_config
from ._api_type import AzureMLEndpointApiType
from ._messages import openai_tool_calls

__all__ = [
    "LangChainFormatter",
    "MistralChatContentFormatter",
    "formatter_from_ref",
    "formatter_ref",
    "is_langchain_formatter",
    "resolve_formatter",
]

#: LangChain's api type names, and what each is for this client.
_CLIENT_TYPES = {"dedicated": ApiType.DEDICATED, "realtime": ApiType.DEDICATED}


def _defines(obj: Any, name: str) -> bool:
    """Whether ``obj``'s class implements ``name`` itself (not only LangChain's abstract base,
    whose ``format_request_payload`` raises ``NotImplementedError``)."""
    for klass in type(obj).__mro__:
        if name in vars(klass):
            return klass.__name__ != "ContentFormatterBase"
    return False


def is_langchain_formatter(obj: Any) -> bool:
    """Whether ``obj`` is a formatter written for LangChain (by its methods, not its class)."""
    if isinstance(obj, ContentFormatterBase | type):
        return False
    return callable(getattr(obj, "format_response_payload", None)) and (
        _defines(obj, "format_request_payload") or _defines(obj, "format_messages_request_payload")
    )


def _arity(method: Any) -> int:
    """Positional arguments a bound method takes (LangChain formatters use 1 to 3)."""
    return _positional_arity(method, unknown=3)


def _foreign_enum(formatter: Any) -> type[enum.Enum] | None:
    """LangChain's ``AzureMLEndpointApiType`` as the formatter's modules know it."""
    for klass in type(formatter).__mro__:
        module = sys.modules.get(klass.__module__)
        found = getattr(module, "AzureMLEndpointApiType", None)
        if isinstance(found, type) and issubclass(found, enum.Enum):
            return found
    return None


def _bytes(body: Any, formatter: str, method: str) -> bytes:
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    raise ConfigurationError(f"{formatter}.{method}() returned {type(body).__name__}, not bytes")


class LangChainFormatter(ContentFormatterBase):
    """A formatter written for LangChain, used through its own methods (see the module doc).

    Its answers are read by the wrapped formatter's ``format_response_payload``; streaming is
    not offered (LangChain's formatters build no streaming bodies), so the models answer a
    ``stream()`` with the whole reply as one chunk.
    """

    def __init__(self, wrapped: Any, *, api_type: str | None = None) -> None:
        if isinstance(wrapped, type):
            wrapped = wrapped()
        if not is_langchain_formatter(wrapped):
            raise ConfigurationError(
                f"{type(wrapped).__name__} is not a content formatter: it needs "
                "format_request_payload() (or format_messages_request_payload()) and "
                "format_response_payload()"
            )
        self.wrapped = wrapped
        #: The api type the user named (``realtime`` stays ``realtime`` for the formatter).
        self.declared = api_type
        self._enum = _foreign_enum(wrapped)
        supported = getattr(wrapped, "supported_api_types", None) or ["dedicated"]
        names = {str(getattr(t, "value", t)) for t in supported}
        types = {_CLIENT_TYPES.get(name, ApiType.SERVERLESS) for name in names}
        # These are class-level settings of our formatters; here they come from the wrapped
        # object, so they are set on the instance.
        vars(self).update(
            content_type=getattr(wrapped, "content_type", None) or "application/json",
            accepts=getattr(wrapped, "accepts", None) or "application/json",
            supported_api_types=tuple(sorted(types, key=lambda t: t.value)),
            supports_completion=_defines(wrapped, "format_request_payload"),
            supports_chat=_defines(wrapped, "format_messages_request_payload"),
        )

    @property
    def name(self) -> str:
        return type(self.wrapped).__name__

    def __repr__(self) -> str:
        return f"LangChainFormatter({self.wrapped!r})"

    def lc_api_type(self, api_type: ApiType) -> Any:
        """The api type the wrapped formatter expects, as its own enum when it has one."""
        value = str(api_type.value)
        if api_type is ApiType.DEDICATED and self.declared == "realtime":
            value = "realtime"
        if self._enum is None:
            return AzureMLEndpointApiType(value)
        members = {str(m.value): m for m in self._enum}
        return members.get(value) or members.get("serverless", value)

    def build_request(self, request: FormatRequest) -> Any:
        api_type = self.lc_api_type(request.api_type)
        params = dict(request.params)
        if request.messages is not None:
            messages = convert_to_messages([dict(m) for m in request.messages])
            body = self.wrapped.format_messages_request_payload(messages, params, api_type)
            return _bytes(body, self.name, "format_messages_request_payload")
        method = self.wrapped.format_request_payload
        args: tuple[Any, ...] = (request.prompt or "", params)
        if _arity(method) >= 3:
            args = (*args, api_type)
        return _bytes(method(*args), self.name, "format_request_payload")

    def parse_response(self, data: Any, request: FormatRequest) -> ParsedOutput:
        method = self.wrapped.format_response_payload
        args: tuple[Any, ...] = (dump_json(data),)
        if _arity(method) >= 2:
            args = (*args, self.lc_api_type(request.api_type))
        return _parsed(method(*args), self, data, request)


def _parsed(
    result: Any, formatter: LangChainFormatter, data: Any, request: FormatRequest
) -> ParsedOutput:
    """Our reading of what a LangChain formatter returned."""
    if isinstance(result, str):
        return ParsedOutput(text=result)
    message = getattr(result, "message", None)
    if message is None and hasattr(result, "content") and hasattr(result, "type"):
        message = result  # a message itself
    info = getattr(result, "generation_info", None) or {}
    finish = info.get("finish_reason") if isinstance(info, Mapping) else None
    if message is not None:
        role = "assistant" if message.type in ("ai", "AIMessageChunk") else str(message.type)
        calls = openai_tool_calls(getattr(message, "tool_calls", None) or [])
        text = message.text if isinstance(message.text, str) else str(message.content)
        return ParsedOutput(
            text=text,
            finish_reason=finish if isinstance(finish, str) else None,
            message={"role": role, "content": text},
            tool_calls=calls or None,
        )
    generated = getattr(result, "text", None)
    if isinstance(generated, str):
        return ParsedOutput(
            text=generated, finish_reason=finish if isinstance(finish, str) else None
        )
    raise formatter.format_error(
        f"format_response_payload() returned {type(result).__name__}: expected a Generation, a "
        "ChatGeneration, a message or a str",
        data,
        request,
    )


def resolve_formatter(
    value: Any, *, api_type: str | None, options: Mapping[str, Any] | None = None
) -> ContentFormatterBase | None:
    """The formatter for a user's ``content_formatter`` (``None``: the client's default).

    A family key or a ``"module:Class"`` reference (a saved model) is looked up and built with
    ``options``; a class is instantiated (with ``options`` when it is one of ours); LangChain's
    formatters are wrapped; a formatter instance is used as it is.
    """
    if value is None or isinstance(value, ContentFormatterBase):
        if options:
            raise ConfigurationError(
                "formatter_options apply to a formatter named by its family key or class "
                "(content_formatter='gpt2', formatter_options={'schema': 'v1'})"
            )
        return value
    if isinstance(value, str):
        return formatter_from_ref(value, options, api_type=api_type)
    if isinstance(value, type) and issubclass(value, ContentFormatterBase):
        return value(**dict(options or {}))
    candidate = value() if isinstance(value, type) else value
    if is_langchain_formatter(candidate):
        if options:
            raise ConfigurationError("formatter_options apply to azml-client's formatters")
        return LangChainFormatter(candidate, api_type=api_type)
    raise ConfigurationError(
        f"content_formatter must be a formatter (azml-client's or LangChain's), a formatter "
        f"class or a family key such as 'llama'; got {type(value).__name__}"
    )


def formatter_ref(formatter: Any) -> tuple[str, dict[str, Any]] | None:
    """``(key or "module:Class", options)`` that :func:`formatter_from_ref` rebuilds the
    formatter from, or ``None`` for one that cannot be found again (defined in a function)."""
    if isinstance(formatter, str):
        return formatter, {}
    if isinstance(formatter, type):
        formatter = resolve_formatter(formatter, api_type=None)
    target = formatter.wrapped if isinstance(formatter, LangChainFormatter) else formatter
    cls = type(target)
    if "<locals>" in cls.__qualname__:
        return None
    if isinstance(target, ContentFormatterBase) and cls.__module__.startswith(
        "azml_client.formatters"
    ):
        return formatter_to_config(target)
    options = target.options() if isinstance(target, ContentFormatterBase) else {}
    return f"{cls.__module__}:{cls.__qualname__}", options


def formatter_from_ref(
    ref: str, options: Mapping[str, Any] | None = None, *, api_type: str | None = None
) -> ContentFormatterBase:
    """Rebuild a formatter saved by :func:`formatter_ref`: ours, or LangChain's (wrapped)."""
    if ":" not in ref:
        return formatter_from_config(ref, dict(options or {}) or None)
    module_name, _, qualname = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"cannot import formatter {ref!r} ({exc})") from None
    if isinstance(obj, type) and issubclass(obj, ContentFormatterBase):
        return obj(**dict(options or {}))
    if isinstance(obj, type):
        return LangChainFormatter(obj, api_type=api_type)
    raise ConfigurationError(f"{ref!r} is not a formatter class")
