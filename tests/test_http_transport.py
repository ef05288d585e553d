"""Tests of ``azml_client._http._aiohttp`` and ``._factory`` against loopback servers.

Servers: an ``aiohttp.web`` app for well-behaved HTTP (plain, and over TLS with a ``trustme``
CA), a raw asyncio server for the misbehaviour a framework will not produce, and a forward
proxy that records what it relays (both in ``tests/faultserver.py``). Everything listens on
127.0.0.1 on ports the OS picks. No assertion depends on timing; the few waits are generous
bounds that turn a would-be hang into a failure.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import ssl
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import httpx
import pytest
import respx
import trustme
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from azml_client._http._aiohttp import EXCEPTION_MAP, AiohttpTransport, map_exception
from azml_client._http._factory import (
    ProxyResolver,
    aiohttp_transport,
    create_ssl_context,
    httpx_client,
    mocks_active,
)

from .faultserver import forward_proxy, full_backlog, raw_server, refused_port

MAX = 8
LIMITS = httpx.Limits(max_connections=MAX, max_keepalive_connections=MAX, keepalive_expiry=5.0)
#: Bound on any single wait in a test: a hang becomes a failure, never a timing assertion.
HANG = 10.0
SECRET = "Bearer SECRET-4f1c"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's proxy settings must not change results; proxy tests set their own."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.delenv("REQUEST_METHOD", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


# -- servers ---------------------------------------------------------------------------------


class Control:
    """Lets a test step the streaming handler: the server sends chunk i+1 only after a step."""

    def __init__(self) -> None:
        self.steps: asyncio.Queue[None] = asyncio.Queue()
        self.never = asyncio.Event()
        self.waiting = asyncio.Event()


CONTROL = web.AppKey("control", Control)


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path_qs,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body": body.decode("latin-1"),
        },
        headers=[("X-Multi", "one"), ("X-Multi", "two")],
    )


async def _stepped_stream(request: web.Request) -> web.StreamResponse:
    control = request.app[CONTROL]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for i in range(3):
        await response.write(f"data: {i}\n\n".encode())
        await control.steps.get()
    await response.write_eof()
    return response


async def _endless_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):
        for i in range(100_000):
            await response.write(f"data: {i}\n\n".encode())
            await asyncio.sleep(0.001)
    return response


async def _hang_before_headers(request: web.Request) -> web.Response:
    request.app[CONTROL].waiting.set()
    await request.app[CONTROL].never.wait()
    return web.Response(text="never")


async def _hang_mid_body(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    await response.write(b"first")
    await request.app[CONTROL].never.wait()
    return response


async def _gzip(request: web.Request) -> web.Response:
    return web.Response(
        body=gzip.compress(b"squeezed " * 100),
        headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
    )


async def _cookie(request: web.Request) -> web.Response:
    response = web.Response(text="ok")
    response.set_cookie("session", "abc")
    return response


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/echo?redirected=1")


async def _status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]))


@contextlib.asynccontextmanager
async def app_server(
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[tuple[str, Control]]:
    control = Control()
    app = web.Application()
    app[CONTROL] = control
    app.router.add_route("*", "/echo", _echo)
    app.router.add_get("/stepped", _stepped_stream)
    app.router.add_get("/endless", _endless_stream)
    app.router.add_get("/hang-headers", _hang_before_headers)
    app.router.add_get("/hang-body", _hang_mid_body)
    app.router.add_get("/gzip", _gzip)
    app.router.add_get("/cookie", _cookie)
    app.router.add_get("/redirect", _redirect)
    app.router.add_route("*", "/status/{code}", _status)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    scheme = "https" if ssl_context is not None else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}", control
    finally:
        control.never.set()
        await runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Control]]:
    async with app_server() as served:
        yield served


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_pem(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
async def tls_server(ca: trustme.CA) -> AsyncIterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    async with app_server(context) as (base, _):
        yield base


@pytest.fixture
def server_in_thread() -> Iterator[str]:
    """A trivial HTTP server in a thread, for tests that drive several event loops."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return None

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture
async def aio() -> AsyncIterator[AiohttpTransport]:
    transport = AiohttpTransport(limits=LIMITS)
    try:
        yield transport
    finally:
        await transport.aclose()


class Borrowed(httpx.AsyncBaseTransport):
    """Lends a transport to a client without letting the client close it.

    So a test can inspect the transport's pool after the client is gone; the fixture closes it.
    """

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.transport.handle_async_request(request)


def connector(transport: AiohttpTransport) -> aiohttp.BaseConnector:
    pool = transport._pool
    assert pool is not None
    conn = pool.session.connector
    assert conn is not None
    return conn


def acquired(transport: AiohttpTransport) -> int:
    """Connections aiohttp has handed out and not yet got back (white-box)."""
    return len(connector(transport)._acquired)


def free_slots(transport: AiohttpTransport) -> int:
    pool = transport._pool
    assert pool is not None
    return pool.slots._free


def sent_headers(response: httpx.Response) -> dict[str, str]:
    """The request headers the echo server received (names lowercased)."""
    return {k.lower(): v for k, v in response.json()["headers"]}


def exception_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or any(current is seen for seen in chain):
            continue
        chain.append(current)
        pending += [current.__cause__, current.__context__]
    return chain


# -- requests and responses --------------------------------------------------------------------


