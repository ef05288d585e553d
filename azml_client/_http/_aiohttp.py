"""An httpx transport that moves the bytes through one aiohttp session.

Why this module exists
----------------------
httpx is the public interface (users inject clients and transports, and test with respx), but
httpcore 1.0's pool does work quadratic in its number of connections on every request event:
on a 2-core machine at 64 requests in flight one httpx pool costs ~4.5 ms of CPU per request,
aiohttp ~0.3 ms (``benchmarks/RESULTS.md``). :class:`AiohttpTransport` keeps httpx's request
and response objects, per-request timeouts and exception types, and sends through aiohttp.

What it is not: a fallback chain. It runs on asyncio only and knows nothing of mocks; the
caller picks plain httpx for trio and while respx or pytest-httpx intercept httpx
(:func:`~._factory.mocks_active`).

Errors
------
:data:`EXCEPTION_MAP` turns every aiohttp / asyncio / OS failure into the most specific httpx
exception, like httpx's ``HTTPCORE_EXC_MAP``. The httpx exception is raised *outside* the
``except`` block, so it neither chains to nor carries the aiohttp one: aiohttp's exceptions
hold ``request_info``, whose headers include the ``Authorization`` key. For the same reason the
messages are fixed texts plus OS-level details (errno text, certificate verdict), never
aiohttp's own message, which can quote the URL or the bytes the server sent.

aiohttp quirks handled here
---------------------------
* ``proxy_auth=`` and ``BasicAuth`` are deprecated (aiohttp 3.14) and ``proxy_headers=`` is
  sent only on the ``CONNECT`` of https targets, so for http targets ``Proxy-Authorization``
  goes into the request's own headers (which a forward proxy receives and strips).
* Closing a connection detaches the body's reader without waking a read waiting on it (which
  then hangs for good), and reading after ``ClientSession.close()`` raises ``RuntimeError``:
  the body stream fails its own reader first and maps both to httpx errors.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import weakref
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
import httpx
from multidict import CIMultiDict
from yarl import URL

from .._constants import DEFAULT_LIMITS
from ._body import ClosesAtOnce
from ._factory import ProxyResolver, ProxyTypes, VerifyTypes, create_ssl_context

__all__ = ["EXCEPTION_MAP", "AiohttpTransport", "map_exception"]

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

# -- errors ------------------------------------------------------------------------------------


def _classes(*names: str) -> tuple[type[BaseException], ...]:
    """aiohttp's exception classes by name; names an older aiohttp lacks are left out."""
    found = (getattr(aiohttp, name, None) for name in names)
    return tuple(cls for cls in found if isinstance(cls, type) and issubclass(cls, BaseException))


#: aiohttp / asyncio / OS failures -> (httpx exception, fixed message), most specific first:
#: aiohttp's timeouts derive from its connection errors, its proxy and TLS errors from its
#: connector error, and all of them from ``OSError``.
EXCEPTION_MAP: Final[
    tuple[tuple[tuple[type[BaseException], ...], type[httpx.TransportError], str], ...]
] = (
    (
        _classes("ClientHttpProxyError"),
        httpx.ProxyError,
        "The proxy refused to open a tunnel to the server",
    ),
    (_classes("ClientProxyConnectionError"), httpx.ProxyError, "Could not connect to the proxy"),
    (_classes("ConnectionTimeoutError"), httpx.ConnectTimeout, "Timed out while connecting"),
    (
        (*_classes("SocketTimeoutError", "ServerTimeoutError"), asyncio.TimeoutError),
        httpx.ReadTimeout,
        "Timed out waiting for data from the server",
    ),
    (
        _classes("ClientConnectorCertificateError"),
        httpx.ConnectError,
        "TLS certificate verification failed",
    ),
    (_classes("ClientSSLError"), httpx.ConnectError, "TLS handshake failed"),
    (_classes("ClientConnectorDNSError"), httpx.ConnectError, "Could not resolve the host name"),
    (
        _classes("ClientConnectorError", "ServerFingerprintMismatch"),
        httpx.ConnectError,
        "Could not connect to the server",
    ),
    (
        _classes("ServerDisconnectedError"),
        httpx.RemoteProtocolError,
        "Server disconnected without sending a complete response",
    ),
    (
        _classes("ClientPayloadError"),
        httpx.RemoteProtocolError,
        "The response body was cut short or malformed",
    ),
    (
        _classes("ClientResponseError"),
        httpx.RemoteProtocolError,
        "The server sent an invalid HTTP response (status line or headers)",
    ),
    (
        _classes("NonHttpUrlClientError", "InvalidURL"),
        httpx.UnsupportedProtocol,
        "The request URL cannot be sent over HTTP",
    ),
    (
        _classes("ClientConnectionResetError", "UploadAbortedError"),
        httpx.WriteError,
        "The connection failed while the request was being sent",
    ),
    (
        (*_classes("ClientOSError", "ClientConnectionError"), OSError),
        httpx.ReadError,
        "The connection failed",
    ),
    (_classes("ClientError"), httpx.TransportError, "The HTTP exchange failed"),
)

