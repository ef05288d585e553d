"""Reading an answer: its body, its request id, and its error details.

The body is read from the response's raw stream (no decoder chain) unless a
``Content-Encoding`` says it must be decoded; a body that cannot be decoded, or one larger
than :data:`~azml_client._constants.MAX_RESPONSE_BYTES` (after decoding, so a gzip bomb is
bounded too), is a typed error. The bytes are returned, never stored on the response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import httpx

from .. import _json
from .._constants import HEADER_DEPLOYMENT, MAX_RESPONSE_BYTES, SERVER_REQUEST_ID_HEADERS
from .._exceptions import ResponseFormatError

__all__ = [
    "ClosesAtOnce",
    "HeaderFacts",
    "body_chunks",
    "close_at_once",
    "header_facts",
    "read_body",
    "server_message",
]

_REQUEST_ID_KEYS = tuple(name.encode() for name in SERVER_REQUEST_ID_HEADERS)
_DEPLOYMENT_KEY = HEADER_DEPLOYMENT.encode()
_ENCODING_KEY = b"content-encoding"


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


def body_chunks(response: httpx.Response, *, encoded: bool | None = None) -> AsyncIterator[bytes]:
    """The body as it arrives: raw bytes, or decoded when a ``Content-Encoding`` applies
    (``encoded``: whether one does, when the caller already knows)."""
    stream = response.stream
    if encoded is None:
        encoded = "content-encoding" in response.headers
    if not encoded and isinstance(stream, httpx.AsyncByteStream):
        return stream.__aiter__()
    return response.aiter_bytes()


async def read_body(
    response: httpx.Response, *, limit: int = MAX_RESPONSE_BYTES, encoded: bool | None = None
) -> bytes:
    """The whole body. httpx's transport errors propagate (the driver maps them)."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in body_chunks(response, encoded=encoded):
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


class HeaderFacts(NamedTuple):
    """What the client reads in an answer's headers, found in one pass over them."""

    #: The first of ``SERVER_REQUEST_ID_HEADERS`` present.
    request_id: str | None
    #: The ``azureml-model-deployment`` that answered.
    deployment: str | None
    #: Whether a ``Content-Encoding`` applies to the body.
    encoded: bool


def header_facts(headers: httpx.Headers) -> HeaderFacts:
    """The request id, the deployment and the encoding of an answer (one pass over the raw
    headers: ``httpx.Headers`` lookups re-normalise every key on each call)."""
    found: dict[bytes, bytes] = {}
    deployment: str | None = None
    encoded = False
    for key, value in headers.raw:
        name = key.lower()
        if name in _REQUEST_ID_KEYS:
            if value:
                found.setdefault(name, value)
        elif name == _DEPLOYMENT_KEY:
            if value and deployment is None:
                deployment = value.decode("latin-1")
        elif name == _ENCODING_KEY:
            encoded = True
    request_id = None
    for name in _REQUEST_ID_KEYS:
        if name in found:
            request_id = found[name].decode("latin-1")
            break
    return HeaderFacts(request_id, deployment, encoded)


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
