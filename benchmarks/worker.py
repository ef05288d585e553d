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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--client", required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    args = parser.parse_args(argv)
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})

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