async def test_get_and_post_round_trip(aio: AiohttpTransport, server: tuple[str, Control]) -> None:
    base, _ = server
    async with httpx.AsyncClient(transport=Borrowed(aio), headers={"X-Default": "d"}) as client:
        got = await client.get(f"{base}/echo?q=1%202", headers={"X-Custom": "Value"})
        posted = await client.post(
            f"{base}/echo", content=b"\x00\xffraw", headers={"Content-Type": "app/x"}
        )
    assert got.status_code == 200
    assert got.http_version == "HTTP/1.1"
    assert got.reason_phrase == "OK"
    data = got.json()
    assert data["method"] == "GET"
    assert data["path"] == "/echo?q=1%202"
    sent = sent_headers(got)
    assert sent["x-custom"] == "Value"
    assert sent["x-default"] == "d"
    # httpx's own defaults go out, not aiohttp's.
    assert sent["user-agent"].startswith("python-httpx/")
    assert "content-length" not in sent  # a GET without a body has none
    assert got.headers.get_list("x-multi") == ["one", "two"]

    pdata = posted.json()
    assert pdata["method"] == "POST"
    assert pdata["body"].encode("latin-1") == b"\x00\xffraw"
    psent = sent_headers(posted)
    assert psent["content-type"] == "app/x"
    assert psent["content-length"] == "5"


async def test_no_header_is_invented(aio: AiohttpTransport, server: tuple[str, Control]) -> None:
    base, _ = server
    async with httpx.AsyncClient(transport=Borrowed(aio)) as client:
        for name in ("user-agent", "accept", "accept-encoding", "connection"):
            client.headers.pop(name)
        response = await client.post(f"{base}/echo", content=b"abc")
    assert set(sent_headers(response)) == {"host", "content-length"}


async def test_streaming_upload(aio: AiohttpTransport, server: tuple[str, Control]) -> None:
    base, _ = server

    async def body() -> AsyncIterator[bytes]:
        for part in (b"one,", b"two,", b"three"):
            yield part

    async with httpx.AsyncClient(transport=Borrowed(aio)) as client:
        response = await client.post(f"{base}/echo", content=body())
    assert response.json()["body"] == "one,two,three"


async def test_httpx_decodes_gzip_and_keeps_cookies(
    aio: AiohttpTransport, server: tuple[str, Control]
) -> None:
    base, _ = server
    async with httpx.AsyncClient(transport=Borrowed(aio)) as client:
        zipped = await client.get(f"{base}/gzip")
        await client.get(f"{base}/cookie")
        echoed = await client.get(f"{base}/echo")
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.text == "squeezed " * 100
    assert client.cookies["session"] == "abc"
    assert sent_headers(echoed)["cookie"] == "session=abc"


async def test_redirects_are_httpx_s_business(
    aio: AiohttpTransport, server: tuple[str, Control]
) -> None:
    base, _ = server
    async with httpx.AsyncClient(transport=Borrowed(aio)) as client:
        raw = await client.get(f"{base}/redirect")
        followed = await client.get(f"{base}/redirect", follow_redirects=True)
    assert raw.status_code == 302
    assert followed.status_code == 200
    assert followed.json()["path"] == "/echo?redirected=1"
    assert [r.status_code for r in followed.history] == [302]


async def test_head_and_no_content(aio: AiohttpTransport, server: tuple[str, Control]) -> None:
    base, _ = server
    async with httpx.AsyncClient(transport=Borrowed(aio)) as client:
        head = await client.head(f"{base}/echo")
        empty = await client.delete(f"{base}/status/204")
    assert head.status_code == 200 and head.content == b""
    assert empty.status_code == 204 and empty.content == b""
    assert acquired(aio) == 0
    assert free_slots(aio) == MAX


async def test_connections_are_reused(aio: AiohttpTransport, server: tuple[str, Control]) -> None:
    base, _ = server
    async with httpx.AsyncClient(transport=Borrowed(aio)) as client:
        for _ in range(5):
            await client.get(f"{base}/echo")
    assert sum(len(conns) for conns in connector(aio)._conns.values()) == 1


async def test_no_keepalive_closes_each_connection(server: tuple[str, Control]) -> None:
    base, _ = server
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=0)
    async with httpx.AsyncClient(transport=AiohttpTransport(limits=limits)) as client:
        for _ in range(2):
            assert (await client.get(f"{base}/echo")).status_code == 200
        transport = client._transport
        assert isinstance(transport, AiohttpTransport)
        assert sum(len(conns) for conns in connector(transport)._conns.values()) == 0


@pytest.mark.parametrize("max_connections", [None, 1])
async def test_limits(max_connections: int | None, server: tuple[str, Control]) -> None:
    base, _ = server
    limits = httpx.Limits(max_connections=max_connections)
    async with httpx.AsyncClient(transport=AiohttpTransport(limits=limits)) as client:
        responses = await asyncio.gather(*(client.get(f"{base}/echo") for _ in range(4)))
    assert [r.status_code for r in responses] == [200] * 4


def test_rejects_an_empty_pool() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        AiohttpTransport(limits=httpx.Limits(max_connections=0))


# -- streaming ---------------------------------------------------------------------------------


