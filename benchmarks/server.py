"""A deliberately fast loopback HTTP/1.1 server that speaks just enough OpenAI for benchmarks.

Why hand-written: the clients under test must be the bottleneck, so the server has to answer far
more requests per second than the fastest client can send (raw aiohttp reaches ~3.5k req/s on
this class of machine).  An ``asyncio.Protocol`` with pre-serialised answers serves well over
10k req/s on one core, which an ``aiohttp.web`` or ASGI app does not.

Behaviour is selected by a path prefix so that every client, including SDKs that only take a
``base_url``, can reach every variant without custom headers::

    /v1/chat/completions                      -> immediate JSON answer
    /_/lat=100/v1/chat/completions            -> answer after 100 ms
    /_/tok=200,tokms=1/v1/chat/completions    -> with "stream": true, 200 SSE tokens 1 ms apart
    /_/rl=200,key=abc/v1/chat/completions     -> token bucket of 200 req/s (burst rl/10), else 429
    /_stats/abc                               -> JSON counters of the bucket ``abc``

Options (comma separated ``name=value``): ``lat`` latency in ms before the answer (or before the
first token), ``tok`` number of streamed tokens, ``tokms`` ms between tokens, ``rl`` rate limit in
requests per second, ``burst`` bucket size, ``key`` bucket name (defaults to the option string).

Run standalone with ``python -m benchmarks.server --port 8000``; the first line printed on stdout
is ``PORT <n>`` once the socket is listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

_CHAT_BODY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the benchmark server."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
    },
    separators=(",", ":"),
).encode()

_COMPLETION_BODY = json.dumps(
    {
        "id": "cmpl-bench",
        "object": "text_completion",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [
            {"index": 0, "text": "Hello from the benchmark server.", "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
    },
    separators=(",", ":"),
).encode()


def _json_response(status: bytes, body: bytes, extra: bytes = b"", close: bool = False) -> bytes:
    conn = b"Connection: close\r\n" if close else b""
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n"
        + extra
        + conn
        + b"\r\n"
        + body
    )


_RESP_CHAT = _json_response(b"200 OK", _CHAT_BODY)
_RESP_COMPLETION = _json_response(b"200 OK", _COMPLETION_BODY)
_NOT_FOUND_BODY = b'{"error":{"code":"NotFound","message":"no such route"}}'
_RESP_404 = _json_response(b"404 Not Found", _NOT_FOUND_BODY)
_RESP_400 = _json_response(b"400 Bad Request", b'{"error":{"code":"BadRequest"}}', close=True)
_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


def _sse_chunk(payload: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(payload), payload)


def _event(chat: bool, text: str | None, finish: str | None) -> bytes:
    """One SSE event of a chat (``delta``) or text completion stream, chunk-framed."""
    if chat:
        choice: dict[str, Any] = {"index": 0, "delta": {} if text is None else {"content": text}}
        ident, kind = "chatcmpl-bench", "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": text or ""}
        ident, kind = "cmpl-bench", "text_completion"
    choice["finish_reason"] = finish
    obj = {"id": ident, "object": kind, "created": 1700000000, "model": "bench-model"}
    obj["choices"] = [choice]
    return _sse_chunk(b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n")


def _token_event(i: int, chat: bool) -> bytes:
    return _event(chat, f"t{i} ", None)


def _final_events(chat: bool) -> bytes:
    return _event(chat, None, "stop") + _sse_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"


_TOKEN_CACHE: dict[tuple[int, bool], bytes] = {}


def _token(i: int, chat: bool) -> bytes:
    key = (i, chat)
    ev = _TOKEN_CACHE.get(key)
    if ev is None:
        ev = _TOKEN_CACHE[key] = _token_event(i, chat)
    return ev


class _Options:
    __slots__ = ("burst", "key", "lat", "rl", "tok", "tokms")

    def __init__(self, raw: str) -> None:
        self.lat = 0.0
        self.tok = 16
        self.tokms = 0.0
        self.rl = 0.0
        self.burst = 0.0
        self.key = raw
        for part in raw.split(","):
            if not part:
                continue
            name, _, value = part.partition("=")
            if name == "lat":
                self.lat = float(value) / 1000.0
            elif name == "tok":
                self.tok = int(value)
            elif name == "tokms":
                self.tokms = float(value) / 1000.0
            elif name == "rl":
                self.rl = float(value)
            elif name == "burst":
                self.burst = float(value)
            elif name == "key":
                self.key = value
        if self.rl and not self.burst:
            self.burst = max(1.0, self.rl / 10.0)


class _Bucket:
    """A token bucket; ``take`` returns 0 when admitted, else seconds until the next token."""

    __slots__ = ("burst", "counts", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()
        self.counts = {"requests": 0, "ok": 0, "throttled": 0}

    def take(self) -> float:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.counts["requests"] += 1
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.counts["ok"] += 1
            return 0.0
        self.counts["throttled"] += 1
        return (1.0 - self.tokens) / self.rate


_OPTIONS: dict[str, _Options] = {}
_BUCKETS: dict[str, _Bucket] = {}


def _options(raw: str) -> _Options:
    opts = _OPTIONS.get(raw)
    if opts is None:
        if len(_OPTIONS) > 10_000:
            _OPTIONS.clear()
        opts = _OPTIONS[raw] = _Options(raw)
    return opts


class _HttpProtocol(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; requests are answered strictly in order."""

    __slots__ = ("_buf", "_busy", "_closed", "_loop", "_transport")

    def __init__(self) -> None:
        self._buf = b""
        self._busy = False
        self._closed = False
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True

    def data_received(self, data: bytes) -> None:
        self._buf = self._buf + data if self._buf else data
        if not self._busy:
            self._process()

    def _process(self) -> None:
        while not self._busy and not self._closed:
            buf = self._buf
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = buf[:end]
            lines = head.split(b"\r\n")
            try:
                method, target, _version = lines[0].split(b" ", 2)
            except ValueError:
                self._send_and_close(_RESP_400)
                return
            length = 0
            chunked = False
            close = False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                lname = name.strip().lower()
                if lname == b"content-length":
                    length = int(value)
                elif lname == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif lname == b"connection":
                    close = b"close" in value.lower()
            pos = end + 4
            if chunked:
                parsed = _parse_chunked(buf, pos)
                if parsed is None:
                    return
                body, pos = parsed
            else:
                if len(buf) - pos < length:
                    return
                body = buf[pos : pos + length]
                pos += length
            self._buf = buf[pos:]
            self._handle(method, target, body, close)

    def _send_and_close(self, data: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)
            transport.close()
        self._closed = True

    def _finish(self, data: bytes, close: bool) -> None:
        """Write a complete answer, then look at the next buffered request."""
        if self._closed:
            return
        transport = self._transport
        assert transport is not None
        if transport.is_closing():
            self._closed = True
            return
        transport.write(data)
        if close:
            transport.close()
            self._closed = True
            return
        self._busy = False
        if self._buf:
            self._process()

    def _later(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        if delay > 0:
            self._loop.call_later(delay, fn, *args)
        else:
            fn(*args)

    def _handle(self, method: bytes, target: bytes, body: bytes, close: bool) -> None:
        self._busy = True
        path = target.split(b"?", 1)[0].decode("latin-1")
        opts_raw = ""
        if path.startswith("/_/"):
            opts_raw, _, rest = path[3:].partition("/")
            path = "/" + rest
        elif path.startswith("/_stats/"):
            bucket = _BUCKETS.get(path[8:])
            counts = bucket.counts if bucket else {"requests": 0, "ok": 0, "throttled": 0}
            self._finish(_json_response(b"200 OK", json.dumps(counts).encode()), close)
            return
        opts = _options(opts_raw)
        chat = path.endswith("/chat/completions")
        if not chat and not path.endswith("/completions"):
            self._finish(_RESP_404, close)
            return
        if opts.rl:
            bucket = _BUCKETS.get(opts.key)
            if bucket is None:
                bucket = _BUCKETS[opts.key] = _Bucket(opts.rl, opts.burst)
            wait = bucket.take()
            if wait:
                ms = max(1, math.ceil(wait * 1000))
                extra = b"Retry-After: %d\r\nretry-after-ms: %d\r\n" % (math.ceil(ms / 1000), ms)
                err = b'{"error":{"code":"429","message":"Rate limit is exceeded."}}'
                self._finish(_json_response(b"429 Too Many Requests", err, extra), close)
                return
        stream = b'"stream"' in body and _wants_stream(body)
        if stream:
            self._later(opts.lat, self._start_stream, opts, chat, close)
        else:
            self._later(opts.lat, self._finish, _RESP_CHAT if chat else _RESP_COMPLETION, close)

    def _start_stream(self, opts: _Options, chat: bool, close: bool) -> None:
        transport = self._transport
        if self._closed or transport is None or transport.is_closing():
            self._closed = True
            return
        transport.write(_SSE_HEAD)
        self._stream_token(0, opts, chat, close)

    def _stream_token(self, i: int, opts: _Options, chat: bool, close: bool) -> None:
        transport = self._transport
        if self._closed or transport is None or transport.is_closing():
            self._closed = True
            return
        if i >= opts.tok:
            self._finish(_final_events(chat), close)
            return
        if opts.tokms > 0:
            transport.write(_token(i, chat))
            self._loop.call_later(opts.tokms, self._stream_token, i + 1, opts, chat, close)
        else:
            transport.write(b"".join(_token(j, chat) for j in range(i, opts.tok)))
            self._finish(_final_events(chat), close)


def _wants_stream(body: bytes) -> bool:
    try:
        return bool(json.loads(body).get("stream"))
    except (ValueError, AttributeError):
        return False


def _parse_chunked(buf: bytes, pos: int) -> tuple[bytes, int] | None:
    parts: list[bytes] = []
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(buf[pos:eol].split(b";", 1)[0], 16)
        start = eol + 2
        if size == 0:
            end = buf.find(b"\r\n\r\n", eol)
            if end < 0:
                return None
            return b"".join(parts), end + 4
        if len(buf) < start + size + 2:
            return None
        parts.append(buf[start : start + size])
        pos = start + size + 2


async def serve(host: str, port: int, ready: Callable[[int], None] | None = None) -> None:
    """Serve until cancelled; ``ready`` gets the bound port once listening."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_HttpProtocol, host, port, backlog=1024, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    if ready is not None:
        ready(bound)
    async with server:
        await server.serve_forever()


def start_server_process(cpu: int | None = None) -> tuple[subprocess.Popen[str], str]:
    """Start the server in its own process; returns it and its base URL once it listens."""
    command = [sys.executable, "-m", "benchmarks.server", "--port", "0"]
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        stop_server_process(proc)
        raise RuntimeError(f"benchmark server did not start (said {line!r})")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}"


def stop_server_process(proc: subprocess.Popen[str]) -> None:
    """Stop a server from :func:`start_server_process` and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cpu", type=int, default=None, help="pin the server to this CPU")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the benchmark server only listens on loopback")
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    gc.freeze()

    def ready(port: int) -> None:
        print(f"PORT {port}", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, ready))


if __name__ == "__main__":
    main()
