"""Tools, structured output and message parts: what a chat call sends and how its answer is read.

Pure functions, no I/O: ``tools=`` entries and ``response_format=`` given as pydantic model
classes become the OpenAI wire dicts; a ``response_format`` answer is decoded (and validated
against the model class when one was given); message content given as a list of parts is checked
against what the formatter can carry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from . import _json
from ._exceptions import ConfigurationError, StructuredOutputError
from ._types import Usage

__all__ = [
    "Structured",
    "fit_messages",
    "prepare_chat_params",
    "strict_schema",
    "tool_from_model",
]


def _is_model_class(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def strict_schema(schema: Any) -> Any:
    """A copy of a JSON schema that OpenAI's strict mode accepts: every object closed
    (``additionalProperties: false``) with all its properties required."""
    if isinstance(schema, list):
        return [strict_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict_schema(value) for key, value in schema.items()}
    if out.get("type") == "object" and isinstance(out.get("properties"), dict):
        out["additionalProperties"] = False
        out["required"] = list(out["properties"])
    return out


def tool_from_model(model: type[BaseModel]) -> dict[str, Any]:
    """``{"type": "function", "function": {...}}`` for a pydantic model of the arguments."""
    function: dict[str, Any] = {"name": model.__name__, "parameters": model.model_json_schema()}
    if model.__doc__:
        function["description"] = model.__doc__.strip()
    return {"type": "function", "function": function}


def _tools(tools: Any) -> list[Any]:
    if isinstance(tools, Mapping) or not isinstance(tools, Sequence) or isinstance(tools, str):
        raise ConfigurationError(
            "tools must be a list of tool definitions ({'type': 'function', 'function': "
            "{'name': ..., 'parameters': {...}}}) or pydantic model classes"
        )
    out = []
    for i, tool in enumerate(tools):
        if _is_model_class(tool):
            out.append(tool_from_model(tool))
        elif isinstance(tool, Mapping):
            out.append(dict(tool))
        else:
            raise ConfigurationError(
                f"tools[{i}] is a {type(tool).__name__}: give a tool dict in the OpenAI shape "
                "or a pydantic model class of the function's arguments"
            )
    return out


@dataclass(frozen=True)
class Structured:
    """What a ``response_format`` answer is decoded into: any JSON, or ``model``'s instance."""

    model: type[BaseModel] | None = None

    def parse(
        self,
        text: str,
        finish_reason: str | None,
        request_id: str | None,
        *,
        usage: Usage | None = None,
    ) -> Any:
        """The decoded answer, or a :class:`StructuredOutputError` saying why it is not one
        (with the answer's ``usage``, when given: the tokens were spent all the same)."""
        cut = " (the answer was cut off: finish_reason 'length'; raise max_tokens)"
        hint = cut if finish_reason == "length" else ""
        try:
            data = _json.loads(text)
        except ValueError as exc:
            raise StructuredOutputError(
                f"the answer to a response_format request is not JSON ({exc}){hint}",
                text=text,
                finish_reason=finish_reason,
                request_id=request_id,
                usage=usage,
            ) from None
        if self.model is None:
            return data
        try:
            return self.model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'answer'}: {err['msg']}"
                for err in exc.errors()[:5]
            )
            raise StructuredOutputError(
                f"the answer does not fit {self.model.__name__}: {problems}{hint}",
                text=text,
                finish_reason=finish_reason,
                request_id=request_id,
                usage=usage,
            ) from None


def _response_format(value: Any) -> tuple[Any, Structured | None]:
    if _is_model_class(value):
        schema = {
            "name": value.__name__,
            "schema": strict_schema(value.model_json_schema()),
            "strict": True,
        }
        return {"type": "json_schema", "json_schema": schema}, Structured(value)
    if not isinstance(value, Mapping) or not isinstance(value.get("type"), str):
        raise ConfigurationError(
            "response_format must be {'type': 'json_object'}, {'type': 'json_schema', "
            "'json_schema': {'name': ..., 'schema': {...}}}, {'type': 'text'} or a pydantic "
            f"model class; got {value!r:.80}"
        )
    kind = value["type"]
    if kind in ("json_object", "json_schema"):
        return dict(value), Structured()
    return dict(value), None


def prepare_chat_params(params: dict[str, Any]) -> tuple[dict[str, Any], Structured | None]:
    """``params`` with ``tools`` and ``response_format`` in wire form, and how to read the answer.

    Returns the same dict when neither is set (the common case costs two lookups).
    """
    tools = params.get("tools")
    response_format = params.get("response_format")
    if tools is None and response_format is None:
        return params, None
    out = dict(params)
    structured = None
    if tools is not None:
        out["tools"] = _tools(tools)
    if response_format is not None:
        out["response_format"], structured = _response_format(response_format)
    return out, structured


def _text_of_parts(parts: Sequence[Any], index: int, formatter: str) -> str:
    texts = []
    for part in parts:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind != "text" or not isinstance(part.get("text"), str):
            raise ConfigurationError(
                f"message {index} has a {kind or type(part).__name__!r} content part, which "
                f"formatter {formatter!r} cannot send: images need an OpenAI-style endpoint "
                "(serverless, models, openai_v1) or the 'vllm' formatter"
            )
        texts.append(part["text"])
    return "\n".join(texts)


def fit_messages(
    messages: list[dict[str, Any]], *, images: bool, formatter: str
) -> list[dict[str, Any]]:
    """Messages whose content is a list of parts, made fit for a formatter.

    Where parts can be sent (``images``), they go as they are. Elsewhere text-only parts are
    joined into one string and any other part is refused before sending.
    """
    if images:
        return messages
    out = messages
    for i, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, list | tuple):
            if out is messages:
                out = list(messages)
            out[i] = {**message, "content": _text_of_parts(content, i, formatter)}
    return out