async def test_stream_delivers_chunks_as_they_arrive(
    aio: AiohttpTransport, server: tuple[str, Control]
) -> None:
    """The server only sends chunk i+1 after the client saw chunk i: buffering would hang."""
    base, control = server
    seen: list[bytes] = []
    with anyio.fail_after(HANG):
        async with (
            httpx.AsyncClient(transport=Borrowed(aio)) as client,
            client.stream("GET", f"{base}/stepped") as response,
        ):
            async for chunk in response.aiter_raw():
                seen.append(chunk)
                control.steps.put_nowait(None)
    assert b"".join(seen) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert len(seen) == 3
    assert acquired(aio) == 0
    assert free_slots(aio) == MAX


async def test_early_close_releases_the_connection(
    aio: AiohttpTransport, server: tuple[str, Control]
) -> None:
    base, _ = server
    with anyio.fail_after(HANG):
        async with httpx.AsyncClient(transport=Borrowed(aio)) as client:
            async with client.stream("GET", f"{base}/endless") as response:
                async for _line in response.aiter_lines():
                    assert acquired(aio) == 1
                    assert free_slots(aio) == MAX - 1
                    break
            assert acquired(aio) == 0
            assert free_slots(aio) == MAX
            # The half-read connection was closed, not pooled; the next request still works.
            again = await client.get(f"{base}/echo")
    assert again.status_code == 200


async def test_every_slot_comes_back_under_concurrency(
    aio: AiohttpTransport, server: tuple[str, Control]
) -> None:
    base, _ = server
    with anyio.fail_after(HANG):
        async with httpx.AsyncClient(transport=Borrowed(aio)) as client:
            responses = await asyncio.gather(*(client.get(f"{base}/echo") for _ in range(40)))
    assert all(r.status_code == 200 for r in responses)
    assert acquired(aio) == 0
    assert free_slots(aio) == MAX


# -- timeouts ----------------------------------------------------------------------------------


async def test_read_timeout_waiting_for_headers(
    aio: AiohttpTransport, server: tuple[str, Control]
) -> None:
    base, _ = server
    timeout = httpx.Timeout(HANG, read=0.2)
    async with httpx.AsyncClient(transport=Borrowed(aio), timeout=timeout) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{base}/hang-headers")
    assert free_slots(aio) == MAX


async def test_read_timeout_mid_body(aio: AiohttpTransport, server: tuple[str, Control]) -> None:
    base, _ = server
    timeout = httpx.Timeout(HANG, read=0.2)
    async with (
        httpx.AsyncClient(transport=Borrowed(aio), timeout=timeout) as client,
        client.stream("GET", f"{base}/hang-body") as response,
    ):
        iterator = response.aiter_raw()
        assert await iterator.__anext__() == b"first"
        with pytest.raises(httpx.ReadTimeout):
            await iterator.__anext__()
    assert acquired(aio) == 0
    assert free_slots(aio) == MAX


async def test_pool_timeout(server: tuple[str, Control]) -> None:
    base, _ = server
    transport = AiohttpTransport(limits=httpx.Limits(max_connections=1))
    timeout = httpx.Timeout(HANG, pool=0.1)
    async with httpx.AsyncClient(transport=transport, timeout=timeout) as client:
        async with client.stream("GET", f"{base}/endless"):
            with pytest.raises(httpx.PoolTimeout):
                await client.get(f"{base}/echo")
        # The slot holder closed: the pool has room again.
        assert (await client.get(f"{base}/echo")).status_code == 200
        assert free_slots(transport) == 1


async def test_cancelled_waiter_gives_no_slot_away(server: tuple[str, Control]) -> None:
    base, _ = server
    transport = AiohttpTransport(limits=httpx.Limits(max_connections=1))
    with anyio.fail_after(HANG):
        async with httpx.AsyncClient(transport=transport) as client:
            async with client.stream("GET", f"{base}/endless"):
                waiter = asyncio.create_task(client.get(f"{base}/echo"))
                await asyncio.sleep(0)
                waiter.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiter
            assert (await client.get(f"{base}/echo")).status_code == 200
            assert free_slots(transport) == 1


async def test_connect_timeout(aio: AiohttpTransport) -> None:
    with full_backlog() as port:
        timeout = httpx.Timeout(HANG, connect=0.2)
        async with httpx.AsyncClient(transport=Borrowed(aio), timeout=timeout) as client:
            with pytest.raises(httpx.ConnectTimeout):
                await client.get(f"http://127.0.0.1:{port}/")
    assert free_slots(aio) == MAX


async def test_transport_connect_timeout_applies_without_request_timeouts() -> None:
    transport = AiohttpTransport(limits=LIMITS, connect_timeout=0.2)
    try:
        with full_backlog() as port:
            request = httpx.Request("GET", f"http://127.0.0.1:{port}/")
            assert "timeout" not in request.extensions
            with pytest.raises(httpx.ConnectTimeout):
                await transport.handle_async_request(request)
    finally:
        await transport.aclose()


# -- failures ----------------------------------------------------------------------------------


async def test_post_without_an_httpx_request(
    aio: AiohttpTransport, server: tuple[str, Control]
) -> None:
    """The client's hot path: complete headers in, the same httpx.Response out."""
    base, _ = server
    url = httpx.URL(f"{base}/echo?api-version=1")
    headers = {"Content-Type": "application/json", "Authorization": SECRET, "X-Id": "7"}
    response = await aio.post(url, headers, b'{"a": 1}', {"connect": 5.0, "read": 5.0})
    try:
        assert isinstance(response.stream, httpx.AsyncByteStream)
        body = b"".join([chunk async for chunk in response.stream])
    finally:
        await response.aclose()
    data = json.loads(body)
    assert (response.status_code, data["method"], data["path"]) == (
        200,
        "POST",
        "/echo?api-version=1",
    )
    assert data["body"] == '{"a": 1}'
    sent = {k.lower(): v for k, v in data["headers"]}
    assert (sent["x-id"], sent["authorization"], sent["content-length"]) == ("7", SECRET, "8")
    assert free_slots(aio) == MAX
    with pytest.raises(httpx.ConnectError) as info:
        await aio.post(httpx.URL(f"http://127.0.0.1:{refused_port()}/"), headers, b"{}", {})
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert "SECRET" not in repr(vars(info.value))
    assert free_slots(aio) == MAX


