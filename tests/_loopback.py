"""Loopback servers for transport tests: a raw asyncio server and an HTTP forward proxy.

Both listen on 127.0.0.1 on a port the OS picks, and cancel their connection handlers when the
``async with`` block ends, so a test never leaves a task or a socket behind.

* :func:`raw_server` runs a handler that may break HTTP on purpose (a body cut short, a
  garbage status line), which a real framework will not do.
* :func:`forward_proxy` is a tiny HTTP proxy: absolute-form requests (``GET http://...``) are
  relayed to the target in origin form with ``Connection: close`` (so every request opens a new
  proxy connection and is recorded), ``CONNECT`` opens a tunnel and copies bytes both ways. It
  records each request line with its headers, and relays only to loopback targets.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

__all__ = [
    "ForwardProxy",
    "ProxiedRequest",
    "RawHandler",
    "forward_proxy",
    "free_port",
    "full_backlog",
    "raw_server",
]

RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

#: Request headers a forward proxy consumes instead of relaying.
_HOP_BY_HOP = frozenset({"proxy-authorization", "proxy-connection", "connection", "keep-alive"})


class _Handlers:
    """The connection handler tasks of one server, cancelled together at the end."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()

    def track(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)

    async def cancel_all(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


@contextlib.asynccontextmanager
async def raw_server(handler: RawHandler) -> AsyncIterator[str]:
    """A bare asyncio server; ``handler`` runs after the request head has been read."""
    handlers = _Handlers()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.track()
        try:
            await reader.readuntil(b"\r\n\r\n")
            await handler(reader, writer)
        finally:
            await _close(writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await handlers.cancel_all()
        await server.wait_closed()


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
    handlers = _Handlers()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.track()
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            line, *header_lines = head.split("\r\n")
            header_lines = [h for h in header_lines if h]
            headers = {}
            for header in header_lines:
                name, _, value = header.partition(":")
                headers[name.strip().lower()] = value.strip()
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
                    h
                    for h in header_lines
                    if h.partition(":")[0].strip().lower() not in _HOP_BY_HOP
                ]
                relayed = "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close"])
                upstream[1].write(f"{relayed}\r\n\r\n".encode("latin-1"))
            await _relay((reader, writer), upstream)
        finally:
            await _close(writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    proxy.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield proxy
    finally:
        server.close()
        await handlers.cancel_all()
        await server.wait_closed()


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
