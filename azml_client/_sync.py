"""``SyncEndpointClient``: the same calls, blocking, for scripts and notebooks.

A thin facade: each method runs the async client's method on an anyio ``BlockingPortal`` (an
event loop in a background thread), so it also works from a thread that already runs an event
loop, as a Jupyter cell does. No logic is duplicated here.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from functools import partial
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._batch import BatchResults
from ._client import EndpointClient, Message
from ._config import ClientSettings
from ._exceptions import ClientClosedError
from ._streaming import AsyncStream
from ._types import ChatCompletion, Completion, StreamChunk, Usage
from .formatters._base import ContentFormatterBase

__all__ = ["SyncEndpointClient", "SyncStream"]

_T = TypeVar("_T")


def _blocking_iter(portal: BlockingPortal, iterator: AsyncIterator[_T]) -> Iterator[_T]:
    """Each item of an async iterator, fetched on the portal's event loop."""
    while True:
        try:
            yield portal.call(iterator.__anext__)
        except StopAsyncIteration:
            return


def _stop_portal(cm: AbstractContextManager[BlockingPortal]) -> None:
    cm.__exit__(None, None, None)


class SyncStream:
    """Blocking view of an :class:`AsyncStream`: an iterator and a context manager.

    Each chunk is fetched on the client's portal thread; leaving the ``with`` block, ``break``
    followed by ``close()``, or an exception releases the connection.
    """

    def __init__(self, portal: BlockingPortal, stream: AsyncStream) -> None:
        self._portal = portal
        self._stream = stream
        self._iterator: AsyncIterator[StreamChunk] | None = None

    def __enter__(self) -> SyncStream:
        self._portal.call(self._stream.__aenter__)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[StreamChunk]:
        self._iterator = self._stream.__aiter__()
        try:
            yield from _blocking_iter(self._portal, self._iterator)
        finally:
            self.close()

    def close(self) -> None:
        """Release the connection (idempotent)."""
        iterator, self._iterator = self._iterator, None
        if iterator is not None and hasattr(iterator, "aclose"):
            self._portal.call(iterator.aclose)
        self._portal.call(self._stream.aclose)

    @property
    def text(self) -> str:
        return self._stream.text

    @property
    def finish_reason(self) -> str | None:
        return self._stream.finish_reason

    @property
    def usage(self) -> Usage | None:
        return self._stream.usage

    @property
    def request_id(self) -> str | None:
        return self._stream.request_id


class SyncEndpointClient:
    """Blocking twin of :class:`EndpointClient`; takes exactly the same arguments.

    Example::

        with SyncEndpointClient(endpoint_url=".../score", api_key="...", formatter="llama") as c:
            print(c.complete("Write me a song about sparkling water:").text)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._client = EndpointClient(*args, **kwargs)
        self._portal_cm = start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        self._finalizer = weakref.finalize(self, _stop_portal, self._portal_cm)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str], **overrides: Any) -> SyncEndpointClient:
        """Build a client from a file written by :meth:`save`."""
        data = ClientSettings.from_file(path)
        data.update(overrides)
        return cls(**data)

    def _run(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._finalizer.alive:
            raise ClientClosedError()
        return self._portal.call(partial(func, *args, **kwargs))

    def complete(self, prompt: str, **kwargs: Any) -> Completion:
        """See :meth:`EndpointClient.complete`."""
        result: Completion = self._run(self._client.complete, prompt, **kwargs)
        return result

    def chat(self, messages: Sequence[Message], **kwargs: Any) -> ChatCompletion:
        """See :meth:`EndpointClient.chat`."""
        result: ChatCompletion = self._run(self._client.chat, messages, **kwargs)
        return result

    def invoke(
        self, payload: Mapping[str, Any] | Sequence[Any] | bytes | str, **kwargs: Any
    ) -> Any:
        """See :meth:`EndpointClient.invoke`."""
        return self._run(self._client.invoke, payload, **kwargs)

    def stream(self, prompt_or_messages: str | Sequence[Message], **kwargs: Any) -> SyncStream:
        """See :meth:`EndpointClient.stream`; iterate the result in a ``with`` block."""
        if not self._finalizer.alive:
            raise ClientClosedError()
        return SyncStream(self._portal, self._client.stream(prompt_or_messages, **kwargs))

    def batch(self, items: Iterable[Any], **kwargs: Any) -> BatchResults:
        """See :meth:`EndpointClient.batch`: results in input order, with ``.stats``."""
        result: BatchResults = self._run(self._client.batch, items, **kwargs)
        return result

    def map(self, items: Iterable[Any], **kwargs: Any) -> Iterator[tuple[int, Any]]:
        """See :meth:`EndpointClient.map`: ``(index, result)`` pairs as they complete."""
        if not self._finalizer.alive:
            raise ClientClosedError()
        run = self._client.map(items, **kwargs)
        try:
            yield from _blocking_iter(self._portal, run.__aiter__())
        finally:
            self._portal.call(run.aclose)

    def save(self, path: str | os.PathLike[str]) -> None:
        """See :meth:`EndpointClient.save`."""
        self._client.save(path)

    @property
    def settings(self) -> ClientSettings:
        return self._client.settings

    @property
    def formatter(self) -> ContentFormatterBase:
        return self._client.formatter

    @property
    def async_client(self) -> EndpointClient:
        """The async client underneath (runs on this object's portal thread)."""
        return self._client

    @property
    def is_closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        """Close the connection pool and stop the background event loop. Idempotent."""
        if not self._finalizer.alive:
            return
        try:
            self._portal.call(self._client.aclose)
        finally:
            self._finalizer()

    def __enter__(self) -> SyncEndpointClient:
        if not self._finalizer.alive:
            raise ClientClosedError()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "Sync" + repr(self._client)
