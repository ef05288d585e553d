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

A last row measures the SDK's own floor: the same span (same name, kind and attributes, the
start ones at start and the answer's at the end) and the same three histogram records a call
makes, replayed straight into a fresh SDK with no client and no I/O. ``floor us/call`` over the
client's own time per request (1 / absent req/s) bounds what any client could reach in this
mode: ``ceiling = t / (t + floor)``.
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


def _sdk() -> tuple[Any, Any, Any, Any]:
    """A tracer provider into memory, its exporter, a meter provider and its reader."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    return tracer_provider, exporter, meter_provider, reader


def _client(url: str, mode: str) -> Any:
    from azml_client import EndpointClient, _telemetry

    kwargs: dict[str, Any] = {}
    installed = _telemetry._API_INSTALLED
    if mode == "absent":
        _telemetry._API_INSTALLED = False
    elif mode == "SDK, in-memory":
        tracer_provider, _, meter_provider, _ = _sdk()
        kwargs["tracer_provider"] = tracer_provider
        kwargs["meter_provider"] = meter_provider
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
        _shutdown(client)


def _shutdown(client: Any) -> None:
    """Drop a run's providers (and the spans they kept), as an application's exit would: the
    next round must not pay for collecting this one's garbage."""
    telemetry = client._telemetry
    for provider in (
        telemetry and telemetry._tracer_provider,
        telemetry and telemetry._meter_provider,
    ):
        if provider is not None:
            provider.shutdown()


async def one_call_recorded(url: str) -> tuple[Any, list[tuple[str, float, dict[str, Any]]]]:
    """One chat() into the SDK: its finished span and its histogram records."""
    from azml_client import EndpointClient

    tracer_provider, exporter, meter_provider, reader = _sdk()
    client = EndpointClient(
        url, "bench-key", api_type="serverless", formatter="openai", timeout=30,
        tracer_provider=tracer_provider, meter_provider=meter_provider,
    )  # fmt: skip
    async with client:
        await client.chat(MESSAGES, max_tokens=16)
    (span,) = exporter.get_finished_spans()
    records = []
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    records.append((metric.name, point.sum, dict(point.attributes or {})))
    tracer_provider.shutdown()
    meter_provider.shutdown()
    return span, records


_STARTED = ("gen_ai.request.", "gen_ai.operation.", "gen_ai.provider.", "server.")


def sdk_floor_us(span: Any, records: list[tuple[str, float, dict[str, Any]]], n: int) -> float:
    """Microseconds a call of the SDK alone: ``span`` and ``records`` replayed ``n`` times."""
    from opentelemetry.trace import SpanKind

    tracer_provider, _, meter_provider, _ = _sdk()
    tracer = tracer_provider.get_tracer("floor")
    meter = meter_provider.get_meter("floor")
    histograms = {name: meter.create_histogram(name) for name, _, _ in records}
    attributes = dict(span.attributes)
    started = {k: v for k, v in attributes.items() if k.startswith(_STARTED)}
    answered = {k: v for k, v in attributes.items() if k not in started}
    t0 = time.perf_counter()
    for _ in range(n):
        live = tracer.start_span(span.name, kind=SpanKind.CLIENT, attributes=started)
        live.set_attributes(answered)
        live.end()
        for name, value, point in records:
            histograms[name].record(value, point)
    elapsed = time.perf_counter() - t0
    tracer_provider.shutdown()
    meter_provider.shutdown()
    return elapsed / n * 1e6


async def run_all(quick: bool) -> tuple[dict[str, list[float]], list[float]]:
    pin = (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity")
    proc, server = start_server_process(cpu=1 if pin else None)
    if pin:
        os.sched_setaffinity(0, {0})
    url = f"{server}/v1/chat/completions"
    n = 2000 if quick else 6000
    rounds = 3 if quick else 7
    samples: dict[str, list[float]] = {mode: [] for mode in MODES}
    floors: list[float] = []
    try:
        span, records = await one_call_recorded(url)
        for i in range(rounds):
            order = MODES if i % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                rps = await throughput(url, mode, n)
                samples[mode].append(rps)
                print(f"[otel] round {i + 1} {mode}: {rps:.0f} req/s", file=sys.stderr)
            floors.append(sdk_floor_us(span, records, n))
            print(f"[otel] round {i + 1} SDK floor: {floors[-1]:.1f} us/call", file=sys.stderr)
    finally:
        stop_server_process(proc)
    return samples, floors


def table(samples: dict[str, list[float]], floors: list[float], command: str) -> str:
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
    floor = statistics.median(floors)
    call_us = 1e6 / base
    out.append(
        f"| SDK floor: the same span and records, no client | {floor:.0f} us/call "
        f"(a call absent: {call_us:.0f} us) | ceiling {call_us / (call_us + floor):.3f}x | "
        f"| {', '.join(f'{f:.0f}' for f in floors)} |"
    )
    out.append(f"\nCommand: `{command}`; modes interleaved, order reversed every other round.")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and rounds")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    samples, floors = asyncio.run(run_all(args.quick))
    command = "python -m benchmarks.run --suite otel" + (" --quick" if args.quick else "")
    text = table(samples, floors, command)
    print(text)
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
