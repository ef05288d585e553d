"""Raw HTTP/1.1 servers on loopback ports, for answers no framework will send.

Frameworks refuse to send what these tests need (a body that lies about its encoding, a status
line no RFC allows, a body dripped one byte at a time or cut short, an echo of the request's own
headers), so these servers speak HTTP by hand. All of them listen on 127.0.0.1 on a port the OS
picks, run on the test's own event loop, and cancel their connection handlers when the
``async with`` block ends, so a test never leaves a task or a socket behind.

* :class:`FaultServer` reads each request of a keep-alive connection (head and body), records
  it, and hands it to the test's handler, which writes the answer (:func:`response`,
  :func:`answer`).
* :func:`raw_server` serves one request per connection: its handler runs once the request head
  has been read, gets the connection's reader, and may break HTTP at any point.
* :func:`forward_proxy` is a tiny HTTP proxy: absolute-form requests (``GET http://...``) are
  relayed to the target in origin form with ``Connection: close`` (so every request opens a new
  proxy connection and is recorded), ``CONNECT`` opens a tunnel and copies bytes both ways. It
  records each request line with its headers, and relays only to loopback targets.
* :func:`refused_port` and :func:`full_backlog` give ports where connecting fails or hangs;
  :func:`free_port` one that is free now, for a server a test starts there later.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import socket
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType

__all__ = [
    "FaultServer",
    "ForwardProxy",
    "Handler",
    "ProxiedRequest",
    "RawHandler",
    "RawRequest",
    "answer",
    "forward_proxy",
    "free_port",
    "full_backlog",
    "raw_server",
    "refused_port",
    "response",
]

#: A connection handler: the connection's reader and writer.
RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

#: Request headers a forward proxy consumes instead of relaying.
_HOP_BY_HOP = frozenset({"proxy-authorization", "proxy-connection", "connection", "keep-alive"})


# -- the one listener under every server --------------------------------------------------------


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    # Bounded: a peer that stopped reading must not hold the server's exit.
    with contextlib.suppress(ConnectionError, OSError, asyncio.TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 2)


@contextlib.asynccontextmanager
async def _listening(serve: RawHandler) -> AsyncIterator[int]:
    """Run ``serve`` for every connection to a loopback port until the block ends; yields the
    port. A client hanging up is no error; the connection is closed when ``serve`` returns, and
    handlers still running at the end are cancelled and awaited."""
    tasks: set[asyncio.Task[None]] = set()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away
        finally:
            tasks.discard(task)
            await _close(writer)

    server = await asyncio.start_server(connection, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        running = list(tasks)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, list[str], dict[str, str]]:
    """The request line, the header lines as sent, and the headers (names lowercased)."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    line, *header_lines = head.split("\r\n")
    header_lines = [h for h in header_lines if h]
    headers: dict[str, str] = {}
    for header in header_lines:
        if ":" in header:
            name, value = header.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return line, header_lines, headers


# -- a scripted server ---------------------------------------------------------------------------


@dataclass
class RawRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


#: A :class:`FaultServer` handler: the request read, and the writer to answer on.
Handler = Callable[[RawRequest, asyncio.StreamWriter], Awaitable[None]]