#: What :func:`map_exception` understands; anything else (cancellation, bugs) propagates as is.
_MAPPED: Final = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


def map_exception(exc: BaseException, request: httpx.Request | None) -> httpx.TransportError:
    """The httpx exception for an aiohttp / asyncio / OS failure (see :data:`EXCEPTION_MAP`).

    The result does not reference ``exc``; raise it outside the ``except`` block that caught
    ``exc`` so that it does not chain to it either.
    """
    name = type(exc).__name__
    if name == "ServerTimeoutError" and str(exc).startswith("Connection timeout"):
        # aiohttp < 3.10 raises a plain ServerTimeoutError for connect timeouts too.
        return httpx.ConnectTimeout(f"Timed out while connecting (aiohttp {name})", request=request)
    httpx_class, text = next(
        ((cls, text) for classes, cls, text in EXCEPTION_MAP if isinstance(exc, classes)),
        (httpx.TransportError, "The HTTP exchange failed"),
    )
    detail = _detail(exc)
    suffix = f"{detail}; aiohttp {name}" if detail else f"aiohttp {name}"
    return httpx_class(f"{text} ({suffix})", request=request)


def _detail(exc: BaseException) -> str:
    """Operating-system text about ``exc`` that cannot quote request headers or the URL."""
    certificate = getattr(exc, "certificate_error", None)
    if isinstance(certificate, ssl.SSLCertVerificationError) and certificate.verify_message:
        return str(certificate.verify_message)
    os_error = getattr(exc, "os_error", None)  # aiohttp's connector errors wrap the OS one
    if isinstance(os_error, OSError):
        exc = os_error
    if (
        type(exc).__module__ in ("builtins", "socket", "ssl")
        and isinstance(exc, OSError)
        and exc.strerror
    ):
        return str(exc.strerror)
    return ""


#: What aiohttp raises when ``sock_read`` runs out (``ServerTimeoutError`` before 3.10).
_READ_TIMEOUT: Final[type[Exception]] = getattr(
    aiohttp, "SocketTimeoutError", aiohttp.ServerTimeoutError
)


def _forget(connector: aiohttp.BaseConnector) -> None:
    """Close ``connector`` synchronously (aiohttp's own ``_close`` copes with a closed loop)."""
    if not connector.closed:
        with contextlib.suppress(Exception):
            connector._close()


def _closed_error(request: httpx.Request | None) -> httpx.ReadError:
    return httpx.ReadError("The transport was closed while the response was read", request=request)


# -- pool slots --------------------------------------------------------------------------------


class _PoolTimeoutExpired(Exception):
    """Internal: a waiter's ``pool`` timeout ran out."""


class _Slots:
    """A counting semaphore with a timeout that never loses a slot to a race.

    ``asyncio.wait_for(semaphore.acquire(), t)`` can, on Python < 3.12, time out or be cancelled
    just after the acquire succeeded and so leak the slot. Here a released slot is handed to the
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


@dataclass(eq=False)
class _Pool:
    """What a transport binds to the event loop of its first request."""

    session: aiohttp.ClientSession
    slots: _Slots
    loop: asyncio.AbstractEventLoop
    #: Response bodies not closed yet, to wake their readers when the transport closes.
    streams: set[_ResponseStream] = field(default_factory=set)
    closed: bool = False


@dataclass(frozen=True)
class _ProxyRoute:
    """A proxy as aiohttp takes it: its URL, and the headers meant for the proxy alone."""

    url: URL
    headers: CIMultiDict[str]


# -- the response body -------------------------------------------------------------------------


class _Aborted(Exception):
    """Internal: set on a body's aiohttp reader to wake a read that closing would strand."""


