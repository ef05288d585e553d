"""What tracing costs: c=64 throughput with OpenTelemetry absent, present without an SDK, and
recording every span and metric into memory.

``python -m benchmarks.run --suite otel`` (or ``python -m benchmarks.telemetry``) starts the
loopback benchmark server in its own process and runs, in this process, ``n`` ``chat()`` calls
64 at a time for each mode, the modes interleaved over several rounds (so drift on a shared
machine hits them alike); the median req/s of each mode is compared with "absent":

* ``absent``: the client built as when ``opentelemetry-api`` is not installed (the module's
  "installed" check answers no; the client then holds no telemetry at all);
* ``api, no SDK``: the API installed and no provider configured (the default);
* ``SDK, in-memory``: explicit ``TracerProvider`` with a ``SimpleSpanProcessor`` into an
  ``InMemorySpanExporter`` and a ``MeterProvider`` with an ``InMemoryMetricReader``.

Targets (issue "See what runs and what it costs"): no SDK within 3 % of absent; the SDK within
15 %.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks.server import start_server_process, stop_server_process  # noqa: E402

MESSAGES = [{"role": "user", "content": "hi"}]
MODES = ("absent", "api, no SDK", "SDK, in-memory")
CONCURRENCY = 64


def _client(url: str, mode: str) -> Any:
    from azml_client import EndpointClient, _telemetry

    kwargs: dict[str, Any] = {}
    installed = _telemetry._API_INSTALLED
    if mode == "absent":
        _telemetry._API_INSTALLED = False
    elif mode == "SDK, in-memory":
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
        kwargs["tracer_provider"] = tracer_provider
        kwargs["meter_provider"] = MeterProvider(metric_readers=[InMemoryMetricReader()])
    try:
        client = EndpointClient(
            url, "bench-key", api_type="serverless", formatter="openai", timeout=30, **kwargs
        )
    finally:
        _telemetry._API_INSTALLED = installed
    assert (client._telemetry is None) == (mode == "absent")
    return client


async def throughput(url: str, mode: str, n: int) -> float:
    """Requests per second of ``n`` chat() calls, ``CONCURRENCY`` in flight."""
    client = _client(url, mode)
    try:
        await client.chat(MESSAGES, max_tokens=16)  # warm up: the connection pool
        queue = iter(range(n))

        async def worker() -> None:
            for _ in queue:
                await client.chat(MESSAGES, max_tokens=16)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return n / (time.perf_counter() - t0)
    finally:
        await client.aclose()


async def run_all(quick: bool) -> dict[str, list[float]]:
    pin = (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity")
    proc, server = start_server_process(cpu=1 if pin else None)
    if pin:
        os.sched_setaffinity(0, {0})
    url = f"{server}/v1/chat/completions"
    n = 2000 if quick else 6000
    rounds = 3 if quick else 7
    samples: dict[str, list[float]] = {mode: [] for mode in MODES}
    try:
        for i in range(rounds):
            order = MODES if i % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                rps = await throughput(url, mode, n)
                samples[mode].append(rps)
                print(f"[otel] round {i + 1} {mode}: {rps:.0f} req/s", file=sys.stderr)
    finally:
        stop_server_process(proc)
    return samples


def table(samples: dict[str, list[float]], command: str) -> str:
    base = statistics.median(samples["absent"])
    targets = {"absent": "", "api, no SDK": ">= 0.97", "SDK, in-memory": ">= 0.85"}
    out = [
        "| tracing | req/s at c=64, median (higher is better) | vs absent | target | rounds |",
        "|---|---|---|---|---|",
    ]
    for mode in MODES:
        median = statistics.median(samples[mode])
        out.append(
            f"| {mode} | {median:.0f} | {median / base:.3f}x | {targets[mode]} "
            f"| {', '.join(f'{s:.0f}' for s in samples[mode])} |"
        )
    out.append(f"\nCommand: `{command}`; modes interleaved, order reversed every other round.")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and rounds")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    samples = asyncio.run(run_all(args.quick))
    command = "python -m benchmarks.run --suite otel" + (" --quick" if args.quick else "")
    text = table(samples, command)
    print(text)
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
