"""Retry decisions as tables, and the retry loop through respx with the sleep injected."""

from __future__ import annotations

import email.utils
import logging

import httpx
import pytest
import respx

from azml_client import (
    APIConnectionError,
    BadRequestError,
    EndpointClient,
    ModelError,
    RateLimitError,
    RetryPolicy,
    ServerError,
)
from azml_client._retry import backoff, is_retryable_error, is_retryable_status, parse_retry_after

from .conftest import CANARY_KEY, DEDICATED_URL, SleepRecorder

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"x-ms-retry-after-ms": "250"}, 0.25),
        ({"Retry-After": "3"}, 3.0),
        ({"Retry-After": "2.5"}, 2.5),
        ({"retry-after-ms": "100", "Retry-After": "9"}, 0.1),
        ({"retry-after-ms": "junk", "Retry-After": "4"}, 4.0),
        ({"Retry-After": "-1"}, None),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": email.utils.formatdate(NOW + 7, usegmt=True)}, 7.0),
        ({"Retry-After": email.utils.formatdate(NOW - 60, usegmt=True)}, 0.0),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == expected


@pytest.mark.parametrize(
    ("status", "model_status", "reason", "expected"),
    [
        (408, None, None, True),
        (429, None, None, True),
        (500, None, None, True),
        (502, None, None, True),
        (503, None, None, True),
        (504, None, None, True),
        (400, None, None, False),
        (401, None, None, False),
        (403, None, None, False),
        (404, None, None, False),
        (422, None, None, False),
        (424, 503, None, True),
        (424, 429, None, True),
        (424, 400, None, False),
        (424, None, "model_not_ready", True),
        (424, None, "boom", False),
    ],
)
def test_retryable_statuses(
    status: int, model_status: int | None, reason: str | None, expected: bool
) -> None:
    assert is_retryable_status(status, model_status=model_status, model_reason=reason) is expected


def test_retryable_errors() -> None:
    assert is_retryable_error(APIConnectionError("x"))
    assert is_retryable_error(ServerError("x", status_code=503))
    assert not is_retryable_error(BadRequestError("x", status_code=400))
    assert is_retryable_error(ModelError("x", status_code=424, model_status_code=504))
    assert not is_retryable_error(ValueError("x"))


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [(1, 0.0, 0.25), (1, 1.0, 0.5), (2, 1.0, 1.0), (3, 1.0, 2.0), (10, 1.0, 8.0), (10, 0.0, 4.0)],
)
def test_backoff_is_exponential_with_jitter_and_a_cap(
    attempt: int, rand: float, expected: float
) -> None:
    assert backoff(attempt, base=0.5, cap=8.0, rand=lambda: rand) == expected


def client(sleeps: SleepRecorder, **kwargs: object) -> EndpointClient:
    return EndpointClient(
        endpoint_url=DEDICATED_URL,
        api_key=CANARY_KEY,
        sleep=sleeps,
        **kwargs,  # type: ignore[arg-type]
    )


@respx.mock
async def test_retries_honour_the_server_wait_and_keep_the_request_id(
    sleeps: SleepRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    route = respx.post(DEDICATED_URL).mock(
        side_effect=[
            httpx.Response(429, headers={"retry-after-ms": "1200"}),
            httpx.Response(503, headers={"Retry-After": "2"}),
            httpx.Response(200, json=["ok"]),
        ]
    )
    caplog.set_level(logging.INFO, logger="azml_client")
    async with client(sleeps, max_retries=3) as c:
        out = await c.complete("x")
    assert out.text == "ok"
    assert out.attempts == 3
    assert sleeps.waits == [1.2, 2.0]
    ids = {call.request.headers["x-ms-client-request-id"] for call in route.calls}
    assert ids == {out.client_request_id}
    retry_logs = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retry_logs) == 2
    assert "HTTP 429" in retry_logs[0] and "1.200s" in retry_logs[0]
    assert all(CANARY_KEY not in line for line in retry_logs)


@respx.mock
async def test_backoff_is_used_when_the_server_says_nothing(sleeps: SleepRecorder) -> None:
    respx.post(DEDICATED_URL).mock(
        side_effect=[httpx.ConnectError("reset"), httpx.Response(200, json=["ok"])]
    )
    async with client(sleeps, retry=RetryPolicy(max_retries=2, backoff_base=1.0)) as c:
        out = await c.complete("x")
    assert out.attempts == 2
    assert len(sleeps.waits) == 1 and 0.5 <= sleeps.waits[0] <= 1.0


