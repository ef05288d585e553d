"""Two rate-limited endpoints behind one ``EndpointRouter``: how much of their summed limit a bulk
run uses, and how many 429s it costs.

``python -m benchmarks.run --suite routing`` (or ``python -m benchmarks.routing``) starts the
loopback benchmark server and runs, in this process, ``router.batch(n items)`` over two of its
endpoints: token buckets of 100 and 50 requests/second (burst a tenth of a second, 429 with
``retry-after-ms`` beyond it), fresh buckets and fresh clients (so fresh budgets) for each row:

* ``capacity`` (the default strategy): each endpoint's run takes items as fast as its own
  learnt limit lets it, from one shared queue;
* ``weighted 1:1`` (the baseline): a fixed split, as an Azure ML traffic split gives;
* ``weighted 2:1``: a fixed split that matches the limits, for a user who knows them;
* ``LiteLLM Router`` (with ``--litellm-python PATH``, an interpreter that has litellm): its
  ``simple-shuffle`` weighted by the deployments' ``rpm`` (the limits, told to it), 64 calls in
  flight, ``num_retries=3``; requests not started within 2x ideal count as failed.

Goodput is successful requests per second over the run's wall time; the server counts 429s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from benchmarks.server import start_server_process, stop_server_process  # noqa: E402

MESSAGES = [{"role": "user", "content": "hi"}]
LIMITS = (100.0, 50.0)
#: The targets of issue #14: goodput over the summed limits, and 429s per request sent.
GOODPUT_TARGET = 0.9
THROTTLED_TARGET = 0.02


def _stats(server: str, key: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{server}/_stats/{key}", timeout=10) as response:  # loopback
        data: dict[str, int] = json.loads(response.read())
    return data


def _endpoints(server: str) -> tuple[list[str], list[str]]:
    """Fresh buckets: the endpoints' base URLs and their keys."""
    keys = [uuid.uuid4().hex[:12] for _ in LIMITS]
    pairs = zip(LIMITS, keys, strict=True)
    urls = [f"{server}/_/rl={limit:g},key={key}/v1" for limit, key in pairs]
    return urls, keys


def _measured(
    server: str, keys: list[str], ok: int, n: int, wall: float, split: list[int]
) -> dict[str, Any]:
    counts = [_stats(server, key) for key in keys]
    sent = max(1, sum(c["requests"] for c in counts))
    throttled = sum(c["throttled"] for c in counts)
    goodput = ok / wall
    return {
        "completed_fraction": ok / n,
        "goodput_rps": goodput,
        "goodput_vs_limits": goodput / sum(LIMITS),
        "throttled_per_sent": throttled / sent,
        "split": split,
        "wall_s": wall,
    }


async def routed(
    server: str, *, strategy: str, weights: list[float] | None, n: int
) -> dict[str, Any]:
    """One row through ``EndpointRouter.batch``."""
    from azml_client import RetryPolicy
    from azml_client._router import EndpointRouter

    urls, keys = _endpoints(server)
    settings = [
        {
            "endpoint_url": url,
            "api_key": "bench-key",
            "api_type": "serverless",
            "formatter": "openai",
            "retry": RetryPolicy(max_retries=3),
            "timeout": 30,
        }
        for url in urls
    ]
    t0 = time.perf_counter()
    async with EndpointRouter(settings, strategy=strategy, weights=weights) as router:
        results = await router.batch([MESSAGES] * n, max_tokens=16)
    wall = time.perf_counter() - t0
    stats = results.stats
    row = await asyncio.to_thread(
        _measured, server, keys, stats.succeeded, n, wall, [e.succeeded for e in stats.endpoints]
    )
    row["learnt_rates"] = [None if e.rate is None else round(e.rate, 1) for e in stats.endpoints]
    return row


_LITELLM_SCRIPT = r"""
import asyncio, json, os, sys, time
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import litellm
from litellm import Router
litellm.telemetry = False
litellm.suppress_debug_info = True
urls, limits, n, concurrency, deadline = json.loads(sys.argv[1])
model_list = [
    {"model_name": "bench", "litellm_params": {"model": "openai/bench", "api_base": url,
     "api_key": "bench-key", "rpm": int(limit * 60)}}
    for url, limit in zip(urls, limits)
]
router = Router(model_list=model_list, routing_strategy="simple-shuffle", num_retries=3)
MESSAGES = [{"role": "user", "content": "hi"}]

async def main():
    ok = started = 0
    split = [0] * len(urls)
    stop_at = time.perf_counter() + deadline
    queue = list(range(n))

    async def worker():
        nonlocal ok, started
        while queue and time.perf_counter() < stop_at:
            queue.pop()
            started += 1
            try:
                reply = await router.acompletion(model="bench", messages=MESSAGES, max_tokens=16)
            except Exception:
                continue
            ok += 1
            base = (reply._hidden_params or {}).get("api_base") or ""
            for i, url in enumerate(urls):
                if base.rstrip("/") == url.rstrip("/"):
                    split[i] += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    print(json.dumps({"ok": ok, "wall": time.perf_counter() - t0, "split": split}))

asyncio.run(main())
"""


