"""The shared rate budget, ``map()`` on live sources, 429 kinds and token budgets.

Transports are injected (``httpx.MockTransport``) into the code production runs; waits that
would take real time go through an injected sleep, so no assertion depends on the clock.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from azml_client import (
    Completion,
    ConfigurationError,
    EndpointClient,
    RateBudget,
    RateLimitError,
    RetryPolicy,
)
from azml_client._bulk import BatchRun
from azml_client._bulk._items import Item
from azml_client._bulk._limiter import Signal, classify
from azml_client._bulk._run import estimate_tokens

from .conftest import SERVERLESS_URL

HANG = 10.0


def answer(text: str, usage: dict[str, int] | None = None) -> httpx.Response:
    body: dict[str, Any] = {"choices": [{"index": 0, "text": text, "finish_reason": "stop"}]}
    if usage is not None:
        body["usage"] = usage
    return httpx.Response(200, json=body)


class Endpoint:
    """A mock endpoint that records how many requests are in flight at once."""

    def __init__(self, delay: float = 0.002) -> None:
        self.delay = delay
        self.in_flight = 0
        self.peaks: list[tuple[int, int]] = []  # (in flight, the budget's limit then)
        self.budget: RateBudget | None = None

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        limit = self.budget.concurrency if self.budget else 0
        self.peaks.append((self.in_flight, limit))
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        return answer(json.loads(request.content)["prompt"])


def client_for(handler: Any, **kwargs: Any) -> EndpointClient:
    kwargs.setdefault("retry", RetryPolicy(max_retries=2, backoff_base=0.001))
    return EndpointClient(SERVERLESS_URL, "k", transport=httpx.MockTransport(handler), **kwargs)


# -- one budget per endpoint -----------------------------------------------------------------


async def test_two_concurrent_batches_share_one_budget() -> None:
    endpoint = Endpoint()
    async with client_for(endpoint) as client:
        endpoint.budget = client.budget
        first, second = await asyncio.gather(
            client.batch([f"a{i}" for i in range(60)]),
            client.batch([f"b{i}" for i in range(60)]),
        )
    assert first.stats.budget is second.stats.budget is client.budget
    assert first.stats.succeeded == second.stats.succeeded == 60
    # Both runs together never had more in flight than the one shared limit allowed.
    assert all(in_flight <= limit for in_flight, limit in endpoint.peaks)
    assert client.budget.concurrency > 8  # the one limit grew, for both runs
    assert client.budget.sent == 120 and client.budget.in_flight == 0


async def test_a_later_batch_keeps_what_the_endpoint_taught_the_first() -> None:
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 20:
            return httpx.Response(429, json={"message": "Rate limit is exceeded"})
        return answer("x")

    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    async with client_for(handler, sleep=sleep) as client:
        await client.batch([f"p{i}" for i in range(40)])
        learnt = client.budget.rate
        assert learnt is not None  # the 429 set a pacing rate
        again = client.with_options(model_kwargs={"temperature": 0})
        assert again.budget is client.budget
        assert again.budget.rate is not None
    assert client.budget.snapshot()["rate_limited"] == 1


async def test_clients_given_one_budget_share_it() -> None:
    budget = RateBudget(max_concurrency=4)
    one = client_for(Endpoint(), budget=budget)
    two = client_for(Endpoint(), budget=budget)
    assert one.budget is two.budget is budget
    await one.batch(["a", "b"])
    await two.batch(["c"])
    assert budget.sent == 3
    with pytest.raises(ConfigurationError, match="RateBudget"):
        client_for(Endpoint(), budget=object())


async def test_fixed_concurrency_keeps_its_own_limit() -> None:
    endpoint = Endpoint()
    async with client_for(endpoint) as client:
        results = await client.batch([f"p{i}" for i in range(30)], concurrency=3)
    assert results.stats.concurrency == 3
    assert max(n for n, _ in endpoint.peaks) <= 3
    assert client.budget.sent == 0  # the shared budget was not touched


# -- map() on live and endless sources -------------------------------------------------------


async def test_map_hands_out_results_while_it_waits_for_input() -> None:
    """A queue-fed source: the next item comes only after the previous result was seen."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    async def source() -> AsyncIterator[str]:
        while (item := await queue.get()) is not None:
            yield item

    async with client_for(Endpoint()) as client:
        with anyio.fail_after(HANG):
            async with client.map(source()) as run:
                results = run.__aiter__()
                for i in range(5):
                    await queue.put(f"item{i}")
                    index, result = await results.__anext__()
                    assert (index, getattr(result, "text", None)) == (i, f"item{i}")
                await queue.put(None)
                assert [r async for r in results] == []


