"""Reading an answer: its body, its request id, and its error details.

The body is read from the response's raw stream (no decoder chain) unless a
``Content-Encoding`` says it must be decoded; a body that cannot be decoded, or one larger
than :data:`~azml_client._constants.MAX_RESPONSE_BYTES` (after decoding, so a gzip bomb is
bounded too), is a typed error. The bytes are returned, never stored on the response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from .. import _json
from .._constants import MAX_RESPONSE_BYTES, SERVER_REQUEST_ID_HEADERS
from .._exceptions import ResponseFormatError

__all__ = [
    "ClosesAtOnce",
    "body_chunks",
    "close_at_once",
    "read_body",
    "server_message",
    "server_request_id",
]

_REQUEST_ID_KEYS = tuple(name.encode() for name in SERVER_REQUEST_ID_HEADERS)


class ClosesAtOnce(httpx.AsyncByteStream):
    """A response body whose closing never waits (the aiohttp transport's): :meth:`close`
    does all that ``aclose()`` does."""

    def close(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        self.close()


def close_at_once(response: httpx.Response) -> bool:
    """Close ``response`` without awaiting when its body allows it (as ``response.aclose()``
    would, minus a coroutine and, for the caller, a cancellation shield around it); False when
    the caller must await ``response.aclose()``."""
    stream = response.stream
    if not isinstance(stream, ClosesAtOnce):
        return False
    if not response.is_closed:
        response.is_closed = True
        stream.close()
    return True


def body_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body as it arrives: raw bytes, or decoded when a ``Content-Encoding`` applies."""
    stream = response.stream
    if "content-encoding" not in response.headers and isinstance(stream, httpx.AsyncByteStream):
        return stream.__aiter__()
    return response.aiter_bytes()


async def read_body(response: httpx.Response, *, limit: int = MAX_RESPONSE_BYTES) -> bytes:
    """The whole body. httpx's transport errors propagate (the driver maps them)."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in body_chunks(response):
            size += len(chunk)
            if size > limit:
                raise ResponseFormatError(
                    f"the answer is larger than {limit // (1 << 20)} MiB: refusing to read more",
                    formatter="-",
                )
            chunks.append(chunk)
    except httpx.DecodingError:
        encoding = response.headers.get("content-encoding", "?")
        error = ResponseFormatError(
            f"the answer says Content-Encoding: {encoding} but its body cannot be decoded",
            formatter="-",
        )
    else:
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        if not close_at_once(response):
            await response.aclose()
    raise error


def server_request_id(headers: httpx.Headers) -> str | None:
    """The first of ``SERVER_REQUEST_ID_HEADERS`` present (one pass over the raw headers)."""
    found: dict[bytes, bytes] = {}
    for key, value in headers.raw:
        name = key.lower()
        if name in _REQUEST_ID_KEYS and value:
            found.setdefault(name, value)
    for name in _REQUEST_ID_KEYS:
        if name in found:
            return found[name].decode("latin-1")
    return None


def server_message(body: bytes) -> str | None:
    """The human message inside an error body, for the shapes Azure endpoints send."""
    try:
        data: Any = _json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return text[:300] or None
    if isinstance(data, dict):
        for key in ("message", "error", "detail"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message", value.get("code"))
            if isinstance(value, str) and value:
                return value[:300]
    return None
