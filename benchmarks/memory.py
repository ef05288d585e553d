"""Memory of a bulk job: ``azml batch`` vs the naive loop, at two input sizes.

``python -m benchmarks.run --suite memory`` (or ``python -m benchmarks.memory``) writes input
files of N and 10 x N chat lines, runs each job as its own process against the loopback
benchmark server, and reports each process's peak RSS (``wait4``'s ``ru_maxrss``) and wall time.

* ``azml batch``: the command line, which streams the input and writes results as they come.
* ``naive``: what a user of a raw client writes: read every line, start one task per line
  under a semaphore of 64 (raw aiohttp), gather all results, write them at the end.

Flat memory means the peak does not grow with N.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.server import start_server_process, stop_server_process

API_KEY = "bench-key"
NAIVE = """
import asyncio, json, sys, aiohttp

async def main(src, dst, url):
    items = [json.loads(line) for line in open(src)]
    sem = asyncio.Semaphore(64)
    async with aiohttp.ClientSession() as session:
        async def one(item):
            async with sem:
                body = {"messages": item["messages"], "max_tokens": 16}
                async with session.post(url, json=body, headers={"Authorization": "Bearer k"}) as r:
                    data = await r.json()
                    return {"id": item["id"], "ok": r.status == 200, "data": data}
        results = await asyncio.gather(*(one(i) for i in items))
    with open(dst, "w") as fh:
        for result in results:
            fh.write(json.dumps(result) + "\\n")

asyncio.run(main(*sys.argv[1:]))
"""


def write_input(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            line = {"id": i, "messages": [{"role": "user", "content": f"Question number {i}?"}]}
            fh.write(json.dumps(line) + "\n")


def measure(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``cmd``; its wall time and peak RSS in MiB."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "peak_mib": usage.ru_maxrss / 1024,
        "wall_s": wall,
        "exit": proc.returncode,
        "stderr": stderr[-300:] if proc.returncode else "",
    }


def run(sizes: list[int]) -> list[dict[str, Any]]:
    server, base = start_server_process(cpu=1 if (os.cpu_count() or 1) >= 2 else None)
    env = {**os.environ, "AZUREML_ENDPOINT_API_KEY": API_KEY}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")]
    )
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in sizes:
                src = Path(tmp) / f"in-{n}.jsonl"
                write_input(src, n)
                azml = measure(
                    [
                        sys.executable,
                        "-m",
                        "azml_client",
                        "batch",
                        str(src),
                        "-o",
                        str(Path(tmp) / f"azml-{n}.jsonl"),
                        "--endpoint-url",
                        f"{base}/v1/chat/completions",
                        "--api-type",
                        "serverless",
                        "--formatter",
                        "openai",
                        "--concurrency",
                        "64",
                    ],
                    env,
                )
                lines = sum(1 for _ in (Path(tmp) / f"azml-{n}.jsonl").open())
                naive = measure(
                    [
                        sys.executable,
                        "-c",
                        NAIVE,
                        str(src),
                        str(Path(tmp) / f"naive-{n}.jsonl"),
                        f"{base}/v1/chat/completions",
                    ],
                    env,
                )
                rows.append({"n": n, "azml": azml, "azml_lines": lines, "naive": naive})
                print(f"[memory] n={n}: azml {azml}, naive {naive}", file=sys.stderr)
    finally:
        stop_server_process(server)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| lines | azml batch peak RSS MiB | naive peak RSS MiB | azml / naive | azml wall s "
        "| naive wall s | azml results written |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        a, b = row["azml"], row["naive"]
        out.append(
            f"| {row['n']} | {a['peak_mib']:.0f} | {b['peak_mib']:.0f} | "
            f"{a['peak_mib'] / b['peak_mib']:.2f}x | {a['wall_s']:.1f} | {b['wall_s']:.1f} | "
            f"{row['azml_lines']} |"
        )
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        grow_a = last["azml"]["peak_mib"] / first["azml"]["peak_mib"]
        grow_b = last["naive"]["peak_mib"] / first["naive"]["peak_mib"]
        out.append("")
        out.append(
            f"Growth of the peak from {first['n']} to {last['n']} lines: azml batch "
            f"{grow_a:.2f}x, naive {grow_b:.2f}x."
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 and 20,000 lines")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    sizes = [2_000, 20_000] if args.quick else [10_000, 100_000]
    text = "### memory: peak RSS of a bulk job, by input size\n\n" + table(run(sizes))
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
