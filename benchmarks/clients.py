"""One adapter per HTTP client under test, all with the same small async interface.

Each adapter is an async context manager built from the server's base URL (with the option
prefix of :mod:`benchmarks.server` already in it) and offers:

* ``chat()`` - one non-streaming chat completion; returns the answer text; raises on failure
  (after the client's own retries, if it has any);
* ``stream(on_token)`` - one streamed chat completion; calls ``on_token()`` for every content
  token as it arrives; returns the number of tokens.

Raw clients (aiohttp, httpx) get the same hand-rolled retry loop for 429/5xx answers, honouring
``retry-after-ms`` then ``Retry-After``, with ``max_retries`` retries, because that is what a
user of a raw client would have to write.  The SDKs use their own retry logic.

The ``azml`` adapter uses azml-client's own ``stream`` and ``batch`` calls where a scenario
has one.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

#: The request every client sends (OpenAI chat schema).
MESSAGES = [{"role": "user", "content": "hi"}]
MAX_TOKENS = 16
MODEL = "bench-model"
PAYLOAD = {"model": MODEL, "messages": MESSAGES, "max_tokens": MAX_TOKENS}
STREAM_PAYLOAD = {**PAYLOAD, "stream": True}
API_KEY = "bench-key"
#: Pool size given to every client that has one (>= the highest concurrency used).
POOL = 128

# Make the checkout importable when run as `python -m benchmarks.run` from elsewhere.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


class RetryableStatus(Exception):
    """A 429/5xx answer, carrying the server's requested wait in seconds (or None)."""

    def __init__(self, status: int, wait: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.wait = wait


def _server_wait(headers: Any) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    seconds = headers.get("retry-after")
    if seconds is not None:
        try:
            return float(seconds)
        except ValueError:
            pass
    return None


async def _with_retries(call: Callable[[], Any], max_retries: int) -> Any:
    """What a raw-client user writes: retry 429/5xx, server's wait first, else backoff."""
    attempt = 0
    while True:
        try:
            return await call()
        except RetryableStatus as exc:
            if attempt >= max_retries:
                raise
            delay = exc.wait if exc.wait is not None else min(8.0, 0.5 * 2**attempt)
            await asyncio.sleep(delay * (1 + 0.1 * random.random()))
            attempt += 1


def _content_of(event: dict[str, Any]) -> str | None:
    choices = event.get("choices") or ()
    if not choices:
        return None
    delta = choices[0].get("delta") or {}
    content = delta.get("content")
    return content if content else None


class Adapter:
    """Base class: ``name``, construction from ``base`` (the server URL prefix), lifecycle."""

    name = "?"

    def __init__(self, base: str, *, max_retries: int = 0) -> None:
        self.base = base.rstrip("/")
        self.max_retries = max_retries
        self.chat_url = f"{self.base}/v1/chat/completions"

    async def __aenter__(self) -> Adapter:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def chat(self) -> str:
        raise NotImplementedError

    async def stream(self, on_token: Callable[[], None]) -> int:
        raise NotImplementedError


class AiohttpAdapter(Adapter):
    """Raw aiohttp: one ClientSession, ``json=`` bodies, ``resp.json()`` answers."""

    name = "aiohttp"

    async def open(self) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=POOL),
            headers={"Authorization": f"Bearer {API_KEY}"},
        )

    async def close(self) -> None:
        await self.session.close()

    async def _chat_once(self) -> str:
        async with self.session.post(self.chat_url, json=PAYLOAD) as resp:
            if resp.status == 429 or resp.status >= 500:
                await resp.read()
                raise RetryableStatus(resp.status, _server_wait(resp.headers))
            resp.raise_for_status()
            data = await resp.json()
        return str(data["choices"][0]["message"]["content"])

    async def chat(self) -> str:
        return str(await _with_retries(self._chat_once, self.max_retries))

    async def stream(self, on_token: Callable[[], None]) -> int:
        count = 0
        async with self.session.post(self.chat_url, json=STREAM_PAYLOAD) as resp:
            resp.raise_for_status()
            async for raw in resp.content:
                line = raw.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                if _content_of(json.loads(data)) is not None:
                    on_token()
                    count += 1
        return count


class HttpxAdapter(Adapter):
    """Raw httpx: one AsyncClient with its default transport (one httpcore pool)."""

    name = "httpx"

    def _transport(self) -> Any:
        return None

    async def open(self) -> None:
        import httpx

        transport = self._transport()
        kwargs: dict[str, Any] = {}
        if transport is None:
            kwargs["limits"] = httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)
        else:
            kwargs["transport"] = transport
        self.client = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60.0, **kwargs
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def _chat_once(self) -> str:
        resp = await self.client.post(self.chat_url, json=PAYLOAD)
        if resp.status_code == 429 or resp.status_code >= 500:
            raise RetryableStatus(resp.status_code, _server_wait(resp.headers))
        resp.raise_for_status()
        return str(resp.json()["choices"][0]["message"]["content"])

    async def chat(self) -> str:
        return str(await _with_retries(self._chat_once, self.max_retries))

    async def stream(self, on_token: Callable[[], None]) -> int:
        count = 0
        async with self.client.stream("POST", self.chat_url, json=STREAM_PAYLOAD) as resp:
            resp.raise_for_status()
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                if _content_of(json.loads(data)) is not None:
                    on_token()
                    count += 1
        return count