@respx.mock
async def test_gives_up_after_max_retries_with_attempts_on_the_error(
    sleeps: SleepRecorder,
) -> None:
    route = respx.post(DEDICATED_URL).mock(return_value=httpx.Response(503))
    async with client(sleeps, max_retries=2) as c:
        with pytest.raises(ServerError) as info:
            await c.complete("x")
    assert route.call_count == 3
    assert info.value.attempts == 3
    assert "after 3 attempts" in str(info.value)


@respx.mock
async def test_max_retries_zero_and_per_call_override(sleeps: SleepRecorder) -> None:
    route = respx.post(DEDICATED_URL).mock(return_value=httpx.Response(500))
    async with client(sleeps, max_retries=0) as c:
        with pytest.raises(ServerError):
            await c.complete("x")
        assert route.call_count == 1
        with pytest.raises(ServerError):
            await c.complete("x", max_retries=1)
    assert route.call_count == 3


@respx.mock
async def test_non_retryable_status_is_not_retried(sleeps: SleepRecorder) -> None:
    route = respx.post(DEDICATED_URL).mock(return_value=httpx.Response(400, json={"message": "no"}))
    async with client(sleeps, max_retries=5) as c:
        with pytest.raises(BadRequestError):
            await c.complete("x")
    assert route.call_count == 1 and sleeps.waits == []


@respx.mock
async def test_424_is_retried_only_for_retryable_model_status(sleeps: SleepRecorder) -> None:
    route = respx.post(DEDICATED_URL).mock(
        side_effect=[
            httpx.Response(424, headers={"ms-azureml-model-error-statuscode": "503"}),
            httpx.Response(424, headers={"ms-azureml-model-error-statuscode": "400"}),
        ]
    )
    async with client(sleeps, max_retries=5) as c:
        with pytest.raises(ModelError) as info:
            await c.complete("x")
    assert route.call_count == 2
    assert info.value.model_status_code == 400


@respx.mock
async def test_a_server_wait_beyond_the_budget_fails_at_once(sleeps: SleepRecorder) -> None:
    route = respx.post(DEDICATED_URL).mock(
        return_value=httpx.Response(429, headers={"Retry-After": "600"})
    )
    async with client(sleeps, retry=RetryPolicy(max_retries=5, max_retry_after=30)) as c:
        with pytest.raises(RateLimitError) as info:
            await c.complete("x")
        assert info.value.retry_after == 600
        with pytest.raises(RateLimitError):
            await c.complete("x", deadline=5)  # a 600 s wait cannot fit a 5 s deadline either
    assert route.call_count == 2 and sleeps.waits == []


@respx.mock
async def test_deadline_stops_retrying(sleeps: SleepRecorder) -> None:
    route = respx.post(DEDICATED_URL).mock(
        return_value=httpx.Response(503, headers={"retry-after-ms": "3000"})
    )
    async with client(sleeps, max_retries=10) as c:
        with pytest.raises(ServerError):
            await c.complete("x", deadline=2)
    assert route.call_count == 1


@respx.mock
async def test_vllm_error_in_200_is_retried_like_its_status(sleeps: SleepRecorder) -> None:
    route = respx.post(DEDICATED_URL).mock(
        side_effect=[
            httpx.Response(200, json={"output": None, "error": {"status_code": 503, "body": "x"}}),
            httpx.Response(200, json={"output": ["fine"]}),
        ]
    )
    async with client(sleeps, formatter="vllm", max_retries=2) as c:
        out = await c.complete("x")
    assert (out.text, out.attempts, route.call_count) == ("fine", 2, 2)


@respx.mock
async def test_a_retry_policy_overrides_every_setting_for_one_call(sleeps: SleepRecorder) -> None:
    from azml_client import RetryPolicy

    route = respx.post(DEDICATED_URL).mock(return_value=httpx.Response(503))
    async with client(sleeps, max_retries=0) as c:
        policy = RetryPolicy(max_retries=3, backoff_base=10, backoff_max=10)
        with pytest.raises(ServerError) as info:
            await c.complete("x", max_retries=policy)
    assert route.call_count == 4 and info.value.attempts == 4
    assert len(sleeps.waits) == 3 and all(5 <= w <= 10 for w in sleeps.waits)


async def test_connection_reset_by_a_raw_server_is_retried_then_raised(
    sleeps: SleepRecorder,
) -> None:
    import asyncio

    accepted = 0

    async def slam(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        writer.transport.abort()  # RST: the connection is reset before any answer

    server = await asyncio.start_server(slam, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with EndpointClient(
            endpoint_url=f"http://127.0.0.1:{port}/score", api_key="k", max_retries=2, sleep=sleeps
        ) as c:
            with pytest.raises(APIConnectionError) as info:
                await c.complete("x")
    finally:
        server.close()
        await server.wait_closed()
    assert info.value.attempts == 3 and accepted == 3
