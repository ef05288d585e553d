"""What the emulated chat model answers: text, a tool call, or JSON for a ``response_format``.

Rules (OpenAI's chat API, which [MI-CHAT] mirrors: ``tools``, ``tool_choice`` none | auto |
required | a named function, ``response_format``; wire-formats.md 3.5):

- With a non-empty ``tools`` list and ``tool_choice`` other than ``"none"`` the model calls a
  tool: the named one, else the first. Except: with ``tool_choice`` absent or ``"auto"``, a
  conversation whose last message is a ``tool`` result gets a text answer, so a tool loop ends.
  ``"required"`` (and Mistral's ``"any"``) always call.
- The call's ``arguments`` are JSON valid for the tool's ``parameters`` schema
  (``_schema.example_for``), drawn from ``sha256(seed, prompt, tool name)``; the call id is
  ``call_`` plus hex from the same digest. ``finish_reason`` is ``"tool_calls"``.
- ``response_format`` ``json_object`` answers ``{"answer": <text>}``; ``json_schema`` answers
  JSON valid for its ``schema``; ``text`` (or none) answers text.
- Ready-made output (arguments, JSON) is cut by an explicit ``max_tokens`` (``finish_reason``
  ``"length"``, the text then is not valid JSON, as with a real model) but not by the
  emulator's default budget, which exists for text.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from azml_client.emulator._errors import Rejected
from azml_client.emulator._generate import (
    IMAGE_TOKENS,
    Generation,
    fixed_output,
    flatten_messages,
    generate,
    max_tokens_from,
    stop_from,
)
from azml_client.emulator._schema import SchemaError, example_for

__all__ = ["ChatReply", "ToolCall", "answer_chat", "chat_deltas", "chat_message"]

_ALWAYS_CALL = ("required", "any")
_FORMATS = ("text", "json_object", "json_schema")


@dataclass(frozen=True)
class ToolCall:
    """The one function call of an answer; its arguments are the generation's text."""

    id: str
    name: str


@dataclass(frozen=True)
class ChatReply:
    """A chat answer: its text (content or call arguments) and the call, if it is one."""

    gen: Generation
    tool_call: ToolCall | None = None

    @property
    def finish_reason(self) -> str:
        """Why the answer ended: ``stop``, ``length`` or ``tool_calls``."""
        return self.gen.finish_reason


def _tools(body: dict[str, Any]) -> dict[str, Any]:
    """``{name: parameters schema}`` in the order given."""
    tools = body.get("tools")
    if tools is None:
        return {}
    if not isinstance(tools, list):
        raise Rejected("tools must be a list of function tools.", param="tools")
    out: dict[str, Any] = {}
    for tool in tools:
        kind, function = (
            (tool.get("type"), tool.get("function")) if isinstance(tool, dict) else ("", None)
        )
        name = function.get("name") if isinstance(function, dict) else None
        if (
            kind != "function"
            or not isinstance(function, dict)
            or not isinstance(name, str)
            or not name
        ):
            raise Rejected(
                'each tool must be {"type": "function", "function": {"name": ...}}, '
                f"got {tool!r}.",
                param="tools",
            )
        parameters = function.get("parameters")
        if parameters is None:
            parameters = {"type": "object", "properties": {}}
        if not isinstance(parameters, dict):
            message = f"the parameters of tool {name!r} must be a JSON schema object."
            raise Rejected(message, param="tools")
        out[name] = parameters
    return out


def _called_tool(body: dict[str, Any], tools: dict[str, Any]) -> str | None:
    choice = body.get("tool_choice")
    named: str | None = None
    if isinstance(choice, dict):
        function = choice.get("function")
        named = function.get("name") if isinstance(function, dict) else None
        if choice.get("type") != "function" or not isinstance(named, str):
            raise Rejected(
                'tool_choice must be "none", "auto", "required" or '
                f'{{"type": "function", "function": {{"name": ...}}}}, got {choice!r}.',
                param="tool_choice",
            )
    elif choice not in (None, "none", "auto", *_ALWAYS_CALL):
        raise Rejected(f"Invalid tool_choice {choice!r}.", param="tool_choice")
    if not tools:
        if named is not None or choice in _ALWAYS_CALL:
            raise Rejected("tool_choice needs a non-empty tools list.", param="tool_choice")
        return None
    if named is not None:
        if named not in tools:
            raise Rejected(
                f"tool_choice names the function {named!r}, which is not in tools {list(tools)}.",
                param="tool_choice",
            )
        return named
    if choice == "none":
        return None
    messages = body.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    if choice in (None, "auto") and isinstance(last, dict) and last.get("role") == "tool":
        return None  # the tool has answered: the model answers in text
    return next(iter(tools))