def response(
    status: int | str,
    body: bytes = b"",
    *,
    headers: dict[str, str] | None = None,
    reason: str = "X",
) -> bytes:
    """The bytes of a complete answer (``Content-Length`` added unless given)."""
    lines = [f"HTTP/1.1 {status} {reason}"]
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if not any(k.lower() in ("content-length", "transfer-encoding") for k in all_headers):
        all_headers["Content-Length"] = str(len(body))
    lines += [f"{k}: {v}" for k, v in all_headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def answer(data: bytes) -> Handler:
    """A handler that always writes ``data`` (a whole answer from :func:`response`)."""

    async def handle(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(data)

    return handle


@dataclass
class FaultServer:
    """``async with FaultServer(handler) as server:`` then ``server.url(path)``.

    Every request is recorded in ``requests`` before ``handler`` answers it; a connection
    serves requests until the client closes it (or the handler does).
    """

    handler: Handler
    requests: list[RawRequest] = field(default_factory=list)
    port: int = 0
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    def url(self, path: str = "/score") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def __aenter__(self) -> FaultServer:
        self.port = await self._stack.enter_async_context(_listening(self._serve))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line, _, headers = await _read_head(reader)
            method, path, _ = line.split(" ", 2)
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            request = RawRequest(method, path, headers, body)
            self.requests.append(request)
            await self.handler(request, writer)
            await writer.drain()


@contextlib.asynccontextmanager
async def raw_server(handler: RawHandler) -> AsyncIterator[str]:
    """A server of one request per connection; ``handler`` runs after the request head has
    been read, and the connection closes when it returns. Yields the base URL."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await handler(reader, writer)

    async with _listening(serve) as port:
        yield f"http://127.0.0.1:{port}"


# -- a forward proxy -----------------------------------------------------------------------------


@dataclass
class ProxiedRequest:
    """What the proxy received: the request line and the headers (names lowercased)."""

    line: str
    headers: dict[str, str]


@dataclass
class ForwardProxy:
    """A running :func:`forward_proxy`: its URL and what it has seen."""

    url: str = ""
    #: The status answered to CONNECT (anything but 200 refuses the tunnel).
    connect_status: int = 200
    requests: list[ProxiedRequest] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        return [request.line for request in self.requests]


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes until end of file, then pass the end of file on."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


async def _relay(
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    try:
        await asyncio.gather(_pump(client[0], upstream[1]), _pump(upstream[0], client[1]))
    finally:
        await _close(upstream[1])


def _loopback(host: str | None) -> str:
    if host is None or not (host == "localhost" or host.startswith("127.")):
        raise ValueError(f"the test proxy relays to loopback only, not {host!r}")
    return host


@contextlib.asynccontextmanager
async def forward_proxy(*, connect_status: int = 200) -> AsyncIterator[ForwardProxy]:
    """An HTTP forward proxy on loopback (see the module docstring)."""
    proxy = ForwardProxy(connect_status=connect_status)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line, header_lines, headers = await _read_head(reader)
        proxy.requests.append(ProxiedRequest(line, headers))
        method, target, version = line.split(" ", 2)
        if method == "CONNECT":
            if proxy.connect_status != 200:
                writer.write(
                    f"HTTP/1.1 {proxy.connect_status} No\r\nContent-Length: 0\r\n\r\n".encode()
                )
                await writer.drain()
                return
            host, _, port = target.rpartition(":")
            upstream = await asyncio.open_connection(_loopback(host), int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        else:
            url = urllib.parse.urlsplit(target)
            upstream = await asyncio.open_connection(_loopback(url.hostname), url.port or 80)
            path = (url.path or "/") + (f"?{url.query}" if url.query else "")
            kept = [
                h for h in header_lines if h.partition(":")[0].strip().lower() not in _HOP_BY_HOP
            ]
            relayed = "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close"])
            upstream[1].write(f"{relayed}\r\n\r\n".encode("latin-1"))
        await _relay((reader, writer), upstream)

    async with _listening(serve) as port:
        proxy.url = f"http://127.0.0.1:{port}"
        yield proxy


# -- ports where connecting fails ----------------------------------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on now, for a server a test starts there later.

    Only free when this returns: for a port that must stay refused, use :func:`refused_port`.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: Sockets bound and never listening, held until the test process ends.
_HELD: list[socket.socket] = []


@atexit.register
def _release_held() -> None:
    for sock in _HELD:
        sock.close()


def refused_port() -> int:
    """A loopback port every connection to is refused, for as long as the tests run: a socket
    is bound there and never listens, so no other server can take the port meanwhile."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _HELD.append(sock)
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
