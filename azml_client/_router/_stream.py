"""``RouterStream``: a stream that fails over to another endpoint until its first chunk.

Opening runs the router's one loop (``EndpointRouter._call``) with an attempt that sends the
request, waits for the headers *and* the first chunk: a refused connection, an error status,
a cut or an error event before any chunk all fail over like a single call. Once a chunk was
handed out, an error is the consumer's (with ``tried``): a second endpoint would answer
differently, and the text so far cannot be taken back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import httpx

from .._constants import NotGiven
from .._exceptions import APIConnectionError, AzmlError
from .._retry import RetryPolicy
from .._types import StreamChunk, ToolCall, Usage
from ._policy import annotate, label

if TYPE_CHECKING:
    from .._client import EndpointClient
    from .._streaming import AsyncStream
    from ._router import EndpointRouter

__all__ = ["RouterStream"]

Opened = tuple["AsyncStream", AsyncIterator[StreamChunk], StreamChunk | None]


class RouterStream:
    """A streamed answer from one of a router's endpoints: an async iterator of
    :class:`StreamChunk` and an async context manager, like :class:`AsyncStream`.

    ``async with`` returns once an endpoint sent its first chunk (failing over until then);
    ``endpoint_url`` says which endpoint it was, ``tried`` what failed before.
    """

    def __init__(
        self,
        router: EndpointRouter,
        op: str,
        make: Callable[[EndpointClient, dict[str, Any]], AsyncStream],
        max_retries: int | RetryPolicy | NotGiven | None,
        deadline: float | NotGiven | None,
        timeout: float | httpx.Timeout | NotGiven,
    ) -> None:
        self._router = router
        self._op = op
        self._make = make
        self._options = (max_retries, deadline, timeout)
        self._stream: AsyncStream | None = None
        self._iterator: AsyncIterator[StreamChunk] | None = None
        self._first: StreamChunk | None = None
        self._started = False
        self._closed = False
        #: The endpoint that answered (after the stream opened).
        self.endpoint_url: str | None = None
        #: ``(endpoint URL, error)`` of each attempt that failed before the stream opened.
        self.tried: list[tuple[str, str]] = []

    # -- what the caller reads -------------------------------------------------------------

    @property
    def text(self) -> str:
        return self._stream.text if self._stream is not None else ""

    @property
    def finish_reason(self) -> str | None:
        return self._stream.finish_reason if self._stream is not None else None

    @property
    def usage(self) -> Usage | None:
        return self._stream.usage if self._stream is not None else None

    @property
    def tool_calls(self) -> list[ToolCall] | None:
        return self._stream.tool_calls if self._stream is not None else None

    @property
    def parsed(self) -> Any:
        return self._stream.parsed if self._stream is not None else None

    @property
    def request_id(self) -> str | None:
        return self._stream.request_id if self._stream is not None else None

    @property
    def id(self) -> str | None:
        return self._stream.id if self._stream is not None else None

    @property
    def model(self) -> str | None:
        return self._stream.model if self._stream is not None else None

    @property
    def client_request_id(self) -> str | None:
        return self._stream.client_request_id if self._stream is not None else None

    @property
    def attempts(self) -> int:
        """HTTP attempts over all endpoints (the failed ones and the one streaming)."""
        return len(self.tried) + (1 if self._stream is not None else 0)

    @property
    def response(self) -> httpx.Response | None:
        return self._stream.response if self._stream is not None else None

    # -- lifecycle -------------------------------------------------------------------------

    async def _open_one(self, client: EndpointClient, call: dict[str, Any]) -> Opened:
        """One attempt: the request, its headers and its first chunk (None: an empty stream)."""
        stream = self._make(client, call)
        iterator: AsyncIterator[StreamChunk] | None = None
        try:
            await stream.__aenter__()
            iterator = stream.__aiter__()
            try:
                first: StreamChunk | None = await iterator.__anext__()
            except StopAsyncIteration:
                first = None
        except BaseException:
            if iterator is not None and hasattr(iterator, "aclose"):
                await iterator.aclose()
            await stream.aclose()
            raise
        return stream, iterator, first

    async def _start(self) -> None:
        if self._stream is not None:
            return
        if self._closed:
            raise APIConnectionError("this stream is closed")
        chosen: list[str] = []

        async def attempt(client: EndpointClient, call: dict[str, Any]) -> Opened:
            opened = await self._open_one(client, call)
            chosen.append(client.endpoint_url)
            return opened

        max_retries, deadline, timeout = self._options
        opened = await self._router._call(
            self._op, attempt, max_retries, deadline, timeout, tried=self.tried
        )
        self._stream, self._iterator, self._first = opened
        self.endpoint_url = chosen[-1]
        if self._closed:  # closed while opening (another task): release at once
            await self.aclose()

    async def __aenter__(self) -> RouterStream:
        await self._start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release the connection. Idempotent."""
        self._closed = True
        iterator, self._iterator = self._iterator, None
        if iterator is not None and hasattr(iterator, "aclose"):
            await iterator.aclose()
        if self._stream is not None:
            await self._stream.aclose()

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        if self._started:
            raise RuntimeError("a stream can be iterated once")
        self._started = True
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[StreamChunk]:
        try:
            await self._start()
            first, self._first = self._first, None
            iterator = self._iterator
            if first is None or iterator is None:
                return
            yield first
            try:
                while True:
                    try:
                        chunk = await iterator.__anext__()
                    except StopAsyncIteration:
                        return
                    yield chunk
            except AzmlError as exc:  # after the first chunk: no failover, but say where
                where = [*self.tried, (self.endpoint_url or "", label(exc))]
                raise annotate(exc, where, len(where)) from exc.__cause__
        finally:
            await self.aclose()
