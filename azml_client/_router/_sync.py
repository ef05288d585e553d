"""``SyncEndpointRouter``: the router's calls, blocking, for scripts and notebooks.

A thin facade over :class:`EndpointRouter` running on an anyio ``BlockingPortal`` (an event
loop in a background thread, started with the router): one loop, so each endpoint has one
connection pool, whether the caller is a plain script or a Jupyter cell whose thread runs a
loop already. A call costs one thread hop, nothing next to a model's answer. Clients given to
it are forked (``EndpointClient._fork``: a pool of its own for that loop, the same budget),
so the originals stay usable where they are.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import (
    AsyncIterable,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal

from .._client import EndpointClient, Message
from .._config import config_arguments
from .._constants import DEFAULT_BULK_RATE_LIMIT_RETRIES, NOT_GIVEN, NotGiven
from .._exceptions import ClientClosedError, ConfigurationError
from .._retry import RetryPolicy
from .._sync import SyncStream, _blocking_iter
from .._types import ChatCompletion, Completion, Embeddings
from ._config import read_routes
from ._router import EndpointRouter

if TYPE_CHECKING:
    from .._bulk import Concurrency
    from ._bulk import RouterResults
    from ._stream import RouterStream

__all__ = ["SyncEndpointRouter", "SyncRouterStream"]

_T = TypeVar("_T")
Caller = Callable[[Callable[[], Awaitable[Any]]], Any]


def _own_client(endpoint: Any) -> EndpointClient:
    """A client of the router's own loop for an endpoint argument."""
    if isinstance(endpoint, EndpointClient):
        return endpoint._fork()
    if type(endpoint).__name__ == "SyncEndpointClient":
        inner = getattr(endpoint, "_client", None)
        if isinstance(inner, EndpointClient):
            return inner._fork()
    if isinstance(endpoint, Mapping):
        return EndpointClient(**endpoint)
    if isinstance(endpoint, str | os.PathLike):
        return EndpointClient(**config_arguments(endpoint, {}))
    raise ConfigurationError(
        "an endpoint is an EndpointClient or SyncEndpointClient, a dict of its settings or the "
        f"path of a config saved by client.save(); got {type(endpoint).__name__}"
    )


def _shut(
    portal: BlockingPortal, cm: AbstractContextManager[BlockingPortal], router: EndpointRouter
) -> None:
    """Close the router's clients, then stop the loop (also when the router is dropped
    unclosed, from the garbage collector: nothing may escape then)."""
    try:
        with contextlib.suppress(Exception):
            portal.call(router.aclose)
    finally:
        cm.__exit__(None, None, None)


class SyncRouterStream(SyncStream):
    """Blocking view of a :class:`RouterStream`: an iterator and a context manager, which also
    says which endpoint answered and what failed before."""

    _stream: RouterStream

    def __init__(self, call: Caller, stream: RouterStream) -> None:
        super().__init__(call, stream)

    @property
    def endpoint_url(self) -> str | None:
        return self._stream.endpoint_url

    @property
    def tried(self) -> list[tuple[str, str]]:
        return self._stream.tried


