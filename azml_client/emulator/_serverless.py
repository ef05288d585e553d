"""OpenAI-style routes of the serverless, ``/models`` and ``/openai/v1`` APIs.

Bodies follow wire-formats.md section 3: the Azure AI model-inference schemas for requests and
answers (3.5), the ``extra-parameters`` rules of the foundation-model-serve container (3.4), and
SSE streams of ``data: {json}`` chunks ending with ``data: [DONE]`` (3.6). What the chat model
says (text, tool calls, JSON) is decided in ``_chat``; embeddings come from ``_embeddings``.

Per API: serverless and ``/models`` check fields against ``KNOWN_FIELDS`` under the
``extra-parameters`` rules and answer 400s in the FMS shape; ``/openai/v1`` has no such header
(the field list is the OpenAI API's, which grows), requires ``model`` and answers in OpenAI's
error shape. The answer's ``model`` is the configured name on serverless (one model per
endpoint, [MI-CHAT] "model ... ignored"), the requested one elsewhere.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import anyio

from azml_client.emulator._chat import ChatReply, answer_chat, chat_deltas, chat_message
from azml_client.emulator._config import EXTRA_PARAMETERS_OPTIONS
from azml_client.emulator._embeddings import embeddings_body
from azml_client.emulator._errors import Api, Rejected
from azml_client.emulator._generate import count_tokens, generate, max_tokens_from, stop_from
from azml_client.emulator._http import Request, Response, StreamCut, StreamResponse, json_response

__all__ = ["KNOWN_FIELDS", "ServerlessContext", "complete", "info", "model_list"]

Kind = Literal["chat", "completions", "embeddings", "image_embeddings"]

_COMMON = frozenset(
    {"model", "frequency_penalty", "presence_penalty", "max_tokens", "seed", "stop", "stream",
     "temperature", "top_p", "stream_options"}
)  # fmt: skip
_EMBEDDING = frozenset({"model", "input", "input_type", "encoding_format", "dimensions"})
#: Known request fields per route ([MI-CHAT] / [MI-COMPL] / [MI-EMB], wire-formats.md 3.5),
#: plus ``stream_options`` (OpenAI's, needed for the final usage chunk). Anything else is "extra".
KNOWN_FIELDS: Final[dict[Kind, frozenset[str]]] = {
    "chat": _COMMON | {"messages", "response_format", "tool_choice", "tools"},
    "completions": _COMMON | {"prompt"},
    "embeddings": _EMBEDDING,
    "image_embeddings": _EMBEDDING,
}
_REQUIRED: Final[dict[Kind, str]] = {
    "chat": "messages",
    "completions": "prompt",
    "embeddings": "input",
    "image_embeddings": "input",
}
#: Token-budget keys per API: the model-inference names plus the HF / Llama-2 ones that
#: ``extra-parameters: pass-through`` lets through (3.4); OpenAI's newer name first on v1.
_MAX_KEYS: Final[dict[Api, tuple[str, ...]]] = {
    "serverless": ("max_tokens", "max_new_tokens", "max_gen_len"),
    "models": ("max_tokens", "max_new_tokens", "max_gen_len"),
    "openai": ("max_completion_tokens", "max_tokens"),
}


@dataclass(frozen=True)
class ServerlessContext:
    """What the serverless handlers need from the app."""

    model: str
    seed: int
    default_max_tokens: int
    extra_parameters_default: str
    token_latency: float
    cut_stream: Callable[[], bool]
    embedding_dimensions: int = 256


def info(model: str) -> Response:
    """``GET /info`` ([MI-INFO])."""
    body = {
        "model_name": model,
        "model_type": "chat-completions",
        "model_provider_name": "azml-emulator",
    }
    return json_response(200, body)


def model_list(model: str) -> Response:
    """``GET /openai/v1/models``: OpenAI's list of model objects, here the one model."""
    entry = {"id": model, "object": "model", "created": 1767225600, "owned_by": "azml-emulator"}
    return json_response(200, {"object": "list", "data": [entry]})


def _flag(value: Any) -> bool:
    # Microsoft's notebooks send "stream": "True" (a string); accept it the way pydantic would.
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes", "on", "t", "y"}
    return value is True or (isinstance(value, int) and value == 1)


