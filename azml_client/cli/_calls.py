"""The one-shot commands: ``complete``, ``chat``, ``embed`` and ``info``.

Local inputs (stdin, ``--param``, ``--tools``, ``--response-format``) are read before the
endpoint is contacted or the emulator started, so their errors come first. Each command then
opens one client, checks that the endpoint kind can serve it (:func:`check_client`) and prints.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .._client import EndpointClient
from .._embeddings import joined_embeddings
from .._exceptions import ConfigurationError
from .._router import EndpointRouter
from .._types import Embeddings
from ._connection import Client, check_client, connect
from ._errors import say
from ._parser import parse_params

if TYPE_CHECKING:
    from .._router import RouterStream
    from .._streaming import AsyncStream

__all__ = [
    "CallRequest",
    "call_request",
    "embed",
    "embedding_options",
    "info",
    "load_tools",
    "parse_response_format",
    "read_texts",
    "send_call",
]


# -- local inputs ------------------------------------------------------------------------------


def _text_arg(value: str) -> str:
    return sys.stdin.read() if value == "-" else value


def _json_file(path: str, flag: str, expected: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read {flag} {path!r} ({exc.strerror or exc}): give {expected}"
        ) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"{flag} {path!r} is not JSON ({exc})") from None


def load_tools(path: str) -> list[dict[str, Any]]:
    """The tools of a ``--tools`` file: a JSON list of tools (or ``{"tools": [...]}``, or one
    tool). A bare function ``{"name", "parameters"}`` is wrapped as ``{"type": "function"}``."""
    data = _json_file(path, "--tools", "a JSON file with a list of tools")
    if isinstance(data, dict):
        data = data["tools"] if isinstance(data.get("tools"), list) else [data]
    if not isinstance(data, list) or not data:
        raise ConfigurationError(
            f"--tools {path!r} must hold a non-empty JSON list of tools, e.g. "
            '[{"type": "function", "function": {"name": "get_weather", "parameters": {...}}}]'
        )
    tools = []
    for i, tool in enumerate(data):
        if isinstance(tool, dict) and "function" not in tool and "name" in tool:
            tool = {"type": "function", "function": tool}
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise ConfigurationError(
                f"--tools {path!r}: tool {i} is not {{'type': 'function', 'function': "
                "{'name': ..., 'parameters': {...}}}"
            )
        tools.append(tool)
    return tools


def parse_response_format(value: str) -> dict[str, Any]:
    """``json_object`` / ``text``, or a file holding a JSON schema (sent as ``json_schema``
    named after its ``title`` or the file) or a whole ``response_format`` object."""
    if value in ("json_object", "text"):
        return {"type": value}
    data = _json_file(value, "--response-format", "json_object or a JSON schema file")
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"--response-format {value!r} must hold a JSON schema object (or a response_format "
            "object with a 'type')"
        )
    if data.get("type") in ("json_object", "text") or "json_schema" in data:
        return data
    name = str(data.get("title") or Path(value).stem)
    name = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "answer"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": data}}


@dataclass(frozen=True)
class CallRequest:
    """What ``complete`` / ``chat`` send: the prompt or messages, and the model parameters."""

    payload: Any
    params: dict[str, Any]


def call_request(args: argparse.Namespace) -> CallRequest:
    """Read the prompt or message (stdin for ``-``), ``--param``, ``--tools`` and
    ``--response-format``."""
    params = parse_params(args.param)
    if args.command == "complete":
        return CallRequest(_text_arg(args.prompt), params)
    if args.tools:
        params["tools"] = load_tools(args.tools)
    if args.response_format:
        params["response_format"] = parse_response_format(args.response_format)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": text} for text in args.system or ()
    ]
    messages.append({"role": "user", "content": _text_arg(args.message)})
    return CallRequest(messages, params)


def read_texts(values: Sequence[str]) -> list[str]:
    """The texts of ``azml embed``: the arguments, with ``-`` standing for stdin's lines (blank
    lines skipped)."""
    texts: list[str] = []
    for value in values:
        if value == "-":
            texts.extend(line.rstrip("\r\n") for line in sys.stdin if line.strip())
        else:
            texts.append(value)
    if not texts:
        raise ConfigurationError(
            "azml embed: nothing to embed (stdin held no text): give TEXT arguments or lines "
            "on stdin with '-'"
        )
    return texts


def embedding_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--input-type``, ``--encoding-format`` and ``--dimensions`` as embed() arguments."""
    options = {
        "input_type": args.input_type,
        "encoding_format": args.encoding_format,
        "dimensions": args.dimensions,
    }
    return {k: v for k, v in options.items() if v is not None}