class SyncEndpointRouter:
    """Blocking twin of :class:`EndpointRouter`; takes the same arguments.

    Example::

        with SyncEndpointRouter(["eastus.json", "westus.json"], strategy="priority") as router:
            print(router.chat([{"role": "user", "content": "Hi"}]).endpoint_url)

    Safe to share between threads; each call blocks only its caller.
    """

    def __init__(self, endpoints: Iterable[Any], **options: Any) -> None:
        if isinstance(endpoints, str | os.PathLike | Mapping):
            raise ConfigurationError(
                "SyncEndpointRouter takes a list of endpoints; for a routes file use "
                "SyncEndpointRouter.from_routes(path)"
            )
        clients = [(_own_client(endpoint), True) for endpoint in endpoints]
        self._router = EndpointRouter._over(clients, **options)
        cm: AbstractContextManager[BlockingPortal] = start_blocking_portal()
        self._portal = cm.__enter__()
        self._finalizer = weakref.finalize(self, _shut, self._portal, cm, self._router)
        self._closed = False

    @classmethod
    def from_routes(cls, path: str | os.PathLike[str], **overrides: Any) -> SyncEndpointRouter:
        """A router from a routes file (see :func:`load_router`)."""
        endpoints, options = read_routes(path)
        return cls(endpoints, **{**options, **overrides})

    def _run(self, fn: Callable[[], Awaitable[_T]]) -> _T:
        if self._closed:
            raise ClientClosedError("this router is closed: create a new SyncEndpointRouter")
        return self._portal.call(fn)

    # -- calls ------------------------------------------------------------------------------

    def complete(
        self,
        prompt: str,
        *,
        stop: str | Sequence[str] | None = None,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | RetryPolicy | NotGiven | None = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> Completion:
        """See :meth:`EndpointRouter.complete`."""
        router = self._router
        return self._run(
            lambda: router.complete(
                prompt,
                stop=stop,
                timeout=timeout,
                deadline=deadline,
                max_retries=max_retries,
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
        extra_headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> ChatCompletion:
        """See :meth:`EndpointRouter.chat`."""
        router = self._router
        return self._run(
            lambda: router.chat(
                messages,
                stop=stop,
                timeout=timeout,
                deadline=deadline,
                max_retries=max_retries,
                extra_headers=extra_headers,
                **params,
            )
        )

    def embed(
        self,
        input: str | Sequence[str],
        *,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | RetryPolicy | NotGiven | None = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Embeddings:
        """See :meth:`EndpointRouter.embed`."""
        router = self._router
        return self._run(
            lambda: router.embed(
                input,
                timeout=timeout,
                deadline=deadline,
                max_retries=max_retries,
                extra_headers=extra_headers,
                **options,
            )
        )

    def invoke(
        self,
        payload: Mapping[str, Any] | Sequence[Any] | bytes | str,
        *,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | RetryPolicy | NotGiven | None = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Any:
        """See :meth:`EndpointRouter.invoke`."""
        router = self._router
        return self._run(
            lambda: router.invoke(
                payload,
                timeout=timeout,
                deadline=deadline,
                max_retries=max_retries,
                extra_headers=extra_headers,
                **options,
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
        extra_headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> SyncRouterStream:
        """See :meth:`EndpointRouter.stream`; iterate the result in a ``with`` block."""
        if self._closed:
            raise ClientClosedError("this router is closed: create a new SyncEndpointRouter")
        stream = self._router.stream(
            prompt_or_messages,
            stop=stop,
            timeout=timeout,
            idle_timeout=idle_timeout,
            deadline=deadline,
            max_retries=max_retries,
            extra_headers=extra_headers,
            **params,
        )
        return SyncRouterStream(self._portal.call, stream)

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
    ) -> RouterResults:
        """See :meth:`EndpointRouter.batch`: results in input order, with ``.stats``."""
        router = self._router
        return self._run(
            lambda: router.batch(
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
        """See :meth:`EndpointRouter.map`: ``(index, result)`` pairs as they complete."""
        if self._closed:
            raise ClientClosedError("this router is closed: create a new SyncEndpointRouter")
        run = self._router.map(
            items,
            concurrency=concurrency,
            max_rps=max_rps,
            max_tpm=max_tpm,
            max_retries=max_retries,
            max_rate_limit_retries=max_rate_limit_retries,
            return_exceptions=return_exceptions,
            **params,
        )
        call = self._portal.call
        try:
            yield from _blocking_iter(call, run.__aiter__())
        finally:
            call(run.aclose)

    # -- properties and lifecycle -----------------------------------------------------------

    @property
    def strategy(self) -> str:
        return self._router.strategy

    @property
    def clients(self) -> list[EndpointClient]:
        """The async clients the router runs on its loop (forks of the ones given)."""
        return self._router.clients

    def snapshot(self) -> list[dict[str, Any]]:
        """See :meth:`EndpointRouter.snapshot`."""
        return self._router.snapshot()

    @property
    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the router's clients and stop its loop. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._finalizer()

    def __enter__(self) -> SyncEndpointRouter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "Sync" + repr(self._router)
