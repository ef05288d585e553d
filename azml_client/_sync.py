"""``SyncEndpointClient``: the same calls, blocking, for scripts and notebooks.

A thin facade: each method has the async method's signature (``tests/test_sync.py`` checks them
against each other) and runs it to completion; no logic is duplicated here. Where it runs:

* In a plain thread (a script), on an event loop the client owns and runs in the calling thread:
  no thread hop, so a blocking call costs about what an awaited one does.
* In a thread that already runs an event loop (a Jupyter cell), or while another thread is using
  the client's own loop, on an anyio ``BlockingPortal``: an event loop in a background thread,
  started on first need, with an async client of its own (connections belong to one loop).

One async client per loop, both made from the one validated configuration; the key lives only
inside them (a ``SecretStr`` and the auth header), never in an attribute of this object.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import weakref
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio.to_thread
import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from pydantic import SecretStr

from ._client import EndpointClient, FormatterArg, Message
from ._config import ClientSettings, config_arguments
from ._constants import (
    DEFAULT_BULK_RATE_LIMIT_RETRIES,
    NOT_GIVEN,
    ApiType,
    ExtraParameters,
    NotGiven,
)
from ._exceptions import ClientClosedError, ConfigurationError
from ._pricing import Pricing
from ._retry import RetryPolicy
from ._types import (
    ChatCompletion,
    Completion,
    Embeddings,
    ModelInfo,
    StreamChunk,
    ToolCall,
    Usage,
)
from .formatters._base import ContentFormatterBase

if TYPE_CHECKING:
    import ssl

    from ._bulk import BatchResults, Concurrency, RateBudget

__all__ = ["SyncEndpointClient", "SyncStream"]

_T = TypeVar("_T")


class _OwnLoop:
    """An event loop run in whichever plain thread calls, one caller at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()

    def run(self, fn: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``fn()`` on this loop; the caller holds ``lock``."""

        async def main() -> _T:
            return await fn()

        return self.loop.run_until_complete(main())

    def call(self, fn: Callable[[], Awaitable[_T]]) -> _T:
        with self.lock:
            return self.run(fn)

    def close(self, client: EndpointClient) -> None:
        with self.lock:
            if self.loop.is_closed():
                return
            try:
                self.run(client.aclose)
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            finally:
                self.loop.close()


class _Portal:
    """An event loop in a background thread (anyio blocking portal)."""

    def __init__(self) -> None:
        self._cm: AbstractContextManager[BlockingPortal] = start_blocking_portal()
        self.portal = self._cm.__enter__()
        self._stop = weakref.finalize(self, self._cm.__exit__, None, None, None)

    def call(self, fn: Callable[[], Awaitable[_T]]) -> _T:
        return self.portal.call(fn)

    def close(self, client: EndpointClient | None) -> None:
        try:
            if client is not None:
                self.portal.call(client.aclose)
        finally:
            self._stop()


class _Runners:
    """The two places calls run, and the async client of each (shared by ``with_options``)."""

    def __init__(self, client: EndpointClient) -> None:
        self.own = _OwnLoop()
        self.own_client = client
        self.portal: _Portal | None = None
        self.portal_client: EndpointClient | None = None
        self.lock = threading.Lock()
        self.closed = False

    def portal_runner(self) -> tuple[_Portal, EndpointClient]:
        with self.lock:
            if self.portal is None:
                self.portal = _Portal()
                self.portal_client = self.own_client._fork()
            assert self.portal_client is not None
            return self.portal, self.portal_client

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if _in_event_loop_thread():
                # This thread's loop is not ours to run: close ours from the portal's thread.
                portal, _ = self.portal_runner()
                portal.call(lambda: anyio.to_thread.run_sync(self.own.close, self.own_client))
            else:
                self.own.close(self.own_client)
        finally:
            started, self.portal = self.portal, None
            if started is not None:
                started.close(self.portal_client)


def _in_event_loop_thread() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _close_quietly(runners: _Runners) -> None:
    # Garbage collection may run this in any thread, or at interpreter shutdown.
    with contextlib.suppress(Exception):
        runners.close()


_S = TypeVar("_S", bound="SyncStream")


class Streamed(Protocol):
    """What a blocking stream views: a client's :class:`AsyncStream` or a router's stream."""

    @property
    def text(self) -> str: ...
    @property
    def finish_reason(self) -> str | None: ...
    @property
    def usage(self) -> Usage | None: ...
    @property
    def tool_calls(self) -> list[ToolCall] | None: ...
    @property
    def parsed(self) -> Any: ...
    @property
    def request_id(self) -> str | None: ...
    @property
    def id(self) -> str | None: ...
    @property
    def model(self) -> str | None: ...

    async def __aenter__(self) -> Any: ...

    def __aiter__(self) -> AsyncIterator[StreamChunk]: ...

    async def aclose(self) -> None: ...


class SyncStream:
    """Blocking view of an :class:`AsyncStream`: an iterator and a context manager.

    Leaving the ``with`` block, ``close()``, or an exception releases the connection.
    """

    def __init__(self, call: Callable[[Callable[[], Awaitable[Any]]], Any], stream: Streamed):
        self._call = call
        self._stream = stream
        self._iterator: AsyncIterator[StreamChunk] | None = None

    def __enter__(self: _S) -> _S:
        self._call(self._stream.__aenter__)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[StreamChunk]:
        self._iterator = self._stream.__aiter__()
        try:
            yield from _blocking_iter(self._call, self._iterator)
        finally:
            self.close()

    def close(self) -> None:
        """Release the connection (idempotent)."""
        iterator, self._iterator = self._iterator, None
        if iterator is not None and hasattr(iterator, "aclose"):
            self._call(iterator.aclose)
        self._call(self._stream.aclose)

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
    def tool_calls(self) -> list[ToolCall] | None:
        return self._stream.tool_calls

    @property
    def parsed(self) -> Any:
        return self._stream.parsed

    @property
    def request_id(self) -> str | None:
        return self._stream.request_id

    @property
    def id(self) -> str | None:
        return self._stream.id

    @property
    def model(self) -> str | None:
        return self._stream.model


def _blocking_iter(
    call: Callable[[Callable[[], Awaitable[Any]]], Any], iterator: AsyncIterator[_T]
) -> Iterator[_T]:
    """Each item of an async iterator, fetched on the loop ``call`` runs coroutines on."""
    while True:
        try:
            item: _T = call(iterator.__anext__)
        except StopAsyncIteration:
            return
        yield item


class SyncEndpointClient:
    """Blocking twin of :class:`EndpointClient`; takes exactly the same arguments.

    Example::

        with SyncEndpointClient(endpoint_url=".../score", api_key="...", formatter="llama") as c:
            print(c.complete("Write me a song about sparkling water:").text)

    Safe to share between threads; each call blocks only its caller.
    """

    def __init__(
        self,
        endpoint_url: str | None = None,
        api_key: str | SecretStr | None = None,
        *,
        api_type: str | ApiType | None = None,
        deployment_name: str | None = None,
        model: str | None = None,
        formatter: FormatterArg | None = None,
        formatter_options: Mapping[str, Any] | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | NotGiven | None = NOT_GIVEN,
        retry: RetryPolicy | NotGiven = NOT_GIVEN,
        limits: httpx.Limits | NotGiven = NOT_GIVEN,
        extra_parameters: str | ExtraParameters | None = None,
        api_version: str | None = None,
        credential: Any = None,
        token_scope: str | None = None,
        api_key_env: str | None = None,
        allow_insecure_http: bool | None = None,
        proxy: str | httpx.URL | httpx.Proxy | NotGiven | None = NOT_GIVEN,
        verify: bool | str | os.PathLike[str] | ssl.SSLContext = True,
        trust_env: bool | NotGiven = NOT_GIVEN,
        default_headers: Mapping[str, str] | None = None,
        budget: RateBudget | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        env: Mapping[str, str] | None = None,
        connect_timeout: float | NotGiven = NOT_GIVEN,
        backoff_base: float | NotGiven = NOT_GIVEN,
        backoff_max: float | NotGiven = NOT_GIVEN,
        max_retry_after: float | NotGiven = NOT_GIVEN,
        max_connections: int | NotGiven = NOT_GIVEN,
        max_keepalive_connections: int | NotGiven = NOT_GIVEN,
        keepalive_expiry: float | NotGiven = NOT_GIVEN,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        capture_content: bool | None = None,
        pricing: Pricing | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            from ._client import unknown_arguments

            raise ConfigurationError(unknown_arguments(unknown, "SyncEndpointClient"))
        client = EndpointClient(
            endpoint_url,
            api_key,
            api_type=api_type,
            deployment_name=deployment_name,
            model=model,
            formatter=formatter,
            formatter_options=formatter_options,
            model_kwargs=model_kwargs,
            timeout=timeout,
            deadline=deadline,
            max_retries=max_retries,
            retry=retry,
            limits=limits,
            extra_parameters=extra_parameters,
            api_version=api_version,
            credential=credential,
            token_scope=token_scope,
            api_key_env=api_key_env,
            allow_insecure_http=allow_insecure_http,
            proxy=proxy,
            verify=verify,
            trust_env=trust_env,
            default_headers=default_headers,
            budget=budget,
            http_client=http_client,
            transport=transport,
            sleep=sleep,
            env=env,
            connect_timeout=connect_timeout,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            max_retry_after=max_retry_after,
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=keepalive_expiry,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            capture_content=capture_content,
            pricing=pricing,
        )
        self._setup(_Runners(client), client, None, owner=True)

    def _setup(
        self,
        runners: _Runners,
        client: EndpointClient,
        overrides: dict[str, Any] | None,
        *,
        owner: bool,
    ) -> None:
        self._runners = runners
        self._client = client
        self._overrides = overrides
        self._portal_copy: EndpointClient | None = None
        self._owner = owner
        self._closed = False
        if owner:
            # A client dropped without close() still releases its loop and connections.
            self._finalizer = weakref.finalize(self, _close_quietly, runners)

    @classmethod
    def from_client(cls, client: EndpointClient) -> SyncEndpointClient:
        """A blocking client with ``client``'s settings, formatter, credential and rate budget,
        and connection pools of its own (a pool belongs to one event loop)."""
        copy = client._fork()
        blocking = object.__new__(cls)
        blocking._setup(_Runners(copy), copy, None, owner=True)
        return blocking

    @classmethod
    def from_config(cls, path: str | os.PathLike[str], **overrides: Any) -> SyncEndpointClient:
        """Build a client from a file written by :meth:`save`."""
        return cls(**config_arguments(path, overrides))

    def with_options(self, **overrides: Any) -> SyncEndpointClient:
        """See :meth:`EndpointClient.with_options`: same loop and pool, some settings changed."""
        self._check_open()
        clone = object.__new__(type(self))
        clone._setup(self._runners, self._client.with_options(**overrides), overrides, owner=False)
        return clone

    # -- where a call runs ------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed or self._runners.closed:
            raise ClientClosedError()

    def _portal(self) -> tuple[_Portal, EndpointClient]:
        portal, base = self._runners.portal_runner()
        if self._overrides is None:
            return portal, base
        if self._portal_copy is None:
            self._portal_copy = base.with_options(**self._overrides)
        return portal, self._portal_copy

    def _run(self, fn: Callable[[EndpointClient], Awaitable[_T]]) -> _T:
        """Run ``fn(async client)`` to completion on a suitable loop."""
        self._check_open()
        own = self._runners.own
        if not _in_event_loop_thread() and own.lock.acquire(blocking=False):
            try:
                client = self._client
                return own.run(lambda: fn(client))
            finally:
                own.lock.release()
        portal, client = self._portal()
        return portal.call(lambda: fn(client))

    def _spanning(self) -> tuple[Callable[[Callable[[], Awaitable[Any]]], Any], EndpointClient]:
        """Where an operation that spans several calls (a stream, a map) runs, and its client."""
        self._check_open()
        if _in_event_loop_thread():
            portal, client = self._portal()
            return portal.call, client
        return self._runners.own.call, self._client

    # -- calls ------------------------------------------------------------------------------

    def complete(
        self,
        prompt: str,
        *,
        stop: str | Sequence[str] | None = None,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | RetryPolicy | NotGiven | None = NOT_GIVEN,
        extra_parameters: str | ExtraParameters | NotGiven | None = NOT_GIVEN,
        deployment_name: str | NotGiven | None = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> Completion:
        """See :meth:`EndpointClient.complete`."""
        return self._run(
            lambda c: c.complete(
                prompt,
                stop=stop,
                timeout=timeout,
                deadline=deadline,
                max_retries=max_retries,
                extra_parameters=extra_parameters,
                deployment_name=deployment_name,
                extra_headers=extra_headers,
                **params,
            )
        )

    def chat(
        self,
        messages: Sequence[Message],
        *,
        stop: str | Sequence[str] | None = None,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | RetryPolicy | NotGiven | None = NOT_GIVEN,
        extra_parameters: str | ExtraParameters | NotGiven | None = NOT_GIVEN,
        deployment_name: str | NotGiven | None = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> ChatCompletion:
        """See :meth:`EndpointClient.chat`."""
        return self._run(
            lambda c: c.chat(
                messages,
                stop=stop,
                timeout=timeout,
                deadline=deadline,
                max_retries=max_retries,
                extra_parameters=extra_parameters,
                deployment_name=deployment_name,
                extra_headers=extra_headers,
                **params,
            )
        )

    def invoke(
        self,
        payload: Mapping[str, Any] | Sequence[Any] | bytes | str,
        *,
        url: str | None = None,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | RetryPolicy | NotGiven | None = NOT_GIVEN,
        extra_parameters: str | ExtraParameters | NotGiven | None = NOT_GIVEN,
        deployment_name: str | NotGiven | None = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> Any:
        """See :meth:`EndpointClient.invoke`."""
        return self._run(
            lambda c: c.invoke(
                payload,
                url=url,
                timeout=timeout,
                deadline=deadline,
                max_retries=max_retries,
                extra_parameters=extra_parameters,
                deployment_name=deployment_name,
                extra_headers=extra_headers,
                **params,
            )
        )

    def embed(
        self,
        input: str | Sequence[str],
        *,
        input_type: str | None = None,
        encoding_format: str | None = None,
        dimensions: int | None = None,
        model: str | None = None,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | RetryPolicy | NotGiven | None = NOT_GIVEN,
        extra_parameters: str | ExtraParameters | NotGiven | None = NOT_GIVEN,
        deployment_name: str | NotGiven | None = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Embeddings:
        """See :meth:`EndpointClient.embed`."""
        return self._run(
            lambda c: c.embed(
                input,
                input_type=input_type,
                encoding_format=encoding_format,
                dimensions=dimensions,
                model=model,
                timeout=timeout,
                deadline=deadline,
                max_retries=max_retries,
                extra_parameters=extra_parameters,
                deployment_name=deployment_name,
                extra_headers=extra_headers,
            )
        )

    def embed_images(
        self,
        images: Any,
        *,
        input_type: str | None = None,
        encoding_format: str | None = None,
        dimensions: int | None = None,
        model: str | None = None,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | RetryPolicy | NotGiven | None = NOT_GIVEN,
        extra_parameters: str | ExtraParameters | NotGiven | None = NOT_GIVEN,
        deployment_name: str | NotGiven | None = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Embeddings:
        """See :meth:`EndpointClient.embed_images`."""
        return self._run(
            lambda c: c.embed_images(
                images,
                input_type=input_type,
                encoding_format=encoding_format,
                dimensions=dimensions,
                model=model,
                timeout=timeout,
                deadline=deadline,
                max_retries=max_retries,
                extra_parameters=extra_parameters,
                deployment_name=deployment_name,
                extra_headers=extra_headers,
            )
        )

    def embed_many(
        self,
        texts: Iterable[str] | AsyncIterable[str],
        *,
        batch_size: int = 64,
        concurrency: Concurrency = "auto",
        max_rps: float | None = None,
        max_tpm: float | None = None,
        input_type: str | None = None,
        encoding_format: str | None = None,
        dimensions: int | None = None,
        model: str | None = None,
        max_rate_limit_retries: int = DEFAULT_BULK_RATE_LIMIT_RETRIES,
    ) -> Embeddings:
        """See :meth:`EndpointClient.embed_many`."""
        return self._run(
            lambda c: c.embed_many(
                texts,
                batch_size=batch_size,
                concurrency=concurrency,
                max_rps=max_rps,
                max_tpm=max_tpm,
                input_type=input_type,
                encoding_format=encoding_format,
                dimensions=dimensions,
                model=model,
                max_rate_limit_retries=max_rate_limit_retries,
            )
        )

    def info(
        self,
        *,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | RetryPolicy | NotGiven | None = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> ModelInfo:
        """See :meth:`EndpointClient.info`."""
        return self._run(
            lambda c: c.info(
                timeout=timeout,
                deadline=deadline,
                max_retries=max_retries,
                extra_headers=extra_headers,
            )
        )

    def stream(
        self,
        prompt_or_messages: str | Sequence[Message],
        *,
        stop: str | Sequence[str] | None = None,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        idle_timeout: float | None = None,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | RetryPolicy | NotGiven | None = NOT_GIVEN,
        extra_parameters: str | ExtraParameters | NotGiven | None = NOT_GIVEN,
        deployment_name: str | NotGiven | None = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> SyncStream:
        """See :meth:`EndpointClient.stream`; iterate the result in a ``with`` block."""
        call, client = self._spanning()
        stream = client.stream(
            prompt_or_messages,
            stop=stop,
            timeout=timeout,
            idle_timeout=idle_timeout,
            deadline=deadline,
            max_retries=max_retries,
            extra_parameters=extra_parameters,
            deployment_name=deployment_name,
            extra_headers=extra_headers,
            **params,
        )
        return SyncStream(call, stream)

    def batch(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: Concurrency = "auto",
        max_rps: float | None = None,
        max_tpm: float | None = None,
        max_retries: int | None = None,
        max_rate_limit_retries: int = DEFAULT_BULK_RATE_LIMIT_RETRIES,
        return_exceptions: bool = True,
        progress: bool = False,
        **params: Any,
    ) -> BatchResults:
        """See :meth:`EndpointClient.batch`: results in input order, with ``.stats``."""
        return self._run(
            lambda c: c.batch(
                items,
                concurrency=concurrency,
                max_rps=max_rps,
                max_tpm=max_tpm,
                max_retries=max_retries,
                max_rate_limit_retries=max_rate_limit_retries,
                return_exceptions=return_exceptions,
                progress=progress,
                **params,
            )
        )

    def map(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: Concurrency = "auto",
        max_rps: float | None = None,
        max_tpm: float | None = None,
        max_retries: int | None = None,
        max_rate_limit_retries: int = DEFAULT_BULK_RATE_LIMIT_RETRIES,
        return_exceptions: bool = True,
        **params: Any,
    ) -> Iterator[tuple[int, Any]]:
        """See :meth:`EndpointClient.map`: ``(index, result)`` pairs as they complete."""
        call, client = self._spanning()
        run = client.map(
            items,
            concurrency=concurrency,
            max_rps=max_rps,
            max_tpm=max_tpm,
            max_retries=max_retries,
            max_rate_limit_retries=max_rate_limit_retries,
            return_exceptions=return_exceptions,
            **params,
        )
        try:
            yield from _blocking_iter(call, run.__aiter__())
        finally:
            call(run.aclose)

    def save(self, path: str | os.PathLike[str]) -> None:
        """See :meth:`EndpointClient.save`."""
        self._client.save(path)

    # -- properties and lifecycle -----------------------------------------------------------

    @property
    def settings(self) -> ClientSettings:
        return self._client.settings

    @property
    def formatter(self) -> ContentFormatterBase:
        return self._client.formatter

    @property
    def api_type(self) -> ApiType:
        return self._client.api_type

    @property
    def endpoint_url(self) -> str:
        """See :attr:`EndpointClient.endpoint_url`."""
        return self._client.endpoint_url

    @property
    def model_kwargs(self) -> dict[str, Any]:
        return self._client.model_kwargs

    @property
    def is_closed(self) -> bool:
        return self._closed or self._runners.closed

    def close(self) -> None:
        """Close the connection pools and stop the background loop, if any. Idempotent.

        A client made by :meth:`with_options` closes nothing but itself.
        """
        if self._closed:
            return
        self._closed = True
        if self._owner:
            self._finalizer.detach()
            self._runners.close()

    def __enter__(self) -> SyncEndpointClient:
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "Sync" + repr(self._client)
