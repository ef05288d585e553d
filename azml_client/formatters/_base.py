"""The formatter contract: request objects in, parsed answers out, no I/O.

A formatter turns a prompt or a conversation into the body a model family expects and turns the
family's answer back into text. Two styles are supported:

* the current style overrides :meth:`ContentFormatterBase.build_request` (returns a JSON-able
  object; the client encodes it once) and :meth:`ContentFormatterBase.parse_response` (receives
  the decoded JSON);
* the seed style, as LangChain's ``ContentFormatterBase`` subclasses are written, overrides
  ``format_request_payload(prompt, model_kwargs)`` returning ``bytes`` and
  ``format_response_payload(output)`` returning ``str``. Such a subclass works unchanged: the
  client calls those methods through :func:`encode_request` / :func:`decode_response`.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .. import _json
from .._constants import ApiType
from .._exceptions import AzmlError, ConfigurationError, ResponseFormatError

__all__ = [
    "ContentFormatterBase",
    "FormatRequest",
    "ParsedOutput",
    "decode_response",
    "encode_request",
]


@dataclass(frozen=True)
class FormatRequest:
    """What the caller asked for, as a formatter sees it.

    Exactly one of ``prompt`` (a completion) and ``messages`` (a chat) is set. ``params`` holds
    the model parameters of this call: the client's ``model_kwargs`` overlaid with the call's own
    keyword arguments (a fresh mapping each call, so formatters may not leak state between calls).
    """

    api_type: ApiType = ApiType.DEDICATED
    prompt: str | None = None
    messages: Sequence[Mapping[str, Any]] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    stream: bool = False

    @property
    def is_chat(self) -> bool:
        return self.messages is not None


@dataclass
class ParsedOutput:
    """What a formatter found in an answer."""

    text: str
    finish_reason: str | None = None
    usage: Mapping[str, Any] | None = None
    model: str | None = None
    id: str | None = None
    message: Mapping[str, Any] | None = None
    tool_calls: list[Any] | None = None


class ContentFormatterBase:
    """Base class of every formatter, built-in or the user's own.

    Subclass it and override :meth:`build_request` and :meth:`parse_response` (or, seed style,
    ``format_request_payload`` and ``format_response_payload``), then pass an instance as
    ``formatter=`` or register it with :func:`azml_client.register_formatter`.
    """

    #: ``Content-Type`` of the request body.
    content_type: ClassVar[str] = "application/json"
    #: ``Accept`` header of the request.
    accepts: ClassVar[str] = "application/json"
    #: Endpoint kinds this formatter can talk to.
    supported_api_types: ClassVar[tuple[ApiType, ...]] = (ApiType.DEDICATED, ApiType.SERVERLESS)
    #: Whether :meth:`EndpointClient.complete` and :meth:`EndpointClient.chat` are supported.
    supports_completion: ClassVar[bool] = True
    supports_chat: ClassVar[bool] = False
    #: Whether ``tools=`` / ``tool_choice=`` reach the model (sent in the body), and whether
    #: message content may hold image parts. Formatters that do not say so get a clear error
    #: before anything is sent (text-only parts are joined into one string for them).
    supports_tools: ClassVar[bool] = False
    supports_images: ClassVar[bool] = False
    #: Endpoint kinds on which the family answers ``stream: true`` with Server-Sent Events.
    stream_api_types: ClassVar[tuple[ApiType, ...]] = ()
    #: The data line that ends a stream (``None``: the chunk with a finish reason ends it).
    stream_done_marker: ClassVar[str | None] = "[DONE]"

    @property
    def name(self) -> str:
        """A short name for messages: the registry key of built-ins, else the class name."""
        return type(self).__name__

    def options(self) -> dict[str, Any]:
        """Constructor arguments that ``save()`` must keep to rebuild this formatter."""
        return {}

    # -- current style ---------------------------------------------------------------------

    def build_request(self, request: FormatRequest) -> Any:
        """Return the request body as a JSON-able object (or ``bytes`` sent as they are)."""
        raise NotImplementedError(
            f"{type(self).__name__} must override build_request() or format_request_payload()"
        )

    def parse_response(self, data: Any, request: FormatRequest) -> ParsedOutput:
        """Read the decoded JSON answer; raise :class:`ResponseFormatError` when it does not fit."""
        raise NotImplementedError(
            f"{type(self).__name__} must override parse_response() or format_response_payload()"
        )

    def parse_stream_event(self, data: Any, request: FormatRequest) -> ParsedOutput | None:
        """Read one decoded SSE ``data`` object of a stream: the text delta it carries.

        Return ``None`` for events that carry nothing for the caller (keep-alives, role-only
        deltas are fine to return with empty text).
        """
        raise NotImplementedError(f"{type(self).__name__} does not stream")

    # -- seed style (kept working unchanged) -------------------------------------------------

    def format_request_payload(
        self, prompt: str, model_kwargs: Mapping[str, Any], api_type: ApiType = ApiType.DEDICATED
    ) -> bytes:
        """Seed API: the encoded request body for ``prompt``."""
        body = self.build_request(
            FormatRequest(api_type=ApiType(api_type), prompt=prompt, params=dict(model_kwargs))
        )
        return body if isinstance(body, bytes) else dump_json(body)

    def format_response_payload(self, output: bytes, api_type: ApiType = ApiType.DEDICATED) -> str:
        """Seed API: the generated text found in the raw answer ``output``."""
        request = FormatRequest(api_type=ApiType(api_type), prompt="")
        return self.parse_response(load_json(output, self, request), request).text

    @staticmethod
    def escape_special_characters(prompt: str) -> str:
        """Seed API, kept for old subclasses. Do not use it for new code.

        The client JSON-encodes bodies once, which already escapes quotes and control
        characters; escaping first (as the seed did) sends literal backslashes to the model.
        """
        for old, new in (
            ("\\", "\\\\"),
            ('"', '\\"'),
            ("\b", "\\b"),
            ("\f", "\\f"),
            ("\n", "\\n"),
            ("\r", "\\r"),
            ("\t", "\\t"),
        ):
            prompt = prompt.replace(old, new)
        return prompt

    # -- helpers for subclasses --------------------------------------------------------------

    def format_error(self, message: str, data: Any, request: FormatRequest) -> ResponseFormatError:
        """A :class:`ResponseFormatError` naming this formatter, the api type and the body."""
        body = data if isinstance(data, str) else _json_excerpt(data)
        return ResponseFormatError(
            message, formatter=self.name, api_type=str(request.api_type), body=body
        )


_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def dump_json(body: Any) -> bytes:
    """Encode once: compact, UTF-8, non-ASCII kept as is (no double escaping)."""
    text = _ENCODE(body)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: JSON can carry it escaped, UTF-8 cannot
        return json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def load_json(raw: bytes | str, formatter: ContentFormatterBase, request: FormatRequest) -> Any:
    try:
        return _json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        raise formatter.format_error(
            f"the answer is not valid JSON ({exc})", text, request
        ) from None


def _json_excerpt(data: Any, limit: int = 300) -> str:
    try:
        text = json.dumps(data, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(data)
    return text[:limit]


def _overrides(formatter: ContentFormatterBase, method: str) -> bool:
    return getattr(type(formatter), method) is not getattr(ContentFormatterBase, method)


def _positional_arity(func: Any, *, unknown: int = 2) -> int:
    """How many positional arguments a bound method takes (seed subclasses use 2 or 3;
    ``unknown`` when its signature cannot be read)."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return unknown
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 3
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def check_formatter(formatter: ContentFormatterBase) -> None:
    """Refuse, at construction, a formatter that cannot build or read a body."""
    builds = _overrides(formatter, "build_request") or _overrides(
        formatter, "format_request_payload"
    )
    parses = _overrides(formatter, "parse_response") or _overrides(
        formatter, "format_response_payload"
    )
    if not (builds and parses):
        raise ConfigurationError(
            f"formatter {formatter.name} must override build_request() and parse_response() "
            "(or, seed style, format_request_payload() and format_response_payload())"
        )