async def test_connection_refused(aio: AiohttpTransport) -> None:
    async with httpx.AsyncClient(transport=Borrowed(aio)) as client:
        with pytest.raises(httpx.ConnectError) as info:
            await client.get(f"http://127.0.0.1:{refused_port()}/")
    assert info.value.request.url.host == "127.0.0.1"
    assert "aiohttp ClientConnectorError" in str(info.value)
    assert free_slots(aio) == MAX


async def test_disconnect_mid_body(aio: AiohttpTransport) -> None:
    async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        await writer.drain()

    async with raw_server(cut_short) as base, httpx.AsyncClient(transport=Borrowed(aio)) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(f"{base}/")
        async with client.stream("GET", f"{base}/") as response:
            with pytest.raises(httpx.RemoteProtocolError):
                await response.aread()
    assert acquired(aio) == 0
    assert free_slots(aio) == MAX


async def test_disconnect_before_response(aio: AiohttpTransport) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        return None

    async with raw_server(hang_up) as base, httpx.AsyncClient(transport=Borrowed(aio)) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(f"{base}/", content=b"{}")
    assert free_slots(aio) == MAX


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"NOT HTTP AT ALL\r\n\r\n", id="not-http"),
        pytest.param("HTTP/1.1 ²00 OK\r\nContent-Length: 0\r\n\r\n".encode(), id="digit-lookalike"),
        pytest.param(b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", id="status-too-long"),
        pytest.param(b"HTTP/1.1 200 OK\r\nNoColonHere\r\nContent-Length: 0\r\n\r\n", id="no-colon"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", id="bad-length"),
        pytest.param(b"HTTP/1.1 200 OK\r\nX\xff: 1\r\nContent-Length: 0\r\n\r\n", id="bad-name"),
    ],
)
async def test_unparsable_response(aio: AiohttpTransport, answer: bytes) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(answer)
        await writer.drain()

    async with raw_server(garbage) as base, httpx.AsyncClient(transport=Borrowed(aio)) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(f"{base}/")
    assert free_slots(aio) == MAX


async def test_unsupported_scheme(aio: AiohttpTransport) -> None:
    with pytest.raises(httpx.UnsupportedProtocol):
        await aio.handle_async_request(httpx.Request("GET", "ftp://127.0.0.1/x"))


def _request_info() -> aiohttp.RequestInfo:
    url = URL("http://127.0.0.1:1/score?sig=SECRET-4f1c")
    headers = CIMultiDictProxy(CIMultiDict({"Authorization": SECRET}))
    return aiohttp.RequestInfo(url, "POST", headers, url)


def _connection_key() -> Any:
    fields = aiohttp.client_reqrep.ConnectionKey._fields
    values = {"host": "127.0.0.1", "port": 1, "is_ssl": False, "ssl": True}
    return aiohttp.client_reqrep.ConnectionKey._make(values.get(name) for name in fields)


def _error_cases() -> list[tuple[BaseException, type[httpx.TransportError]]]:
    key = _connection_key()
    info = _request_info()
    cert_error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cert_error.verify_message = "unable to get local issuer certificate"
    return [
        # aiohttp < 3.10 spells both timeouts as ServerTimeoutError.
        (aiohttp.ServerTimeoutError("Connection timeout to host x"), httpx.ConnectTimeout),
        (aiohttp.ServerTimeoutError("Timeout on reading data from socket"), httpx.ReadTimeout),
        (aiohttp.ConnectionTimeoutError("c"), httpx.ConnectTimeout),
        (aiohttp.SocketTimeoutError("s"), httpx.ReadTimeout),
        (asyncio.TimeoutError(), httpx.ReadTimeout),
        (aiohttp.ClientConnectorError(key, OSError(111, "refused")), httpx.ConnectError),
        (aiohttp.ClientConnectorDNSError(key, OSError(-2, "unknown")), httpx.ConnectError),
        (aiohttp.ClientConnectorCertificateError(key, cert_error), httpx.ConnectError),
        (aiohttp.ClientConnectorSSLError(key, ssl.SSLError(1, "bad")), httpx.ConnectError),
        (aiohttp.ClientProxyConnectionError(key, OSError(111, "refused")), httpx.ProxyError),
        (aiohttp.ClientHttpProxyError(info, (), status=407, message=SECRET), httpx.ProxyError),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError(SECRET), httpx.RemoteProtocolError),
        (
            aiohttp.ClientResponseError(info, (), status=400, message=SECRET),
            httpx.RemoteProtocolError,
        ),
        (aiohttp.NonHttpUrlClientError(URL("ftp://x/")), httpx.UnsupportedProtocol),
        (aiohttp.InvalidURL(URL("http://x/?sig=SECRET")), httpx.UnsupportedProtocol),
        (aiohttp.ClientConnectionResetError(SECRET), httpx.WriteError),
        (aiohttp.ClientOSError(104, SECRET), httpx.ReadError),
        (aiohttp.ClientConnectionError(SECRET), httpx.ReadError),
        (ConnectionResetError(104, "reset"), httpx.ReadError),
        (aiohttp.ClientError(SECRET), httpx.TransportError),
    ]


