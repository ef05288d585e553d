"""``SyncEndpointClient``: the same calls, blocking, for scripts and notebooks.

A thin facade: every method runs the async client's method to completion; no logic is
duplicated here. Where it runs:

* In a plain thread (a script), on an event loop the client owns and runs in the calling thread:
  no thread hop, so a blocking call costs about what an awaited one does.
* In a thread that already runs an event loop (a Jupyter cell), or while another thread is using
  the client's own loop, on an anyio ``BlockingPortal``: an event loop in a background thread,
  started on first need, with its own pooled async client (connections belong to one loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import weakref
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import anyio.to_thread
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


class _Runner:
    """Runs coroutines to completion for blocking callers; one async client per event loop."""

    client: EndpointClient

    def call(self, fn: Callable[[], Awaitable[_T]]) -> _T:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _OwnLoop(_Runner):
    """An event loop run in whichever plain thread calls, one caller at a time."""

    def __init__(self, client: EndpointClient) -> None:
        self.client = client
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()

    def call(self, fn: Callable[[], Awaitable[_T]]) -> _T:
        with self.lock:
            return self._run(fn)

    def _run(self, fn: Callable[[], Awaitable[_T]]) -> _T:
        async def main() -> _T:
            return await fn()

        return self.loop.run_until_complete(main())

    def close(self) -> None:
        with self.lock:
            try:
                self._run(self.client.aclose)
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            finally:
                self.loop.close()


class _Portal(_Runner):
    """An event loop in a background thread (anyio blocking portal)."""

    def __init__(self, client: EndpointClient) -> None:
        self.client = client
        self._cm: AbstractContextManager[BlockingPortal] = start_blocking_portal()
        self.portal = self._cm.__enter__()
        self._stop = weakref.finalize(self, self._cm.__exit__, None, None, None)

    def call(self, fn: Callable[[], Awaitable[_T]]) -> _T:
        return self.portal.call(fn)

    def close(self) -> None:
        try:
            self.portal.call(self.client.aclose)
        finally:
            self._stop()


def _in_event_loop_thread() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _blocking_iter(runner: _Runner, iterator: AsyncIterator[_T]) -> Iterator[_T]:
    """Each item of an async iterator, fetched on ``runner``'s event loop."""
    while True:
        try:
            yield runner.call(iterator.__anext__)
        except StopAsyncIteration:
            return