def encode_request(formatter: ContentFormatterBase, request: FormatRequest) -> bytes:
    """The request body as bytes, whichever style the formatter is written in."""
    if _overrides(formatter, "build_request"):
        body = formatter.build_request(request)
        return body if isinstance(body, bytes) else dump_json(body)
    if request.is_chat:
        raise ConfigurationError(
            f"formatter {formatter.name} only implements format_request_payload(prompt, ...): "
            "use complete(), or override build_request() to support chat"
        )
    method = formatter.format_request_payload
    args: tuple[Any, ...] = (request.prompt or "", dict(request.params))
    if _positional_arity(method) >= 3:
        args = (*args, request.api_type)
    body = method(*args)
    if isinstance(body, str):
        return body.encode("utf-8")
    if not isinstance(body, bytes | bytearray):
        raise ConfigurationError(
            f"{formatter.name}.format_request_payload() returned {type(body).__name__}; "
            "it must return bytes (or str)"
        )
    return bytes(body)


def decode_response(
    formatter: ContentFormatterBase, raw: bytes, request: FormatRequest
) -> tuple[ParsedOutput, Any]:
    """Parse an answer: ``(parsed output, decoded JSON or None)``.

    Anything a formatter raises that is not one of ours (``KeyError``, ``IndexError``, ...)
    becomes a :class:`ResponseFormatError` naming the formatter, the api type and the body.
    """
    data: Any = None
    try:
        if _overrides(formatter, "parse_response"):
            data = load_json(raw, formatter, request)
            return formatter.parse_response(data, request), data
        method = formatter.format_response_payload
        args: tuple[Any, ...] = (raw,)
        if _positional_arity(method) >= 2:
            args = (raw, request.api_type)
        text = method(*args)
        if not isinstance(text, str):
            raise formatter.format_error(
                f"format_response_payload() returned {type(text).__name__}, expected str",
                raw.decode("utf-8", "replace"),
                request,
            )
        try:
            data = _json.loads(raw)
        except ValueError:
            data = None
        return ParsedOutput(text=text), data
    except AzmlError:
        raise
    except Exception as exc:
        body = raw.decode("utf-8", "replace")
        raise formatter.format_error(
            f"the answer does not match this formatter ({type(exc).__name__}: {exc}); "
            "is this the right formatter for the deployment?",
            body,
            request,
        ) from exc
