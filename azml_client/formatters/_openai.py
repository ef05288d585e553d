"""OpenAI-compatible bodies: serverless ``/completions`` and ``/chat/completions`` routes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .._constants import ApiType
from .._exceptions import reported_error
from ._base import ContentFormatterBase, FormatRequest, ParsedOutput
from ._shapes import raise_empty

__all__ = ["OpenAIContentFormatter", "openai_body", "parse_openai", "parse_openai_chunk"]


def rename_param(params: Mapping[str, Any], old: str, new: str) -> dict[str, Any]:
    """Copy ``params`` with ``old`` renamed to ``new`` unless ``new`` is already there."""
    out = dict(params)
    if old in out and new not in out:
        out[new] = out.pop(old)
    return out


def openai_body(request: FormatRequest) -> dict[str, Any]:
    """``{"prompt": ...}`` or ``{"messages": [...]}`` with the parameters at the root.

    ``max_new_tokens`` (the Hugging Face name) is sent as ``max_tokens``, the OpenAI name.
    """
    params = rename_param(request.params, "max_new_tokens", "max_tokens")
    body: dict[str, Any]
    if request.is_chat:
        body = {"messages": list(request.messages or ())}
    else:
        body = {"prompt": request.prompt}
    body.update(params)
    if request.stream:
        body["stream"] = True
    return body


def _error_in_body(data: Mapping[str, Any]) -> None:
    """Raise when a 200 answer is an error object (``{"error": {...}}`` without choices)."""
    error = data.get("error")
    if error is None or "choices" in data:
        return
    raise reported_error(error, context="the endpoint reported an error inside a 200 answer")


def parse_openai(
    formatter: ContentFormatterBase, data: Any, request: FormatRequest
) -> ParsedOutput:
    """Read ``choices[0]`` of a completion or chat completion answer."""
    if not isinstance(data, Mapping):
        raise formatter.format_error("expected a JSON object with 'choices'", data, request)
    if not data:
        raise_empty(formatter, request)
    _error_in_body(data)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise formatter.format_error("expected a non-empty 'choices' list", data, request)
    choice = choices[0]
    message = choice.get("message")
    tool_calls = None
    if isinstance(message, Mapping):
        text = message.get("content") or ""
        calls = message.get("tool_calls")
        tool_calls = calls if isinstance(calls, list) else None
    elif "text" in choice:
        text = choice["text"]
        message = None
    else:
        raise formatter.format_error(
            "expected choices[0].message (chat) or choices[0].text (completion)", data, request
        )
    if not isinstance(text, str):
        raise formatter.format_error("the generated text is not a string", data, request)
    usage = data.get("usage")
    finish = choice.get("finish_reason")
    model = data.get("model")
    ident = data.get("id")
    return ParsedOutput(
        text=text,
        finish_reason=finish if isinstance(finish, str) else None,
        usage=usage if isinstance(usage, Mapping) else None,
        model=model if isinstance(model, str) and model else None,
        id=str(ident) if ident is not None else None,
        message=message,
        tool_calls=tool_calls,
    )


def parse_openai_chunk(
    formatter: ContentFormatterBase, data: Any, request: FormatRequest
) -> ParsedOutput | None:
    """Read one streamed chunk: ``choices[0].delta.content`` (chat) or ``choices[0].text``.

    A chunk with empty ``choices`` may carry the final ``usage``. This runs once per token, so
    it tests for ``dict`` (what ``json.loads`` builds) rather than the slower ABC ``Mapping``.
    """
    if type(data) is not dict:
        raise formatter.format_error("a stream chunk is not a JSON object", data, request)
    if "error" in data:
        _error_in_body(data)
    usage = data.get("usage")
    usage = usage if type(usage) is dict else None
    choices = data.get("choices")
    if not choices:
        return ParsedOutput(text="", usage=usage) if usage else None
    choice = choices[0] if type(choices) is list else None
    if type(choice) is not dict:
        raise formatter.format_error("a stream chunk has malformed 'choices'", data, request)
    delta = choice.get("delta")
    text = delta.get("content") if type(delta) is dict else choice.get("text")
    finish = choice.get("finish_reason")
    if text is not None and type(text) is not str:
        raise formatter.format_error("a stream chunk's text is not a string", data, request)
    return ParsedOutput(
        text=text or "",
        finish_reason=finish if type(finish) is str else None,
        usage=usage,
    )


class OpenAIContentFormatter(ContentFormatterBase):
    """The OpenAI wire format: serverless endpoints (Llama, Mistral, Phi, Cohere, ... as a
    service), the model inference API (``/models``) and the Foundry / Azure OpenAI v1 API.

    ``complete()`` posts ``{"prompt": ...}`` to the completions route and ``chat()`` posts
    ``{"messages": [...]}`` to the chat completions route, whatever route the URL named.
    """

    family: ClassVar[str] = "openai"
    supported_api_types: ClassVar[tuple[ApiType, ...]] = (
        ApiType.SERVERLESS,
        ApiType.MODELS,
        ApiType.OPENAI_V1,
    )
    supports_chat: ClassVar[bool] = True
    supports_tools: ClassVar[bool] = True
    supports_images: ClassVar[bool] = True
    stream_api_types: ClassVar[tuple[ApiType, ...]] = supported_api_types

    @property
    def name(self) -> str:
        return self.family

    def build_request(self, request: FormatRequest) -> Any:
        return openai_body(request)

    def parse_response(self, data: Any, request: FormatRequest) -> ParsedOutput:
        return parse_openai(self, data, request)

    def parse_stream_event(self, data: Any, request: FormatRequest) -> ParsedOutput | None:
        return parse_openai_chunk(self, data, request)