def _response_format(body: dict[str, Any]) -> tuple[str, Any]:
    value = body.get("response_format")
    if value is None:
        return "text", None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in _FORMATS:
        message = f"response_format must be an object whose type is one of {list(_FORMATS)}."
        raise Rejected(message, param="response_format")
    if kind != "json_schema":
        return kind, None
    spec = value.get("json_schema")
    name = spec.get("name") if isinstance(spec, dict) else None
    if not isinstance(name, str) or not name or not isinstance(spec.get("schema"), dict):
        raise Rejected(
            'response_format json_schema needs {"json_schema": {"name": str, "schema": {...}}}.',
            param="response_format",
        )
    if not isinstance(spec.get("strict", False), bool):
        raise Rejected(
            "response_format.json_schema.strict must be a boolean.", param="response_format"
        )
    return kind, spec["schema"]


def _digest(seed: int, *parts: str) -> bytes:
    return hashlib.sha256("\x00".join((str(seed), *parts)).encode()).digest()


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _example(schema: Any, rng: random.Random, param: str) -> Any:
    try:
        return example_for(schema, rng)
    except SchemaError as exc:
        raise Rejected(f"Cannot answer for this {param} schema: {exc}", param=param) from None


def answer_chat(
    body: dict[str, Any], *, seed: int, default_max_tokens: int, max_keys: Sequence[str]
) -> ChatReply:
    """The deterministic answer to a validated chat request ``body``.

    Raises:
        Rejected: malformed ``messages``, ``tools``, ``tool_choice``, ``response_format``,
            ``max_tokens`` or ``stop``, or a schema the generator cannot satisfy.
    """
    tools = _tools(body)
    called = _called_tool(body, tools)
    fmt, schema = _response_format(body)
    try:
        prompt, used = flatten_messages(body.get("messages"), image_tokens=IMAGE_TOKENS)
    except ValueError as exc:
        raise Rejected(str(exc), param="messages") from None
    try:
        budget = max_tokens_from(body, default_max_tokens, max_keys)
        stop = stop_from(body)
    except ValueError as exc:
        raise Rejected(str(exc)) from None
    explicit = budget if any(body.get(k) is not None for k in max_keys) else None
    if called is not None:
        digest = _digest(seed, prompt, "tool", called)
        arguments = _json(_example(tools[called], random.Random(digest), "tools"))
        gen = fixed_output(
            arguments, prompt_tokens=used, finish_reason="tool_calls", budget=explicit
        )
        return ChatReply(gen, ToolCall(f"call_{digest.hex()[:24]}", called))
    if fmt == "text":
        return ChatReply(
            generate(prompt, seed=seed, max_tokens=budget, stop=stop, prompt_tokens=used)
        )
    if fmt == "json_schema":
        value = _example(schema, random.Random(_digest(seed, prompt, "json")), "response_format")
    else:  # json_object
        value = {"answer": generate(prompt, seed=seed, max_tokens=default_max_tokens).text}
    return ChatReply(
        fixed_output(_json(value), prompt_tokens=used, finish_reason="stop", budget=explicit)
    )


def chat_message(reply: ChatReply) -> dict[str, Any]:
    """The ``message`` of a non-streamed answer."""
    if reply.tool_call is None:
        return {"role": "assistant", "content": reply.gen.text}
    call = reply.tool_call
    function = {"name": call.name, "arguments": reply.gen.text}
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": call.id, "type": "function", "function": function}],
    }


def chat_deltas(reply: ChatReply) -> list[dict[str, Any]]:
    """The ``delta`` of each streamed chunk, before the final one carrying the finish reason.

    Text: ``{"role", "content": ""}`` then one ``content`` piece per chunk. A tool call, as
    OpenAI streams it: the call's ``index``, ``id``, ``type`` and ``name`` with empty
    ``arguments`` first, then ``{"index": 0, "function": {"arguments": piece}}`` chunks.
    """
    pieces = reply.gen.pieces
    if reply.tool_call is None:
        first: dict[str, Any] = {"role": "assistant", "content": ""}
        return [first, *({"content": piece} for piece in pieces)]
    call = reply.tool_call
    head = {"index": 0, "id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": ""}}  # fmt: skip
    first = {"role": "assistant", "content": None, "tool_calls": [head]}
    rest = ({"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in pieces)
    return [first, *rest]
