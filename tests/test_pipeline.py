"""The request pipeline against a raw loopback server: whatever bytes come back, a result or an
AzmlError; time limits that hold; waits that never freeze a call or a bulk run.

Every test talks to :class:`tests.faultserver.FaultServer` through the client's default
transport (the code production runs). ``HANG`` turns a would-be hang into a failure; no test
asserts on timing beyond that.
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import json
import pickle
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from azml_client import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AzmlError,
    ClientClosedError,
    Completion,
    EndpointClient,
    RateLimitError,
    ResponseFormatError,
    RetryPolicy,
    ServerError,
    StreamInterruptedError,
)

from .conftest import CANARY_KEY
from .faultserver import FaultServer, RawRequest, answer, response

HANG = 15.0
OK = response(200, json.dumps({"output": "fine"}).encode())
CHAT_OK = json.dumps(
    {"choices": [{"message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}]}
).encode()


def client_for(server: FaultServer, **kwargs: Any) -> EndpointClient:
    kwargs.setdefault("formatter", "llama-chat")
    kwargs.setdefault("retry", RetryPolicy(max_retries=0, backoff_base=0.001))
    return EndpointClient(server.url("/score"), CANARY_KEY, **kwargs)


def serverless_for(server: FaultServer, **kwargs: Any) -> EndpointClient:
    kwargs.setdefault("retry", RetryPolicy(max_retries=0, backoff_base=0.001))
    return EndpointClient(server.url("/v1/chat/completions"), CANARY_KEY, **kwargs)


@pytest.fixture
async def server() -> AsyncIterator[FaultServer]:
    """A server whose answer each test sets with ``server.handler = ...``."""
    async with FaultServer(answer(OK)) as srv:
        yield srv


# -- Retry-After: capped everywhere ----------------------------------------------------------

YEAR_OUT = email.utils.formatdate(time.time() + 365 * 86400, usegmt=True)


@pytest.mark.parametrize("retry_after", ["3600", "1e9", YEAR_OUT])
async def test_a_long_retry_after_fails_a_call_at_once(
    server: FaultServer, retry_after: str
) -> None:
    server.handler = answer(
        response(429, b'{"message": "slow"}', headers={"Retry-After": retry_after})
    )
    async with client_for(server, retry=RetryPolicy(max_retries=5)) as client:
        with anyio.fail_after(HANG), pytest.raises(RateLimitError) as caught:
            await client.complete("x")
    assert caught.value.retry_after is not None and caught.value.retry_after > 60
    assert caught.value.attempts == 1
    assert len(server.requests) == 1


@pytest.mark.parametrize("retry_after", ["3600", "1e9", YEAR_OUT])
async def test_a_long_retry_after_fails_bulk_items_instead_of_freezing_the_run(
    server: FaultServer, retry_after: str
) -> None:
    server.handler = answer(
        response(429, b'{"message": "slow"}', headers={"Retry-After": retry_after})
    )
    async with client_for(server) as client:
        with anyio.fail_after(HANG):
            results = await client.batch(["a", "b", "c", "d"], concurrency="auto")
        assert all(isinstance(r, RateLimitError) for r in results)
        assert results.stats.failed == 4
        with anyio.fail_after(HANG):
            async with client.map(["e", "f"], concurrency=2) as run:
                seen = [result async for _, result in run]
        assert all(isinstance(r, RateLimitError) for r in seen)


async def test_bulk_items_retry_through_the_driver_with_the_injected_sleep(
    server: FaultServer,
) -> None:
    answers = iter(
        [response(503, b"{}"), response(429, b"{}", headers={"retry-after-ms": "5"}), OK]
    )

    async def flaky(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(next(answers, OK))

    server.handler = flaky
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    async with client_for(server, sleep=sleep, retry=RetryPolicy(max_retries=3)) as client:
        with anyio.fail_after(HANG):
            results = await client.batch(["only"], concurrency=1)
    first = results[0]
    assert isinstance(first, Completion)
    assert first.text == "fine"
    assert first.attempts == 3
    assert results.stats.sent == 3 and results.stats.retried == 2
    assert waits  # the backoff and the Retry-After went through the injected sleep


# -- whatever the server sends: a result or an AzmlError ------------------------------------


async def test_malformed_optional_fields_are_dropped_not_raised(server: FaultServer) -> None:
    body = {
        "choices": [{"message": {"role": 7, "content": "fine"}, "finish_reason": ["odd"]}],
        "usage": {"prompt_tokens": "twelve", "completion_tokens": 3, "total_tokens": -1},
        "model": {"not": "a string"},
    }
    server.handler = answer(response(200, json.dumps(body).encode()))
    async with serverless_for(server) as client:
        reply = await client.chat([{"role": "user", "content": "x"}])
    assert reply.text == "fine"
    assert reply.message.role == "assistant"
    assert reply.finish_reason is None and reply.model is None
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 3
    assert reply.usage.prompt_tokens is None and reply.usage.total_tokens is None


DEEP = b"[" * 5000 + b"]" * 5000


async def test_deeply_nested_bodies_are_typed_errors(server: FaultServer) -> None:
    async with serverless_for(server) as client:
        server.handler = answer(response(200, DEEP))
        with pytest.raises(ResponseFormatError):
            await client.chat([{"role": "user", "content": "x"}])
        server.handler = answer(response(500, DEEP))
        with pytest.raises(ServerError) as caught:
            await client.chat([{"role": "user", "content": "x"}])
        assert caught.value.status_code == 500
        server.handler = answer(response(200, DEEP))
        with pytest.raises(ResponseFormatError):
            await client.invoke({"x": 1})


async def test_a_deeply_nested_stream_event_is_a_typed_error(server: FaultServer) -> None:
    events = b"data: " + DEEP + b"\n\n"
    server.handler = answer(response(200, events, headers={"Content-Type": "text/event-stream"}))
    async with serverless_for(server) as client:
        with pytest.raises(ResponseFormatError):
            async with client.stream([{"role": "user", "content": "x"}]) as stream:
                async for _ in stream:
                    pass


async def test_a_body_that_lies_about_gzip_is_a_typed_error(server: FaultServer) -> None:
    server.handler = answer(response(200, b"not gzip at all", headers={"Content-Encoding": "gzip"}))
    async with client_for(server) as client:
        with pytest.raises(ResponseFormatError, match="gzip"):
            await client.complete("x")
    good = gzip.compress(json.dumps({"output": "zipped"}).encode())
    server.handler = answer(response(200, good, headers={"Content-Encoding": "gzip"}))
    async with client_for(server) as client:
        assert (await client.complete("x")).text == "zipped"


@pytest.mark.parametrize("status_line", [b"HTTP/1.1 \xc2\xb2 OK", b"HTTP/1.1 2OO OK", b"garbage"])
async def test_an_unreadable_status_line_is_a_connection_error(
    server: FaultServer, status_line: bytes
) -> None:
    server.handler = answer(status_line + b"\r\nContent-Length: 2\r\n\r\n{}")
    async with client_for(server) as client:
        with pytest.raises(APIConnectionError):
            await client.complete("x")


@pytest.mark.parametrize("status", [299, 302, 600, 999])
async def test_odd_statuses_are_typed(server: FaultServer, status: int) -> None:
    body = b'{"output": "x"}'
    server.handler = answer(response(status, body, headers={"Location": "/elsewhere"}))
    async with client_for(server) as client:
        if status == 299:
            assert (await client.complete("x")).text == "x"
        else:
            with pytest.raises(APIStatusError) as caught:
                await client.complete("x")
            assert caught.value.status_code == status


async def test_a_malformed_answer_in_a_bulk_run_is_one_failed_item(server: FaultServer) -> None:
    async def mixed(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        prompt = request.json()["input_data"]["input_string"][0]["content"]  # type: ignore[index]
        writer.write(response(200, DEEP) if prompt == "bad" else OK)

    server.handler = mixed
    async with client_for(server) as client:
        results = await client.batch(["ok", "bad", "ok2"], concurrency=2)
    assert isinstance(results[1], ResponseFormatError)
    assert [getattr(r, "text", None) for r in results] == ["fine", None, "fine"]


async def test_closing_the_client_mid_stream_gives_an_azml_error(server: FaultServer) -> None:
    async def endless(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
        for i in range(200):
            event = {"choices": [{"delta": {"content": f"{i} "}, "finish_reason": None}]}
            writer.write(f"data: {json.dumps(event)}\n\n".encode())
            await writer.drain()
            await asyncio.sleep(0.02)

    server.handler = endless
    client = serverless_for(server)
    with anyio.fail_after(HANG):
        async with client.stream([{"role": "user", "content": "x"}]) as stream:
            received = 0
            with pytest.raises(AzmlError) as caught:
                async for _ in stream:
                    received += 1
                    if received == 2:
                        await client.aclose()
    assert isinstance(caught.value, APIConnectionError | ClientClosedError)


# -- time limits -----------------------------------------------------------------------------


async def test_timeout_bounds_a_whole_attempt_against_a_drip(server: FaultServer) -> None:
    async def drip(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 600\r\n\r\n"
        )
        for _ in range(600):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.1)

    server.handler = drip
    async with client_for(server, timeout=0.5) as client:
        with anyio.fail_after(HANG), pytest.raises(APITimeoutError):
            await client.complete("x")


async def test_deadline_bounds_a_stream_body(server: FaultServer) -> None:
    async def slow_stream(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
        for i in range(300):
            event = {"choices": [{"delta": {"content": "x"}, "finish_reason": None}], "i": i}
            writer.write(f"data: {json.dumps(event)}\n\n".encode())
            await writer.drain()
            await asyncio.sleep(0.05)

    server.handler = slow_stream
    async with serverless_for(server, timeout=5) as client:
        with anyio.fail_after(HANG), pytest.raises(APITimeoutError, match="deadline"):
            async with client.stream([{"role": "user", "content": "x"}], deadline=0.6) as stream:
                async for _ in stream:
                    pass


async def test_idle_timeout_bounds_the_gap_between_chunks(server: FaultServer) -> None:
    async def stall(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
        event = {"choices": [{"delta": {"content": "x"}, "finish_reason": None}]}
        writer.write(f"data: {json.dumps(event)}\n\n".encode())
        await writer.drain()
        await asyncio.sleep(HANG)

    server.handler = stall
    async with serverless_for(server) as client:
        with anyio.fail_after(HANG - 5), pytest.raises(APITimeoutError, match="no data"):
            async with client.stream([{"role": "user", "content": "x"}], idle_timeout=0.3) as s:
                async for _ in s:
                    pass


async def test_a_cut_stream_is_interrupted(server: FaultServer) -> None:
    event = {"choices": [{"delta": {"content": "x"}, "finish_reason": None}]}
    body = f"data: {json.dumps(event)}\n\n".encode()
    server.handler = answer(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 500\r\n\r\n" + body
    )

    async def cut(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 500\r\n\r\n"
            + body
        )
        await writer.drain()
        writer.close()

    server.handler = cut
    async with serverless_for(server) as client:
        with anyio.fail_after(HANG), pytest.raises(StreamInterruptedError):
            async with client.stream([{"role": "user", "content": "x"}]) as stream:
                async for _ in stream:
                    pass


# -- secrets ---------------------------------------------------------------------------------


async def test_a_gateway_that_echoes_headers_never_leaks_the_key(server: FaultServer) -> None:
    async def echo(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        body = json.dumps({"message": f"bad request {request.headers}"}).encode()
        writer.write(
            response(
                400,
                body,
                headers={"X-Echo-Authorization": request.headers.get("authorization", "")},
            )
        )

    server.handler = echo
    async with client_for(server) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.complete("x")
    exc = caught.value
    assert server.requests[0].headers["authorization"] == f"Bearer {CANARY_KEY}"
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None:
        chain.append(link)
        link = link.__cause__ or link.__context__
    for link in chain:
        for text in (str(link), repr(link), repr(vars(link)), repr(link.args)):
            assert CANARY_KEY not in text
    assert "[REDACTED]" in exc.body
    assert CANARY_KEY not in pickle.dumps(exc).decode("latin-1")


async def test_errors_cross_a_process_boundary(server: FaultServer) -> None:
    server.handler = answer(response(429, b'{"message": "slow"}', headers={"Retry-After": "2"}))
    async with client_for(server) as client:
        with pytest.raises(RateLimitError) as caught:
            await client.complete("x")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is RateLimitError
    assert (copy.status_code, copy.retry_after, copy.request_id, copy.url) == (
        429,
        2.0,
        caught.value.request_id,
        caught.value.url,
    )
    assert str(copy) == str(caught.value)


# -- headers on the wire ---------------------------------------------------------------------


async def test_default_and_extra_headers_are_sent(server: FaultServer) -> None:
    async with client_for(server, default_headers={"X-Team": "search", "X-Trace": "a"}) as client:
        await client.complete("x")
        await client.complete("x", extra_headers={"X-Trace": "b", "X-Call": "1"})
        await client.invoke({"x": 1}, extra_headers={"X-Call": "2"})
        shorter = client.with_options(default_headers={"X-Team": "ads"})
        await shorter.complete("x")
    first, second, third, fourth = (r.headers for r in server.requests)
    assert (first["x-team"], first["x-trace"]) == ("search", "a")
    assert (second["x-team"], second["x-trace"], second["x-call"]) == ("search", "b", "1")
    assert third["x-call"] == "2"
    assert fourth["x-team"] == "ads" and "x-trace" not in fourth
    assert all(h["user-agent"].startswith("azml-client/") for h in (first, fourth))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([], (None, None, False)),
        (
            [("X-Ms-Request-Id", "ms-1"), ("x-request-id", "x-1"), ("Content-Encoding", "gzip")],
            ("x-1", None, True),  # x-request-id first, whatever the order sent
        ),
        ([("x-request-id", ""), ("apim-request-id", "apim-1")], ("apim-1", None, False)),
        (
            [("AzureML-Model-Deployment", ""), ("azureml-model-deployment", "blue")],
            (None, "blue", False),  # an empty value does not count
        ),
    ],
)
def test_one_pass_over_the_headers_finds_what_the_client_reads(
    raw: list[tuple[str, str]], expected: tuple[str | None, str | None, bool]
) -> None:
    from azml_client._http._body import header_facts

    assert tuple(header_facts(httpx.Headers(raw))) == expected