# -- complete / chat ---------------------------------------------------------------------------


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _result_json(result: Any, routed: bool = False) -> dict[str, Any]:
    """``{text, finish_reason, usage, request_id, attempts}``, with ``tool_calls`` and
    ``parsed`` when the answer has them, and (``--routes``) the ``endpoint_url`` that
    answered."""
    usage = getattr(result, "usage", None)
    data = {
        "text": result.text,
        "finish_reason": result.finish_reason,
        "usage": usage.model_dump(exclude_none=True) if usage is not None else None,
        "request_id": result.request_id,
        "attempts": result.attempts,
    }
    tool_calls = getattr(result, "tool_calls", None)
    if tool_calls:
        data["tool_calls"] = [call.model_dump() for call in tool_calls]
    parsed = getattr(result, "parsed", None)
    if parsed is not None:
        data["parsed"] = parsed.model_dump() if hasattr(parsed, "model_dump") else parsed
    if routed:
        data["endpoint_url"] = getattr(result, "endpoint_url", None)
    return data


def _tool_call_lines(result: Any) -> list[str]:
    calls = getattr(result, "tool_calls", None) or ()
    return [f"tool call {c.function.name}({c.function.arguments})" for c in calls]


async def _stream(client: Client, request: CallRequest, as_json: bool, out: TextIO) -> Any:
    stream: AsyncStream | RouterStream
    async with client.stream(request.payload, **request.params) as stream:
        async for chunk in stream:
            if as_json:
                line: dict[str, Any] = {"delta": chunk.text, "finish_reason": chunk.finish_reason}
                if chunk.usage is not None:
                    line["usage"] = chunk.usage.model_dump(exclude_none=True)
                out.write(_dump(line) + "\n")
            else:
                out.write(chunk.text)
            out.flush()
    if not as_json:
        out.write("\n")
    return stream


async def send_call(
    args: argparse.Namespace, client_kwargs: dict[str, Any], request: CallRequest
) -> int:
    """``azml complete`` / ``azml chat``: print the text (or JSON), and any tool calls."""
    out = sys.stdout
    async with connect(client_kwargs) as client:
        check_client(client, args)
        if args.stream:
            result = await _stream(client, request, args.json, out)
        elif args.command == "complete":
            result = await client.complete(request.payload, **request.params)
        else:
            result = await client.chat(request.payload, **request.params)
    if args.json:
        out.write(_dump(_result_json(result, routed="routes" in client_kwargs)) + "\n")
    else:
        lines = _tool_call_lines(result)
        if not args.stream and (result.text or not lines):
            lines.insert(0, result.text)
        out.write("".join(line + "\n" for line in lines))
    out.flush()
    return 0


# -- embed / info ------------------------------------------------------------------------------


async def _embed_in_parts(
    router: EndpointRouter, texts: list[str], size: int, options: dict[str, Any]
) -> Embeddings:
    """``azml embed --routes`` with more texts than ``--batch-size``: one routed request a
    part, in order (each part fails over on its own)."""
    parts = [
        await router.embed(texts[start : start + size], **options)
        for start in range(0, len(texts), size)
    ]
    return joined_embeddings(parts)


async def embed(args: argparse.Namespace, client_kwargs: dict[str, Any], texts: list[str]) -> int:
    """``azml embed``: one JSON vector a line, or (``--json``) one object."""
    options = embedding_options(args)
    async with connect(client_kwargs) as client:
        check_client(client, args)
        if len(texts) <= args.batch_size:
            result = await client.embed(texts, **options)
        elif isinstance(client, EndpointRouter):
            result = await _embed_in_parts(client, texts, args.batch_size, options)
        else:
            result = await client.embed_many(texts, batch_size=args.batch_size, **options)
    out = sys.stdout
    if args.json:
        usage = result.usage.model_dump(exclude_none=True) if result.usage is not None else None
        data = {
            "vectors": result.vectors,
            "usage": usage,
            "model": result.model,
            "request_id": result.request_id,
            "attempts": result.attempts,
        }
        out.write(_dump(data) + "\n")
    else:
        out.write("".join(_dump(vector) + "\n" for vector in result.vectors))
    out.flush()
    return 0


async def info(args: argparse.Namespace, client_kwargs: dict[str, Any]) -> int:
    """``azml info``: the model's name, type and provider (and whatever else /info says)."""
    async with EndpointClient(**client_kwargs) as client:
        check_client(client, args)
        result = await client.info()
    data = result.model_dump()
    if args.json:
        say(_dump(data), sys.stdout)
        return 0
    width = max(len(key) for key in data)
    for key, value in data.items():
        text = value if isinstance(value, str) else _dump(value)
        say(f"{key:<{width}}  {text}", sys.stdout)
    return 0
