"""Benchmark azml-client's HTTP path against raw aiohttp, raw httpx and other SDKs.

    python -m benchmarks.run            # the full run: about 6 minutes on 2 cores
    python -m benchmarks.run --quick    # about a minute, one repeat, fewer requests
    python -m benchmarks.run --suite transport   # transport choice: aiohttp vs httpx pools

Starts the loopback server (``benchmarks.server``) in its own process and one worker process
per client (``benchmarks.worker``), so that each client's CPU time is its own.  With two or more
CPUs the server is pinned to one CPU and the clients to another.  Each scenario is repeated;
the client order alternates between repeats; medians are reported, with ratios to the
baselines (raw aiohttp, raw httpx, the openai SDK).  See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.clients import ADAPTERS  # noqa: E402
from benchmarks.server import start_server_process, stop_server_process  # noqa: E402

BASELINES = ("aiohttp", "httpx", "openai")


@dataclasses.dataclass(frozen=True)
class Metric:
    key: str
    label: str
    better: str  # "higher" or "lower"
    fmt: str = "{:.0f}"


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    kind: str
    title: str
    params: dict[str, Any]
    metrics: tuple[Metric, ...]
    repeats: int | None = None  # the default for this scenario; --repeats overrides it


def scenarios(quick: bool) -> dict[str, Scenario]:
    """The scenario table; ``quick`` shrinks every one of them."""
    dur, warm = (0.8, 0.2) if quick else (1.5, 0.3)
    bulk_n = 640 if quick else 2000
    streams, tokens = (48, 50) if quick else (200, 200)
    rl_n = 600 if quick else 3000
    rps_metrics = (
        Metric("req_per_s", "req/s", "higher"),
        Metric("cpu_us_per_req", "client CPU us/req", "lower"),
    )
    table = [
        Scenario(
            "rps1",
            "rps",
            "Throughput, 1 request in flight, zero server latency",
            {"concurrency": 1, "warmup": warm, "duration": dur},
            rps_metrics,
        ),
        Scenario(
            "rps64",
            "rps",
            "Throughput, 64 requests in flight, zero server latency",
            {"concurrency": 64, "warmup": warm, "duration": dur},
            rps_metrics,
        ),
        Scenario(
            "bulk",
            "bulk",
            f"{bulk_n} requests, 100 ms server latency, 64 in flight "
            f"(ideal {-(-bulk_n // 64) * 0.1:.1f} s)",
            # A client slower than 2x ideal is stopped and its wall time extrapolated (~).
            {
                "n": bulk_n,
                "concurrency": 64,
                "latency_ms": 100,
                "deadline": 2 * -(-bulk_n // 64) * 0.1,
            },
            (
                Metric("wall_s", "wall s", "lower", "{:.2f}"),
                Metric("wall_vs_ideal", "wall / ideal", "lower", "{:.2f}"),
            ),
        ),
        Scenario(
            "stream",
            "stream",
            f"{streams} streams x {tokens} tokens (1 ms apart), 16 in flight",
            {"n": streams, "concurrency": 16, "tokens": tokens, "token_ms": 1},
            (
                Metric("ttft_p50_ms", "TTFT p50 ms", "lower", "{:.1f}"),
                Metric("cpu_ms_per_stream", "client CPU ms/stream", "lower", "{:.1f}"),
            ),
            # Each run already aggregates 200 streams; the slow SDKs make a third run costly.
            repeats=None if quick else 2,
        ),
        Scenario(
            "ratelimit",
            "ratelimit",
            f"{rl_n} requests, 128 in flight, server limit 200 req/s (429 + retry-after-ms), "
            f"3 retries; requests not started within 2x ideal ({rl_n / 100:.0f} s) count as failed",
            # Ideal: n / limit seconds.  Stopping at 2x bounds the run for slow clients.
            {
                "n": rl_n,
                "concurrency": 128,
                "limit": 200,
                "deadline": 2 * rl_n / 200,
                "max_retries": 3,
            },
            (
                Metric("completed_fraction", "completed fraction", "higher", "{:.2f}"),
                Metric("goodput_vs_limit", "goodput / limit", "higher", "{:.2f}"),
                Metric("throttled_per_sent", "429s / requests sent", "lower", "{:.2f}"),
            ),
            repeats=1,
        ),
    ]
    return {s.name: s for s in table}


SUITES = {
    "default": (
        ("aiohttp", "httpx", "httpx+azml-transport", "openai", "azure-ai-inference", "azml"),
        ("rps1", "rps64", "bulk", "stream", "ratelimit"),
    ),
    "sync": (("azml", "azml-sync"), ("rps1",)),
    "memory": ((), ()),  # benchmarks/memory.py: processes of their own
    "import": ((), ()),  # benchmarks/imports.py: fresh interpreters
    "budget": ((), ()),  # benchmarks/budgets.py: bulk runs against limits, in one process
    "otel": ((), ()),  # benchmarks/telemetry.py: tracing absent, without an SDK, in memory
    "routing": ((), ()),  # benchmarks/routing.py: one router over two rate-limited endpoints
    "ray": ((), ()),  # benchmarks/ray_data.py: Ray Data, azml's actors vs ray.data.llm
    "transport": (
        ("aiohttp", "httpx", "httpx+azml-transport", "azml-transport-direct"),
        ("rps1", "rps64", "bulk", "stream"),
    ),
}


class Worker:
    """One client's process."""

    def __init__(self, client: str, server: str, cpu: int | None) -> None:
        command = [sys.executable, "-m", "benchmarks.worker", "--client", client]
        command += ["--server", server]
        if cpu is not None:
            command += ["--cpu", str(cpu)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.client = client
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            text=True,
        )
        hello = self._read()
        self.error: str | None = None if hello.get("ready") else str(hello.get("error"))

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            return {"ok": False, "ready": False, "error": "worker exited"}
        result: dict[str, Any] = json.loads(line)
        return result

    def run(self, scenario: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"scenario": scenario, "params": params}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.write("\n")
                self.proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def machine_info(pinned: bool, started: datetime.datetime | None = None) -> dict[str, Any]:
    cpu_model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in (
        "httpx",
        "httpcore",
        "h11",
        "anyio",
        "aiohttp",
        "openai",
        "httpx2",
        "azure-ai-inference",
        "azure-core",
        "azml-client",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "-"
    if versions["azml-client"] == "-":
        try:
            import azml_client

            versions["azml-client"] = str(getattr(azml_client, "__version__", "source checkout"))
        except Exception:
            pass
    return {
        "date": (started or datetime.datetime.now(datetime.timezone.utc)).strftime(
            "%Y-%m-%d %H:%M UTC"
        ),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "pinning": "server on CPU 1, each client on CPU 0" if pinned else "none",
        "versions": versions,
    }


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or base == 0:
        return "-"
    ratio = value / base
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.3f}x"