def test_exception_table() -> None:
    request = httpx.Request("POST", "http://127.0.0.1:1/score", headers={"Authorization": SECRET})
    for exc, expected in _error_cases():
        mapped = map_exception(exc, request)
        assert type(mapped) is expected, (exc, mapped)
        assert mapped.request is request
        assert "SECRET" not in str(mapped), mapped
        assert f"aiohttp {type(exc).__name__}" in str(mapped)
        assert mapped.__cause__ is None and mapped.__context__ is None
    cert = map_exception(_error_cases()[7][0], request)
    assert "unable to get local issuer certificate" in str(cert)


def test_exception_table_lists_specific_classes_first() -> None:
    """No entry may be shadowed by an earlier, broader one."""
    for index, (classes, _, _) in enumerate(EXCEPTION_MAP):
        for earlier, _, _ in EXCEPTION_MAP[:index]:
            for cls in classes:
                assert not issubclass(cls, earlier), (cls, earlier)


async def _fail_at_connect(client: httpx.AsyncClient) -> None:
    await client.get(f"http://127.0.0.1:{refused_port()}/")


async def _status_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write("HTTP/1.1 ²00 OK\r\nContent-Length: 0\r\n\r\n".encode())
    await writer.drain()


async def _mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsome")
    await writer.drain()


@pytest.mark.parametrize("where", ["connect", "status-line", "mid-body"])
async def test_no_secret_in_exception_chain(aio: AiohttpTransport, where: str) -> None:
    handler = _mid_body if where == "mid-body" else _status_line
    headers = {"Authorization": SECRET}
    async with (
        raw_server(handler) as base,
        httpx.AsyncClient(transport=Borrowed(aio), headers=headers) as client,
    ):
        with pytest.raises(httpx.TransportError) as info:
            if where == "connect":
                await _fail_at_connect(client)
            elif where == "status-line":
                await client.get(f"{base}/score?x=1")
            else:
                async with client.stream("GET", f"{base}/score") as response:
                    await response.aread()
    exc = info.value
    assert exc.__cause__ is None and exc.__context__ is None
    for link in exception_chain(exc):
        for text in (repr(link), str(link), repr(vars(link))):
            assert "SECRET" not in text, (link, text)


# -- lifecycle ---------------------------------------------------------------------------------


async def test_closed_transport_refuses(server: tuple[str, Control]) -> None:
    base, _ = server
    transport = AiohttpTransport(limits=LIMITS)
    await transport.aclose()  # closing an unused transport is fine
    transport = AiohttpTransport(limits=LIMITS)
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get(f"{base}/echo")
    with pytest.raises(RuntimeError, match="closed"):
        await transport.handle_async_request(httpx.Request("GET", f"{base}/echo"))
    await transport.aclose()  # idempotent


async def _next_chunk(chunks: AsyncIterator[bytes]) -> bytes:
    return await chunks.__anext__()


async def test_reading_after_close_raises_an_httpx_error(server: tuple[str, Control]) -> None:
    base, _ = server
    transport = AiohttpTransport(limits=LIMITS)
    with anyio.fail_after(HANG):
        async with (
            httpx.AsyncClient(transport=Borrowed(transport)) as client,
            client.stream("GET", f"{base}/hang-body") as waiting,
            client.stream("GET", f"{base}/endless") as later,
        ):
            pending = waiting.aiter_raw()
            assert await pending.__anext__() == b"first"
            read = asyncio.create_task(_next_chunk(pending))  # waits for data that never comes
            chunks = later.aiter_raw()
            assert await chunks.__anext__()
            await asyncio.sleep(0)  # let the pending read reach aiohttp
            await transport.aclose()
            with pytest.raises(httpx.ReadError):
                await read
            with pytest.raises(httpx.ReadError):
                async for _ in chunks:
                    pass
    await transport.aclose()


async def test_closing_while_waiting_for_headers(server: tuple[str, Control]) -> None:
    base, control = server
    transport = AiohttpTransport(limits=LIMITS)
    with anyio.fail_after(HANG):
        async with httpx.AsyncClient(transport=Borrowed(transport)) as client:
            waiting = asyncio.create_task(client.get(f"{base}/hang-headers"))
            await control.waiting.wait()
            await transport.aclose()
            with pytest.raises(httpx.ReadError, match="closed"):
                await waiting


async def test_closing_a_body_under_a_pending_read(
    aio: AiohttpTransport, server: tuple[str, Control]
) -> None:
    """aiohttp leaves such a read waiting forever; the stream must end it."""
    base, _ = server
    request = httpx.Request("GET", f"{base}/hang-body")
    with anyio.fail_after(HANG):
        response = await aio.handle_async_request(request)
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        chunks = stream.__aiter__()
        assert await chunks.__anext__() == b"first"
        read = asyncio.create_task(_next_chunk(chunks))
        await asyncio.sleep(0)
        await stream.aclose()
        with pytest.raises(httpx.StreamClosed):
            await read
    assert acquired(aio) == 0
    assert free_slots(aio) == MAX


