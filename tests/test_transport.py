"""Tests of ``azml_client._transport`` against real loopback servers started per test.

Two servers: an ``aiohttp.web`` app for well-behaved HTTP, and a raw asyncio server for the
misbehaviour a proper framework will not produce (a body cut short, a connection dropped before
the answer).  No assertion depends on timing; the few waits are generous upper bounds that turn
a would-be hang into a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import importlib.util
import json
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import pytest
import respx
from aiohttp import web

from azml_client import _transport
from azml_client._transport import (
    AiohttpTransport,
    ShardedHTTPTransport,
    default_transport,
    mocking_active,
)

CONTROL = web.AppKey("control", "Control")
LIMITS = {"max_connections": 8, "max_keepalive_connections": 8, "keepalive_expiry": 5.0}
#: Bound on any single wait in a test: a hang becomes a failure, never a timing assertion.
HANG = 10.0


# -- servers ---------------------------------------------------------------------------------


class Control:
    """Lets a test step the streaming handler: the server sends chunk i+1 only after ``go``."""

    def __init__(self) -> None:
        self.steps: asyncio.Queue[None] = asyncio.Queue()
        self.never = asyncio.Event()
        self.requests = 0


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
    control: Control = request.app[CONTROL]
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


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Control]]:
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
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", control
    finally:
        control.never.set()
        await runner.cleanup()


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handler: RawHandler) -> AsyncIterator[str]:
    """A bare asyncio server whose ``handler`` may break HTTP on purpose."""
    tasks: set[asyncio.Task[None]] = set()

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await reader.readuntil(b"\r\n\r\n")
            await handler(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    srv = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await srv.wait_closed()


def free_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A port whose listen queue is full: Linux drops new SYNs, so connecting hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers = []
    try:
        for _ in range(3):
            sock = socket.socket()
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.connect(("127.0.0.1", port))
            fillers.append(sock)
        yield port
    finally:
        for sock in fillers:
            sock.close()
        listener.close()


@pytest.fixture
async def aio() -> AsyncIterator[AiohttpTransport]:
    transport = AiohttpTransport(**LIMITS)
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


def acquired(transport: AiohttpTransport) -> int:
    """Connections aiohttp has handed out and not yet got back (white-box)."""
    session = transport._session
    assert session is not None
    connector = session.connector
    assert connector is not None
    return len(connector._acquired)


def free_slots(transport: AiohttpTransport) -> int:
    slots = transport._slots
    assert slots is not None
    return slots._free


# -- the factory -----------------------------------------------------------------------------


def test_default_transport_prefers_aiohttp() -> None:
    transport = default_transport(**LIMITS, connect_timeout=3.0)
    assert isinstance(transport, AiohttpTransport)
    assert _transport.aiohttp_available()


def _load_without_aiohttp(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A fresh copy of the module imported while ``import aiohttp`` fails."""
    monkeypatch.setitem(sys.modules, "aiohttp", None)
    path = Path(_transport.__file__)
    spec = importlib.util.spec_from_file_location("azml_client._transport_no_aiohttp", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_fallback_without_aiohttp(
    monkeypatch: pytest.MonkeyPatch, server: tuple[str, Control]
) -> None:
    base, _ = server
    module = _load_without_aiohttp(monkeypatch)
    assert not module.aiohttp_available()
    with pytest.raises(RuntimeError, match="aiohttp"):
        module.AiohttpTransport()
    transport = module.default_transport(**LIMITS)
    assert isinstance(transport, module.ShardedHTTPTransport)
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.post(f"{base}/echo", json={"a": 1})
    assert response.status_code == 200
    assert json.loads(response.json()["body"]) == {"a": 1}


async def test_fallback_when_module_attribute_cleared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_transport, "aiohttp", None)
    assert isinstance(default_transport(**LIMITS), ShardedHTTPTransport)


def test_sharded_splits_limits() -> None:
    transport = ShardedHTTPTransport(
        max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0, shards=16
    )
    assert transport.shards == 16
    pools = [t._pool for t in transport._transports]
    assert sum(p._max_connections for p in pools) == 100
    assert sum(p._max_keepalive_connections for p in pools) == 20
    small = ShardedHTTPTransport(max_connections=3, max_keepalive_connections=3, keepalive_expiry=1)
    assert small.shards == 3


