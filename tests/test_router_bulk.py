"""Bulk runs across a router's endpoints (one shared queue, a run per endpoint), an endpoint
killed in the middle of a run, and the blocking SyncEndpointRouter."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
import pytest

from azml_client import AzmlError, ChatCompletion, ConfigurationError, EndpointClient, RetryPolicy
from azml_client._router import EndpointRouter, RouterResults, SyncEndpointRouter
from azml_client.emulator import EmulatorConfig, EmulatorServer, Faults

from .test_router import CHAT, FAST, KEY, Emulators, client, emulators, refused_url, tried_of

__all__ = ["emulators"]  # the module-scoped fixture, shared with test_router.py

pytestmark = pytest.mark.integration


def prompts(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"Question {i}"}] for i in range(n)]


def check_exactly_once(results: RouterResults, n: int) -> None:
    assert len(results) == n
    assert all(isinstance(r, ChatCompletion) for r in results), [
        r for r in results if isinstance(r, AzmlError)
    ][:3]
    assert results.stats.succeeded == n and results.stats.failed == 0
    assert sum(e.succeeded for e in results.stats.endpoints) == n


async def test_capacity_spreads_a_batch_over_every_endpoint(emulators: Emulators) -> None:
    a, b = emulators("a"), emulators("b")
    async with EndpointRouter([client(a), client(b)], retry=FAST) as router:
        results = await router.batch(prompts(200), max_tokens=3)
    check_exactly_once(results, 200)
    by_url = Counter(r.endpoint_url for r in results if isinstance(r, ChatCompletion))
    assert set(by_url) == {a.serverless_url, b.serverless_url}
    stats = results.stats.as_dict()
    assert [e["succeeded"] for e in stats["endpoints"]] == [
        by_url[a.serverless_url],
        by_url[b.serverless_url],
    ]
    assert stats["sent"] == 200 and stats["rate_limited"] == 0 and stats["failed_over"] == 0
    # Results keep their input order and say which endpoint answered.
    assert all(isinstance(r, ChatCompletion) and r.endpoint_url for r in results)
    assert a.stats.by_status[200] + b.stats.by_status[200] == 200


async def test_weighted_splits_a_batch_by_the_weights(emulators: Emulators) -> None:
    a, b = emulators("a"), emulators("b")
    router = EndpointRouter([client(a), client(b)], strategy="weighted", weights=[1, 1])
    async with router:
        results = await router.batch(prompts(120), max_tokens=2)
    check_exactly_once(results, 120)
    taken = [e.taken for e in results.stats.endpoints]
    assert all(taken) and abs(taken[0] - taken[1]) <= 65  # the split, within its slack


async def test_priority_keeps_a_batch_on_the_first_healthy_endpoint(emulators: Emulators) -> None:
    a, b = emulators("a"), emulators("b")
    async with EndpointRouter([client(a), client(b)], strategy="priority") as router:
        results = await router.batch(prompts(50), max_tokens=2)
    check_exactly_once(results, 50)
    assert [e.taken for e in results.stats.endpoints] == [50, 0]
    assert b.stats.total_requests == 0


async def test_a_dead_endpoint_sends_its_items_to_the_others(emulators: Emulators) -> None:
    good = emulators("b")
    dead = refused_url()
    async with EndpointRouter([client(dead), client(good)], retry=FAST) as router:
        results = await router.batch(prompts(60), max_tokens=2)
    check_exactly_once(results, 60)
    dead_stats, good_stats = results.stats.endpoints
    assert dead_stats.succeeded == 0 and dead_stats.failed_over >= 1
    assert good_stats.succeeded == 60
    assert results.stats.failed_over == dead_stats.failed_over


async def test_an_endpoint_killed_mid_run_loses_no_item_and_runs_none_twice(
    emulators: Emulators,
) -> None:
    n = 400
    doomed = EmulatorServer(EmulatorConfig(api_key=KEY, faults=Faults(latency=0.005))).start()
    survivor = emulators("slow-b", Faults(latency=0.005))
    seen: Counter[int] = Counter()
    by_url: Counter[str] = Counter()
    try:
        async with EndpointRouter([client(doomed), client(survivor)], retry=FAST) as router:
            async with router.map(prompts(n), max_tokens=2) as run:
                async for index, result in run:
                    seen[index] += 1
                    assert isinstance(result, ChatCompletion), result
                    by_url[result.endpoint_url or ""] += 1
                    if sum(seen.values()) == n // 4:
                        await anyio.to_thread.run_sync(doomed.stop)
            stats = run.stats
    finally:
        doomed.stop()
    assert sorted(seen) == list(range(n)) and set(seen.values()) == {1}
    assert stats.succeeded == n and stats.failed == 0
    first, second = stats.endpoints
    assert (
        first.succeeded == by_url[first.endpoint_url]
        and second.succeeded == by_url[second.endpoint_url]
    )
    assert first.succeeded < n // 2 < second.succeeded  # the survivor took the rest
    assert first.taken == first.succeeded + first.failed_over + first.failed
    assert first.failed_over >= 1 and first.failed == 0  # its items went to the survivor


async def test_an_item_that_fails_everywhere_ends_once_with_what_it_tried(
    emulators: Emulators,
) -> None:
    down = emulators("503", Faults(error_503=1.0))
    gone = refused_url()
    router = EndpointRouter(
        [client(down), client(gone)],
        retry=RetryPolicy(max_retries=1, backoff_base=0.01, backoff_max=0.02),
    )
    async with router:
        results = await router.batch(prompts(4), max_tokens=2)
    assert len(results) == 4 and results.stats.failed == 4
    for error in results:
        assert isinstance(error, AzmlError)
        tried = tried_of(error)
        assert len(tried) == 2 and {url for url, _ in tried} <= {down.serverless_url, gone}


async def test_items_go_only_to_endpoints_that_can_serve_them(emulators: Emulators) -> None:
    text = emulators("llama", family="llama")
    chat = emulators("b")
    dedicated = {"endpoint_url": text.score_url, "api_key": KEY, "formatter": "llama"}
    items: list[Any] = [*prompts(20), *(f"Prompt {i}" for i in range(20)), {"bad": "item"}]
    async with EndpointRouter([dedicated, client(chat)], retry=FAST) as router:
        results = await router.batch(items, max_tokens=2)
    assert all(not isinstance(r, AzmlError) for r in results[:40])
    assert {r.endpoint_url for r in results[:20] if not isinstance(r, AzmlError)} == {
        chat.serverless_url
    }
    assert isinstance(results[40], ConfigurationError) and results.stats.rejected == 1
    assert text.stats.by_status[200] >= 1  # the prompts were shared
    only_text = EndpointRouter([dedicated])
    async with only_text:
        refused = await only_text.batch(prompts(2))
    assert all(isinstance(r, ConfigurationError) for r in refused)


async def test_return_exceptions_false_raises_the_first_failure(emulators: Emulators) -> None:
    router = EndpointRouter([client(refused_url())], max_retries=0)
    async with router:
        with pytest.raises(AzmlError):
            await router.batch(prompts(5), return_exceptions=False)


async def test_a_live_source_and_a_failing_source(emulators: Emulators) -> None:
    a, b = emulators("a"), emulators("b")

    async def live() -> AsyncIterator[str]:
        for i in range(10):
            await asyncio.sleep(0)
            yield f"Prompt {i}"

    async def broken() -> AsyncIterator[str]:
        yield "Prompt"
        raise RuntimeError("the source broke")

    async with EndpointRouter([client(a), client(b)]) as router:
        results = await router.batch(live(), max_tokens=2)
        assert results.stats.succeeded == 10
        with pytest.raises(RuntimeError, match="the source broke"):
            await router.batch(broken(), max_tokens=2)
        assert len(await router.batch([])) == 0


async def test_bulk_shares_each_clients_budget(emulators: Emulators) -> None:
    a = EndpointClient(**client(emulators("a")))
    async with EndpointRouter([a]) as router:
        await router.batch(prompts(30), max_tokens=2)
        assert a.budget.sent == 30
    await a.aclose()


# -- the blocking router -------------------------------------------------------------------------


def test_sync_router(emulators: Emulators) -> None:
    a, b = emulators("a"), emulators("b")
    given = EndpointClient(**client(a))
    with SyncEndpointRouter([given, client(b)], strategy="weighted", weights=[1, 1]) as router:
        urls = {router.chat(CHAT, max_tokens=2).endpoint_url for _ in range(4)}
        assert urls == {a.serverless_url, b.serverless_url}
        assert router.complete("Hi", max_tokens=2).text
        assert len(router.embed(["x", "y"])) == 2
        with router.stream(CHAT, max_tokens=6) as stream:
            text = "".join(chunk.text for chunk in stream)
        assert text == stream.text and stream.endpoint_url in urls
        results = router.batch(prompts(20), max_tokens=2)
        assert results.stats.succeeded == 20
        pairs = list(router.map(prompts(6), max_tokens=2))
        assert sorted(i for i, _ in pairs) == list(range(6))
        assert len(router.snapshot()) == 2 and router.strategy == "weighted"
    assert router.is_closed and not given.is_closed
    with pytest.raises(AzmlError, match="closed"):
        router.chat(CHAT)
    anyio.run(given.aclose)


def test_sync_router_fails_over(emulators: Emulators) -> None:
    good = emulators("b")
    with SyncEndpointRouter(
        [client(refused_url()), client(good)], strategy="priority", retry=FAST
    ) as router:
        reply = router.chat(CHAT, max_tokens=2)
    assert reply.endpoint_url == good.serverless_url and reply.attempts == 2


async def test_sync_router_inside_an_event_loop(emulators: Emulators) -> None:
    good = emulators("a")

    def work() -> str | None:
        with SyncEndpointRouter([client(good)]) as router:
            return router.chat(CHAT, max_tokens=2).endpoint_url

    assert await anyio.to_thread.run_sync(work) == good.serverless_url
    router = SyncEndpointRouter([client(good)])  # in a thread that runs a loop (a notebook)
    try:
        assert router.chat(CHAT, max_tokens=2).endpoint_url == good.serverless_url
    finally:
        router.close()