def render(
    results: dict[str, dict[str, list[dict[str, Any]]]],
    errors: dict[str, dict[str, str]],
    clients: list[str],
    table: dict[str, Scenario],
    info: dict[str, Any],
    command: str,
) -> str:
    """Markdown: one table per scenario, rows are clients, medians and ratios to baselines."""
    out: list[str] = []
    baselines = [b for b in BASELINES if b in clients]
    for name, runs in results.items():
        scenario = table[name]
        out.append(f"### {name}: {scenario.title}\n")
        head = ["client"]
        for metric in scenario.metrics:
            head.append(f"{metric.label} ({metric.better} is better)")
            head.extend(f"vs {b}" for b in baselines)
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        medians: dict[str, dict[str, float]] = {}
        flags: dict[str, str] = {}
        for client in clients:
            samples = runs.get(client, [])
            if samples:
                medians[client] = {
                    m.key: statistics.median(s[m.key] for s in samples) for m in scenario.metrics
                }
                if any(s.get("estimated") for s in samples):
                    flags[client] = "~"
        for client in clients:
            row = [client]
            if client not in medians:
                reason = errors.get(name, {}).get(client, "no result")
                row.append(reason)
                row.extend([""] * (len(head) - 2))
                out.append("| " + " | ".join(row) + " |")
                continue
            for metric in scenario.metrics:
                value = medians[client][metric.key]
                row.append(flags.get(client, "") + metric.fmt.format(value))
                for b in baselines:
                    row.append(_ratio(value, medians.get(b, {}).get(metric.key)))
            out.append("| " + " | ".join(row) + " |")
        n = max((len(v) for v in runs.values()), default=0)
        out.append(f"\n{n} run(s) per client; median shown; ratios are value / baseline value.")
        if flags:
            out.append("~ = stopped at 2x ideal and extrapolated from the completed requests.")
        out.append("")
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    out.append("### Machine\n")
    out.append(f"- {info['cpus']} CPUs, {info['cpu_model']}; pinning: {info['pinning']}")
    out.append(f"- {info['implementation']} {info['python']} on {info['platform']}")
    out.append(f"- {versions}")
    out.append(f"- run at {info['date']}: `{command}`")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="about a minute: fewer of all")
    parser.add_argument("--suite", choices=sorted(SUITES), default="default")
    parser.add_argument("--clients", help="comma-separated, from: " + ", ".join(ADAPTERS))
    parser.add_argument("--scenarios", help="comma-separated: rps1,rps64,bulk,stream,ratelimit")
    parser.add_argument(
        "--repeats",
        type=int,
        help="repeats of every point (default 3; stream 2, ratelimit 1; quick 1)",
    )
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    parser.add_argument("--json", type=Path, help="also write every raw sample to this file")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument(
        "--azml-no-batch",
        action="store_true",
        help="run azml's bulk and ratelimit scenarios as individual calls instead of through "
        "EndpointClient.batch() (the default: batch, with concurrency 64 / 'auto')",
    )
    args = parser.parse_args(argv)
    if args.suite == "import":
        from benchmarks import imports

        imports.main(
            (["--repeats", "3"] if args.quick else [])
            + (["--markdown", str(args.markdown)] if args.markdown else [])
        )
        return 0
    if args.suite == "budget":
        from benchmarks import budgets

        budgets.main(
            (["--quick"] if args.quick else [])
            + (["--markdown", str(args.markdown)] if args.markdown else [])
        )
        return 0
    if args.suite == "ray":
        from benchmarks import ray_data

        markdown = ["--markdown", str(args.markdown)] if args.markdown else []
        ray_data.main(["--quick"] * args.quick + markdown)
        return 0
    if args.suite == "routing":
        from benchmarks import routing

        markdown = ["--markdown", str(args.markdown)] if args.markdown else []
        routing.main(["--quick"] * args.quick + markdown)
        return 0
    if args.suite == "otel":
        from benchmarks import telemetry

        markdown = ["--markdown", str(args.markdown)] if args.markdown else []
        telemetry.main(["--quick"] * args.quick + markdown)
        return 0
    if args.suite == "memory":
        from benchmarks import memory

        memory.main(
            (["--quick"] if args.quick else [])
            + (["--markdown", str(args.markdown)] if args.markdown else [])
        )
        return 0

    table = scenarios(args.quick)
    clients, names = SUITES[args.suite]
    clients = tuple(args.clients.split(",")) if args.clients else clients
    names = tuple(args.scenarios.split(",")) if args.scenarios else names
    for client in clients:
        if client not in ADAPTERS:
            parser.error(f"unknown client {client!r}")
    for name in names:
        if name not in table:
            parser.error(f"unknown scenario {name!r}")
    repeats = args.repeats or (1 if args.quick else 3)
    pin = not args.no_pin and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2
    command = "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:])

    started = time.perf_counter()
    started_at = datetime.datetime.now(datetime.timezone.utc)
    server, base = start_server_process(cpu=1 if pin else None)
    workers: dict[str, Worker] = {}
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    errors: dict[str, dict[str, str]] = {}
    try:
        for client in clients:
            workers[client] = Worker(client, base, cpu=0 if pin else None)
            if workers[client].error:
                print(f"[{client}] {workers[client].error}", file=sys.stderr)
        for name in names:
            scenario = table[name]
            params = dict(scenario.params)
            if scenario.kind in ("bulk", "ratelimit") and not args.azml_no_batch:
                params["use_batch"] = True
            results[name] = {}
            errors[name] = {}
            count = args.repeats or scenario.repeats or repeats
            for rep in range(count):
                order = list(clients) if rep % 2 == 0 else list(reversed(clients))
                for client in order:
                    worker = workers[client]
                    if worker.error:
                        errors[name][client] = worker.error
                        continue
                    if errors[name].get(client):
                        continue
                    run_params = (
                        params
                        if client == "azml"
                        else {k: v for k, v in params.items() if k != "use_batch"}
                    )
                    t0 = time.perf_counter()
                    reply = worker.run(scenario.kind, run_params)
                    took = time.perf_counter() - t0
                    if reply.get("ok"):
                        results[name].setdefault(client, []).append(reply["result"])
                        shown = {m.key: round(reply["result"][m.key], 3) for m in scenario.metrics}
                        print(
                            f"[{name} #{rep + 1}] {client}: {shown} ({took:.1f}s)", file=sys.stderr
                        )
                    else:
                        errors[name][client] = str(reply.get("error"))
                        print(f"[{name}] {client}: {reply.get('error')}", file=sys.stderr)
    finally:
        for worker in workers.values():
            worker.close()
        stop_server_process(server)

    info = machine_info(pin, started_at)
    report = render(results, errors, list(clients), table, info, command)
    print(report)
    print(f"total {time.perf_counter() - started:.0f}s", file=sys.stderr)
    if args.markdown:
        args.markdown.write_text(report)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