# -- the aiohttp path: requests and responses --------------------------------------------------


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
    sent = {k.lower(): v for k, v in data["headers"]}
    assert sent["x-custom"] == "Value"
    assert sent["x-default"] == "d"
    # httpx's own defaults go out, not aiohttp's.
    assert sent["user-agent"].startswith("python-httpx/")
    assert "content-length" not in sent  # a GET without a body has none
    assert got.headers.get_list("x-multi") == ["one", "two"]

    pdata = posted.json()
    assert pdata["method"] == "POST"
    assert pdata["body"].encode("latin-1") == b"\x00\xffraw"
    psent = {k.lower(): v for k, v in pdata["headers"]}
    assert psent["content-type"] == "app/x"
    assert psent["content-length"] == "5"


async def test_no_content_type_is_invented(
    aio: AiohttpTransport, server: tuple[str, Control]
) -> None:
    base, _ = server
    async with httpx.AsyncClient(transport=Borrowed(aio)) as client:
        client.headers.pop("user-agent")
        response = await client.post(f"{base}/echo", content=b"abc")
    sent = {k.lower(): v for k, v in response.json()["headers"]}
    assert "content-type" not in sent
    assert "user-agent" not in sent


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
    sent = {k.lower(): v for k, v in echoed.json()["headers"]}
    assert sent["cookie"] == "session=abc"


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
    assert free_slots(aio) == LIMITS["max_connections"]


async def test_connections_are_reused(aio: AiohttpTransport, server: tuple[str, Control]) -> None:
    base, _ = server
    async with httpx.AsyncClient(transport=Borrowed(aio)) as client:
        for _ in range(5):
            await client.get(f"{base}/echo")
        session = aio._session
        assert session is not None and session.connector is not None
        idle = sum(len(conns) for conns in session.connector._conns.values())
    assert idle == 1


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
    assert free_slots(aio) == LIMITS["max_connections"]


async def test_early_close_releases_the_connection(
    aio: AiohttpTransport, server: tuple[str, Control]
) -> None:
    base, _ = server
    with anyio.fail_after(HANG):
        async with httpx.AsyncClient(transport=Borrowed(aio)) as client:
            async with client.stream("GET", f"{base}/endless") as response:
                async for _line in response.aiter_lines():
                    assert acquired(aio) == 1
                    assert free_slots(aio) == LIMITS["max_connections"] - 1
                    break
            assert acquired(aio) == 0
            assert free_slots(aio) == LIMITS["max_connections"]
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
    assert free_slots(aio) == LIMITS["max_connections"]


# -- timeouts and errors -----------------------------------------------------------------------


async def test_read_timeout_waiting_for_headers(
    aio: AiohttpTransport, server: tuple[str, Control]
) -> None:
    base, _ = server
    async with httpx.AsyncClient(
        transport=Borrowed(aio), timeout=httpx.Timeout(HANG, read=0.2)
    ) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{base}/hang-headers")
    assert free_slots(aio) == LIMITS["max_connections"]


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
    assert free_slots(aio) == LIMITS["max_connections"]


async def test_pool_timeout(server: tuple[str, Control]) -> None:
    base, _ = server
    transport = AiohttpTransport(max_connections=1, max_keepalive_connections=1)
    timeout = httpx.Timeout(HANG, pool=0.1)
    async with httpx.AsyncClient(transport=transport, timeout=timeout) as client:
        async with client.stream("GET", f"{base}/endless"):
            with pytest.raises(httpx.PoolTimeout):
                await client.get(f"{base}/echo")
        # The slot holder closed: the pool has room again.
        assert (await client.get(f"{base}/echo")).status_code == 200
    assert transport._slots is not None and transport._slots._free == 1


async def test_cancelled_waiter_gives_no_slot_away(server: tuple[str, Control]) -> None:
    base, _ = server
    transport = AiohttpTransport(max_connections=1, max_keepalive_connections=1)
    with anyio.fail_after(HANG):
        async with httpx.AsyncClient(transport=transport) as client:
            async with client.stream("GET", f"{base}/endless"):
                waiter = asyncio.create_task(client.get(f"{base}/echo"))
                await asyncio.sleep(0)
                waiter.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiter
            assert (await client.get(f"{base}/echo")).status_code == 200
    assert transport._slots is not None and transport._slots._free == 1


async def test_connect_timeout(aio: AiohttpTransport) -> None:
    with full_backlog() as port:
        timeout = httpx.Timeout(HANG, connect=0.2)
        async with httpx.AsyncClient(transport=Borrowed(aio), timeout=timeout) as client:
            with pytest.raises(httpx.ConnectTimeout):
                await client.get(f"http://127.0.0.1:{port}/")
    assert free_slots(aio) == LIMITS["max_connections"]


async def test_transport_connect_timeout_applies_without_request_timeouts() -> None:
    transport = AiohttpTransport(**LIMITS, connect_timeout=0.2)
    try:
        with full_backlog() as port:
            request = httpx.Request("GET", f"http://127.0.0.1:{port}/")
            assert "timeout" not in request.extensions
            with pytest.raises(httpx.ConnectTimeout):
                await transport.handle_async_request(request)
    finally:
        await transport.aclose()