def test_outside_asyncio_raises() -> None:
    """Stands in for trio: no asyncio loop is running while the coroutine runs."""
    transport = AiohttpTransport(limits=LIMITS)
    coroutine = transport.handle_async_request(httpx.Request("GET", "http://127.0.0.1:1/"))
    with pytest.raises(RuntimeError, match="asyncio") as info:
        coroutine.send(None)
    assert "httpx.AsyncHTTPTransport" in str(info.value)


def test_bound_to_first_loop(server_in_thread: str) -> None:
    transport = AiohttpTransport(limits=LIMITS)
    first = asyncio.new_event_loop()
    try:

        async def get() -> int:
            response = await transport.handle_async_request(
                httpx.Request("GET", f"{server_in_thread}/")
            )
            await response.aread()
            await response.aclose()
            return response.status_code

        assert first.run_until_complete(get()) == 200
        with pytest.raises(RuntimeError, match="event loop"):
            asyncio.run(get())
        first.run_until_complete(transport.aclose())
    finally:
        first.close()


# -- proxies -----------------------------------------------------------------------------------


async def test_explicit_proxy_is_used(server: tuple[str, Control]) -> None:
    base, _ = server
    async with forward_proxy() as proxy:
        transport = AiohttpTransport(limits=LIMITS, proxy=proxy.url, trust_env=False)
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get(f"{base}/echo?x=1")
    assert response.json()["path"] == "/echo?x=1"
    assert proxy.lines == [f"GET {base}/echo?x=1 HTTP/1.1"]