def _azml_transport() -> Any:
    """This project's aiohttp-backed httpx transport, as the client builds it."""
    import httpx

    from azml_client._http._factory import aiohttp_transport

    return aiohttp_transport(
        limits=httpx.Limits(
            max_connections=POOL, max_keepalive_connections=POOL, keepalive_expiry=30.0
        ),
        connect_timeout=10.0,
        proxy=None,
        verify=True,
        trust_env=False,
    )


class HttpxFastAdapter(HttpxAdapter):
    """httpx.AsyncClient over azml-client's aiohttp-backed transport (this project)."""

    name = "httpx+azml-transport"

    def _transport(self) -> Any:
        return _azml_transport()


class TransportDirectAdapter(Adapter):
    """The client's aiohttp transport driven without ``httpx.AsyncClient``: an
    ``httpx.Request`` handed straight to ``handle_async_request``.  Not a way to use the SDK:
    it shows what the transport costs once ``AsyncClient.send`` (cookies, auth flow, hooks,
    logging) is skipped.
    """

    name = "azml-transport-direct"

    async def open(self) -> None:
        import httpx

        self.transport = _azml_transport()
        self.url = httpx.URL(self.chat_url)
        self.headers = [
            (b"Host", self.url.netloc),
            (b"Accept", b"*/*"),
            (b"Accept-Encoding", b"gzip, deflate"),
            (b"User-Agent", b"bench"),
            (b"Authorization", f"Bearer {API_KEY}".encode()),
            (b"Content-Type", b"application/json"),
        ]
        self.extensions = {"timeout": {"connect": 10.0, "read": 60.0, "write": 60.0, "pool": 60.0}}

    async def close(self) -> None:
        await self.transport.aclose()

    async def _send(self, payload: dict[str, Any]) -> Any:
        import httpx

        request = httpx.Request(
            "POST",
            self.url,
            headers=self.headers,
            content=json.dumps(payload).encode(),
            extensions=self.extensions,
        )
        return await self.transport.handle_async_request(request)

    async def _chat_once(self) -> str:
        response = await self._send(PAYLOAD)
        try:
            body = await response.aread()
        finally:
            await response.aclose()
        if response.status_code == 429 or response.status_code >= 500:
            raise RetryableStatus(response.status_code, _server_wait(response.headers))
        if response.status_code >= 400:
            raise RuntimeError(f"HTTP {response.status_code}")
        return str(json.loads(body)["choices"][0]["message"]["content"])

    async def chat(self) -> str:
        return str(await _with_retries(self._chat_once, self.max_retries))

    async def stream(self, on_token: Callable[[], None]) -> int:
        count = 0
        response = await self._send(STREAM_PAYLOAD)
        try:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                if _content_of(json.loads(data)) is not None:
                    on_token()
                    count += 1
        finally:
            await response.aclose()
        return count


class OpenAIAdapter(Adapter):
    """The openai SDK's AsyncOpenAI with its own default HTTP client and retries."""

    name = "openai"

    async def open(self) -> None:
        from openai import AsyncOpenAI

        self.client = AsyncOpenAI(
            base_url=f"{self.base}/v1", api_key=API_KEY, max_retries=self.max_retries
        )

    async def close(self) -> None:
        await self.client.close()

    async def chat(self) -> str:
        out = await self.client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,  # type: ignore[arg-type]
            max_tokens=MAX_TOKENS,
        )
        return str(out.choices[0].message.content)

    async def stream(self, on_token: Callable[[], None]) -> int:
        count = 0
        response: Any = await self.client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,  # type: ignore[arg-type]
            max_tokens=MAX_TOKENS,
            stream=True,
        )
        async for chunk in response:
            if chunk.choices and chunk.choices[0].delta.content:
                on_token()
                count += 1
        return count


class AzureInferenceAdapter(Adapter):
    """azure-ai-inference's aio ChatCompletionsClient (azure-core pipeline over aiohttp)."""

    name = "azure-ai-inference"

    async def open(self) -> None:
        from azure.ai.inference.aio import ChatCompletionsClient
        from azure.core.credentials import AzureKeyCredential

        self.client = ChatCompletionsClient(
            endpoint=f"{self.base}/v1",
            credential=AzureKeyCredential(API_KEY),
            retry_total=self.max_retries,
        )

    async def close(self) -> None:
        await self.client.close()

    async def chat(self) -> str:
        from azure.ai.inference.models import UserMessage

        out = await self.client.complete(messages=[UserMessage("hi")], max_tokens=MAX_TOKENS)
        return str(out.choices[0].message.content)

    async def stream(self, on_token: Callable[[], None]) -> int:
        from azure.ai.inference.models import UserMessage

        count = 0
        response: Any = await self.client.complete(
            messages=[UserMessage("hi")], max_tokens=MAX_TOKENS, stream=True
        )
        async for update in response:
            if update.choices and update.choices[0].delta.content:
                on_token()
                count += 1
        await response.aclose()
        return count


