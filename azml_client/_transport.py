"""The default HTTP transport: httpx on the outside, aiohttp (or sharded httpcore pools) inside.

Why this module exists
----------------------
The SDK's public interface is httpx (users inject ``httpx.AsyncClient`` instances or transports
and test with respx), but httpcore 1.0's connection pool is slow under concurrency:
``AsyncConnectionPool._assign_requests_to_connections`` runs on every request event and, for
each idle connection, builds a list of all connections, so client CPU per request grows with the
square of the number of open connections.  On a 2-core machine against a fast loopback server
(``benchmarks/RESULTS.md``) one httpx pool costs ~4.5 ms of CPU per request at 64 requests in
flight (1.5 ms at 1), versus ~0.3 ms for aiohttp, and 2000 requests of 100 ms at 64 in flight
take 11x their ideal time.

So :func:`default_transport` returns, in order of preference:

1. :class:`AiohttpTransport` when aiohttp is importable (the ``azml-client[fast]`` extra).  It
   keeps httpx's request/response objects, timeouts and exception types, and sends the bytes
   through one ``aiohttp.ClientSession``.
2. :class:`ShardedHTTPTransport` otherwise: several small ``httpx.AsyncHTTPTransport`` pools,
   each request going to the least busy one.  The quadratic pool scan then runs over a handful
   of connections instead of all of them: 3.3x the throughput of one pool at 64 in flight, and
   the 100 ms bulk case within 1.17x of ideal.  httpcore's fixed per-request cost remains.

respx and other mocks
---------------------
respx's default mocker patches ``httpcore.AsyncConnectionPool.handle_async_request`` (and
pytest-httpx patches ``httpx.AsyncHTTPTransport.handle_async_request``).  aiohttp would bypass
both and silently send mocked requests to the network.  :class:`AiohttpTransport` therefore
checks, on every request, whether either method has been replaced by something that does not
come from httpcore/httpx; while one is, the request goes through an httpx fallback transport,
which the mock intercepts.  The check is a few attribute look-ups, so it costs nothing
measurable, and it follows mocks that start or stop while a client is open.
``respx.mock(using="httpx")`` patches ``AsyncClient._transport_for_url`` and so intercepts
before any transport is reached (:func:`mocking_active` reports it too, for code that bypasses
``AsyncClient.send``).

Event loops
-----------
aiohttp runs only on asyncio.  The aiohttp path is chosen per request: when no asyncio loop is
running (trio, or anyio's trio backend) the request goes through the httpx fallback instead.  The
aiohttp session is created lazily inside the first asyncio loop that sends a request and is bound
to it; using the same transport from a different loop raises ``RuntimeError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Final

import httpcore
import httpx

try:  # The optional `azml-client[fast]` extra.
    import aiohttp
    from multidict import CIMultiDict
    from yarl import URL
except ImportError:  # pragma: no cover - exercised by monkeypatching in tests
    aiohttp = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from aiohttp import ClientResponse, ClientSession, ClientTimeout

__all__ = [
    "AiohttpTransport",
    "ShardedHTTPTransport",
    "aiohttp_available",
    "default_transport",
    "mocking_active",
]

#: Pools used by :class:`ShardedHTTPTransport` (fewer if ``max_connections`` is smaller).
#: 16 measured best at 64 in flight on a 2-core machine (8: -10%, 32: same as 16).
DEFAULT_SHARDS: Final = 16

#: aiohttp's default header line limits (8 KiB) are below what h11 accepts; raise them so that
#: switching transport does not turn large-but-valid headers into errors.
_MAX_LINE_SIZE: Final = 65536
_MAX_FIELD_SIZE: Final = 65536

#: Headers aiohttp would otherwise invent when the httpx request lacks them.
_AUTO_HEADERS: Final = ("Accept", "Accept-Encoding", "User-Agent")

_HTTP_VERSIONS: Final[dict[tuple[int, int], bytes]] = {
    (1, 1): b"HTTP/1.1",
    (1, 0): b"HTTP/1.0",
    (2, 0): b"HTTP/2",
}

# The unpatched methods, captured at import; compared by identity on the hot path.  ``.get``:
# a future httpx/httpcore without one of them simply has nothing there to patch.
_POOL_METHOD: Final = httpcore.AsyncConnectionPool.__dict__.get("handle_async_request")
_TRANSPORT_METHOD: Final = httpx.AsyncHTTPTransport.__dict__.get("handle_async_request")
_ROUTING_METHOD: Final = httpx.AsyncClient.__dict__.get("_transport_for_url")


def _comes_from(method: object, package: str) -> bool:
    """Whether ``method`` is defined by ``package`` (not by a mocking library); None counts."""
    if method is None:
        return True
    module = getattr(method, "__module__", None)
    return isinstance(module, str) and module.split(".", 1)[0] == package


#: Whether the methods captured above are the libraries' own (no mock was active at import).
_ORIGINALS_CLEAN: Final = (
    _comes_from(_POOL_METHOD, "httpcore")
    and _comes_from(_TRANSPORT_METHOD, "httpx")
    and _comes_from(_ROUTING_METHOD, "httpx")
)


def aiohttp_available() -> bool:
    """Whether the aiohttp-backed transport can be used (``azml-client[fast]`` installed)."""
    return aiohttp is not None


def mocking_active() -> bool:
    """Whether a mocking library has patched httpx or httpcore.

    respx (default ``using="httpcore"``) replaces ``AsyncConnectionPool.handle_async_request``;
    pytest-httpx replaces ``AsyncHTTPTransport.handle_async_request``; respx
    ``using="httpx"`` replaces ``AsyncClient._transport_for_url``.  While the first two are
    patched, requests must flow through httpx's own transport for the mock to see them (the
    third intercepts before any transport is reached).  Public so that code which ever sends
    through a transport directly, bypassing ``AsyncClient.send``, can check it first.
    """
    pool = httpcore.AsyncConnectionPool.__dict__.get("handle_async_request")
    transport = httpx.AsyncHTTPTransport.__dict__.get("handle_async_request")
    routing = httpx.AsyncClient.__dict__.get("_transport_for_url")
    if (
        pool is _POOL_METHOD
        and transport is _TRANSPORT_METHOD
        and routing is _ROUTING_METHOD
        and _ORIGINALS_CLEAN
    ):
        return False  # the hot path: nothing patched since a clean import
    return not (
        _comes_from(pool, "httpcore")
        and _comes_from(transport, "httpx")
        and _comes_from(routing, "httpx")
    )


@functools.lru_cache(maxsize=1)
def _default_ssl_context() -> ssl.SSLContext:
    """httpx's default verifying context (certifi CA bundle), built once per process.

    The same trust store httpx would use, so switching transport does not change which servers
    are trusted; shared because loading the bundle costs tens of milliseconds per context.
    """
    return httpx.create_ssl_context()


def _split(total: int, parts: int) -> list[int]:
    """Split ``total`` into ``parts`` integers that differ by at most one and add up to it."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class _ShardStream(httpx.AsyncByteStream):
    """Wraps a shard's response stream to mark the shard less busy once the response closes."""

    __slots__ = ("_busy", "_index", "_open", "_stream")

    def __init__(self, stream: httpx.AsyncByteStream, busy: list[int], index: int) -> None:
        self._stream = stream
        self._busy = busy
        self._index = index
        self._open = True

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream.__aiter__()

    async def aclose(self) -> None:
        if self._open:
            self._open = False
            self._busy[self._index] -= 1
        await self._stream.aclose()