async def test_sharded_connect_timeout_applies_without_request_timeouts() -> None:
    transport = ShardedHTTPTransport(**LIMITS, connect_timeout=0.2, shards=2)
    try:
        with full_backlog() as port:
            request = httpx.Request("GET", f"http://127.0.0.1:{port}/")
            with pytest.raises(httpx.ConnectTimeout):
                await transport.handle_async_request(request)
        assert transport._busy == [0, 0]
    finally:
        await transport.aclose()


async def test_connection_refused(aio: AiohttpTransport) -> None:
    async with httpx.AsyncClient(transport=Borrowed(aio)) as client:
        with pytest.raises(httpx.ConnectError) as info:
            await client.get(f"http://127.0.0.1:{free_port()}/")
    assert info.value.request.url.host == "127.0.0.1"
    assert free_slots(aio) == LIMITS["max_connections"]


async def test_disconnect_mid_body(aio: AiohttpTransport) -> None:
    async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        await writer.drain()

    async with raw_server(cut_short) as base, httpx.AsyncClient(transport=Borrowed(aio)) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(f"{base}/")
        async with client.stream("GET", f"{base}/") as response:
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                await response.aread()
    assert acquired(aio) == 0
    assert free_slots(aio) == LIMITS["max_connections"]


async def test_disconnect_before_response(aio: AiohttpTransport) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        return None

    async with raw_server(hang_up) as base, httpx.AsyncClient(transport=Borrowed(aio)) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(f"{base}/", content=b"{}")
    assert free_slots(aio) == LIMITS["max_connections"]


async def test_garbage_response(aio: AiohttpTransport) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    async with raw_server(garbage) as base, httpx.AsyncClient(transport=Borrowed(aio)) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(f"{base}/")


async def test_unsupported_scheme(aio: AiohttpTransport) -> None:
    with pytest.raises(httpx.UnsupportedProtocol):
        await aio.handle_async_request(httpx.Request("GET", "ftp://127.0.0.1/x"))


def test_error_mapping_table() -> None:
    import aiohttp

    request = httpx.Request("GET", "http://127.0.0.1/")
    key = aiohttp.client_reqrep.ConnectionKey("127.0.0.1", 1, False, True, None, None, None)
    cases: list[tuple[BaseException, type[httpx.TransportError]]] = [
        # aiohttp < 3.10 spells both timeouts as ServerTimeoutError.
        (aiohttp.ServerTimeoutError("Connection timeout to host x"), httpx.ConnectTimeout),
        (aiohttp.ServerTimeoutError("Timeout on reading data from socket"), httpx.ReadTimeout),
        (asyncio.TimeoutError(), httpx.ReadTimeout),
        (aiohttp.ClientConnectorError(key, OSError(111, "refused")), httpx.ConnectError),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError("cut"), httpx.RemoteProtocolError),
        (aiohttp.ClientOSError(104, "reset"), httpx.ReadError),
        (ConnectionResetError(), httpx.ReadError),
        (aiohttp.ClientError("other"), httpx.TransportError),
    ]
    if hasattr(aiohttp, "ConnectionTimeoutError"):  # aiohttp >= 3.10
        cases.append((aiohttp.ConnectionTimeoutError("c"), httpx.ConnectTimeout))
        cases.append((aiohttp.SocketTimeoutError("s"), httpx.ReadTimeout))
    for exc, expected in cases:
        mapped = _transport._map_error(exc, request)
        assert type(mapped) is expected, (exc, mapped)
        assert mapped.request is request


# -- lifecycle ---------------------------------------------------------------------------------


async def test_closed_transport_refuses(server: tuple[str, Control]) -> None:
    base, _ = server
    transport = AiohttpTransport(**LIMITS)
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get(f"{base}/echo")
    with pytest.raises(RuntimeError, match="closed"):
        await transport.handle_async_request(httpx.Request("GET", f"{base}/echo"))
    await transport.aclose()  # idempotent


def test_bound_to_first_loop(server_in_thread: str) -> None:
    transport = AiohttpTransport(**LIMITS)
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


