"""Bulk inference on Ray Data: ``azml_client.ray.infer`` against Ray's own HTTP processor.

``python -m benchmarks.run --suite ray`` (or ``python -m benchmarks.ray_data``) starts a local
Ray cluster and, for each scenario, the emulator in a process of its own (OpenAI-style chat
route, 50 ms latency), then runs the same dataset through:

* ``azml``: ``infer(ds, config, actors=4)``: one client per actor whose batches share its rate
  budget, and one coordinator sharing the pace between the actors;
* ``azml, a pace per actor``: the same with ``coordinate=False`` (each actor learns the limit
  alone), rate-limited scenario only;
* ``ray.data.llm``: ``build_processor(HttpRequestProcessorConfig(...))`` with 4 actors
  (``concurrency=(4, 4)``), its default ``batch_size=64``; in the rate-limited scenario both
  its defaults (``max_retries=0``) and a tuned run (``max_retries=8``, ``qps=12`` per actor).

Every actor and map stage asks for a quarter CPU. Throughput is rows per second over the
window in which the emulator answered (first to last answer: actor start-up excluded); the
wall time of the whole dataset (start-up included) is shown too. Goodput is successful rows per
second over that window against the limit; the emulator counts the 429s it sent.

``ray.data.llm`` imports without vLLM (its HTTP processor needs only aiohttp), so it is built
here as its docs show; ``ray[llm]`` is not installed.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import re
import sys
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

KEY = "ray-bench-key"
LATENCY = 0.05
MAX_TOKENS = 16


# -- the emulator, in a process of its own ------------------------------------------------------


def _serve(conn: Connection, faults: dict[str, Any]) -> None:
    """Child process: run an emulator; answer ``"stats"`` with its counters, stop on ``"stop"``."""
    from azml_client.emulator import EmulatorConfig, EmulatorServer, Faults

    server = EmulatorServer(EmulatorConfig(api_key=KEY, faults=Faults(**faults))).start()
    stats = server.app.stats
    times: list[float] = []
    record = stats.record

    def timed(route: str, status: int) -> None:
        times.append(time.monotonic())
        record(route, status)

    stats.record = timed  # type: ignore[method-assign]
    conn.send(server.serverless_url)
    while True:
        command = conn.recv()
        if command == "stats":
            conn.send(
                {
                    "total": stats.total_requests,
                    "by_status": dict(stats.by_status),
                    "window": (times[-1] - times[0]) if len(times) > 1 else 0.0,
                }
            )
        else:
            server.stop()
            conn.send("stopped")
            return


class Emulator:
    """An emulator in a child process (so its event loop shares no GIL with the driver)."""

    def __init__(self, **faults: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, faults), daemon=True)
        self._process.start()
        self.url: str = self._conn.recv()

    def stats(self) -> dict[str, Any]:
        self._conn.send("stats")
        stats: dict[str, Any] = self._conn.recv()
        return stats

    def stop(self) -> None:
        self._conn.send("stop")
        self._conn.recv()
        self._process.join(10)


# -- the two ways to call it ------------------------------------------------------------------


def _dataset(n: int) -> Any:
    import ray.data

    return ray.data.from_items(
        [{"id": i, "prompt": f"Write about item {i}"} for i in range(n)], override_num_blocks=32
    )


def run_azml(url: str, n: int, *, coordinate: bool = True) -> dict[str, Any]:
    from azml_client.ray import infer

    out = infer(
        _dataset(n),
        {"endpoint_url": url, "max_retries": 8},
        actors=4,
        num_cpus=0.25,
        coordinate=coordinate,
        max_tokens=MAX_TOKENS,
    )
    ok = failed = 0
    for batch in out.select_columns(["error_type"]).iter_batches(batch_format="pyarrow"):
        good = batch.column("error_type").null_count  # no error: a result
        ok += good
        failed += batch.num_rows - good
    return {"ok": ok, "failed": failed}


def run_ray_llm(
    url: str, n: int, *, max_retries: int = 0, qps: int | None = None
) -> dict[str, Any]:
    from ray.data.llm import HttpRequestProcessorConfig, build_processor

    config = HttpRequestProcessorConfig(
        url=f"{url}/chat/completions",
        headers={"Authorization": f"Bearer {KEY}"},
        qps=qps,
        max_retries=max_retries,
        batch_size=64,
        concurrency=(4, 4),
        http_request_stage={"num_cpus": 0.25},
    )

    def preprocess(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": row["id"],
            "payload": {
                "messages": [{"role": "user", "content": row["prompt"]}],
                "max_tokens": MAX_TOKENS,
            },
        }

    def postprocess(row: dict[str, Any]) -> dict[str, Any]:
        answer = row["http_response"]
        choices = answer.get("choices") if isinstance(answer, dict) else None
        text = choices[0]["message"]["content"] if choices else None
        return {"id": row["id"], "ok": text is not None}

    processor = build_processor(
        config,
        preprocess=preprocess,
        postprocess=postprocess,
        preprocess_map_kwargs={"num_cpus": 0.25},
        postprocess_map_kwargs={"num_cpus": 0.25},
    )
    ok = failed = 0
    for batch in processor(_dataset(n)).iter_batches(batch_format="pyarrow"):
        good = sum(batch.column("ok").to_pylist())
        ok += good
        failed += batch.num_rows - good
    return {"ok": ok, "failed": failed}


def measure(
    label: str, run: Callable[[str, int], dict[str, Any]], n: int, **faults: Any
) -> dict[str, Any]:
    """One row: a fresh emulator, one run, its counters."""
    emulator = Emulator(latency=LATENCY, **faults)
    t0 = time.perf_counter()
    error = None
    try:
        counts = run(emulator.url, n)
    except Exception as exc:  # the Ray processor fails the dataset on a 429 by default
        counts = {"ok": 0, "failed": n}
        text = " ".join(str(exc).split())
        why = re.search(r"Reached maximum retries of \d+", text)
        error = f"dataset aborted: {why.group(0) if why else type(exc).__name__}"
        if os.environ.get("AZML_BENCH_DEBUG"):
            traceback.print_exc()
    wall = time.perf_counter() - t0
    stats = emulator.stats()
    emulator.stop()
    window = stats["window"] or wall
    answered_ok = stats["by_status"].get(200, 0)
    row = {
        "row": label,
        "n": n,
        "wall_s": wall,
        "window_s": window,
        "rows_per_s": answered_ok / window if window else 0.0,
        "ok": counts["ok"],
        "requests": stats["total"],
        "throttled": stats["by_status"].get(429, 0),
        "error": error,
        **{k: v for k, v in faults.items() if v is not None},
    }
    print(f"[ray] {label}: {json.dumps(row, default=str)}", file=sys.stderr, flush=True)
    return row


def run_all(n: int, limit: float) -> list[dict[str, Any]]:
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # all on 127.0.0.1
    import ray

    ray.init(
        num_cpus=os.cpu_count() or 2,
        include_dashboard=False,
        runtime_env={"env_vars": {"AZUREML_ENDPOINT_API_KEY": KEY}},
        logging_level=logging.WARNING,
    )
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    rows: list[dict[str, Any]] = []
    try:
        free = {"scenario": "no limit"}
        rows.append({**free, **measure("ray.data.llm (defaults)", run_ray_llm, n)})
        rows.append({**free, **measure("azml infer()", run_azml, n)})
        limited = {"scenario": f"{limit:g} req/s limit"}
        faults = {"rate_limit_rps": limit}
        rows.append({**limited, **measure("azml infer()", run_azml, n, **faults)})
        rows.append(
            {
                **limited,
                **measure(
                    "azml, a pace per actor (coordinate=False)",
                    lambda url, k: run_azml(url, k, coordinate=False),
                    n,
                    **faults,
                ),
            }
        )
        rows.append({**limited, **measure("ray.data.llm (defaults)", run_ray_llm, n, **faults)})
        rows.append(
            {
                **limited,
                **measure(
                    "ray.data.llm (max_retries=8, qps=12 per actor)",
                    lambda url, k: run_ray_llm(url, k, max_retries=8, qps=12),
                    n,
                    **faults,
                ),
            }
        )
    finally:
        ray.shutdown()
    return rows


def table(rows: list[dict[str, Any]], limit: float) -> str:
    out = [
        "| scenario | run | rows | ok | rows/s over the answering window (higher is better) "
        "| goodput / limit | 429s / requests (lower is better) | window s | wall s (start-up "
        "included) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        limited = row["scenario"] != "no limit"
        goodput = f"{row['rows_per_s'] / limit:.2f}" if limited else "-"
        throttled = row["throttled"] / row["requests"] if row["requests"] else 0.0
        rate = f"{row['rows_per_s']:.1f}"
        if row["error"]:  # the rows/s of an aborted run say nothing
            rate, goodput = f"- ({row['error']}, after {row['requests']} requests)", "-"
        out.append(
            f"| {row['scenario']} | {row['row']} | {row['n']} | {row['ok']} "
            f"| {rate} | {goodput} | {throttled * 100:.1f} % "
            f"| {row['window_s']:.1f} | {row['wall_s']:.1f} |"
        )
    free = {r["row"]: r["rows_per_s"] for r in rows if r["scenario"] == "no limit"}
    if free.get("ray.data.llm (defaults)"):
        ratio = free["azml infer()"] / free["ray.data.llm (defaults)"]
        out.append(f"\nNo limit: azml's throughput is {ratio:.1f}x the Ray processor's.")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="500 rows a run instead of 2,000")
    parser.add_argument("--limit", type=float, default=50.0, help="the rate limit (req/s)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    n = 500 if args.quick else 2000
    rows = run_all(n, args.limit)
    text = (
        f"### ray: {n} rows through Ray Data, 4 actors, {LATENCY * 1000:.0f} ms latency\n\n"
        + table(rows, args.limit)
    )
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