class ShardedHTTPTransport(httpx.AsyncBaseTransport):
    """Several small ``httpx.AsyncHTTPTransport`` pools; each request goes to the least busy.

    The pure-httpx path.  httpcore's pool does work quadratic in its number of connections on
    every request event; splitting ``max_connections`` over ``shards`` pools keeps each pool
    small.  "Least busy" (fewest open responses, lowest index on ties) rather than round-robin so
    that a request waits for a connection only when every shard is full, like one big pool, and
    so that light traffic keeps reusing the same few keep-alive connections.

    Every shard is a real ``httpx.AsyncHTTPTransport``, so respx and pytest-httpx intercept it,
    and it runs on trio as well as asyncio.  ``max_connections`` and
    ``max_keepalive_connections`` are totals, split across shards.  ``connect_timeout`` applies
    to requests that carry no ``timeout`` extension.
    """

    def __init__(
        self,
        *,
        max_connections: int,
        max_keepalive_connections: int,
        keepalive_expiry: float | None,
        connect_timeout: float | None = None,
        shards: int = DEFAULT_SHARDS,
        **transport_kwargs: Any,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if "verify" not in transport_kwargs:
            # One CA bundle for all shards: loading it costs ~60 ms per transport.
            transport_kwargs["verify"] = _default_ssl_context()
        count = max(1, min(shards, max_connections))
        conns = _split(max_connections, count)
        keepalive = _split(max(0, min(max_keepalive_connections, max_connections)), count)
        self._transports = [
            httpx.AsyncHTTPTransport(
                limits=httpx.Limits(
                    max_connections=c,
                    max_keepalive_connections=k,
                    keepalive_expiry=keepalive_expiry,
                ),
                **transport_kwargs,
            )
            for c, k in zip(conns, keepalive, strict=True)
        ]
        self._busy = [0] * count
        self._connect_timeout = connect_timeout

    @property
    def shards(self) -> int:
        """How many pools requests are spread over."""
        return len(self._transports)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._connect_timeout is not None and "timeout" not in request.extensions:
            request.extensions = {
                **request.extensions,
                "timeout": {"connect": self._connect_timeout, "read": None, "write": None},
            }
        busy = self._busy
        index = busy.index(min(busy))
        busy[index] += 1
        try:
            response = await self._transports[index].handle_async_request(request)
        except BaseException:
            busy[index] -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _ShardStream(response.stream, busy, index)
        return response

    async def aclose(self) -> None:
        for transport in self._transports:
            await transport.aclose()


def default_transport(
    *,
    max_connections: int,
    max_keepalive_connections: int,
    keepalive_expiry: float,
    connect_timeout: float | None = None,
) -> httpx.AsyncBaseTransport:
    """The fastest transport available, for an ``httpx.AsyncClient(transport=...)``.

    :class:`AiohttpTransport` when aiohttp is installed, else :class:`ShardedHTTPTransport`.
    Both honour httpx's per-request timeouts and raise httpx exceptions.  ``connect_timeout``
    applies to requests that carry no ``timeout`` extension (``httpx.AsyncClient`` always sets
    one, so there the client's ``httpx.Timeout`` decides).
    """
    if aiohttp is not None:
        return AiohttpTransport(
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=keepalive_expiry,
            connect_timeout=connect_timeout,
        )
    return ShardedHTTPTransport(
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive_connections,
        keepalive_expiry=keepalive_expiry,
        connect_timeout=connect_timeout,
    )


def _map_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """The httpx exception for an aiohttp/asyncio failure: the one place this mapping lives.

    Order matters: aiohttp's timeout classes derive from its connection errors.
    """
    message = str(exc) or type(exc).__name__
    assert aiohttp is not None
    if isinstance(exc, _CONNECT_TIMEOUT_ERRORS) or (
        # aiohttp < 3.10 raises a plain ServerTimeoutError for connect timeouts too.
        type(exc) is aiohttp.ServerTimeoutError and message.startswith("Connection timeout")
    ):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError, TimeoutError)):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(
            "Server disconnected without sending a complete response.", request=request
        )
    if isinstance(exc, aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, aiohttp.ClientResponseError):  # unparsable status line or headers
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, _URL_ERRORS):
        return httpx.UnsupportedProtocol(message, request=request)
    if isinstance(exc, (aiohttp.ClientConnectionError, OSError)):
        return httpx.ReadError(message, request=request)
    return httpx.TransportError(message, request=request)