@pytest.fixture
def server_in_thread() -> Iterator[str]:
    """A trivial HTTP server in a thread, for tests that drive several event loops."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


async def test_non_asyncio_loop_uses_fallback(
    monkeypatch: pytest.MonkeyPatch, server: tuple[str, Control]
) -> None:
    """Stands in for trio: with no asyncio loop running, aiohttp must not be touched."""
    base, _ = server
    transport = AiohttpTransport(**LIMITS)

    monkeypatch.setattr(_transport, "_asyncio_loop", lambda: None)
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get(f"{base}/echo")
        assert response.status_code == 200
        assert transport._session is None
        assert isinstance(transport._fallback, ShardedHTTPTransport)


# -- mocks -------------------------------------------------------------------------------------


def test_mocking_detection_follows_patches(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not mocking_active()
    with respx.mock:
        assert mocking_active()
    assert not mocking_active()
    with respx.mock(using="httpx"):
        assert mocking_active()
    assert not mocking_active()

    async def fake(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200)

    # Like pytest-httpx, which patches httpx's transport instead of httpcore's pool.
    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", fake)
    assert mocking_active()


@pytest.mark.parametrize("using", ["httpcore", "httpx"])
async def test_respx_intercepts(using: str, server: tuple[str, Control]) -> None:
    """Nothing listens on the mocked URL: a request that escaped the mock would fail."""
    base, _ = server
    url = f"http://127.0.0.1:{free_port()}/v1/chat/completions"
    transport = default_transport(**LIMITS)
    async with httpx.AsyncClient(transport=transport) as client:
        with respx.mock(using=using, assert_all_called=True) as router:
            route = router.post(url).respond(200, json={"mocked": True})
            response = await client.post(url, json={"q": 1})
            assert response.json() == {"mocked": True}
            assert json.loads(route.calls.last.request.content) == {"q": 1}
        # Once the mock stops, the same client talks to real servers again, through aiohttp.
        real = await client.get(f"{base}/echo")
        assert real.status_code == 200
        assert isinstance(transport, AiohttpTransport) and transport._session is not None


async def test_respx_decorator_style_mock_started_before_client() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/completions"
    with respx.mock() as router:
        router.get(url).respond(201, text="from respx")
        async with httpx.AsyncClient(transport=default_transport(**LIMITS)) as client:
            response = await client.get(url)
    assert response.status_code == 201
    assert response.text == "from respx"


async def test_respx_pass_through(server: tuple[str, Control]) -> None:
    base, _ = server
    async with httpx.AsyncClient(transport=default_transport(**LIMITS)) as client:
        with respx.mock(assert_all_called=False) as router:
            router.get(f"{base}/echo").pass_through()
            response = await client.get(f"{base}/echo")
    assert response.json()["method"] == "GET"


async def test_respx_unmatched_request_is_not_sent(server: tuple[str, Control]) -> None:
    base, _ = server
    async with httpx.AsyncClient(transport=default_transport(**LIMITS)) as client:
        with (
            respx.mock(assert_all_mocked=True, assert_all_called=False),
            pytest.raises(respx.models.AllMockedAssertionError),
        ):
            await client.get(f"{base}/echo")


# -- the pure-httpx path -----------------------------------------------------------------------


async def test_sharded_round_trip_and_early_close(server: tuple[str, Control]) -> None:
    base, _ = server
    transport = ShardedHTTPTransport(**LIMITS, shards=4)
    with anyio.fail_after(HANG):
        async with httpx.AsyncClient(transport=transport) as client:
            responses = await asyncio.gather(*(client.get(f"{base}/echo") for _ in range(12)))
            assert all(r.status_code == 200 for r in responses)
            assert transport._busy == [0, 0, 0, 0]
            async with client.stream("GET", f"{base}/endless") as response:
                async for _line in response.aiter_lines():
                    assert sum(transport._busy) == 1
                    break
            assert transport._busy == [0, 0, 0, 0]
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{free_port()}/")
            assert transport._busy == [0, 0, 0, 0]


async def test_sharded_prefers_the_least_busy_pool(server: tuple[str, Control]) -> None:
    base, _ = server
    transport = ShardedHTTPTransport(**LIMITS, shards=2)
    async with httpx.AsyncClient(transport=transport) as client:
        async with client.stream("GET", f"{base}/endless"):
            assert transport._busy == [1, 0]
            async with client.stream("GET", f"{base}/endless"):
                assert transport._busy == [1, 1]
        assert transport._busy == [0, 0]


def test_mocking_is_detected_even_if_the_originals_were_captured_while_patched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """azml_client imported inside an active respx mock must still see the mock."""
    import httpcore

    with respx.mock:
        patched = httpcore.AsyncConnectionPool.__dict__["handle_async_request"]
        monkeypatch.setattr(_transport, "_POOL_METHOD", patched)
        monkeypatch.setattr(_transport, "_ORIGINALS_CLEAN", False)  # as an import would find
        assert _transport.mocking_active()
    assert not _transport.mocking_active()
