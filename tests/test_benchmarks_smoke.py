"""Keeps ``benchmarks/`` runnable: imports it and runs tiny scenarios for raw httpx.

Only a handful of loopback requests, and no assertion on speed: real measurements are made by
``python -m benchmarks.run`` and never by the test suite.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from benchmarks import clients, run, scenarios, server, worker


@pytest.fixture(scope="module")
def bench_server() -> Iterator[str]:
    proc, base = server.start_server_process()
    try:
        yield base
    finally:
        server.stop_server_process(proc)


def _finite(result: dict[str, object], *keys: str) -> None:
    for key in keys:
        value = result[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value >= 0, key


def test_modules_import_and_describe_their_scenarios() -> None:
    table = run.scenarios(quick=True)
    assert set(run.SUITES["default"][1]) <= set(table)
    assert set(run.SUITES["default"][0]) <= set(clients.ADAPTERS)
    assert callable(scenarios.run_scenario)


def test_rps_returns_numbers(bench_server: str) -> None:
    result = worker.run_command(
        "httpx", "rps", bench_server, {"concurrency": 2, "warmup": 0.05, "duration": 0.2}
    )
    _finite(result, "req_per_s", "cpu_us_per_req")
    assert result["requests"] > 0
    assert result["errors"] == 0


def test_bulk_stream_and_ratelimit_return_numbers(bench_server: str) -> None:
    bulk = worker.run_command(
        "httpx",
        "bulk",
        bench_server,
        {"n": 8, "concurrency": 4, "latency_ms": 5, "deadline": 30.0},
    )
    _finite(bulk, "wall_s", "wall_vs_ideal")
    assert bulk["completed"] == 8

    streamed = worker.run_command(
        "httpx",
        "stream",
        bench_server,
        {"n": 3, "concurrency": 2, "tokens": 5, "token_ms": 0},
    )
    _finite(streamed, "ttft_p50_ms", "cpu_ms_per_stream")

    limited = worker.run_command(
        "httpx",
        "ratelimit",
        bench_server,
        {"n": 12, "concurrency": 4, "limit": 1000, "deadline": 30.0, "max_retries": 3},
    )
    _finite(limited, "completed_fraction", "goodput_vs_limit", "throttled_per_sent")
    assert 0 <= limited["completed_fraction"] <= 1


def test_report_renders() -> None:
    table = run.scenarios(quick=True)
    sample = {"req_per_s": 10.0, "cpu_us_per_req": 5.0}
    text = run.render(
        {"rps1": {"httpx": [sample], "aiohttp": [sample]}},
        {"rps1": {"openai": "not available: test"}},
        ["aiohttp", "httpx", "openai"],
        table,
        run.machine_info(pinned=False),
        "python -m benchmarks.run --test",
    )
    assert "| httpx | 10 | 1.00x | 1.00x | - |" in text
    assert "not available: test" in text
