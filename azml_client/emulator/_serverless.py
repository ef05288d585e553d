"""OpenAI-style serverless routes (``/v1/chat/completions``, ``/completions``, ``/info``...).

Bodies follow wire-formats.md section 3: the Azure AI model-inference schemas for requests and
answers, the ``extra-parameters`` rules of the foundation-model-serve container (3.4), and SSE
streams of ``data: {json}`` chunks ending with ``data: [DONE]`` (3.6).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal

import anyio

from azml_client.emulator._config import EXTRA_PARAMETERS_OPTIONS
from azml_client.emulator._generate import (
    Generation,
    count_tokens,
    flatten_messages,
    generate,
    max_tokens_from,
    stop_from,
)
from azml_client.emulator._http import (
    Request,
    Response,
    StreamCut,
    StreamResponse,
    json_response,
)

__all__ = ["ServerlessContext", "complete", "info"]

Kind = Literal["chat", "completions"]

_COMMON = frozenset(
    {"model", "frequency_penalty", "presence_penalty", "max_tokens", "seed", "stop", "stream",
     "temperature", "top_p", "stream_options"}
)  # fmt: skip
#: Known request fields per route ([MI-CHAT] / [MI-COMPL], wire-formats.md 3.5), plus
#: ``stream_options`` (OpenAI's, needed for the final usage chunk). Anything else is "extra".
KNOWN_FIELDS: dict[Kind, frozenset[str]] = {
    "chat": _COMMON | {"messages", "response_format", "tool_choice", "tools"},
    "completions": _COMMON | {"prompt"},
}
_MAX_KEYS = ("max_tokens", "max_new_tokens", "max_gen_len")


@dataclass(frozen=True)
class ServerlessContext:
    """What the serverless handlers need from the app."""

    model: str
    seed: int
    default_max_tokens: int
    extra_parameters_default: str
    token_latency: float
    cut_stream: Callable[[], bool]


class _Rejected(Exception):  # carries a ready 400 answer
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.response = error_response(400, message)


def error_response(status: int, message: str) -> Response:
    """FMS / model-inference validation error: ``{"error": {"code", "message", "status"}}``."""
    code = HTTPStatus(status).phrase
    return json_response(status, {"error": {"code": code, "message": message, "status": status}})


def info(model: str) -> Response:
    """``GET /info`` ([MI-INFO])."""
    body = {
        "model_name": model,
        "model_type": "chat-completions",
        "model_provider_name": "azml-emulator",
    }
    return json_response(200, body)


def _flag(value: Any) -> bool:
    # Microsoft's notebooks send "stream": "True" (a string); accept it the way pydantic would.
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes", "on", "t", "y"}
    return value is True or (isinstance(value, int) and value == 1)


def _validated(kind: Kind, request: Request, default_mode: str) -> dict[str, Any]:
    try:
        body = json.loads(request.body)
    except ValueError as exc:
        raise _Rejected(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _Rejected("Request body must be a JSON object.")
    mode = request.headers.get("extra-parameters", default_mode)
    if mode not in EXTRA_PARAMETERS_OPTIONS:  # wording of FMS request_adapter.py
        options = list(EXTRA_PARAMETERS_OPTIONS)
        raise _Rejected(
            f"Unexpected EXTRA_PARAMETERS option {mode}, expected options are {options}"
        )
    required = "messages" if kind == "chat" else "prompt"
    if required not in body:
        # e.g. {"prompt": ...} sent to a chat route: 400 (langchain-ai/langchain#26680).
        raise _Rejected(f"'{required}' is a required property of a {kind} request.")
    extras = sorted(k for k in body if k not in KNOWN_FIELDS[kind])
    if extras and mode == "error":
        raise _Rejected(
            f"Extra parameters {extras} are not allowed when extra-parameters is set to 'error'."
        )
    if mode == "drop":
        body = {k: v for k, v in body.items() if k in KNOWN_FIELDS[kind]}
    return body


def _generate(kind: Kind, body: dict[str, Any], ctx: ServerlessContext) -> Generation:
    try:
        budget = max_tokens_from(body, ctx.default_max_tokens, _MAX_KEYS)
        stop = stop_from(body)
        if kind == "chat":
            prompt, used = flatten_messages(body["messages"])
        else:
            prompt = body["prompt"]
            if not isinstance(prompt, str):
                raise ValueError("prompt must be a string")
            used = count_tokens(prompt)
    except ValueError as exc:
        raise _Rejected(str(exc)) from None
    return generate(prompt, seed=ctx.seed, max_tokens=budget, stop=stop, prompt_tokens=used)


def _choice(kind: Kind, text: str | None, finish: str | None, *, role: bool = False) -> Any:
    if kind == "completions":
        return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
    delta: dict[str, str] = {"role": "assistant"} if role else {}
    if text is not None:
        delta["content"] = text
    return {"index": 0, "delta": delta, "finish_reason": finish}


def _chunks(kind: Kind, gen: Generation, head: dict[str, Any], usage: bool) -> list[bytes]:
    choices = [_choice(kind, p, None) for p in gen.pieces]
    if kind == "chat":
        choices.insert(0, _choice(kind, "", None, role=True))
    choices.append(_choice(kind, None, gen.finish_reason))
    events = [{**head, "choices": [c]} for c in choices]
    if usage:
        events.append({**head, "choices": [], "usage": gen.usage()})
    return [f"data: {json.dumps(e, separators=(',', ':'))}\n\n".encode() for e in events]


async def _stream(chunks: list[bytes], delay: float, cut_at: int | None) -> AsyncIterator[bytes]:
    for index, chunk in enumerate(chunks):
        if index == cut_at:
            break
        if index and delay:
            await anyio.sleep(delay)
        yield chunk
    if cut_at is not None:
        raise StreamCut("stream_cut fault")
    yield b"data: [DONE]\n\n"


async def complete(
    kind: Kind, request: Request, ctx: ServerlessContext
) -> Response | StreamResponse:
    """Answer a chat or text completion request, streamed when ``stream`` is truthy."""
    try:
        body = _validated(kind, request, ctx.extra_parameters_default)
        gen = _generate(kind, body, ctx)
    except _Rejected as rejected:
        return rejected.response
    prefix, obj = ("chatcmpl", "chat.completion") if kind == "chat" else ("cmpl", "text_completion")
    head = {"id": f"{prefix}-{uuid.uuid4().hex}", "object": obj, "created": int(time.time()),
            "model": ctx.model}  # fmt: skip
    if _flag(body.get("stream", False)):
        options = body.get("stream_options")
        usage = isinstance(options, dict) and options.get("include_usage") is True
        chunk_head = {**head, "object": f"{obj}.chunk"} if kind == "chat" else head
        chunks = _chunks(kind, gen, chunk_head, usage)
        cut_at = max(1, len(chunks) // 2) if ctx.cut_stream() else None
        headers = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
        return StreamResponse(200, _stream(chunks, ctx.token_latency, cut_at), headers)
    if ctx.token_latency:
        await anyio.sleep(ctx.token_latency * gen.completion_tokens)
    if kind == "chat":
        message = {"role": "assistant", "content": gen.text}
        choice = {"index": 0, "message": message, "finish_reason": gen.finish_reason}
    else:
        choice = {
            "index": 0,
            "text": gen.text,
            "logprobs": None,
            "finish_reason": gen.finish_reason,
        }
    return json_response(200, {**head, "choices": [choice], "usage": gen.usage()})