async def test_an_endless_source_stops_cleanly_when_the_consumer_leaves() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[str]:
        i = 0
        try:
            while True:
                yield f"p{i}"
                i += 1
        finally:
            closed.set()

    before = set(asyncio.all_tasks())
    async with client_for(Endpoint()) as client:
        with anyio.fail_after(HANG):
            seen = 0
            async with client.map(endless()) as run:
                async for _ in run:
                    seen += 1
                    if seen == 25:
                        break
        assert client.budget.in_flight == 0
    assert closed.is_set()
    await asyncio.sleep(0)
    assert set(asyncio.all_tasks()) - before == set()


async def test_a_failing_source_raises_in_the_consumer() -> None:
    def broken() -> Any:
        yield "a"
        raise ValueError("the source broke")

    async with client_for(Endpoint()) as client:
        with pytest.raises(ValueError, match="source broke"):
            async with client.map(broken()) as run:
                async for _ in run:
                    pass


# -- the two kinds of 429 --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "signal"),
    [
        ("Too many pending requests", Signal.OVERLOADED),
        ("Model is overloaded", Signal.OVERLOADED),
        ("Rate limit is exceeded. Try again in 1 second.", Signal.RATE_LIMITED),
        ("", Signal.RATE_LIMITED),
    ],
)
def test_429s_are_told_apart(message: str, signal: str) -> None:
    error = RateLimitError(message, status_code=429, body=json.dumps({"message": message}))
    assert classify(error) == signal


async def test_pending_request_429s_shrink_concurrency_not_the_pace() -> None:
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls % 10 == 5:
            return httpx.Response(429, json={"error": "Too many pending requests"})
        await asyncio.sleep(0.001)
        return answer("x")

    async with client_for(handler) as client:
        results = await client.batch([f"p{i}" for i in range(60)])
    assert results.stats.succeeded == 60
    assert client.budget.rate is None  # never treated as a pace limit
    history = [limit for _, limit in client.budget.limiter.history]
    assert any(b < a for a, b in itertools.pairwise(history))  # it halved


# -- token budgets ---------------------------------------------------------------------------


def test_the_token_estimate_sees_every_output_limit() -> None:
    item = Item.of("x" * 40)
    assert estimate_tokens(item, {"max_tokens": 32}) == 42
    assert estimate_tokens(item, {"max_new_tokens": 8}) == 18
    assert estimate_tokens(item, {}) == 10 + 256
    chat = Item.of([{"role": "user", "content": "y" * 80}])
    assert estimate_tokens(chat, {"max_tokens": 5}) == 25


async def test_max_tpm_reserves_what_the_run_parameters_allow_and_corrects_by_usage() -> None:
    """With max_tokens=10 given to batch() (not per item) the budget reserves ~20 tokens per
    item, and the reported usage corrects it: the waits asked for match that, not 266."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    async def handler(request: httpx.Request) -> httpx.Response:
        return answer("y", usage={"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20})

    async with client_for(handler, sleep=sleep) as client:
        results = await client.batch(["x" * 40] * 30, concurrency=1, max_tpm=6000, max_tokens=10)
    assert results.stats.succeeded == 30
    assert (results.stats.tokens_in, results.stats.tokens_out) == (300, 300)
    # 6000 tokens/min = 100/s, starting empty, and the sleep does not really wait: the debt
    # grows by each reservation, so the last wait asked for is 30 x 20 / 100 = 6 s (the
    # default estimate of 266 tokens an item would have asked for ~80 s).
    assert max(waits) == pytest.approx(6.0, abs=0.5)


async def test_a_failed_attempt_gives_its_tokens_back() -> None:
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls % 2:
            return httpx.Response(503, json={})
        return answer("y", usage={"total_tokens": 20})

    started = time.monotonic()
    budget = RateBudget(max_tpm=60_000)
    async with client_for(handler, budget=budget, sleep=lambda s: asyncio.sleep(0)) as client:
        results = await client.batch(["x" * 40] * 10, max_tokens=10)
    charged = 20 * results.stats.succeeded
    assert results.stats.succeeded >= 5
    bucket = budget.tpm
    assert bucket is not None
    # Each answer of 20 tokens was charged; every failed attempt was refunded (what the bucket
    # refilled meanwhile is bounded by the run's short wall time).
    bucket._refill()
    assert -charged <= bucket._tokens <= -charged + bucket.rate * (time.monotonic() - started)


# -- stats -----------------------------------------------------------------------------------


async def test_items_refused_locally_are_not_sent() -> None:
    calls: list[Item] = []

    async def call(item: Item, hook: Any) -> Completion:
        calls.append(item)
        await hook.before_attempt()
        return Completion(text=item.payload)

    run = BatchRun(call, ["ok", 42, {"prompt": 7}, [{"content": "no role"}], "ok2"])
    async with run:
        results = dict([pair async for pair in run])
    assert [type(results[i]).__name__ for i in range(5)] == [
        "Completion",
        "ConfigurationError",
        "ConfigurationError",
        "ConfigurationError",
        "Completion",
    ]
    assert (run.stats.sent, run.stats.succeeded, run.stats.rejected) == (2, 2, 3)
    assert len(calls) == 2
