"""The little ASGI 3 plumbing of the emulator: read a request, send a plain or streamed answer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

__all__ = [
    "Receive",
    "Request",
    "Response",
    "Scope",
    "Send",
    "StreamCut",
    "StreamResponse",
    "json_response",
    "read_request",
    "send_response",
    "text_response",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class StreamCut(Exception):  # a deliberate cut, not a failure
    """Raised inside a stream to make the server drop the connection (the ``stream_cut`` fault)."""


@dataclass(frozen=True)
class Request:
    """A fully read HTTP request; header names are lower-cased (the last value wins)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Response:
    """A complete answer."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StreamResponse:
    """A streamed answer: ``chunks`` is consumed while sending."""

    status: int
    chunks: AsyncIterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer (compact separators, UTF-8)."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(status, body, {"content-type": "application/json", **(headers or {})})


def text_response(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    """A ``text/plain`` answer."""
    content_type = {"content-type": "text/plain; charset=utf-8"}
    return Response(status, text.encode(), {**content_type, **(headers or {})})


async def read_request(scope: Scope, receive: Receive) -> Request:
    """Read the whole request body and decode the scope into a ``Request``."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # http.disconnect: answer what we have; the send will go nowhere
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    raw_query = scope.get("query_string", b"").decode("latin-1")
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    return Request(
        method=scope["method"],
        path=scope["path"],
        query=dict(parse_qsl(raw_query)),
        headers=headers,
        body=b"".join(chunks),
    )


def _raw_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def send_response(send: Send, response: Response | StreamResponse) -> None:
    """Send ``response``; a ``StreamResponse`` goes out one chunk per ASGI message.

    Raises:
        StreamCut: propagated from the stream so the server closes the connection mid-body.
    """
    if isinstance(response, Response):
        headers = {**response.headers, "content-length": str(len(response.body))}
        start = {"type": "http.response.start", "status": response.status}
        await send({**start, "headers": _raw_headers(headers)})
        await send({"type": "http.response.body", "body": response.body, "more_body": False})
        return
    start = {"type": "http.response.start", "status": response.status}
    await send({**start, "headers": _raw_headers(response.headers)})
    async for chunk in response.chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