class _ResponseStream(ClosesAtOnce):
    """The body of an aiohttp response, chunk by chunk as it arrives.

    ``aclose()`` hands the connection back to aiohttp's pool when the body was read to the end,
    and closes it otherwise (a half-read HTTP/1.1 connection cannot be reused), then frees the
    transport's pool slot. It is idempotent. An iterator class rather than an async generator
    so that a consumer that stops early leaves no half-run generator for the loop to finalise.

    Closing an aiohttp connection (``response.close()``, or the session's ``close()``) detaches
    the body's reader from the connection without waking a read already waiting on it, which
    then waits forever (aiohttp 3.14). So before closing, :meth:`abort` fails the reader itself;
    the read ends with ``httpx.ReadError`` (transport closed) or ``httpx.StreamClosed``.

    The read timeout of the body is kept here rather than by aiohttp: aiohttp's ``sock_read``
    timer is cancelled and scheduled anew on every network read, the largest cost of a
    streamed token in the transport. Each wait for data is bounded instead by one timer per
    body that, when it fires, fails the read if the current wait has lasted ``read`` seconds,
    and else is set again for when it would have (a wait is two clock readings; the timer is
    rescheduled about once per ``read`` seconds). aiohttp's own timer, set when the headers
    arrived, still bounds the first wait; the connection is handed its ``sock_read`` again by
    the next request that uses it. Time spent outside a read (the consumer's) never counts.
    """

    __slots__ = ("_body", "_idle", "_open", "_pool", "_request", "_response", "_since", "_timer")

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        request: httpx.Request | None,
        pool: _Pool,
        read_timeout: float | None = None,
    ):
        self._response = response
        self._body = response.content
        self._request = request
        self._pool = pool
        self._open = True
        #: The read timeout kept here (None: none, or aiohttp keeps it).
        self._idle: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        #: When the pending wait for data started (None: no read is waiting).
        self._since: float | None = None
        if read_timeout:
            connection = response.connection
            protocol = connection.protocol if connection is not None else None
            if protocol is not None and protocol.read_timeout == read_timeout:
                protocol.read_timeout = None  # from its next network read on
                self._idle = read_timeout
        pool.streams.add(self)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        error: Exception
        if self._pool.closed:
            error = _closed_error(self._request)
        elif not self._open:
            error = httpx.StreamClosed()
        else:
            try:
                body = self._body
                if self._idle is None:
                    chunk = await body.readany()
                else:
                    # What is already there needs no timer (a whole small answer, often);
                    # once the timer is set, readany() takes what is there or waits.
                    chunk = body.read_nowait() if self._timer is None else b""
                    if not chunk and (self._timer is not None or not body.is_eof()):
                        loop = self._pool.loop
                        self._since = since = loop.time()
                        if self._timer is None:
                            self._timer = loop.call_at(since + self._idle, self._check_idle)
                        try:
                            chunk = await body.readany()
                        finally:
                            self._since = None
            except (*_MAPPED, _Aborted, RuntimeError) as exc:
                if self._pool.closed:
                    error = _closed_error(self._request)
                elif not self._open:
                    error = httpx.StreamClosed()
                elif isinstance(exc, _MAPPED):
                    error = map_exception(exc, self._request)
                else:
                    raise
            else:
                if chunk:
                    return chunk
                if not self._pool.closed or self._body.is_eof():
                    raise StopAsyncIteration
                error = _closed_error(self._request)
        raise error  # outside the except block: no chain to aiohttp's exception

    def _check_idle(self) -> None:
        """The idle timer: fail the waiting read if it has waited long enough, else set the
        timer for when it will have (or leave it unset while no read waits)."""
        self._timer = None
        since, idle = self._since, self._idle
        if since is None or idle is None or not self._open:
            return
        loop = self._pool.loop
        if loop.time() - since >= idle:
            if not self._body.is_eof():
                self._body.set_exception(_READ_TIMEOUT("Timeout on reading data from socket"))
        else:
            self._timer = loop.call_at(since + idle, self._check_idle)

    def abort(self) -> None:
        """Fail a read waiting on this body, before its connection is closed under it."""
        if not self._body.is_eof():
            self._body.set_exception(_Aborted())

    def close(self) -> None:
        """What ``aclose()`` does (it never waits): see :class:`~._body.ClosesAtOnce`."""
        if not self._open:
            return
        self._open = False
        self._pool.streams.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            if self._body.is_eof():
                self._response.release()
            else:
                self.abort()
                self._response.close()
        finally:
            self._pool.slots.release()


