"""Streams as objects: ``AsyncStream`` is an async iterator and an async context manager.

The connection is opened (with retries) on ``__aenter__`` or on the first iteration, and is
released however the consumer stops: the end of the stream, ``break``, cancellation or an
exception in the consumer's loop (the iterator is an async generator whose ``finally`` closes
the response; ``async with`` makes the release immediate rather than left to the garbage
collector, so prefer it).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import httpx

from ._exceptions import (
    APIConnectionError,
    APITimeoutError,
    ResponseFormatError,
    StreamInterruptedError,
    reported_error,
)
from ._sse import ServerSentEvent, SSEDecoder
from ._types import StreamChunk, Usage
from .formatters._base import ContentFormatterBase, FormatRequest, ParsedOutput, decode_response

__all__ = ["AsyncStream"]


Opener = Callable[[], Awaitable[tuple[httpx.Response, dict[str, Any]]]]


class AsyncStream:
    """A streamed answer. Iterate it for :class:`StreamChunk` objects::

    async with client.stream("Tell me a story") as stream:
        async for chunk in stream:
            print(chunk.text, end="")
    print(stream.text, stream.finish_reason, stream.request_id)
    """

    def __init__(
        self,
        opener: Opener,
        formatter: ContentFormatterBase,
        request: FormatRequest,
        *,
        idle_timeout: float,
        url: str,
    ) -> None:
        self._opener = opener
        self._formatter = formatter
        self._request = request
        self._idle_timeout = idle_timeout
        self._url = url
        self._response: httpx.Response | None = None
        self._meta: dict[str, Any] = {}
        self._parts: list[str] = []
        self._started = False
        self._closed = False
        #: Set when the stream ended: the finish reason of its last chunk.
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    # -- what the caller reads ------------------------------------------------------------

    @property
    def text(self) -> str:
        """Everything received so far, joined."""
        return "".join(self._parts)

    @property
    def request_id(self) -> str | None:
        return self._meta.get("request_id")

    @property
    def client_request_id(self) -> str | None:
        return self._meta.get("client_request_id")

    @property
    def attempts(self) -> int:
        return int(self._meta.get("attempts", 0))

    @property
    def response(self) -> httpx.Response | None:
        return self._response

    # -- lifecycle ------------------------------------------------------------------------

    async def _open(self) -> None:
        if self._closed:
            raise APIConnectionError("this stream is closed", url=self._url)
        if self._response is None:
            self._response, self._meta = await self._opener()

    async def __aenter__(self) -> AsyncStream:
        await self._open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release the connection. Idempotent; safe in ``finally`` and under cancellation."""
        self._closed = True
        response, self._response = self._response, None
        if response is not None:
            with anyio.CancelScope(shield=True):
                await response.aclose()

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        if self._started:
            raise RuntimeError("a stream can be iterated once")
        self._started = True
        return self._iterate()

    # -- decoding -------------------------------------------------------------------------

    async def _iterate(self) -> AsyncIterator[StreamChunk]:
        try:
            await self._open()
            assert self._response is not None
            content_type = self._response.headers.get("content-type", "")
            if "text/event-stream" not in content_type:
                yield await self._whole_answer(self._response)
                return
            async for chunk in self._events(self._response):
                yield chunk
        finally:
            await self.aclose()

    async def _whole_answer(self, response: httpx.Response) -> StreamChunk:
        """The server ignored ``stream``: one chunk with the whole answer."""
        raw = await self._read(response.aread)
        parsed, data = decode_response(self._formatter, raw, self._request)
        return self._chunk(parsed, data)

    async def _read(self, reader: Callable[[], Awaitable[bytes]]) -> bytes:
        try:
            return await reader()
        except httpx.TimeoutException:
            raise APITimeoutError(
                f"no data for {self._idle_timeout:g}s while streaming", url=self._url
            ) from None
        except httpx.TransportError as exc:
            raise StreamInterruptedError(
                f"the stream broke ({type(exc).__name__}: {exc})", url=self._url
            ) from None

    async def _events(self, response: httpx.Response) -> AsyncIterator[StreamChunk]:
        decoder = SSEDecoder()
        done_marker = self._formatter.stream_done_marker
        finished = False
        # The transport bounds every read by the idle timeout (the request's read timeout).
        # Without a Content-Encoding the raw stream is read directly: httpx's decoder chain
        # would cost more than the SSE parsing itself, once per network read.
        stream = response.stream
        source: AsyncIterator[bytes] | httpx.AsyncByteStream = response.aiter_bytes()
        if "content-encoding" not in response.headers and isinstance(stream, httpx.AsyncByteStream):
            source = stream
        byte_iter = source.__aiter__()
        while True:
            try:
                raw = await self._read(byte_iter.__anext__)
            except StopAsyncIteration:
                break
            for event in decoder.feed(raw):
                if done_marker is not None and event.data.strip() == done_marker:
                    return
                chunk = self._event(event)
                if chunk is None:
                    continue
                if chunk.finish_reason is not None:
                    finished = True
                yield chunk
                if finished and done_marker is None:
                    return
        decoder.flush()
        # A finished TGI stream returned above; anything else ending here was cut short.
        raise StreamInterruptedError(
            "the server closed the stream before its end: the answer is incomplete "
            f"({len(self.text)} characters received)",
            url=self._url,
            client_request_id=self.client_request_id,
        )

    def _event(self, event: ServerSentEvent) -> StreamChunk | None:
        if event.event == "error":
            raise self._in_band_error(event.data)
        try:
            data = json.loads(event.data)
        except ValueError:
            raise ResponseFormatError(
                "a stream event is not JSON",
                formatter=self._formatter.name,
                api_type=str(self._request.api_type),
                body=event.data[:300],
                request_id=self.request_id,
            ) from None
        parsed = self._formatter.parse_stream_event(data, self._request)
        return None if parsed is None else self._chunk(parsed, data)

    def _in_band_error(self, data: str) -> Exception:
        try:
            body = json.loads(data)
        except ValueError:
            body = None
        error = body.get("error", body) if isinstance(body, dict) else data
        return reported_error(
            error,
            context="the stream reported an error",
            body=data,
            request_id=self.request_id,
            client_request_id=self.client_request_id,
            url=self._url,
        )

    def _chunk(self, parsed: ParsedOutput, data: Any) -> StreamChunk:
        text = parsed.text
        if type(text) is not str:
            raise ResponseFormatError(
                "a stream chunk's text is not a string",
                formatter=self._formatter.name,
                api_type=str(self._request.api_type),
                request_id=self.request_id,
            )
        usage = Usage(**parsed.usage) if parsed.usage else None
        finish = parsed.finish_reason
        chunk = StreamChunk(
            text=text,
            finish_reason=finish if isinstance(finish, str) else None,
            usage=usage,
            index=len(self._parts),
            raw=data,
        )
        self._parts.append(text)
        if finish is not None:
            self.finish_reason = chunk.finish_reason
        if usage is not None:
            self.usage = usage
        return chunk