class SyncStream:
    """Blocking view of an :class:`AsyncStream`: an iterator and a context manager.

    Leaving the ``with`` block, ``close()``, or an exception releases the connection.
    """

    def __init__(self, runner: _Runner, stream: AsyncStream) -> None:
        self._runner = runner
        self._stream = stream
        self._iterator: AsyncIterator[StreamChunk] | None = None

    def __enter__(self) -> SyncStream:
        self._runner.call(self._stream.__aenter__)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[StreamChunk]:
        self._iterator = self._stream.__aiter__()
        try:
            yield from _blocking_iter(self._runner, self._iterator)
        finally:
            self.close()

    def close(self) -> None:
        """Release the connection (idempotent)."""
        iterator, self._iterator = self._iterator, None
        if iterator is not None and hasattr(iterator, "aclose"):
            self._runner.call(iterator.aclose)
        self._runner.call(self._stream.aclose)

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

    Safe to share between threads; each call blocks only its caller.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args, self._kwargs = args, kwargs
        self._own = _OwnLoop(EndpointClient(*args, **kwargs))
        self._portal: _Portal | None = None
        self._portal_lock = threading.Lock()
        self._closed = False
        # A client dropped without close() still releases its loop and connections.
        self._finalizer = weakref.finalize(self, _close_quietly, self._own)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str], **overrides: Any) -> SyncEndpointClient:
        """Build a client from a file written by :meth:`save`."""
        data = ClientSettings.from_file(path)
        data.update(overrides)
        return cls(**data)

    # -- where a call runs ------------------------------------------------------------------

    def _portal_runner(self) -> _Portal:
        with self._portal_lock:
            if self._portal is None:
                self._portal = _Portal(EndpointClient(*self._args, **self._kwargs))
            return self._portal

    def _run(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``client.<name>(*args, **kwargs)`` to completion on a suitable loop."""
        if self._closed:
            raise ClientClosedError()
        own = self._own
        if not _in_event_loop_thread() and own.lock.acquire(blocking=False):
            try:
                return own._run(lambda: getattr(own.client, name)(*args, **kwargs))
            finally:
                own.lock.release()
        portal = self._portal_runner()
        return portal.call(lambda: getattr(portal.client, name)(*args, **kwargs))

    def _pick(self) -> _Runner:
        """The runner for an operation that spans several calls (a stream, a map)."""
        if self._closed:
            raise ClientClosedError()
        if _in_event_loop_thread():
            return self._portal_runner()
        return self._own

    # -- calls ------------------------------------------------------------------------------

    def complete(self, prompt: str, **kwargs: Any) -> Completion:
        """See :meth:`EndpointClient.complete`."""
        result: Completion = self._run("complete", prompt, **kwargs)
        return result

    def chat(self, messages: Sequence[Message], **kwargs: Any) -> ChatCompletion:
        """See :meth:`EndpointClient.chat`."""
        result: ChatCompletion = self._run("chat", messages, **kwargs)
        return result

    def invoke(
        self, payload: Mapping[str, Any] | Sequence[Any] | bytes | str, **kwargs: Any
    ) -> Any:
        """See :meth:`EndpointClient.invoke`."""
        return self._run("invoke", payload, **kwargs)

    def stream(self, prompt_or_messages: str | Sequence[Message], **kwargs: Any) -> SyncStream:
        """See :meth:`EndpointClient.stream`; iterate the result in a ``with`` block."""
        runner = self._pick()
        return SyncStream(runner, runner.client.stream(prompt_or_messages, **kwargs))

    def batch(self, items: Iterable[Any], **kwargs: Any) -> BatchResults:
        """See :meth:`EndpointClient.batch`: results in input order, with ``.stats``."""
        result: BatchResults = self._run("batch", items, **kwargs)
        return result

    def map(self, items: Iterable[Any], **kwargs: Any) -> Iterator[tuple[int, Any]]:
        """See :meth:`EndpointClient.map`: ``(index, result)`` pairs as they complete."""
        runner = self._pick()
        run = runner.client.map(items, **kwargs)
        try:
            yield from _blocking_iter(runner, run.__aiter__())
        finally:
            runner.call(run.aclose)

    def save(self, path: str | os.PathLike[str]) -> None:
        """See :meth:`EndpointClient.save`."""
        self._own.client.save(path)

    # -- properties and lifecycle -----------------------------------------------------------

    @property
    def settings(self) -> ClientSettings:
        return self._own.client.settings

    @property
    def formatter(self) -> ContentFormatterBase:
        return self._own.client.formatter

    @property
    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the connection pools and stop the background loop, if any. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if _in_event_loop_thread():
                # This thread's loop is not ours to run: close ours from the portal's thread.
                self._portal_runner().portal.call(lambda: _close_in_thread(self._own))
            else:
                self._own.close()
        finally:
            portal, self._portal = self._portal, None
            if portal is not None:
                portal.close()

    def __enter__(self) -> SyncEndpointClient:
        if self._closed:
            raise ClientClosedError()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "Sync" + repr(self._own.client)


def _close_quietly(own: _OwnLoop) -> None:
    if own.loop.is_closed():
        return
    # At interpreter shutdown or under a foreign running loop there is nothing more to do.
    with contextlib.suppress(Exception):
        own.close()


async def _close_in_thread(own: _OwnLoop) -> None:
    await anyio.to_thread.run_sync(own.close)