# Exception classes that only newer aiohttp releases have (3.10+), as isinstance() tuples.
_CONNECT_TIMEOUT_ERRORS: tuple[type[BaseException], ...] = tuple(
    cls for cls in (getattr(aiohttp, "ConnectionTimeoutError", None),) if isinstance(cls, type)
)
_URL_ERRORS: tuple[type[BaseException], ...] = tuple(
    cls
    for cls in (
        getattr(aiohttp, "InvalidURL", None),
        getattr(aiohttp, "NonHttpUrlClientError", None),
    )
    if isinstance(cls, type)
)

#: What `_map_error` understands; anything else (cancellation, bugs) propagates unchanged.
_MAPPED: tuple[type[BaseException], ...] = (
    (aiohttp.ClientError, asyncio.TimeoutError, OSError) if aiohttp is not None else ()
)


class _PoolTimeoutExpired(Exception):
    """Internal: a waiter's ``pool`` timeout ran out."""


class _Slots:
    """A counting semaphore with a timeout that never loses a slot to a race.

    ``asyncio.wait_for(semaphore.acquire(), t)`` can, on Python < 3.12, time out or be cancelled
    just after the acquire succeeded and so leak the slot.  Here a released slot is handed to the
    first waiter by resolving its future, and a waiter that gives up after being handed one
    passes it on.
    """

    __slots__ = ("_free", "_loop", "_waiters")

    def __init__(self, size: int, loop: asyncio.AbstractEventLoop) -> None:
        self._free = size
        self._loop = loop
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self, timeout: float | None) -> bool:
        """Take a slot; ``False`` if none came free within ``timeout`` seconds."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(waiter)
        timer = self._loop.call_later(timeout, _expire, waiter) if timeout is not None else None
        try:
            await waiter
        except _PoolTimeoutExpired:
            return False
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()  # handed a slot, then cancelled before running: pass it on
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if not waiter.done() or waiter.cancelled():
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
        return True

    def release(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(_PoolTimeoutExpired())


class _AiohttpResponseStream(httpx.AsyncByteStream):
    """The body of an aiohttp response, chunk by chunk as it arrives.

    ``aclose()`` hands the connection back to aiohttp's pool when the body was read to the end,
    and closes it otherwise (a half-read HTTP/1.1 connection cannot be reused), then frees the
    transport's pool slot.  It is idempotent.  An iterator class rather than an async generator
    so that a consumer that stops early leaves no half-run generator for the loop to finalise.
    """

    __slots__ = ("_content", "_open", "_request", "_response", "_slots")

    def __init__(self, response: ClientResponse, request: httpx.Request, slots: _Slots) -> None:
        self._response = response
        self._content = response.content
        self._request = request
        self._slots = slots
        self._open = True

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._content.readany()
        except _MAPPED as exc:
            raise _map_error(exc, self._request) from exc
        if not chunk:
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        if not self._open:
            return
        self._open = False
        try:
            if self._content.is_eof():
                self._response.release()
            else:
                self._response.close()
        finally:
            self._slots.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends requests through one pooled ``aiohttp.ClientSession``.

    httpx still builds the request (headers, auth, cookies, redirects, event hooks) and decodes
    the response (``Content-Encoding``, charset): aiohttp only moves bytes, with
    ``auto_decompress=False``, no cookie jar and no redirects of its own.

    Pooling: at most ``max_connections`` responses are open at once, enforced here so
    that waiting for a free connection is bounded by the request's ``pool`` timeout and raises
    ``httpx.PoolTimeout`` exactly as httpx does.  Idle connections are kept for
    ``keepalive_expiry`` seconds; aiohttp has no separate idle-connection cap, so
    ``max_keepalive_connections`` only matters when it is 0 (then every connection is closed
    after use).

    Timeouts come from the httpx request's ``extensions["timeout"]``: ``pool`` bounds the wait
    for a slot, ``connect`` the DNS + TCP + TLS setup (``httpx.ConnectTimeout``), ``read`` each
    wait for data from the server (``httpx.ReadTimeout``).  ``write`` is not enforced
    separately: aiohttp buffers writes and offers no per-write timeout.

    Proxies: ``httpx.AsyncClient`` routes proxied URLs (``proxy=`` or ``HTTPS_PROXY`` with
    ``trust_env``) to its own proxy transports, so they never reach this one.

    Like aiohttp itself, an idempotent request (GET, PUT, DELETE, ...) that fails on a reused
    keep-alive connection the server had already closed is retried once on a new connection;
    POST is never resent.

    Falls back to ``fallback`` (default: a :class:`ShardedHTTPTransport` with the same limits)
    for requests sent outside an asyncio loop and while httpx/httpcore are patched by a mock
    (see :func:`mocking_active`).
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        max_keepalive_connections: int = 20,
        keepalive_expiry: float | None = 5.0,
        connect_timeout: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        fallback: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if aiohttp is None:
            raise RuntimeError(
                "AiohttpTransport needs aiohttp: install azml-client[fast], "
                "or use default_transport() which falls back to httpx"
            )
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._max_connections = max_connections
        self._max_keepalive = max_keepalive_connections
        self._keepalive_expiry = keepalive_expiry
        self._connect_timeout = connect_timeout
        self._ssl_context = ssl_context
        self._fallback = fallback
        self._session: ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: _Slots | None = None
        self._timeouts: dict[tuple[float | None, float | None], ClientTimeout] = {}
        self._urls: dict[str, URL] = {}
        self._closed = False

    # -- plumbing ------------------------------------------------------------------------------

    def _get_fallback(self) -> httpx.AsyncBaseTransport:
        if self._fallback is None:
            extra: dict[str, Any] = {}
            if self._ssl_context is not None:
                extra["verify"] = self._ssl_context
            self._fallback = ShardedHTTPTransport(
                max_connections=self._max_connections,
                max_keepalive_connections=self._max_keepalive,
                keepalive_expiry=self._keepalive_expiry,
                connect_timeout=self._connect_timeout,
                **extra,
            )
        return self._fallback

    def _start(self, loop: asyncio.AbstractEventLoop) -> tuple[ClientSession, _Slots]:
        """Create the session inside the running loop (aiohttp requires one at construction)."""
        assert aiohttp is not None
        ssl_context = self._ssl_context
        if ssl_context is None:
            ssl_context = _default_ssl_context()
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            keepalive_timeout=self._keepalive_expiry,
            force_close=self._max_keepalive <= 0,
            ssl=ssl_context,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            timeout=aiohttp.ClientTimeout(total=None),
            max_line_size=_MAX_LINE_SIZE,
            max_field_size=_MAX_FIELD_SIZE,
        )
        self._session = session
        self._loop = loop
        self._slots = _Slots(self._max_connections, loop)
        return session, self._slots

    def _client_timeout(self, connect: float | None, read: float | None) -> ClientTimeout:
        key = (connect, read)
        timeout = self._timeouts.get(key)
        if timeout is None:
            assert aiohttp is not None
            if len(self._timeouts) > 64:
                self._timeouts.clear()
            timeout = aiohttp.ClientTimeout(total=None, connect=connect, sock_read=read)
            self._timeouts[key] = timeout
        return timeout

    def _url(self, url: httpx.URL) -> URL:
        """The aiohttp URL, without userinfo (httpx already turned it into a header)."""
        key = url.raw_scheme + b"://" + url.netloc + url.raw_path
        text = key.decode("ascii")
        cached = self._urls.get(text)
        if cached is None:
            if len(self._urls) > 256:
                self._urls.clear()
            cached = self._urls[text] = URL(text, encoded=True)
        return cached

    # -- httpx.AsyncBaseTransport ------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("Cannot send a request, as the transport has been closed.")
        loop = _asyncio_loop()
        if loop is None:  # not asyncio (trio): aiohttp cannot run here
            return await self._get_fallback().handle_async_request(request)
        if mocking_active():
            return await self._get_fallback().handle_async_request(request)

        session = self._session
        slots = self._slots
        if session is None or slots is None:
            session, slots = self._start(loop)
        elif loop is not self._loop:
            raise RuntimeError(
                "AiohttpTransport is bound to the event loop that sent its first request; "
                "create one transport (and client) per event loop"
            )

        scheme = request.url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(
                f"Request URL has an unsupported protocol '{scheme}://'.", request=request
            )

        timeouts: dict[str, float | None] = request.extensions.get("timeout") or {}
        if timeouts:
            connect = timeouts.get("connect")
            read = timeouts.get("read")
            pool = timeouts.get("pool")
        else:
            connect, read, pool = self._connect_timeout, None, None

        if not await slots.acquire(pool):
            raise httpx.PoolTimeout("Timed out waiting for a free connection", request=request)

        try:
            headers = CIMultiDict(
                [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
            )
            data: Any
            try:
                data = request.content or None
            except httpx.RequestNotRead:
                # A streaming upload: aiohttp frames it itself (chunked, unless a
                # Content-Length was given) and rejects a second Transfer-Encoding header.
                headers.popall("Transfer-Encoding", None)
                data = _iter_body(request.stream)
            skip: list[str] | None = None
            for name in _AUTO_HEADERS:
                if name not in headers:
                    skip = [*(skip or ()), name]
            if "Content-Type" not in headers:
                skip = [*(skip or ()), "Content-Type"]

            response = await session.request(
                request.method,
                self._url(request.url),
                headers=headers,
                data=data,
                skip_auto_headers=skip,
                allow_redirects=False,
                timeout=self._client_timeout(connect, read),
            )
        except _MAPPED as exc:
            slots.release()
            raise _map_error(exc, request) from exc
        except BaseException:
            slots.release()
            raise

        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_AiohttpResponseStream(response, request, slots),
            extensions={
                "http_version": _http_version(response),
                "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
            },
        )

    async def aclose(self) -> None:
        """Close the aiohttp session (all pooled connections) and the fallback transport."""
        self._closed = True
        session, self._session = self._session, None
        fallback, self._fallback = self._fallback, None
        try:
            if session is not None:
                await session.close()
        finally:
            if fallback is not None:
                await fallback.aclose()


def _asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop, or None under another async library (trio)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _http_version(response: ClientResponse) -> bytes:
    version = response.version
    if version is None:
        return b"HTTP/1.1"
    return _HTTP_VERSIONS.get((version.major, version.minor), b"HTTP/1.1")


async def _iter_body(stream: httpx.SyncByteStream | httpx.AsyncByteStream) -> AsyncIterator[bytes]:
    """Feed an httpx request body to aiohttp."""
    assert isinstance(stream, httpx.AsyncByteStream)
    async for chunk in stream:
        yield chunk