@pytest.mark.parametrize("trust_env", [True, False])
async def test_env_proxy_follows_trust_env(
    trust_env: bool, server: tuple[str, Control], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = server
    async with forward_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        transport = AiohttpTransport(limits=LIMITS, trust_env=trust_env)
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get(f"{base}/echo")
    assert response.status_code == 200
    assert proxy.lines == ([f"GET {base}/echo HTTP/1.1"] if trust_env else [])


@pytest.mark.parametrize(
    "no_proxy", ["127.0.0.1", "localhost,127.0.0.1", "127.0.0.0/8", "127.0.0.1:{port}", "*"]
)
async def test_no_proxy_bypasses(
    no_proxy: str, server: tuple[str, Control], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = server
    async with forward_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", no_proxy.format(port=httpx.URL(base).port))
        async with httpx.AsyncClient(transport=AiohttpTransport(limits=LIMITS)) as client:
            response = await client.get(f"{base}/echo")
    assert response.status_code == 200
    assert proxy.lines == []


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("source", ["explicit", "env"])
async def test_proxy_credentials_reach_the_proxy_only(
    source: str, server: tuple[str, Control], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = server
    async with forward_proxy() as proxy:
        with_credentials = proxy.url.replace("http://", "http://us%40er:p%3Ass@")
        if source == "env":
            monkeypatch.setenv("HTTP_PROXY", with_credentials)
            transport = AiohttpTransport(limits=LIMITS)
        else:
            transport = AiohttpTransport(limits=LIMITS, proxy=with_credentials)
        assert "p:ss" not in repr(transport) and "p%3Ass" not in repr(transport)
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get(f"{base}/echo")
    assert response.status_code == 200
    [seen] = proxy.requests
    assert seen.headers["proxy-authorization"] == _basic("us@er", "p:ss")


async def test_https_through_connect_proxy(
    tls_server: str, ca_pem: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with forward_proxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url.replace("http://", "http://user:pw@"))
        transport = AiohttpTransport(limits=LIMITS, verify=ca_pem)
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get(f"{tls_server}/echo")
    assert response.status_code == 200
    [seen] = proxy.requests
    assert seen.line == f"CONNECT {httpx.URL(tls_server).netloc.decode()} HTTP/1.1"
    assert seen.headers["proxy-authorization"] == _basic("user", "pw")
    assert "proxy-authorization" not in sent_headers(response)  # the tunnel hid nothing


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_unreachable_proxy(scheme: str) -> None:
    transport = AiohttpTransport(limits=LIMITS, proxy=f"http://127.0.0.1:{refused_port()}")
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ProxyError, match="proxy"):
            await client.get(f"{scheme}://127.0.0.1:{refused_port()}/")


async def test_proxy_refusing_the_tunnel() -> None:
    async with forward_proxy(connect_status=407) as proxy:
        transport = AiohttpTransport(limits=LIMITS, proxy=proxy.url)
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(httpx.ProxyError, match="tunnel"):
                await client.get(f"https://127.0.0.1:{refused_port()}/")


@pytest.mark.parametrize(
    "proxy",
    ["https://127.0.0.1:3128", "socks5://127.0.0.1:1080", httpx.Proxy("https://127.0.0.1:3128")],
)
def test_explicit_proxy_must_be_http(proxy: str | httpx.Proxy) -> None:
    with pytest.raises(ValueError, match=r"http:// proxies") as info:
        AiohttpTransport(proxy=proxy)
    assert "httpx" in str(info.value)


@pytest.mark.parametrize(
    ("variable", "value", "url"),
    [
        ("HTTPS_PROXY", "https://127.0.0.1:3128", "https://127.0.0.1:{port}/"),
        ("ALL_PROXY", "socks5://127.0.0.1:1080", "http://127.0.0.1:{port}/"),
    ],
)
async def test_env_proxy_must_be_http(
    variable: str, value: str, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    transport = AiohttpTransport(limits=LIMITS)  # no error yet: it may never be used
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ProxyError, match=r"http:// proxies only"):
            await client.get(url.format(port=refused_port()))


# -- TLS ---------------------------------------------------------------------------------------


async def _get(transport: AiohttpTransport, url: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=transport) as client:
        return await client.get(url)


async def test_verify_with_ca_file(tls_server: str, ca_pem: Path) -> None:
    for verify in (ca_pem, str(ca_pem)):
        response = await _get(AiohttpTransport(verify=verify), f"{tls_server}/echo")
        assert response.status_code == 200


async def test_verify_default_rejects_an_unknown_ca(tls_server: str) -> None:
    with pytest.raises(httpx.ConnectError, match="certificate"):
        await _get(AiohttpTransport(), f"{tls_server}/echo")


async def test_verify_false_and_context(tls_server: str, ca: trustme.CA) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    for verify in (False, context):
        response = await _get(AiohttpTransport(verify=verify), f"{tls_server}/echo")
        assert response.status_code == 200


@pytest.mark.parametrize("trust_env", [True, False])
async def test_ssl_cert_file(
    trust_env: bool, tls_server: str, ca_pem: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_pem))
    transport = AiohttpTransport(trust_env=trust_env)
    if trust_env:
        assert (await _get(transport, f"{tls_server}/echo")).status_code == 200
    else:
        with pytest.raises(httpx.ConnectError):
            await _get(transport, f"{tls_server}/echo")


def test_create_ssl_context(ca_pem: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = create_ssl_context(True, trust_env=True)
    assert default is create_ssl_context(True, trust_env=False)  # built once per process
    assert default.verify_mode == ssl.CERT_REQUIRED and default.check_hostname
    assert len(default.get_ca_certs()) > 10  # certifi's bundle

    off = create_ssl_context(False, trust_env=True)
    assert off.verify_mode == ssl.CERT_NONE and not off.check_hostname

    given = ssl.create_default_context()
    assert create_ssl_context(given, trust_env=True) is given

    from_file = create_ssl_context(ca_pem, trust_env=True)
    assert len(from_file.get_ca_certs()) == 1
    from_dir = create_ssl_context(ca_pem.parent, trust_env=True)
    assert from_dir.verify_mode == ssl.CERT_REQUIRED

    monkeypatch.setenv("SSL_CERT_FILE", str(ca_pem))
    assert len(create_ssl_context(True, trust_env=True).get_ca_certs()) == 1
    assert create_ssl_context(True, trust_env=False) is default
    monkeypatch.delenv("SSL_CERT_FILE")
    monkeypatch.setenv("SSL_CERT_DIR", str(ca_pem.parent))
    assert create_ssl_context(True, trust_env=True) is not default


# -- the factory -------------------------------------------------------------------------------


async def test_aiohttp_transport_factory(server: tuple[str, Control]) -> None:
    base, _ = server
    transport = aiohttp_transport(
        limits=LIMITS, connect_timeout=1.0, proxy=None, verify=True, trust_env=False
    )
    assert isinstance(transport, AiohttpTransport)
    assert (await _get(transport, f"{base}/echo")).status_code == 200


async def test_httpx_client_honours_proxy_env_and_verify(
    server: tuple[str, Control], tls_server: str, ca_pem: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = server
    async with forward_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        async with httpx_client(
            limits=LIMITS, timeout=httpx.Timeout(HANG), proxy=None, verify=ca_pem, trust_env=True
        ) as client:
            plain = await client.get(f"{base}/echo")
            secure = await client.get(f"{tls_server}/echo")
            redirect = await client.get(f"{base}/redirect")
    assert plain.status_code == 200 and secure.status_code == 200
    assert redirect.status_code == 302  # not followed
    assert proxy.lines == [f"GET {base}/echo HTTP/1.1", f"GET {base}/redirect HTTP/1.1"]


# -- proxy resolution (pure) -------------------------------------------------------------------

_PROXY = {"HTTP_PROXY": "http://proxy:3128"}
_EVERY = {"ALL_PROXY": "http://every:1080"}


@pytest.mark.parametrize(
    ("env", "url", "expected"),
    [
        ({}, "http://a.test/", None),
        (_PROXY, "http://a.test/", "http://proxy:3128"),
        (_PROXY, "https://a.test/", None),
        ({"HTTPS_PROXY": "secure:3129"}, "https://a.test/", "http://secure:3129"),
        (_EVERY, "https://a.test/", "http://every:1080"),
        ({**_EVERY, **_PROXY}, "http://a.test/", "http://proxy:3128"),
        (
            {"http_proxy": "http://lower:1", "HTTP_PROXY": "http://upper:1"},
            "http://a/",
            "http://lower:1",
        ),
        ({"http_proxy": "", "HTTP_PROXY": "http://upper:1"}, "http://a/", None),
        ({**_PROXY, "REQUEST_METHOD": "GET"}, "http://a.test/", None),  # httpoxy
        ({**_PROXY, "NO_PROXY": "example.com"}, "http://example.com/", None),
        ({**_PROXY, "NO_PROXY": "example.com"}, "http://api.example.com/", None),
        ({**_PROXY, "NO_PROXY": "example.com"}, "http://notexample.com/", "http://proxy:3128"),
        ({**_PROXY, "NO_PROXY": ".example.com"}, "http://example.com/", "http://proxy:3128"),
        ({**_PROXY, "NO_PROXY": ".example.com"}, "http://api.example.com/", None),
        ({**_PROXY, "no_proxy": " other.org , EXAMPLE.com "}, "http://Example.COM/", None),
        ({**_PROXY, "NO_PROXY": "*"}, "http://a.test/", None),
        ({**_PROXY, "NO_PROXY": "a.test,*"}, "http://b.test/", None),
        ({**_PROXY, "NO_PROXY": "10.0.0.0/8"}, "http://10.1.2.3/", None),
        ({**_PROXY, "NO_PROXY": "10.0.0.0/8"}, "http://11.0.0.1/", "http://proxy:3128"),
        ({**_PROXY, "NO_PROXY": "::1"}, "http://[::1]:8080/", None),
        ({**_PROXY, "NO_PROXY": "[::1]:8080"}, "http://[::1]:8080/", None),
        ({**_PROXY, "NO_PROXY": "[::1]:8080"}, "http://[::1]:9090/", "http://proxy:3128"),
        ({**_PROXY, "NO_PROXY": "::/0"}, "http://10.0.0.1/", "http://proxy:3128"),
        ({**_PROXY, "NO_PROXY": "a.test:8080"}, "http://a.test:8080/", None),
        ({**_PROXY, "NO_PROXY": "a.test:80"}, "http://a.test/", None),
        ({**_PROXY, "NO_PROXY": "a.test:8080"}, "http://a.test/", "http://proxy:3128"),
        ({**_PROXY, "NO_PROXY": "localhost"}, "http://localhost:1234/", None),
        ({**_EVERY, "NO_PROXY": "https://a.test"}, "https://a.test/", None),
        ({**_EVERY, "NO_PROXY": "https://a.test"}, "http://a.test/", "http://every:1080"),
        ({**_PROXY, "NO_PROXY": "a.test:port,,"}, "http://a.test/", "http://proxy:3128"),
    ],
)
def test_proxy_resolution(env: dict[str, str], url: str, expected: str | None) -> None:
    proxy = ProxyResolver(None, trust_env=True, env=env).proxy_for(httpx.URL(url))
    assert (str(proxy.url) if proxy is not None else None) == expected


def test_explicit_proxy_wins_and_trust_env_off_ignores_env() -> None:
    env = {**_PROXY, "NO_PROXY": "*"}
    explicit = ProxyResolver("http://mine:1", trust_env=True, env=env)
    proxy = explicit.proxy_for(httpx.URL("https://a.test/"))
    assert proxy is not None and str(proxy.url) == "http://mine:1"
    assert proxy is explicit.proxy_for(httpx.URL("http://other.test/"))
    assert ProxyResolver(None, trust_env=False, env=env).proxy_for(httpx.URL("http://a/")) is None


def test_proxy_answers_are_cached_per_host() -> None:
    resolver = ProxyResolver(None, trust_env=True, env=_PROXY)
    first = resolver.proxy_for(httpx.URL("http://a.test/x"))
    assert first is not None and first is resolver.proxy_for(httpx.URL("http://a.test/y"))


def test_resolver_repr_hides_credentials() -> None:
    env = {"HTTPS_PROXY": "http://alice:hunter2@proxy:3128", "NO_PROXY": "a,b"}
    for resolver in (
        ProxyResolver("http://alice:hunter2@proxy:3128", trust_env=True),
        ProxyResolver(None, trust_env=True, env=env),
        ProxyResolver(
            httpx.Proxy("http://proxy:1", headers={"Proxy-Authorization": "x"}), trust_env=False
        ),
    ):
        text = repr(resolver)
        assert "hunter2" not in text and "alice" not in text
        assert "proxy:" in text and "with credentials" in text


# -- mocks -------------------------------------------------------------------------------------


def test_mocks_active_follows_respx(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not mocks_active()
    for using in ("httpcore", "httpx"):
        with respx.mock(using=using):
            assert mocks_active()
        assert not mocks_active()
    monkeypatch.delitem(sys.modules, "respx.mocks")  # as if respx were never imported
    assert not mocks_active()


def test_mocks_active_sees_a_patched_httpx_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200)

    # Like pytest-httpx, which patches httpx's transport instead of httpcore's pool.
    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", fake)
    assert mocks_active()
    monkeypatch.undo()
    assert not mocks_active()


async def test_respx_intercepts_httpx_client() -> None:
    """Nothing listens on the mocked URL: a request that escaped the mock would fail."""
    url = f"http://127.0.0.1:{refused_port()}/v1/chat/completions"
    async with httpx_client(
        limits=LIMITS, timeout=httpx.Timeout(HANG), proxy=None, verify=True, trust_env=False
    ) as client:
        with respx.mock(assert_all_called=True) as router:
            router.post(url).respond(200, json={"mocked": True})
            response = await client.post(url, json={"q": 1})
    assert response.json() == {"mocked": True}


def test_a_transport_dropped_unclosed_leaves_no_open_session() -> None:
    """Its loop ended without closing it (as a loop that never finalises does): collecting it
    marks aiohttp's pool closed, so no "Unclosed client session" warning comes at exit."""
    import gc
    import warnings

    from azml_client._http._aiohttp import AiohttpTransport

    async def start() -> Any:
        transport = AiohttpTransport()
        transport._start(asyncio.get_running_loop())
        return transport._pool.session  # type: ignore[union-attr]

    loop = asyncio.new_event_loop()
    session = loop.run_until_complete(start())
    loop.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gc.collect()
    assert session.closed
