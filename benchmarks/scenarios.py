"""The measured scenarios.  Each runs one adapter inside the current process and returns numbers.

Client CPU is ``time.process_time()`` of this process over the measured part, so each client
must run in its own process (``benchmarks.worker``) for it to mean anything.  Every scenario is
bounded in requests and in time.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import time
import urllib.request
import uuid
from typing import Any

from benchmarks.clients import ADAPTERS, Adapter, AzmlAdapter


def _url(base: str, **options: Any) -> str:
    """The server URL whose path prefix selects ``options`` (see benchmarks.server)."""
    if not options:
        return base
    encoded = ",".join(f"{k}={v}" for k, v in options.items())
    return f"{base}/_/{encoded}"


async def _pool(n: int, concurrency: int, job: Any, deadline: float | None = None) -> int:
    """Run ``job(i)`` for i < n with ``concurrency`` workers; stop starting jobs at deadline."""
    next_index = 0
    started = 0
    stop_at = None if deadline is None else time.perf_counter() + deadline

    async def worker() -> None:
        nonlocal next_index, started
        while next_index < n:
            if stop_at is not None and time.perf_counter() >= stop_at:
                return
            index = next_index
            next_index += 1
            started += 1
            await job(index)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    return started


async def rps(
    adapter: Adapter, *, concurrency: int, warmup: float, duration: float
) -> dict[str, Any]:
    """Requests per second with ``concurrency`` requests always in flight, zero latency."""
    blocking = getattr(adapter, "blocking_rps", None)
    if blocking is not None:
        if concurrency != 1:
            raise NotImplementedError("a blocking client is measured with 1 request in flight")
        # A script's loop: blocking calls from a plain thread (no event loop running there).
        return dict(await asyncio.to_thread(blocking, warmup, duration))
    await adapter.chat()
    done = 0
    errors = 0
    stopping = False

    async def worker() -> None:
        nonlocal done, errors
        while not stopping:
            try:
                await adapter.chat()
            except Exception:
                errors += 1
                if errors > 100:
                    raise
            else:
                done += 1

    tasks = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
    try:
        await asyncio.sleep(warmup)
        count0, t0, cpu0 = done, time.perf_counter(), time.process_time()
        await asyncio.sleep(duration)
        count1, t1, cpu1 = done, time.perf_counter(), time.process_time()
        stopping = True
        await asyncio.gather(*tasks)
    finally:
        stopping = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    completed = count1 - count0
    return {
        "req_per_s": completed / (t1 - t0),
        "cpu_us_per_req": (cpu1 - cpu0) / max(1, completed) * 1e6,
        "requests": completed,
        "errors": errors,
    }


async def bulk(
    adapter: Adapter,
    *,
    n: int,
    concurrency: int,
    latency_ms: float,
    deadline: float,
    use_batch: bool = False,
) -> dict[str, Any]:
    """Wall time for ``n`` requests, ``concurrency`` in flight, each taking ``latency_ms``.

    If the deadline passes, no new request starts; the wall time is then extrapolated from the
    completed ones and flagged ``estimated``.
    """
    ideal = math.ceil(n / concurrency) * latency_ms / 1000.0
    failures = 0

    async def job(_: int) -> None:
        nonlocal failures
        try:
            await adapter.chat()
        except Exception:
            failures += 1

    await adapter.chat()  # imports, lazy set-up: not part of the bulk run
    t0, cpu0 = time.perf_counter(), time.process_time()
    if use_batch and isinstance(adapter, AzmlAdapter) and adapter.has_batch():
        # azml's own bulk path: EndpointClient.batch(items, concurrency=64).
        results = await asyncio.wait_for(adapter.batch(n, concurrency), deadline * 2)
        started = n
        failures = sum(1 for ok in results if not ok)
    else:
        started = await _pool(n, concurrency, job, deadline)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    estimated = started < n
    if estimated:
        wall = wall * n / max(1, started)
    return {
        "wall_s": wall,
        "ideal_s": ideal,
        "wall_vs_ideal": wall / ideal,
        "cpu_ms_per_req": cpu / max(1, started) * 1e3,
        "completed": started - failures,
        "failures": failures,
        "estimated": estimated,
    }


async def stream(adapter: Adapter, *, n: int, concurrency: int, tokens: int) -> dict[str, Any]:
    """``n`` streamed completions, ``concurrency`` at a time: time to first token and CPU."""
    ttfts: list[float] = []
    counts: list[int] = []

    async def job(_: int) -> None:
        first: list[float] = []
        start = time.perf_counter()

        def on_token() -> None:
            if not first:
                first.append(time.perf_counter())

        counts.append(await adapter.stream(on_token))
        if first:
            ttfts.append(first[0] - start)

    await adapter.stream(lambda: None)  # warm up: imports, first connection
    t0, cpu0 = time.perf_counter(), time.process_time()
    await _pool(n, concurrency, job)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    if any(c != tokens for c in counts):
        raise RuntimeError(f"expected {tokens} tokens per stream, got {sorted(set(counts))}")
    ttfts.sort()
    return {
        "ttft_p50_ms": statistics.median(ttfts) * 1e3,
        "ttft_p90_ms": ttfts[int(0.9 * (len(ttfts) - 1))] * 1e3,
        "cpu_ms_per_stream": cpu / n * 1e3,
        "wall_s": wall,
    }


def _server_stats(stats_url: str) -> dict[str, int]:
    with urllib.request.urlopen(stats_url, timeout=10) as response:  # loopback only
        data: dict[str, int] = json.loads(response.read())
    return data


async def ratelimit(
    adapter: Adapter,
    *,
    server: str,
    key: str,
    n: int,
    concurrency: int,
    limit: float,
    deadline: float,
    use_batch: bool = False,
) -> dict[str, Any]:
    """``n`` requests at ``concurrency`` against a ``limit`` req/s token bucket answering 429.

    ``adapter`` must target the bucket ``key``.  Reports the fraction that finally succeeded
    (within the client's own retries), goodput against the limit, and how many 429s the server
    sent per request it received.  Requests not started by ``deadline`` count as failed.
    """
    ok = 0

    async def job(_: int) -> None:
        nonlocal ok
        try:
            await adapter.chat()
        except Exception:
            return
        ok += 1

    t0 = time.perf_counter()
    if use_batch and isinstance(adapter, AzmlAdapter) and adapter.has_batch():
        # EndpointClient.batch(items, concurrency="auto") paces itself after 429s.
        try:
            results = await asyncio.wait_for(adapter.batch(n, "auto"), deadline)
        except asyncio.TimeoutError:
            results = []
        started = n
        ok = sum(1 for good in results if good)
    else:
        started = await _pool(n, concurrency, job, deadline)
    wall = time.perf_counter() - t0
    stats = await asyncio.to_thread(_server_stats, f"{server}/_stats/{key}")
    sent = max(1, stats["requests"])
    return {
        "completed_fraction": ok / n,
        "goodput_rps": ok / wall,
        "goodput_vs_limit": ok / wall / limit,
        "throttled_per_sent": stats["throttled"] / sent,
        "sent_per_request": stats["requests"] / n,
        "not_started": n - started,
        "wall_s": wall,
    }


async def run_scenario(client: str, scenario: str, server: str, params: dict[str, Any]) -> Any:
    """Build the adapter for ``client`` at the right URL and run ``scenario`` with ``params``."""
    cls = ADAPTERS[client]
    params = dict(params)
    max_retries = int(params.pop("max_retries", 3))
    if scenario == "rps":
        async with cls(server, max_retries=max_retries) as adapter:
            return await rps(adapter, **params)
    if scenario == "bulk":
        base = _url(server, lat=params["latency_ms"])
        async with cls(base, max_retries=max_retries) as adapter:
            return await bulk(adapter, **params)
    if scenario == "stream":
        base = _url(server, tok=params["tokens"], tokms=params.pop("token_ms"))
        async with cls(base, max_retries=max_retries) as adapter:
            return await stream(adapter, **params)
    if scenario == "ratelimit":
        key = uuid.uuid4().hex[:12]
        base = _url(server, rl=params["limit"], key=key)
        async with cls(base, max_retries=max_retries) as adapter:
            return await ratelimit(adapter, server=server, key=key, **params)
    raise ValueError(f"unknown scenario {scenario!r}")
