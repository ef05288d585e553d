"""A client process: runs scenarios for one client on request, so its CPU time is its own.

Protocol (JSON lines): the parent writes ``{"scenario": ..., "params": {...}}`` to stdin and
reads ``{"ok": true, "result": {...}}`` or ``{"ok": false, "error": "..."}`` from stdout.  The
first line written is ``{"ready": true}`` or ``{"ready": false, "error": "not available: ..."}``.
An empty line or end of input ends the process.  Each scenario gets a fresh event loop and a
fresh client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import traceback
from typing import Any


def run_command(client: str, scenario: str, server: str, params: dict[str, Any]) -> Any:
    """Run one scenario synchronously in this process (also used by the smoke test)."""
    from benchmarks.scenarios import run_scenario

    return asyncio.run(run_scenario(client, scenario, server, params))


def settle_allocator() -> None:
    """Put the C allocator in the same state in every worker, whatever the client imported.

    glibc's malloc serves blocks above its mmap threshold (128 KiB at start) with ``mmap`` and
    raises the threshold the first time it frees such a block. asyncio reads a socket into a
    256 KiB buffer: until the threshold has moved, every read maps and unmaps it (about 75,000
    page faults and a second of system time per ``stream`` run). A process that imports httpx
    or pydantic has freed a large block by then; one that imports only aiohttp (the raw aiohttp
    baseline) has not, and measured 30-50 % more CPU and a longer time to first token for it.
    Freeing one 1 MiB block here moves the threshold in every worker (elsewhere: no effect).
    """
    bytearray(1 << 20)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--client", required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    args = parser.parse_args(argv)
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    settle_allocator()

    out = sys.stdout
    # Libraries must not write to the protocol channel.
    sys.stdout = sys.stderr

    def reply(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    from benchmarks.clients import availability

    problem = availability(args.client)
    reply({"ready": problem is None, "error": problem})
    for line in sys.stdin:
        if not line.strip():
            break
        command = json.loads(line)
        if problem is not None:
            reply({"ok": False, "error": problem})
            continue
        try:
            result = run_command(args.client, command["scenario"], args.server, command["params"])
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            reply({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        else:
            reply({"ok": True, "result": result})


if __name__ == "__main__":
    main()