def _validated(kind: Kind, api: Api, request: Request, default_mode: str) -> dict[str, Any]:
    try:
        body = json.loads(request.body)
    except ValueError as exc:
        raise Rejected(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Rejected("Request body must be a JSON object.")
    model = body.get("model")
    if api == "openai" and model is None:
        raise Rejected("you must provide a model parameter", param="model")
    if model is not None and (not isinstance(model, str) or not model):
        raise Rejected(f"model must be a non-empty string, got {model!r}.", param="model")
    required = _REQUIRED[kind]
    if required not in body:
        # e.g. {"prompt": ...} sent to a chat route: 400 (langchain-ai/langchain#26680).
        raise Rejected(f"'{required}' is a required property of a {kind} request.", param=required)
    if api == "openai":
        return body
    mode = request.headers.get("extra-parameters", default_mode)
    if mode not in EXTRA_PARAMETERS_OPTIONS:  # wording of FMS request_adapter.py
        options = list(EXTRA_PARAMETERS_OPTIONS)
        raise Rejected(f"Unexpected EXTRA_PARAMETERS option {mode}, expected options are {options}")
    extras = sorted(k for k in body if k not in KNOWN_FIELDS[kind])
    if extras and mode == "error":
        raise Rejected(
            f"Extra parameters {extras} are not allowed when extra-parameters is set to 'error'."
        )
    if mode == "drop":
        body = {k: v for k, v in body.items() if k in KNOWN_FIELDS[kind]}
    return body


def _text_completion(body: dict[str, Any], ctx: ServerlessContext, api: Api) -> ChatReply:
    try:
        budget = max_tokens_from(body, ctx.default_max_tokens, _MAX_KEYS[api])
        stop = stop_from(body)
        prompt = body["prompt"]
        if not isinstance(prompt, str):
            raise ValueError("prompt must be a string")
    except ValueError as exc:
        raise Rejected(str(exc)) from None
    used = count_tokens(prompt)
    return ChatReply(
        generate(prompt, seed=ctx.seed, max_tokens=budget, stop=stop, prompt_tokens=used)
    )


def _chunks(kind: Kind, reply: ChatReply, head: dict[str, Any], usage: bool) -> list[bytes]:
    finish = reply.finish_reason
    choices: list[dict[str, Any]]
    if kind == "chat":
        deltas = chat_deltas(reply)
        choices = [{"index": 0, "delta": d, "finish_reason": None} for d in deltas]
        choices.append({"index": 0, "delta": {}, "finish_reason": finish})
    else:
        texts = [*reply.gen.pieces, ""]
        choices = [{"index": 0, "text": t, "logprobs": None, "finish_reason": None} for t in texts]
        choices[-1]["finish_reason"] = finish
    events = [{**head, "choices": [c]} for c in choices]
    if usage:
        events.append({**head, "choices": [], "usage": reply.gen.usage()})
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
    kind: Kind, api: Api, request: Request, ctx: ServerlessContext
) -> Response | StreamResponse:
    """Answer a chat, text completion or embeddings request; chats and completions stream when
    ``stream`` is truthy. Validation failures are answered in ``api``'s error shape."""
    try:
        body = _validated(kind, api, request, ctx.extra_parameters_default)
        model = ctx.model if api == "serverless" else body.get("model") or ctx.model
        if kind in ("embeddings", "image_embeddings"):
            images = kind == "image_embeddings"
            dimensions = ctx.embedding_dimensions
            answer = embeddings_body(
                body, images=images, model=model, seed=ctx.seed, default_dimensions=dimensions
            )
            return json_response(200, answer)
        if kind == "chat":
            budget, keys = ctx.default_max_tokens, _MAX_KEYS[api]
            reply = answer_chat(body, seed=ctx.seed, default_max_tokens=budget, max_keys=keys)
        else:
            reply = _text_completion(body, ctx, api)
    except Rejected as rejected:
        return rejected.response(api)
    prefix, obj = ("chatcmpl", "chat.completion") if kind == "chat" else ("cmpl", "text_completion")
    head = {"id": f"{prefix}-{uuid.uuid4().hex}", "object": obj, "created": int(time.time()),
            "model": model}  # fmt: skip
    if _flag(body.get("stream", False)):
        options = body.get("stream_options")
        usage = isinstance(options, dict) and options.get("include_usage") is True
        chunk_head = {**head, "object": f"{obj}.chunk"} if kind == "chat" else head
        chunks = _chunks(kind, reply, chunk_head, usage)
        cut_at = max(1, len(chunks) // 2) if ctx.cut_stream() else None
        headers = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
        return StreamResponse(200, _stream(chunks, ctx.token_latency, cut_at), headers)
    if ctx.token_latency:
        await anyio.sleep(ctx.token_latency * reply.gen.completion_tokens)
    if kind == "chat":
        choice = {"index": 0, "message": chat_message(reply), "finish_reason": reply.finish_reason}
    else:
        choice = {"index": 0, "text": reply.gen.text, "logprobs": None,
                  "finish_reason": reply.finish_reason}  # fmt: skip
    return json_response(200, {**head, "choices": [choice], "usage": reply.gen.usage()})
