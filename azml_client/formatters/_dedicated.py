"""Formatters of the Azure ML model catalog families on dedicated ``/score`` endpoints.

Request schemas of the catalog containers (``wire-formats.md`` §2.1), chosen with ``schema=``:

* ``"v1"``: ``{"inputs": {"input_string": [prompt]}, "parameters": {...}}`` (mid-2023 containers);
* ``"v2"``: ``{"input_data": {"input_string": [prompt], "parameters": {...}}}`` (2023-24
  containers and the current vLLM-based one; chat always uses this shape with the message list);
* ``"v3"``: ``{"input_data": [prompt], "params": {...}}`` (MLflow ``transformers`` flavour, the
  current model cards of GPT-2, Dolly and BART).

Every family reads every recorded answer shape (see :mod:`._shapes`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from .._constants import ApiType
from .._exceptions import ConfigurationError, status_error
from ._base import ContentFormatterBase, FormatRequest, ParsedOutput
from ._openai import openai_body, parse_openai, parse_openai_chunk, rename_param
from ._shapes import parse_chat_output, parse_generation, tgi_finish_reason

__all__ = [
    "BartContentFormatter",
    "CustomOpenAIChatContentFormatter",
    "CustomOpenAIContentFormatter",
    "DollyContentFormatter",
    "GPT2ContentFormatter",
    "HFContentFormatter",
    "Schema",
    "TGIContentFormatter",
    "VLLMContentFormatter",
]

Schema = Literal["v1", "v2", "v3"]
_SCHEMAS: tuple[str, ...] = ("v1", "v2", "v3")


def hf_params(request: FormatRequest) -> dict[str, Any]:
    """Parameters with Hugging Face names (``max_tokens`` is sent as ``max_new_tokens``)."""
    return rename_param(request.params, "max_tokens", "max_new_tokens")


def text_body(schema: str, inputs: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The ``/score`` body for ``inputs`` (a list of prompts or one message list)."""
    if schema == "v1":
        body: dict[str, Any] = {"inputs": {"input_string": inputs}}
        if params:
            body["parameters"] = params
        return body
    if schema == "v2":
        data: dict[str, Any] = {"input_string": inputs}
        if params:
            data["parameters"] = params
        return {"input_data": data}
    body = {"input_data": inputs}
    if params:
        body["params"] = params
    return body


def as_messages(request: FormatRequest) -> list[dict[str, Any]]:
    """The conversation of a request; a plain prompt becomes one user message."""
    if request.messages is not None:
        return [dict(m) for m in request.messages]
    return [{"role": "user", "content": request.prompt}]


class _Family(ContentFormatterBase):
    """A built-in family: a registry key and, for dedicated text, a request schema."""

    family: ClassVar[str] = ""
    default_schema: ClassVar[str] = "v2"
    supported_api_types: ClassVar[tuple[ApiType, ...]] = (ApiType.DEDICATED,)

    def __init__(self, *, schema: Schema | None = None) -> None:
        chosen = schema or self.default_schema
        if chosen not in _SCHEMAS:
            raise ConfigurationError(
                f"unknown schema {chosen!r} for formatter {self.name!r}: use one of "
                f"{', '.join(_SCHEMAS)} (v1 = inputs/input_string, v2 = input_data/input_string, "
                "v3 = input_data list + params)"
            )
        self.schema = chosen

    @property
    def name(self) -> str:
        return self.family or type(self).__name__

    def options(self) -> dict[str, Any]:
        return {} if self.schema == self.default_schema else {"schema": self.schema}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(schema={self.schema!r})"

    def build_request(self, request: FormatRequest) -> Any:
        return text_body(self.schema, [request.prompt], hf_params(request))

    def parse_response(self, data: Any, request: FormatRequest) -> ParsedOutput:
        return parse_generation(self, data, request)


class GPT2ContentFormatter(_Family):
    """GPT-2 / distilgpt2 text generation (default ``v3``, the current model card)."""

    family = "gpt2"
    default_schema = "v3"


class DollyContentFormatter(_Family):
    """Dolly v2 text generation (default ``v3``, the current model card)."""

    family = "dolly"
    default_schema = "v3"


class HFContentFormatter(_Family):
    """Hugging Face text generation in the Azure ML container (default ``v1``)."""

    family = "hf"
    default_schema = "v1"


class BartContentFormatter(_Family):
    """Summarization (BART-large-CNN and the like; default ``v3``)."""

    family = "bart"
    default_schema = "v3"


class CustomOpenAIContentFormatter(_Family):
    """Llama / Mistral / Phi text generation: ``v2`` on ``/score``, OpenAI body on serverless."""

    family = "llama"
    default_schema = "v2"
    supported_api_types = (ApiType.DEDICATED, ApiType.SERVERLESS)
    stream_api_types = (ApiType.SERVERLESS,)  # OpenAI chunks; /score does not stream

    def parse_stream_event(self, data: Any, request: FormatRequest) -> ParsedOutput | None:
        return parse_openai_chunk(self, data, request)

    def build_request(self, request: FormatRequest) -> Any:
        if request.api_type is ApiType.SERVERLESS:
            return openai_body(request)
        return super().build_request(request)

    def parse_response(self, data: Any, request: FormatRequest) -> ParsedOutput:
        if request.api_type is ApiType.SERVERLESS:
            return parse_openai(self, data, request)
        return parse_generation(self, data, request)


