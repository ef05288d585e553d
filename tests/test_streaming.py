"""The SSE decoder (split at every byte) and AsyncStream / SyncStream over in-process transports."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from azml_client import (
    APITimeoutError,
    ConfigurationError,
    EndpointClient,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    StreamInterruptedError,
    SyncEndpointClient,
)
from azml_client._sse import ServerSentEvent, SSEDecoder

from .conftest import CANARY_KEY, DEDICATED_URL, SERVERLESS_URL

STREAM = (
    b": keep-alive comment\n\n"
    b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"content":"Hel\xc3\xa9"}}]}\r\n\r\n'
    b'data: {"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}\r\r'
    b'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}\n\n'
    b"data: [DONE]\n\n"
)


def decode_all(chunks: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [e for c in chunks for e in decoder.feed(c)]
    return events + decoder.flush()


def test_decoder_handles_every_split_point() -> None:
    whole = decode_all([STREAM])
    assert [e.data for e in whole][-1] == "[DONE]"
    assert len(whole) == 5
    assert json.loads(whole[1].data)["choices"][0]["delta"]["content"] == "Helé"
    for cut in range(1, len(STREAM)):
        assert decode_all([STREAM[:cut], STREAM[cut:]]) == whole, cut
    assert decode_all([bytes([b]) for b in STREAM]) == whole


def test_decoder_fields_and_multiline_data() -> None:
    raw = b"event: error\nid: 7\ndata: line one\ndata:line two\n\ndata\n\n: only a comment\n\n"
    events = decode_all([raw])
    assert events[0] == ServerSentEvent(data="line one\nline two", event="error", id="7")
    assert events[1] == ServerSentEvent(data="", event="message", id="7")
    assert len(events) == 2


def test_decoder_drops_an_unterminated_last_event() -> None:
    assert decode_all([b'data: {"partial": tr']) == []


class ChunkedStream(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes], *, then_raise: Exception | None = None) -> None:
        self.chunks = chunks
        self.then_raise = then_raise
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.then_raise is not None:
            raise self.then_raise

    async def aclose(self) -> None:
        self.closed = True


def sse_transport(
    chunks: list[bytes],
    *,
    status: int = 200,
    content_type: str = "text/event-stream",
    then_raise: Exception | None = None,
    seen: list[httpx.Request] | None = None,
    streams: list[ChunkedStream] | None = None,
) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        stream = ChunkedStream(chunks, then_raise=then_raise)
        if streams is not None:
            streams.append(stream)
        return httpx.Response(
            status,
            headers={"content-type": content_type, "x-request-id": "srv-s"},
            stream=stream,
        )

    return httpx.MockTransport(handler)


def serverless(transport: httpx.AsyncBaseTransport, **kwargs: Any) -> EndpointClient:
    return EndpointClient(
        endpoint_url=SERVERLESS_URL, api_key=CANARY_KEY, transport=transport, **kwargs
    )


async def test_a_stream_names_its_answer_from_the_chunks() -> None:
    """``id`` and ``model`` come from the first chunk naming them; None where none does."""
    named = (
        b'data: {"id":"","choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
        b'data: {"id":"chatcmpl-9","model":"phi-4","choices":[{"index":0,"delta":{"content":"b"}}]}\n\n'
        b'data: {"id":"other","model":"other","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
        b"data: [DONE]\n\n"
    )
    for body, ident, model in ((named, "chatcmpl-9", "phi-4"), (STREAM, None, None)):
        client = serverless(sse_transport([body]))
        async with client, client.stream([{"role": "user", "content": "hi"}]) as stream:
            assert (stream.id, stream.model) == (None, None)  # nothing read yet
            text = "".join([c.text async for c in stream])
        assert text in ("ab", "Helélo")
        assert (stream.id, stream.model) == (ident, model)


async def test_chat_stream_yields_deltas_and_the_summary() -> None:
    seen: list[httpx.Request] = []
    streams: list[ChunkedStream] = []
    transport = sse_transport([STREAM[:40], STREAM[40:97], STREAM[97:]], seen=seen, streams=streams)
    client = serverless(transport)
    async with client, client.stream([{"role": "user", "content": "hi"}], max_tokens=5) as stream:
        chunks = [c async for c in stream]
    assert [c.text for c in chunks] == ["", "Helé", "lo", ""]
    assert stream.text == "Helélo"
    assert stream.finish_reason == "stop"
    assert stream.usage is not None and stream.usage.total_tokens == 3
    assert stream.request_id == "srv-s"
    body = json.loads(seen[0].content)
    assert body == {
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 5,
        "stream": True,
        "stream_options": {"include_usage": True},  # usage by default on OpenAI-style routes
    }
    assert seen[0].url.path.endswith("/chat/completions")
    assert "text/event-stream" in seen[0].headers["accept"]
    assert streams[0].closed


async def test_completion_stream_goes_to_the_completions_route() -> None:
    seen: list[httpx.Request] = []
    data = (
        b'data: {"choices":[{"index":0,"text":"a"}]}\n\n'
        b'data: {"choices":[{"index":0,"text":"b","finish_reason":"length"}]}\n\ndata: [DONE]\n\n'
    )
    async with serverless(sse_transport([data], seen=seen)) as client:
        texts = [c.text async for c in client.stream("go")]
    assert texts == ["a", "b"]
    assert seen[0].url.path.endswith("/v1/completions")
    assert json.loads(seen[0].content) == {
        "prompt": "go",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_stream_cut_before_done_is_an_error() -> None:
    cut = b'data: {"choices":[{"index":0,"delta":{"content":"par"}}]}\n\n'
    async with serverless(sse_transport([cut])) as client:
        stream = client.stream([{"role": "user", "content": "x"}])
        got: list[str] = []
        with pytest.raises(StreamInterruptedError, match="incomplete"):
            async for chunk in stream:
                got.append(chunk.text)
    assert got == ["par"]


async def test_transport_error_mid_stream_is_interrupted() -> None:
    first = b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
    transport = sse_transport([first], then_raise=httpx.RemoteProtocolError("peer closed"))
    async with serverless(transport) as client:
        with pytest.raises(StreamInterruptedError, match="broke"):
            async for _ in client.stream([{"role": "user", "content": "x"}]):
                pass


async def test_in_band_error_event_is_raised_as_our_error() -> None:
    data = b"event: error\ndata: Error parsing decoded stream: boom\n\ndata: [DONE]\n\n"
    async with serverless(sse_transport([data])) as client:
        with pytest.raises(ServerError, match="boom"):
            async for _ in client.stream([{"role": "user", "content": "x"}]):
                pass
    data = b'data: {"error": {"status": 429, "message": "slow down"}}\n\n'
    async with serverless(sse_transport([data])) as client:
        with pytest.raises(RateLimitError):
            async for _ in client.stream([{"role": "user", "content": "x"}]):
                pass


async def test_malformed_chunk_is_a_format_error() -> None:
    async with serverless(sse_transport([b"data: {nope\n\n"])) as client:
        with pytest.raises(ResponseFormatError, match="not JSON"):
            async for _ in client.stream([{"role": "user", "content": "x"}]):
                pass


async def test_error_status_before_the_stream_is_typed() -> None:
    transport = sse_transport([b'{"message": "slow"}'], status=429, content_type="application/json")
    async with serverless(transport, max_retries=0) as client:
        with pytest.raises(RateLimitError):
            async with client.stream([{"role": "user", "content": "x"}]):
                pass


async def test_a_json_answer_to_a_stream_request_is_one_chunk() -> None:
    body = json.dumps(
        {
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "all"},
                }
            ]
        }
    ).encode()
    async with serverless(sse_transport([body], content_type="application/json")) as client:
        chunks = [c async for c in client.stream([{"role": "user", "content": "x"}])]
    assert [(c.text, c.finish_reason) for c in chunks] == [("all", "stop")]


async def test_break_releases_the_response() -> None:
    streams: list[ChunkedStream] = []
    async with serverless(sse_transport([STREAM], streams=streams)) as client:
        async with client.stream([{"role": "user", "content": "x"}]) as stream:
            async for _ in stream:
                break
        assert streams[0].closed


async def test_idle_timeout_between_chunks() -> None:
    """A real loopback server that sends one event and then stalls: the read times out."""
    import asyncio

    stop = asyncio.Event()
    handlers: list[asyncio.Task[Any]] = []

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        event = b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
        writer.write(b"%x\r\n%s\r\n" % (len(event), event))
        await writer.drain()
        await stop.wait()  # stall until the test is over
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(stall, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    got: list[str] = []
    try:
        async with EndpointClient(
            endpoint_url=f"http://127.0.0.1:{port}/v1/chat/completions", api_key="k"
        ) as client:
            with pytest.raises(APITimeoutError, match=r"no data for 0\.2s"):
                async for chunk in client.stream(
                    [{"role": "user", "content": "x"}], idle_timeout=0.2
                ):
                    got.append(chunk.text)
    finally:
        stop.set()
        await asyncio.gather(*handlers, return_exceptions=True)
        server.close()
        await server.wait_closed()
    assert got == ["a"]


async def test_tgi_streams_on_dedicated() -> None:
    events = b"".join(
        b"data: " + json.dumps(e).encode() + b"\n\n"
        for e in [
            {"token": {"text": "Hel", "special": False}, "generated_text": None, "details": None},
            {"token": {"text": "</s>", "special": True}, "generated_text": None, "details": None},
            {
                "token": {"text": "lo", "special": False},
                "generated_text": "Hello",
                "details": {"finish_reason": "eos_token"},
            },
        ]
    )
    client = EndpointClient(
        endpoint_url=DEDICATED_URL, api_key="k", formatter="tgi", transport=sse_transport([events])
    )
    async with client, client.stream("say hello") as stream:
        texts = [c.text async for c in stream]
    assert texts == ["Hel", "", "lo"]
    assert stream.finish_reason == "stop"


def test_families_that_do_not_stream_say_so() -> None:
    client = EndpointClient(endpoint_url=DEDICATED_URL, api_key="k", formatter="llama")
    with pytest.raises(ConfigurationError, match="does not stream"):
        client.stream("x")


def test_sync_stream() -> None:
    streams: list[ChunkedStream] = []
    with SyncEndpointClient(
        endpoint_url=SERVERLESS_URL, api_key="k", transport=sse_transport([STREAM], streams=streams)
    ) as client:
        with client.stream([{"role": "user", "content": "x"}]) as stream:
            texts = [c.text for c in stream]
        assert texts == ["", "Helé", "lo", ""]
        assert stream.text == "Helélo" and stream.finish_reason == "stop"
        with client.stream([{"role": "user", "content": "x"}]) as stream:
            for _ in stream:
                break
    assert all(s.closed for s in streams)
