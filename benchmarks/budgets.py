"""Bulk runs against limits: how much of an endpoint's budget azml-client uses, and how many 429s.

``python -m benchmarks.run --suite budget`` (or ``python -m benchmarks.budgets``) starts the
loopback benchmark server and runs, in this process, each row below against a fresh rate-limit
bucket of the server (``rl`` requests/second, answering 429 with ``retry-after-ms`` beyond it):

* ``one batch()``: one client, ``batch(n, concurrency="auto")`` (the rate-limited scenario);
* ``two batch() at once, shared budget``: one client, two ``batch()`` calls of n/2 in parallel:
  they share the client's :class:`~azml_client.RateBudget`;
* ``two clients at once, a budget each`` (the baseline): the same two runs from two clients, so
  each learns the endpoint alone, as two runs did before budgets were shared;
* ``max_tpm``: no server limit; ``batch(max_tpm=T, max_tokens=16)`` with every answer reporting
  12 tokens: tokens used per minute against ``T``.

Goodput is successful requests per second over the run's wall time; the server counts 429s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks.server import start_server_process, stop_server_process  # noqa: E402

MESSAGES = [{"role": "user", "content": "hi"}]
#: Tokens every answer of the benchmark server reports (prompt 5 + completion 7).
TOKENS_PER_ANSWER = 12


def _stats(server: str, key: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{server}/_stats/{key}", timeout=10) as response:  # loopback
        data: dict[str, int] = json.loads(response.read())
    return data


def _client(url: str) -> Any:
    from azml_client import EndpointClient, RetryPolicy

    return EndpointClient(
        url,
        "bench-key",
        api_type="serverless",
        formatter="openai",
        retry=RetryPolicy(max_retries=3),
        timeout=30,
    )


async def limited(server: str, *, mode: str, n: int, limit: float) -> dict[str, Any]:
    """One rate-limited row (see the module docstring)."""
    key = uuid.uuid4().hex[:12]
    url = f"{server}/_/rl={limit:g},key={key}/v1/chat/completions"
    clients = [_client(url)] if mode != "separate" else [_client(url), _client(url)]
    t0 = time.perf_counter()
    try:
        if mode == "one":
            runs = [clients[0].batch([MESSAGES] * n, max_tokens=16)]
        else:
            half = n // 2
            runs = [c.batch([MESSAGES] * half, max_tokens=16) for c in (clients * 2)[:2]]
        results = await asyncio.gather(*runs)
    finally:
        for client in clients:
            await client.aclose()
    wall = time.perf_counter() - t0
    ok = sum(r.stats.succeeded for r in results)
    stats = await asyncio.to_thread(_stats, server, key)
    sent = max(1, stats["requests"])
    return {
        "completed_fraction": ok / n,
        "goodput_vs_limit": ok / wall / limit,
        "throttled_per_sent": stats["throttled"] / sent,
        "wall_s": wall,
    }


async def token_budget(server: str, *, n: int, max_tpm: float) -> dict[str, Any]:
    """The ``max_tpm`` row: tokens used per minute against the budget."""
    client = _client(f"{server}/v1/chat/completions")
    t0 = time.perf_counter()
    try:
        results = await client.batch([MESSAGES] * n, max_tpm=max_tpm, max_tokens=16)
    finally:
        await client.aclose()
    wall = time.perf_counter() - t0
    used = results.stats.tokens_in + results.stats.tokens_out
    return {
        "completed_fraction": results.stats.succeeded / n,
        "tpm_used": used / wall * 60,
        "tpm_vs_budget": used / wall * 60 / max_tpm,
        "reported_tokens_per_answer": used / max(1, results.stats.succeeded),
        "wall_s": wall,
    }


async def run_all(quick: bool) -> list[dict[str, Any]]:
    proc, server = start_server_process(cpu=1 if (os.cpu_count() or 1) >= 2 else None)
    n = 1000 if quick else 3000
    limit = 200.0
    rows: list[dict[str, Any]] = []
    try:
        for label, mode in (
            ("one batch()", "one"),
            ("two batch() at once, shared budget", "shared"),
            ("two clients at once, a budget each (baseline)", "separate"),
        ):
            row = await limited(server, mode=mode, n=n, limit=limit)
            rows.append({"row": label, "n": n, "limit": f"{limit:g} req/s", **row})
            print(f"[budget] {label}: {row}", file=sys.stderr)
        max_tpm = 36_000.0  # 600 tokens/s = 50 answers/s of 12 tokens
        tpm_n = 300 if quick else 1000
        row = await token_budget(server, n=tpm_n, max_tpm=max_tpm)
        rows.append({"row": "max_tpm", "n": tpm_n, "limit": f"{max_tpm:g} tokens/min", **row})
        print(f"[budget] max_tpm: {row}", file=sys.stderr)
    finally:
        stop_server_process(proc)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| run | items | limit | completed | goodput / limit (higher is better) "
        "| 429s / requests sent (lower is better) | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["row"] == "max_tpm":
            continue
        out.append(
            f"| {row['row']} | {row['n']} | {row['limit']} | {row['completed_fraction']:.2f} "
            f"| {row['goodput_vs_limit']:.2f} | {row['throttled_per_sent'] * 100:.1f} % "
            f"| {row['wall_s']:.1f} |"
        )
    for row in rows:
        if row["row"] == "max_tpm":
            out += [
                "",
                "| run | items | budget | completed | tokens/min used | used / budget "
                "(higher is better, never above 1) | wall s |",
                "|---|---|---|---|---|---|---|",
                f"| max_tpm, max_tokens=16, {row['reported_tokens_per_answer']:.0f} tokens an "
                f"answer | {row['n']} | {row['limit']} | {row['completed_fraction']:.2f} "
                f"| {row['tpm_used']:.0f} | {row['tpm_vs_budget']:.2f} | {row['wall_s']:.1f} |",
            ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 items a row")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    rows = asyncio.run(run_all(args.quick))
    text = "### budget: bulk runs against a rate limit and a token budget\n\n" + table(rows)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