class AzmlAdapter(Adapter):
    """azml-client's EndpointClient, against the contract in the benchmark brief."""

    name = "azml"

    async def open(self) -> None:
        from azml_client import EndpointClient

        self.client: Any = EndpointClient(
            endpoint_url=self.chat_url,
            api_key=API_KEY,
            api_type="serverless",
            formatter="openai",
            max_retries=self.max_retries,
            timeout=30,
        )
        await self.client.__aenter__()

    async def close(self) -> None:
        await self.client.__aexit__(None, None, None)

    async def chat(self) -> str:
        out = await self.client.chat(MESSAGES, max_tokens=MAX_TOKENS)
        return str(out.text)

    def has_stream(self) -> bool:
        return callable(getattr(self.client, "stream", None))

    def has_batch(self) -> bool:
        return callable(getattr(self.client, "batch", None))

    async def stream(self, on_token: Callable[[], None]) -> int:
        if not self.has_stream():
            raise NotImplementedError("EndpointClient.stream is not available yet")
        count = 0
        stream = self.client.stream(MESSAGES, max_tokens=MAX_TOKENS)
        async with stream as chunks:
            async for piece in chunks:
                if getattr(piece, "text", piece):
                    on_token()
                    count += 1
        return count

    async def batch(self, n: int, concurrency: int | str) -> list[bool]:
        # One result per item in input order; a failed item's result is its exception.
        items = [MESSAGES] * n
        results = await self.client.batch(items, concurrency=concurrency, max_tokens=MAX_TOKENS)
        return [not isinstance(r, BaseException) and not getattr(r, "error", None) for r in results]


class AzmlSyncAdapter(AzmlAdapter):
    """azml-client's SyncEndpointClient, called from a plain thread as a script would."""

    name = "azml-sync"

    async def open(self) -> None:
        from azml_client import SyncEndpointClient

        self.client = SyncEndpointClient(
            endpoint_url=self.chat_url,
            api_key=API_KEY,
            api_type="serverless",
            formatter="openai",
            max_retries=self.max_retries,
            timeout=30,
        )

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)

    async def chat(self) -> str:
        out = await asyncio.to_thread(self.client.chat, MESSAGES, max_tokens=MAX_TOKENS)
        return str(out.text)

    def blocking_rps(self, warmup: float, duration: float) -> dict[str, float]:
        """Blocking calls in a loop for ``warmup`` then ``duration`` seconds (1 in flight)."""
        import time

        chat = self.client.chat
        stop = time.perf_counter() + warmup
        while time.perf_counter() < stop:
            chat(MESSAGES, max_tokens=MAX_TOKENS)
        done, t0, cpu0 = 0, time.perf_counter(), time.process_time()
        stop = t0 + duration
        while time.perf_counter() < stop:
            chat(MESSAGES, max_tokens=MAX_TOKENS)
            done += 1
        t1, cpu1 = time.perf_counter(), time.process_time()
        return {
            "req_per_s": done / (t1 - t0),
            "cpu_us_per_req": (cpu1 - cpu0) / max(1, done) * 1e6,
            "requests": done,
            "errors": 0,
        }

    def has_stream(self) -> bool:
        return False

    def has_batch(self) -> bool:
        return False


#: Every adapter by name, in the default order of the report.
ADAPTERS: dict[str, type[Adapter]] = {
    cls.name: cls
    for cls in (
        AiohttpAdapter,
        HttpxAdapter,
        HttpxFastAdapter,
        TransportDirectAdapter,
        OpenAIAdapter,
        AzureInferenceAdapter,
        AzmlAdapter,
        AzmlSyncAdapter,
    )
}

#: Where each adapter's library comes from, to check availability before measuring.
REQUIRES: dict[str, tuple[str, ...]] = {
    "aiohttp": ("aiohttp",),
    "httpx": ("httpx",),
    "httpx+azml-transport": ("httpx", "azml_client._http._factory"),
    "azml-transport-direct": ("httpx", "azml_client._http._factory"),
    "openai": ("openai",),
    "azure-ai-inference": ("azure.ai.inference.aio", "azure.core.credentials"),
    "azml": ("azml_client",),
    "azml-sync": ("azml_client",),
}


def availability(name: str) -> str | None:
    """None when the adapter can run here, else why not."""
    import importlib

    for module in REQUIRES[name]:
        try:
            importlib.import_module(module)
        except Exception as exc:  # ImportError, or a half-written package failing to import
            return f"not available: import {module} failed ({type(exc).__name__}: {exc})"
    if name == "azml":
        try:
            from azml_client import EndpointClient  # noqa: F401
        except Exception as exc:
            return f"not available: from azml_client import EndpointClient failed ({exc})"
    return None