def litellm_row(server: str, python: str, *, n: int) -> dict[str, Any]:
    """The LiteLLM Router baseline, run by ``python`` (an interpreter with litellm)."""
    urls, keys = _endpoints(server)
    deadline = 2 * n / sum(LIMITS)
    args = json.dumps([urls, list(LIMITS), n, 64, deadline])
    done = subprocess.run(
        [python, "-c", _LITELLM_SCRIPT, args],
        capture_output=True,
        text=True,
        timeout=deadline * 3 + 60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"litellm run failed: {done.stderr.strip().splitlines()[-1:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return _measured(server, keys, out["ok"], n, out["wall"], out["split"])


async def run_all(quick: bool, litellm_python: str | None) -> list[dict[str, Any]]:
    proc, server = start_server_process(cpu=1 if (os.cpu_count() or 1) >= 2 else None)
    n = 1000 if quick else 3000
    rows: list[dict[str, Any]] = []
    try:
        for label, strategy, weights in (
            ("EndpointRouter, capacity", "capacity", None),
            ("EndpointRouter, weighted 1:1 (baseline)", "weighted", [1.0, 1.0]),
            ("EndpointRouter, weighted 2:1 (the limits, known)", "weighted", [2.0, 1.0]),
        ):
            row = await routed(server, strategy=strategy, weights=weights, n=n)
            rows.append({"row": label, "n": n, **row})
            print(f"[routing] {label}: {row}", file=sys.stderr)
        if litellm_python:
            label = "LiteLLM Router, simple-shuffle by rpm, 64 in flight"
            try:
                row = await asyncio.to_thread(litellm_row, server, litellm_python, n=n)
            except Exception as exc:
                rows.append({"row": label, "n": n, "error": str(exc)[:200]})
            else:
                rows.append({"row": label, "n": n, **row})
            print(f"[routing] {rows[-1]}", file=sys.stderr)
    finally:
        stop_server_process(proc)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    limits = " + ".join(f"{limit:g}" for limit in LIMITS)
    out = [
        f"| run | items | limits (req/s) | completed | goodput req/s | goodput / {sum(LIMITS):g} "
        "(higher is better) | 429s / requests sent (lower is better) | ok per endpoint | "
        "learnt rates | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "error" in row:
            out.append(f"| {row['row']} | {row['n']} | {limits} | not available: {row['error']} |")
            continue
        rates = row.get("learnt_rates")
        out.append(
            f"| {row['row']} | {row['n']} | {limits} | {row['completed_fraction']:.2f} "
            f"| {row['goodput_rps']:.1f} | {row['goodput_vs_limits']:.2f} "
            f"| {row['throttled_per_sent'] * 100:.1f} % | {' / '.join(map(str, row['split']))} "
            f"| {' / '.join(map(str, rates)) if rates else '-'} | {row['wall_s']:.1f} |"
        )
    capacity = rows[0]
    verdict = (
        capacity["goodput_vs_limits"] >= GOODPUT_TARGET
        and capacity["throttled_per_sent"] <= THROTTLED_TARGET
    )
    out += [
        "",
        f"Target (capacity row): goodput >= {GOODPUT_TARGET:g} of {sum(LIMITS):g} req/s with <= "
        f"{THROTTLED_TARGET * 100:g} % 429s: {'met' if verdict else 'NOT met'}.",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 items a row")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument(
        "--litellm-python",
        default=os.environ.get("AZML_BENCH_LITELLM_PYTHON"),
        help="an interpreter with litellm installed: adds the LiteLLM Router row "
        "(default: $AZML_BENCH_LITELLM_PYTHON; none: the row is left out)",
    )
    args = parser.parse_args(argv)
    rows = asyncio.run(run_all(args.quick, args.litellm_python))
    text = "### routing: two endpoints (100 + 50 req/s) behind one router\n\n" + table(rows)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
