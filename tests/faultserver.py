"""A raw HTTP/1.1 server on a loopback port that answers with whatever bytes a test scripts.

Frameworks refuse to send what these tests need (a body that lies about its encoding, a status
line no RFC allows, a body dripped one byte at a time, an echo of the request's own headers), so
the server speaks HTTP by hand: it reads one request per connection, hands it to the test's
handler, and writes what the handler writes. It runs on the test's own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType


@dataclass
class RawRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


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


@dataclass
class FaultServer:
    """``async with FaultServer(handler) as server:`` then ``server.url(path)``."""

    handler: Handler
    requests: list[RawRequest] = field(default_factory=list)
    _server: asyncio.AbstractServer | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    port: int = 0

    def url(self, path: str = "/score") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def __aenter__(self) -> FaultServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = RawRequest(method, path, headers, body)
                self.requests.append(request)
                await self.handler(request, writer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()


def answer(data: bytes) -> Handler:
    """A handler that always writes ``data`` (a whole answer from :func:`response`)."""

    async def handle(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(data)

    return handle