class CustomOpenAIChatContentFormatter(_Family):
    """Chat on dedicated deployments (Llama-chat, Mistral-Instruct, Phi-3, ...).

    Sends ``{"input_data": {"input_string": [messages], "parameters": {...}}}`` and reads
    ``{"output": ...}``; on serverless it speaks the OpenAI chat body.
    """

    family = "llama-chat"
    default_schema = "v2"
    supported_api_types = (ApiType.DEDICATED, ApiType.SERVERLESS)
    supports_chat = True
    stream_api_types = (ApiType.SERVERLESS,)  # OpenAI chunks; /score does not stream

    def parse_stream_event(self, data: Any, request: FormatRequest) -> ParsedOutput | None:
        return parse_openai_chunk(self, data, request)

    def build_request(self, request: FormatRequest) -> Any:
        if request.api_type is ApiType.SERVERLESS:
            return openai_body(
                FormatRequest(
                    api_type=request.api_type,
                    messages=as_messages(request),
                    params=request.params,
                    stream=request.stream,
                )
            )
        return text_body("v2", as_messages(request), hf_params(request))

    def parse_response(self, data: Any, request: FormatRequest) -> ParsedOutput:
        if request.api_type is ApiType.SERVERLESS:
            return parse_openai(self, data, request)
        return parse_chat_output(self, data, request)


class MistralChatContentFormatter(CustomOpenAIChatContentFormatter):
    """Chat for Mistral-Instruct models on ``/score``: their chat template takes no system
    prompt (it demands alternating user/assistant turns), so a leading system message is
    folded into the first user turn (``system + "\n\n" + user``), or becomes the user turn
    when it is alone. On serverless, models and v1 routes the OpenAI wire format applies, as
    for every family, and the system message is sent as it is (those APIs take one)."""

    family = "mistral-chat"

    def build_request(self, request: FormatRequest) -> Any:
        if request.messages:
            request = dataclasses.replace(request, messages=fold_system(request.messages))
        return super().build_request(request)


def fold_system(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages with a leading system message merged into the next one (or turned into a user
    message when it is alone)."""
    out = [dict(m) for m in messages]
    if not out or out[0].get("role") != "system":
        return out
    system = out.pop(0)
    if not out:
        return [{**system, "role": "user"}]
    first, prefix = out[0], system.get("content") or ""
    content = first.get("content")
    if isinstance(content, list):
        first["content"] = [{"type": "text", "text": str(prefix)}, *content]
    else:
        first["content"] = f"{prefix}\n\n{content or ''}"
    return out


class VLLMContentFormatter(_Family):
    """The current vLLM-based "foundation model serve" container on ``/score``.

    Chat goes as ``v2`` with the message list, text as ``v3``. The container answers HTTP 200
    with ``{"output": null, "error": {...}}`` when the engine fails: that is raised as the
    status error it reports. ``{}`` (blocked input) raises :class:`EmptyResponseError`.
    """

    family = "vllm"
    default_schema = "v3"
    supports_chat = True
    # The container hands parameters and messages to vLLM's chat API: tools and image parts
    # reach the model, and answers carry ``tool_calls`` (wire-formats.md 2.3, [FMS]).
    supports_tools = True
    supports_images = True

    def build_request(self, request: FormatRequest) -> Any:
        if request.is_chat:
            return text_body("v2", as_messages(request), hf_params(request))
        return super().build_request(request)

    def parse_response(self, data: Any, request: FormatRequest) -> ParsedOutput:
        if request.is_chat:
            return parse_chat_output(self, data, request)
        return parse_generation(self, data, request)


class TGIContentFormatter(_Family):
    """Hugging Face Hub models served by text-generation-inference (TGI).

    TGI wants ``inputs`` as one string (a list gives 422) and answers
    ``[{"generated_text": ...}]`` or ``{"generated_text": ..., "details": {...}}``.
    """

    family = "tgi"
    default_schema = "v1"
    stream_api_types = (ApiType.DEDICATED,)
    stream_done_marker = None  # TGI ends with the event that carries ``details``

    def parse_stream_event(self, data: Any, request: FormatRequest) -> ParsedOutput | None:
        """``{"token": {"text", "special"}, "generated_text": ..., "details": ...}``."""
        if not isinstance(data, dict):
            raise self.format_error("a TGI stream event is not a JSON object", data, request)
        if "error" in data:
            raise status_error(
                422 if data.get("error_type") == "validation" else 500,
                body=str(data.get("error"))[:2048],
                message=f"the model reported: {str(data.get('error'))[:200]}",
            )
        token = data.get("token")
        if not isinstance(token, dict):
            raise self.format_error("a TGI stream event has no 'token'", data, request)
        text = "" if token.get("special") else token.get("text", "")
        details = data.get("details")
        finish = None
        if isinstance(details, dict) and details.get("finish_reason") is not None:
            finish = str(tgi_finish_reason(details["finish_reason"]))
        return ParsedOutput(text=text if isinstance(text, str) else "", finish_reason=finish)

    def build_request(self, request: FormatRequest) -> Any:
        body: dict[str, Any] = {"inputs": request.prompt}
        params = hf_params(request)
        if params:
            body["parameters"] = params
        if request.stream:
            body["stream"] = True
        return body
