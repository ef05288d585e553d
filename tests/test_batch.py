"""Bulk runs over an in-process transport, and the limiter's decisions with a fake clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from azml_client import (
    BadRequestError,
    ChatCompletion,
    Completion,
    ConfigurationError,
    EndpointClient,
    RateLimitError,
    RetryPolicy,
    ServerError,
    SyncEndpointClient,
)
from azml_client._bulk._items import Item
from azml_client._bulk._limiter import AdaptiveLimiter, Signal, TokenBucket

from .conftest import SERVERLESS_URL


def openai_handler(
    *, fail: dict[str, int] | None = None, delay: float = 0.0, seen: list[str] | None = None
) -> Any:
    """Answers echo the prompt; ``fail`` maps a prompt to an error status."""
    fail = fail or {}

    async def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        prompt = body.get("prompt") or body["messages"][-1]["content"]
        if seen is not None:
            seen.append(prompt)
        if delay:
            await asyncio.sleep(delay)
        if prompt in fail:
            return httpx.Response(fail[prompt], json={"message": f"no {prompt}"})
        if "messages" in body:
            choice = {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": f"re:{prompt}"},
            }
        else:
            choice = {"index": 0, "finish_reason": "stop", "text": f"re:{prompt}"}
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        return httpx.Response(200, json={"choices": [choice], "usage": usage})

    return handler


def make_client(handler: Any, **kwargs: Any) -> EndpointClient:
    return EndpointClient(
        endpoint_url=SERVERLESS_URL,
        api_key="k",
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(backoff_base=0.001),
        **kwargs,
    )


async def test_batch_returns_results_in_input_order_with_failures_in_place() -> None:
    items: list[Any] = [
        "a",
        [{"role": "user", "content": "b"}],
        {"prompt": "bad", "params": {"temperature": 0}},
        {"messages": [{"role": "user", "content": "d"}], "params": {"max_tokens": 3}},
        42,
    ]
    async with make_client(openai_handler(fail={"bad": 400}, delay=0.001)) as client:
        results = await client.batch(items, concurrency=3)
    assert isinstance(results[0], Completion) and results[0].text == "re:a"
    assert isinstance(results[1], ChatCompletion) and results[1].text == "re:b"
    assert isinstance(results[2], BadRequestError) and results[2].status_code == 400
    assert isinstance(results[3], ChatCompletion) and results[3].text == "re:d"
    assert isinstance(results[4], ConfigurationError) and "prompt string" in str(results[4])
    stats = results.stats
    # The malformed item was refused locally: counted apart, never sent.
    assert (stats.succeeded, stats.failed, stats.rejected, stats.sent) == (3, 1, 1, 4)
    assert stats.errors == {"BadRequestError": 1, "ConfigurationError": 1}


async def test_per_item_params_and_common_params() -> None:
    bodies: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"choices": [{"index": 0, "text": "x"}]})

    async with make_client(handler) as client:
        await client.batch(
            [{"prompt": "a", "params": {"temperature": 1}}, "b"], temperature=0.2, max_tokens=4
        )
    by_prompt = {b["prompt"]: b for b in bodies}
    assert by_prompt["a"] == {"prompt": "a", "temperature": 1, "max_tokens": 4}
    assert by_prompt["b"] == {"prompt": "b", "temperature": 0.2, "max_tokens": 4}


async def test_retryable_failures_are_retried_and_counted() -> None:
    calls: dict[str, int] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        prompt = json.loads(request.content)["prompt"]
        calls[prompt] = calls.get(prompt, 0) + 1
        if calls[prompt] == 1:
            return httpx.Response(503)
        return httpx.Response(200, json={"choices": [{"index": 0, "text": prompt}]})

    async with make_client(handler, max_retries=2) as client:
        results = await client.batch(["a", "b", "c"])
    assert [r.text for r in results] == ["a", "b", "c"]  # type: ignore[union-attr]
    assert all(r.attempts == 2 for r in results)  # type: ignore[union-attr]
    assert results.stats.retried == 3 and results.stats.sent == 6


async def test_return_exceptions_false_raises_and_cancels_the_rest() -> None:
    started: list[str] = []
    async with make_client(openai_handler(fail={"x": 400}, delay=0.05, seen=started)) as client:
        with pytest.raises(BadRequestError):
            await client.batch(
                ["x"] + [f"p{i}" for i in range(50)], concurrency=4, return_exceptions=False
            )
    await asyncio.sleep(0)
    assert len(started) < 51
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_map_yields_as_results_complete_and_pulls_input_lazily() -> None:
    pulled = 0
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        return httpx.Response(200, json={"choices": [{"index": 0, "text": "ok"}]})

    def prompts() -> Iterator[str]:
        nonlocal pulled
        for i in range(2000):
            pulled += 1
            yield f"p{i}"

    seen = 0
    max_ahead = 0
    async with make_client(handler) as client:
        run = client.map(prompts(), concurrency=16)
        async with run:
            async for _index, result in run:
                assert isinstance(result, Completion)
                seen += 1
                max_ahead = max(max_ahead, pulled - seen)
    assert seen == 2000
    # Never more input held than the work in flight plus answers waiting for the consumer.
    assert max_ahead <= 2 * 16
    assert peak <= 16


async def test_map_accepts_async_iterables() -> None:
    async def gen() -> AsyncIterator[str]:
        for i in range(5):
            yield f"a{i}"

    async with make_client(openai_handler()) as client:
        got = {i: r.text async for i, r in client.map(gen())}  # type: ignore[union-attr]
    assert got == {i: f"re:a{i}" for i in range(5)}


async def test_breaking_out_cancels_in_flight_work() -> None:
    async with make_client(openai_handler(delay=0.2)) as client:
        run = client.map([f"p{i}" for i in range(100)], concurrency=8)
        async with run:
            async for _ in run:
                break
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert pending == []
        assert run.stats.done <= 8


async def test_cancelling_the_consumer_leaves_no_task() -> None:
    async with make_client(openai_handler(delay=5)) as client:

        async def consume() -> None:
            async with client.map([f"p{i}" for i in range(10)], concurrency=4) as run:
                async for _ in run:
                    pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert others == []


async def test_invalid_batch_options() -> None:
    async with make_client(openai_handler()) as client:
        with pytest.raises(ConfigurationError, match="concurrency"):
            client.map(["a"], concurrency=0)
        with pytest.raises(ConfigurationError, match="max_rps"):
            client.map(["a"], max_rps=-1)


async def test_rate_limited_items_fail_after_their_own_budget() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json={"message": "limit"}, headers={"retry-after-ms": "1"})

    async with make_client(handler) as client:
        results = await client.batch(["a"], concurrency=1)
    # concurrency=1 is fixed: no shared pacing, each retry waits its own Retry-After
    assert isinstance(results[0], RateLimitError)
    assert results[0].attempts == 51
    assert results.stats.rate_limited == 51


async def test_embed_many_takes_its_own_rate_limit_budget() -> None:
    """embed_many's 429 budget is a parameter (it was fixed at 50), as in batch()."""
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(429, json={"message": "limit"}, headers={"retry-after-ms": "1"})

    client = EndpointClient(
        endpoint_url=SERVERLESS_URL.replace("/chat/completions", "/embeddings"),
        api_key="k",
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(backoff_base=0.001),
    )
    async with client:
        with pytest.raises(RateLimitError) as caught:
            await client.embed_many(["a"], concurrency=1, max_rate_limit_retries=3)
        assert caught.value.attempts == 4
        assert len(calls) == 4
        with pytest.raises(ConfigurationError, match="max_rate_limit_retries"):
            await client.embed_many(["a"], max_rate_limit_retries=-1)


