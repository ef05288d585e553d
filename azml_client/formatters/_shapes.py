"""Pure helpers that read every answer shape the Azure ML catalog containers have used.

The catalog changed its formats four times (see ``wire-formats.md`` §2.1), and a client cannot
tell the container generation from the URL, so the readers accept all recorded shapes:

* G1/G2 records ``[{"0": "text"}, ...]`` (also ``[{"0": "a", "1": "b"}]``);
* G3 MLflow lists ``["text", ...]``;
* G2 Phi-2 / G4 FMS objects ``{"output": ["text"] | "text", "finish_reason", "usage", ...}``;
* Hugging Face pipeline / TGI ``[{"generated_text": ...}]``, ``{"generated_text": ...}`` and
  ``[{"summary_text": ...}]``; the nested ``[{"0": {"generated_text": ...}}]``;
* the FMS container's HTTP 200 carrying an engine error ``{"output": null, "error": {...}}``
  and its empty ``{}`` (content-safety block or exception).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._exceptions import EmptyResponseError, reported_error
from ._base import ContentFormatterBase, FormatRequest, ParsedOutput

_TEXT_KEYS = ("generated_text", "summary_text", "translation_text", "output", "text")


def _first_text(value: Any) -> str | None:
    """The first generated string inside one record, or None when there is none."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return _first_text(value[0]) if value else None
    if isinstance(value, Mapping):
        if "0" in value:
            return _first_text(value["0"])
        for key in _TEXT_KEYS:
            if key in value:
                return _first_text(value[key])
    return None


def raise_embedded_error(data: Mapping[str, Any]) -> None:
    """Raise the status error that an HTTP 200 body reports, if it reports one.

    The FMS (vLLM) container answers ``/score`` with HTTP 200 and
    ``{"output": null, "error": {"status_code": 503, "body": ...}}`` when the engine failed.
    """
    error = data.get("error")
    if error is None or data.get("output") is not None:
        return
    raise reported_error(error, context="the model reported an error inside an HTTP 200 answer")


def _fms_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    usage = data.get("usage")
    model = data.get("model")
    ident = data.get("id")
    finish = data.get("finish_reason")
    return {
        "finish_reason": finish if isinstance(finish, str) else None,
        "usage": usage if isinstance(usage, Mapping) else None,
        "model": model if isinstance(model, str) else None,
        "id": ident if isinstance(ident, str) else None,
    }


_TGI_FINISH = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}


def tgi_finish_reason(reason: Any) -> Any:
    """TGI's finish reasons in OpenAI's words (``eos_token`` and ``stop_sequence`` are ``stop``)."""
    return _TGI_FINISH.get(str(reason), reason)


def parse_generation(
    formatter: ContentFormatterBase, data: Any, request: FormatRequest
) -> ParsedOutput:
    """Read a text-generation (or summarization) answer of any recorded dedicated shape."""
    if isinstance(data, Mapping):
        if not data:
            raise_empty(formatter, request)
        raise_embedded_error(data)
        if "output" in data or "generated_text" in data:
            text = _first_text(data)
            if text is not None:
                fields = _fms_fields(data)
                details = data.get("details")
                if isinstance(details, Mapping) and fields["finish_reason"] is None:
                    reason = details.get("finish_reason")
                    fields["finish_reason"] = tgi_finish_reason(reason)
                return ParsedOutput(text=text, **fields)
    elif isinstance(data, list):
        if not data:
            raise_empty(formatter, request)
        text = _first_text(data[0])
        if text is not None:
            return ParsedOutput(text=text)
    raise formatter.format_error(
        'expected one of [{"0": text}], [text], {"output": ...} or [{"generated_text": text}]',
        data,
        request,
    )


def parse_chat_output(
    formatter: ContentFormatterBase, data: Any, request: FormatRequest
) -> ParsedOutput:
    """Read a dedicated chat answer: ``{"output": "..."}`` plus the FMS container's extras."""
    if isinstance(data, Mapping) and data:
        raise_embedded_error(data)
        message = data.get("message")
        output = data.get("output")
        if isinstance(message, Mapping) and output is None:
            output = message.get("content")
        if isinstance(output, str) or (output is None and isinstance(message, Mapping)):
            tool_calls = data.get("tool_calls")
            if tool_calls is None and isinstance(message, Mapping):
                tool_calls = message.get("tool_calls")
            return ParsedOutput(
                text=output or "",
                message=message if isinstance(message, Mapping) else None,
                tool_calls=tool_calls if isinstance(tool_calls, list) else None,
                **_fms_fields(data),
            )
    # Some chat deployments answer in the text-generation shapes.
    return parse_generation(formatter, data, request)


def raise_empty(formatter: ContentFormatterBase, request: FormatRequest) -> None:
    """Raise :class:`EmptyResponseError` for a 200 answer with nothing in it."""
    raise EmptyResponseError(
        "the endpoint answered HTTP 200 with an empty body: a content-safety filter blocked "
        "the input or the scoring script failed (check the deployment logs)",
        formatter=formatter.name,
        api_type=str(request.api_type),
        body="{}",
    )
