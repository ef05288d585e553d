"""The commands of ``azml``: dispatch, ``formatters`` and ``emulate``.

Each command takes the parsed flags and returns the exit code; :func:`main` turns whatever
they raise into one line on stderr (:mod:`._errors`). The client commands live in
:mod:`._calls` (``complete``, ``chat``, ``embed``, ``info``) and :mod:`._batch`; where they
connect, in :mod:`._connection`.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict
from types import FrameType

import anyio

from .._constants import DEFAULT_MODELS_API_VERSION, ENV_API_KEY, ENV_ENDPOINT_URL
from .._exceptions import ConfigurationError
from ..formatters import list_formatters
from ._batch import batch
from ._calls import call_request, embed, info, read_texts, send_call
from ._connection import emulator_plan, endpoint
from ._errors import report, say
from ._parser import build_parser, faults_in_cli_terms, faults_kwargs

__all__ = ["emulator_plan", "endpoint", "main", "run"]


# -- formatters and emulate --------------------------------------------------------------------


def _formatters(args: argparse.Namespace) -> int:
    infos = list_formatters()
    if args.json:
        say(json.dumps([asdict(i) for i in infos], indent=2), sys.stdout)
        return 0
    rows = [("FAMILY", "ALIASES", "API TYPES", "CHAT", "COMPLETION")]
    yes = {True: "yes", False: "no"}
    for i in infos:
        rows.append(
            (i.key, ", ".join(i.aliases), ", ".join(i.api_types), yes[i.chat], yes[i.completion])
        )
    widths = [max(len(cell) for cell in column) for column in zip(*rows, strict=True)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        say("  ".join(cells).rstrip(), sys.stdout)
    return 0


def _emulate(args: argparse.Namespace) -> int:
    from ..emulator import Deployment, EmulatorConfig, EmulatorServer, Faults

    try:
        config = EmulatorConfig(
            api_key=args.key,
            family=args.family,
            deployments=[Deployment(n, f, t) for n, f, t in args.deployments or ()],
            seed=args.seed,
            faults=Faults(**faults_kwargs(args)),
        )
    except ValueError as exc:
        raise ConfigurationError(f"emulator: {faults_in_cli_terms(str(exc))}") from None
    server = EmulatorServer(config, host=args.host, port=args.port)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            server.start()
        except OSError as exc:
            say(f"azml: error: cannot listen on {args.host}:{args.port} ({exc.strerror or exc})")
            return 1
        key = server.api_key if args.key is None else "<the key given with --key>"
        deployments = ", ".join(f"{d.name} ({d.family})" for d in config.effective_deployments)
        faults = ", ".join(f"{k}={v}" for k, v in faults_kwargs(args).items()) or "none"
        banner = [
            f"azml emulator listening on {server.base_url}",
            f"  dedicated   {server.score_url}   deployments: {deployments}",
            f"  serverless  {server.serverless_url}   (OpenAI-style chat, completions, embeddings,"
            " /info)",
            f"  models      {server.models_url}   (model inference API: chat, embeddings, /info;"
            f" api-version {DEFAULT_MODELS_API_VERSION})",
            f"  openai_v1   {server.openai_v1_url}   (Foundry / Azure OpenAI v1: chat,"
            f" embeddings; any --model, e.g. {config.model_name})",
            f"  api key     {key}",
            f"  faults      {faults}   seed {args.seed}",
            "use it with:",
            f"  export {ENV_ENDPOINT_URL}={server.score_url}",
            f"  export {ENV_API_KEY}={key}",
            "Ctrl-C to stop.",
        ]
        say("\n".join(banner), sys.stdout)
        while not stop.wait(0.2):
            if not server.running:
                say("azml: error: the emulator server stopped unexpectedly")
                return 1
    finally:
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    stats = server.stats
    by_status = ", ".join(f"{k}: {v}" for k, v in sorted(stats.by_status.items())) or "none"
    say(f"azml emulator stopped after {stats.total_requests} requests ({by_status})")
    return 0


# -- dispatch ----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Run the command of ``args``; return its exit code (errors propagate)."""
    if args.command == "formatters":
        return _formatters(args)
    if args.command == "emulate":
        return _emulate(args)
    if args.command == "batch":
        return batch(args)
    # Local inputs first (stdin, files): their errors come before any connection.
    if args.command == "embed":
        texts = read_texts(args.texts)
        with endpoint(args) as client_kwargs:
            return anyio.run(embed, args, client_kwargs, texts)
    if args.command == "info":
        with endpoint(args) as client_kwargs:
            return anyio.run(info, args, client_kwargs)
    request = call_request(args)
    with endpoint(args) as client_kwargs:
        return anyio.run(send_call, args, client_kwargs, request)


def main(argv: Sequence[str] | None = None) -> int:
    """``azml`` (see :func:`azml_client.cli.main`)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors (argparse printed them)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return run(args)
    except BaseException as exc:  # every error ends as one line and an exit code
        return report(exc, debug=args.debug)