# -- the transport -----------------------------------------------------------------------------


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends requests through one pooled ``aiohttp.ClientSession``.

    httpx still builds the request (headers, auth, cookies, redirects, event hooks) and decodes
    the response (``Content-Encoding``, charset): aiohttp only moves bytes, with
    ``auto_decompress=False``, no cookie jar, no redirects and no headers of its own.

    Pooling (``limits``): at most ``max_connections`` responses are open at once, enforced here
    so that waiting for a free connection is bounded by the request's ``pool`` timeout and
    raises ``httpx.PoolTimeout`` as httpx does. Idle connections are kept for
    ``keepalive_expiry`` seconds; aiohttp has no separate idle-connection cap, so
    ``max_keepalive_connections`` only matters when it is 0 (every connection closed after use).

    Timeouts come from the request's ``extensions["timeout"]`` (``httpx.AsyncClient`` always
    sets it; ``connect_timeout`` applies when it is absent): ``pool`` bounds the wait for a
    slot, ``connect`` the DNS + TCP + proxy + TLS setup (``httpx.ConnectTimeout``), ``read``
    each wait for data (``httpx.ReadTimeout``). ``write`` is not enforced: aiohttp buffers
    writes and has no per-write timeout.

    Proxies (``proxy``, or the environment with ``trust_env``, see
    :class:`~._factory.ProxyResolver`) must be ``http://``: aiohttp sends http targets to them
    in absolute form and tunnels https targets with ``CONNECT``. An https or SOCKS proxy is
    refused (``ValueError`` when given, ``httpx.ProxyError`` when it comes from the
    environment); the httpx transport serves those. TLS (``verify``) is read as httpx reads it
    (:func:`~._factory.create_ssl_context`). The session never reads the environment or
    ``~/.netrc`` itself.

    asyncio only: the session is created inside the event loop of the first request and bound
    to it. Another loop gets ``RuntimeError``, and so does a request outside asyncio (trio),
    which ``httpx.AsyncHTTPTransport`` serves.
    """

    def __init__(
        self,
        *,
        limits: httpx.Limits = DEFAULT_LIMITS,
        connect_timeout: float | None = None,
        proxy: ProxyTypes = None,
        verify: VerifyTypes = True,
        trust_env: bool = True,
    ) -> None:
        max_connections = limits.max_connections
        if max_connections is not None and max_connections < 1:
            raise ValueError("limits.max_connections must be at least 1 (or None: no limit)")
        self._limits = limits
        self._connect_timeout = connect_timeout
        self._ssl_context = create_ssl_context(verify, trust_env=trust_env)
        self._proxies = ProxyResolver(proxy, trust_env=trust_env)
        self._routes: dict[httpx.Proxy, _ProxyRoute] = {}
        explicit = self._proxies.explicit
        if explicit is not None:
            if explicit.url.scheme != "http":
                raise ValueError(
                    f"AiohttpTransport cannot use a {explicit.url.scheme}:// proxy "
                    f"({explicit.url.host}): aiohttp supports http:// proxies (https targets "
                    "are tunnelled with CONNECT). Give an http:// proxy URL, or send through "
                    "httpx (httpx.AsyncHTTPTransport), which supports https:// and socks5:// "
                    "proxies."
                )
            self._routes[explicit] = _route(explicit)
        self._pool: _Pool | None = None
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}
        self._urls: dict[bytes, URL] = {}
        #: The last URL object seen and its aiohttp URL: a client sends the same object again
        #: and again (it caches its routes), and reading an httpx.URL's parts costs.
        self._last_url: tuple[httpx.URL, URL] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"AiohttpTransport(limits={self._limits!r}, proxies={self._proxies!r})"

    # -- plumbing ------------------------------------------------------------------------------

    def _start(self, loop: asyncio.AbstractEventLoop) -> _Pool:
        """Create the session inside the running loop (aiohttp requires one at construction)."""
        limits = self._limits
        connector_options: dict[str, Any] = {}
        if limits.max_keepalive_connections == 0:
            connector_options["force_close"] = True
        else:
            connector_options["keepalive_timeout"] = limits.keepalive_expiry
        connector = aiohttp.TCPConnector(
            limit=limits.max_connections or 0,
            limit_per_host=0,
            ssl=self._ssl_context,
            **connector_options,
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
        slots = _Slots(limits.max_connections or 2**62, loop)
        self._pool = _Pool(session=session, slots=slots, loop=loop)
        # A transport dropped unclosed (its loop closed without finalising, a client garbage
        # collected): mark the pool closed without the loop, so aiohttp does not warn about
        # an unclosed session at exit. A no-op after aclose().
        weakref.finalize(self, _forget, connector)
        return self._pool

    def _client_timeout(self, connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
        key = (connect, read)
        timeout = self._timeouts.get(key)
        if timeout is None:
            if len(self._timeouts) > 64:
                self._timeouts.clear()
            timeout = aiohttp.ClientTimeout(total=None, connect=connect, sock_read=read)
            self._timeouts[key] = timeout
        return timeout

    def _url(self, url: httpx.URL) -> URL:
        """The aiohttp URL, without userinfo (httpx already turned it into a header)."""
        last = self._last_url
        if last is not None and last[0] is url:
            return last[1]
        key = url.raw_scheme + b"://" + url.netloc + url.raw_path
        cached = self._urls.get(key)
        if cached is None:
            if len(self._urls) > 256:
                self._urls.clear()
            cached = self._urls[key] = URL(key.decode("ascii"), encoded=True)
        self._last_url = (url, cached)
        return cached

    def _route(
        self, url: httpx.URL, request: httpx.Request | None
    ) -> _ProxyRoute | httpx.ProxyError | None:
        """The proxy for this request, or the error that refuses it (raised by the caller)."""
        proxy = self._proxies.proxy_for(url)
        if proxy is None:
            return None
        route = self._routes.get(proxy)
        if route is not None:
            return route
        if proxy.url.scheme != "http":
            return httpx.ProxyError(
                f"The environment names a {proxy.url.scheme}:// proxy ({proxy.url.host}) for "
                f"{url.scheme}:// URLs; AiohttpTransport supports http:// proxies only. "
                "Set an http:// proxy, list the host in NO_PROXY, or send through httpx "
                "(httpx.AsyncHTTPTransport), which supports https:// and socks5:// proxies.",
                request=request,
            )
        route = self._routes[proxy] = _route(proxy)
        return route

    # -- httpx.AsyncBaseTransport ------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        headers: CIMultiDict[str] = CIMultiDict(
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        )
        data: Any
        try:
            data = request.content or None
        except httpx.RequestNotRead:
            # A streaming upload: aiohttp frames it itself (chunked, unless a Content-Length
            # was given) and rejects a second Transfer-Encoding header.
            headers.popall("Transfer-Encoding", None)
            data = _iter_body(request.stream)
        timeouts: dict[str, float | None] = request.extensions.get("timeout") or {}
        return await self._exchange(request.method, request.url, headers, data, timeouts, request)

    async def post(
        self,
        url: httpx.URL,
        headers: Mapping[str, str],
        body: bytes,
        timeouts: Mapping[str, float | None],
    ) -> httpx.Response:
        """A POST of ``body`` with complete ``headers``, without building an ``httpx.Request``.

        The client's hot path (the answer is the same ``httpx.Response``): an ``httpx.Request``
        and the header conversion back cost about as much as the client's own work. Errors are
        the same httpx exceptions, without a ``request`` attached.
        """
        return await self._exchange("POST", url, CIMultiDict(headers), body, timeouts, None)

    async def _exchange(
        self,
        method: str,
        url: httpx.URL,
        headers: CIMultiDict[str],
        data: Any,
        timeouts: Mapping[str, float | None],
        request: httpx.Request | None,
    ) -> httpx.Response:
        if self._closed:
            raise RuntimeError("Cannot send a request, as the transport has been closed.")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            raise RuntimeError(
                "AiohttpTransport needs a running asyncio event loop (aiohttp runs only on "
                "asyncio); use httpx.AsyncHTTPTransport under trio or other event loops"
            )
        pool = self._pool
        if pool is None:
            pool = self._start(loop)
        elif loop is not pool.loop:
            raise RuntimeError(
                "AiohttpTransport is bound to the event loop that sent its first request; "
                "create one transport (and client) per event loop"
            )

        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(
                f"Request URL has an unsupported protocol '{scheme}://'.", request=request
            )
        route = self._route(url, request)
        if isinstance(route, httpx.ProxyError):
            raise route

        if timeouts:
            connect = timeouts.get("connect")
            read = timeouts.get("read")
            pool_timeout = timeouts.get("pool")
        else:
            connect, read, pool_timeout = self._connect_timeout, None, None

        if not await pool.slots.acquire(pool_timeout):
            raise httpx.PoolTimeout("Timed out waiting for a free connection", request=request)
        if pool.closed:
            pool.slots.release()
            raise RuntimeError("Cannot send a request, as the transport has been closed.")

        error: httpx.TransportError | None = None
        try:
            response = await self._send(
                pool.session, method, url, headers, data, route, connect, read
            )
        except (*_MAPPED, RuntimeError) as exc:
            pool.slots.release()
            if pool.closed:
                error = httpx.ReadError(
                    "The transport was closed while the request was in flight", request=request
                )
            elif isinstance(exc, _MAPPED):
                error = map_exception(exc, request)
            else:
                raise
        except BaseException:
            pool.slots.release()
            raise
        if error is not None:
            raise error  # outside the except block: no chain to aiohttp's exception

        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_ResponseStream(response, request, pool, read),
            extensions={
                "http_version": _http_version(response),
                "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
            },
        )

    async def _send(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: httpx.URL,
        headers: CIMultiDict[str],
        data: Any,
        route: _ProxyRoute | None,
        connect: float | None,
        read: float | None,
    ) -> aiohttp.ClientResponse:
        skip = [name for name in _AUTO_HEADERS if name not in headers]
        if "Content-Type" not in headers:
            skip.append("Content-Type")

        proxy_url: URL | None = None
        proxy_headers: CIMultiDict[str] | None = None
        if route is not None:
            proxy_url = route.url
            if url.scheme == "https":
                proxy_headers = route.headers  # sent on CONNECT, never to the server
            else:
                headers.extend(route.headers)  # aiohttp sends proxy_headers on CONNECT only

        return await session.request(
            method,
            self._url(url),
            headers=headers,
            data=data,
            skip_auto_headers=skip,
            allow_redirects=False,
            timeout=self._client_timeout(connect, read),
            proxy=proxy_url,
            proxy_headers=proxy_headers,
        )

    async def aclose(self) -> None:
        """Close the aiohttp session and every pooled connection; idempotent.

        Responses still open then fail with ``httpx.ReadError`` when read.
        """
        self._closed = True
        pool = self._pool
        if pool is None or pool.closed:
            return
        pool.closed = True
        for stream in list(pool.streams):
            stream.abort()
        await pool.session.close()


def _route(proxy: httpx.Proxy) -> _ProxyRoute:
    """aiohttp's view of an http:// proxy.

    Credentials become a ``Proxy-Authorization`` header encoded as httpx encodes them (UTF-8),
    not ``proxy_auth=aiohttp.BasicAuth(...)``: both are deprecated since aiohttp 3.14.
    """
    headers: CIMultiDict[str] = CIMultiDict(
        [(k.decode("latin-1"), v.decode("latin-1")) for k, v in proxy.headers.raw]
    )
    if proxy.auth is not None:
        token = base64.b64encode(":".join(proxy.auth).encode()).decode("ascii")
        headers["Proxy-Authorization"] = f"Basic {token}"
    return _ProxyRoute(url=URL(str(proxy.url)), headers=headers)


def _http_version(response: aiohttp.ClientResponse) -> bytes:
    version = response.version
    if version is None:
        return b"HTTP/1.1"
    return _HTTP_VERSIONS.get((version.major, version.minor), b"HTTP/1.1")


async def _iter_body(stream: httpx.SyncByteStream | httpx.AsyncByteStream) -> AsyncIterator[bytes]:
    """Feed an httpx request body to aiohttp."""
    assert isinstance(stream, httpx.AsyncByteStream)
    async for chunk in stream:
        yield chunk