async def test_embedding_usage_reported_as_total_only_counts_as_input() -> None:
    """Some servers count embedded tokens in total_tokens alone: stats (and cost) count them,
    as the azml batch summary does."""

    def handler(request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["input"]
        data = [{"index": i, "embedding": [0.5]} for i in range(len(texts))]
        return httpx.Response(200, json={"data": data, "usage": {"total_tokens": 3}})

    client = EndpointClient(
        endpoint_url=SERVERLESS_URL.replace("/chat/completions", "/embeddings"),
        api_key="k",
        transport=httpx.MockTransport(handler),
    )
    async with client:
        results = await client.batch([{"input": "a"}, {"input": ["b", "c"]}], concurrency=2)
    assert results.stats.succeeded == 2
    assert (results.stats.tokens_in, results.stats.tokens_out) == (6, 0)


async def test_max_rps_budget_spaces_the_sends() -> None:
    from azml_client._bulk import BatchRun

    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async def call(item: Item, hook: Any) -> Completion:
        await hook.before_attempt()  # what the driver does before every attempt
        return Completion(text=item.payload)

    run = BatchRun(call, [f"p{i}" for i in range(30)], max_rps=50, sleep=record)
    async with run:
        got = [r async for r in run]
    assert len(got) == 30
    # 30 sends at 50/s from an empty budget (never a burst above it): the waits asked for
    # reach 30 / 50 seconds.
    assert max(waits) == pytest.approx(30 / 50, abs=0.05)


def test_sync_batch_and_map() -> None:
    with SyncEndpointClient(
        endpoint_url=SERVERLESS_URL,
        api_key="k",
        transport=httpx.MockTransport(openai_handler(fail={"z": 500})),
        max_retries=0,
    ) as client:
        results = client.batch(["x", "y", "z"])
        assert [getattr(r, "text", None) for r in results] == ["re:x", "re:y", None]
        assert isinstance(results[2], ServerError)
        pairs = dict(client.map(["m", "n"]))
        assert {k: v.text for k, v in pairs.items()} == {0: "re:m", 1: "re:n"}


# -- limiter decisions, with a fake clock ------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_never_exceeds_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(10, capacity=1, clock=clock)
    waits = [bucket.reserve() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    clock.now += 10
    assert bucket.reserve() == 0.0
    bucket.adjust(-5)
    assert bucket.reserve() == pytest.approx(0.6)  # 5 tokens of debt plus this one


def test_slow_start_then_additive_increase_then_halving() -> None:
    clock = Clock()
    limiter = AdaptiveLimiter(initial=4, maximum=64, clock=clock)
    for _ in range(4):
        limiter.observe(Signal.SUCCESS, sent_at=clock.now)
    assert limiter.limit == 8
    for _ in range(8):
        limiter.observe(Signal.SUCCESS, sent_at=clock.now)
    assert limiter.limit == 16
    clock.now += 1
    limiter.observe(Signal.OVERLOADED, sent_at=clock.now)
    assert limiter.limit == 8
    limiter.observe(Signal.OVERLOADED, sent_at=clock.now - 0.5)  # same burst: ignored
    assert limiter.limit == 8
    for _ in range(8):
        limiter.observe(Signal.SUCCESS, sent_at=clock.now)
    assert limiter.limit == 9  # above ssthresh: additive
    assert [n for _, n in limiter.history] == [4, 8, 16, 8, 9]


def test_rate_limit_sets_pacing_from_the_measured_success_rate() -> None:
    clock = Clock()
    limiter = AdaptiveLimiter(initial=8, clock=clock, ramp_start=None)
    for _ in range(240):  # 200 successes a second, for 1.2 s
        clock.now += 0.005
        limiter.observe(Signal.SUCCESS, sent_at=clock.now)
    # The first 429 is a guess below what got through (a burst may have inflated it).
    limiter.observe(Signal.RATE_LIMITED, sent_at=clock.now, retry_after=0.25)
    assert limiter.rate == pytest.approx(0.75 * 200, rel=0.02)
    assert limiter.pause_until == pytest.approx(clock.now + 0.25)
    assert limiter.send_delay() == pytest.approx(0.25)
    clock.now += 0.25
    assert limiter.send_delay() == 0
    limiter.took()
    assert limiter.rate is not None
    assert limiter.send_delay() == pytest.approx(1 / limiter.rate)
    # Paced, 60 answers came back in the 0.75 s since that cut, then a 429 again: what got
    # through is the limit (a cut of at most half the rate in force).
    for _ in range(60):
        clock.now += 0.5 / 60
        limiter.observe(Signal.SUCCESS, sent_at=clock.now)
    before = limiter.rate
    limiter.observe(Signal.RATE_LIMITED, sent_at=clock.now)
    assert limiter.rate == pytest.approx(0.985 * max(60 / 0.75, 0.5 * before), rel=0.03)
    assert limiter.rate < before


def test_a_short_retry_after_bounds_the_first_guess() -> None:
    """A token bucket asks to wait for its next token: 1/rate at most."""
    clock = Clock()
    limiter = AdaptiveLimiter(initial=8, clock=clock)
    for _ in range(100):  # a burst the bucket allowed once
        clock.now += 0.001
        limiter.observe(Signal.SUCCESS, sent_at=clock.now)
    limiter.observe(Signal.RATE_LIMITED, sent_at=clock.now, retry_after=0.02)
    assert limiter.rate is not None and limiter.rate <= 50


def test_the_start_is_paced_and_speeds_up_until_the_first_429() -> None:
    clock = Clock()
    limiter = AdaptiveLimiter(initial=8, clock=clock)
    assert limiter.ramp == 50
    delay, _ = limiter.book()
    assert delay == 0
    delay, _ = limiter.book()
    assert delay == pytest.approx(1 / 50)
    clock.now += 0.3
    limiter.observe(Signal.SUCCESS, sent_at=clock.now)
    assert limiter.ramp == 100
    limiter.observe(Signal.RATE_LIMITED, sent_at=clock.now)
    assert limiter.ramp is None and limiter.rate is not None


def test_a_slower_pace_voids_the_bookings_made_before() -> None:
    clock = Clock()
    limiter = AdaptiveLimiter(initial=8, clock=clock, ramp_start=None)
    _, epoch = limiter.book()
    limiter.observe(Signal.RATE_LIMITED, sent_at=clock.now, retry_after=0.05)
    assert limiter.epoch != epoch  # a sender waiting on the old booking books again


@pytest.mark.parametrize("how", ["pause", "429 with a short Retry-After", "slower rate"])
def test_a_rebooking_never_lets_a_send_go_early(how: str) -> None:
    """A pace change or pause half a slot after a send: the next send still keeps the pace
    after it (it used to go at once, or when the short pause ended)."""
    clock = Clock()
    limiter = AdaptiveLimiter(initial=8, clock=clock, ramp_start=None)
    limiter.set_rate(10)
    sent = clock.now
    delay, epoch = limiter.book()
    assert delay == 0  # the last send that went
    clock.now += 0.05
    if how == "pause":
        limiter.pause(0.01)
    elif how == "slower rate":
        limiter.set_rate(5)
    else:
        limiter.observe(Signal.RATE_LIMITED, sent_at=sent, retry_after=0.01)
    assert limiter.epoch != epoch
    pace = limiter.rate
    assert pace is not None
    delay, _ = limiter.book()
    assert clock.now + delay - sent == pytest.approx(max(0.06, 1 / pace))
    assert clock.now + delay - sent >= 0.1 - 1e-9  # never sooner than the old pace allowed


def test_fixed_concurrency_does_not_adapt() -> None:
    clock = Clock()
    limiter = AdaptiveLimiter(initial=5, maximum=5, fixed=True, clock=clock)
    for _ in range(50):
        limiter.observe(Signal.SUCCESS, sent_at=clock.now)
    limiter.observe(Signal.OVERLOADED, sent_at=clock.now)
    assert limiter.limit == 5


async def test_a_100k_item_run_holds_flat_memory() -> None:
    """100,000 items through the engine: input is pulled only as capacity frees, and the
    Python heap peak stays small whatever the input size (results are not accumulated)."""
    import tracemalloc

    from azml_client._bulk import BatchRun

    pulled = 0

    def items() -> Iterator[str]:
        nonlocal pulled
        for i in range(100_000):
            pulled += 1
            yield f"prompt {i}"

    async def call(item: Item, hook: Any) -> Completion:
        await hook.before_attempt()
        await asyncio.sleep(0)
        return Completion(text=item.payload)

    seen = 0
    max_ahead = 0
    tracemalloc.start()
    try:
        run = BatchRun(call, items(), concurrency=32)
        async with run:
            async for _index, _result in run:
                seen += 1
                max_ahead = max(max_ahead, pulled - seen)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == 100_000 and run.stats.succeeded == 100_000
    assert max_ahead <= 2 * 32
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


def test_the_limiter_keeps_one_second_of_history_however_long_the_run() -> None:
    clock = Clock()
    limiter = AdaptiveLimiter(initial=8, clock=clock)
    for _ in range(10_000):  # 10 s at 1000 sends and successes a second
        clock.now += 0.001
        limiter.took()
        limiter.observe(Signal.SUCCESS, sent_at=clock.now)
    assert len(limiter._sends) <= 1001 and len(limiter._successes) <= 1001
