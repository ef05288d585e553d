"""The ``azml`` argument parser: subcommands, shared flag groups and their conversions.

Kept apart from :mod:`azml_client.cli` (which runs the commands) so the flag definitions can be
read in one place. The emulator's fault flags are defined once in :data:`FAULT_FLAGS` and added
twice: bare on ``azml emulate`` (``--rate-limit``) and prefixed on every client command
(``--emulator-rate-limit``), so the two spellings can never drift apart.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ._exceptions import ConfigurationError

__all__ = [
    "FAULT_FLAGS",
    "build_parser",
    "faults_kwargs",
    "given_fault_flags",
    "parse_concurrency",
    "parse_deployment",
    "parse_params",
]

PROG = "azml"

DESCRIPTION = """\
Command line of azml-client: call Azure ML online endpoints and serverless endpoints, run
resumable JSONL batch jobs, and serve a local endpoint emulator.

The endpoint comes from --endpoint-url or AZUREML_ENDPOINT_URL; the key from the environment
variable AZUREML_ENDPOINT_API_KEY (keep keys out of the command line). AZUREML_DEPLOYMENT_NAME,
AZUREML_ENDPOINT_API_TYPE and AZUREML_TIMEOUT are read too. Add --emulator to any client
command to run it against an embedded local emulator instead, no Azure needed.
"""

EPILOG = """\
examples:
  azml complete "Write a haiku about rain" --emulator
  azml chat "Hi" --system "Answer in French" --emulator --stream
  azml batch examples/prompts.jsonl -o results.jsonl --emulator --emulator-rate-limit 50
  azml emulate --port 8000 --family vllm --rate-limit 20
  azml formatters

exit codes: 0 success, 1 an endpoint error or some batch items failed, 2 usage or
configuration error, 130 interrupted.
"""

BATCH_DESCRIPTION = """\
Send every line of IN.jsonl to the endpoint, with adaptive concurrency, and append one result
line per item to OUT.jsonl.

Input lines:  {"id": ..., "prompt": "..."}  or  {"id": ..., "messages": [{"role": ..., ...}]}
              with an optional "params" object of model parameters (e.g. {"max_tokens": 64});
              "id" (a string or an integer) defaults to the line number.
Output lines: {"id", "ok": true, "text", "finish_reason", "usage", "attempts", "latency_ms"}
              {"id", "ok": false, "error": {"type", "status", "message", "request_id"},
               "attempts"}

Resumable: run the same command again to skip the ids already done, retry the failed ones
(their old lines are removed first, so each id appears once) and carry on after a crash or a
kill at any moment. Bad input lines (invalid JSON, no prompt/messages, duplicate id) are
reported on stderr with their line numbers, are not written to OUT and count as failures.
"""


@dataclass(frozen=True)
class FaultFlag:
    """One emulator fault flag: its name (without prefix), ``Faults`` field, type and help."""

    name: str
    field: str
    type: Callable[[str], Any]
    metavar: str
    help: str


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


#: Every ``Faults`` field, one flag each.
FAULT_FLAGS: tuple[FaultFlag, ...] = (
    FaultFlag("latency", "latency", _non_negative, "SECONDS", "delay before each answer"),
    FaultFlag(
        "token-latency", "token_latency", _non_negative, "SECONDS", "delay per generated token"
    ),
    FaultFlag(
        "rate-limit", "rate_limit_rps", _positive, "RPS", "token-bucket rate limit (429 over it)"
    ),
    FaultFlag("burst", "burst", _positive_int, "N", "token-bucket size (default: one second)"),
    FaultFlag(
        "max-concurrent",
        "max_concurrent_requests_per_instance",
        _positive_int,
        "N",
        "max_concurrent_requests_per_instance (429 over 2*N*instances pending)",
    ),
    FaultFlag("instances", "instance_count", _positive_int, "N", "instance_count"),
    FaultFlag("error-503", "error_503", _fraction, "FRACTION", "fraction answered 503"),
    FaultFlag("error-500", "error_500", _fraction, "FRACTION", "fraction answered 500"),
    FaultFlag("error-424", "error_424", _fraction, "FRACTION", "fraction answered 424"),
    FaultFlag("error-408", "error_408", _fraction, "FRACTION", "fraction answered 408"),
    FaultFlag(
        "request-timeout-ms",
        "request_timeout_ms",
        _positive_int,
        "MS",
        "request_timeout_ms (408 when the latency exceeds it)",
    ),
    FaultFlag("stream-cut", "stream_cut", _fraction, "FRACTION", "fraction of streams cut"),
    FaultFlag(
        "malformed-json", "malformed_json", _fraction, "FRACTION", "fraction of broken 200 bodies"
    ),
    FaultFlag(
        "error-in-200", "error_in_200", _fraction, "FRACTION", "vllm: fraction of errors in 200s"
    ),
    FaultFlag("empty-200", "empty_200", _fraction, "FRACTION", "vllm: fraction of empty 200s"),
)


def _fault_dest(flag: FaultFlag) -> str:
    return f"fault_{flag.field}"


def add_fault_flags(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """Add one flag per ``Faults`` field, named ``--{prefix}{name}``."""
    title = "emulator faults" if not prefix else "embedded emulator faults (with --emulator)"
    group = parser.add_argument_group(title)
    for flag in FAULT_FLAGS:
        group.add_argument(
            f"--{prefix}{flag.name}",
            dest=_fault_dest(flag),
            type=flag.type,
            metavar=flag.metavar,
            default=None,
            help=flag.help,
        )


def given_fault_flags(args: argparse.Namespace) -> list[FaultFlag]:
    """The fault flags set on the command line."""
    return [flag for flag in FAULT_FLAGS if getattr(args, _fault_dest(flag), None) is not None]


def faults_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The ``Faults`` keyword arguments given on the command line (unset flags left out)."""
    return {flag.field: getattr(args, _fault_dest(flag)) for flag in given_fault_flags(args)}


def parse_params(items: Sequence[str] | None) -> dict[str, Any]:
    """``["temperature=0.2", "stop=[\\"\\\\n\\"]", "user=bob"]`` -> model parameters.

    Values are parsed as JSON when they can be (numbers, booleans, lists, objects), else kept as
    strings.
    """
    params: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigurationError(f"--param expects key=value, got {item!r}")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


def parse_deployment(text: str) -> tuple[str, str, float]:
    """``name=family[:traffic]`` -> ``(name, family, traffic)`` (traffic defaults to 100)."""
    name, sep, rest = text.partition("=")
    family, _, traffic = rest.partition(":")
    if not sep or not name.strip() or not family.strip():
        raise argparse.ArgumentTypeError(f"expected name=family[:traffic], got {text!r}")
    try:
        weight = float(traffic) if traffic else 100.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"traffic must be a number, got {traffic!r}") from None
    return name.strip(), family.strip(), weight


def parse_concurrency(text: str) -> str | int:
    """``auto`` or a positive integer."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("concurrency must be at least 1")
    return value


def _connection_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection (the key is read from AZUREML_ENDPOINT_API_KEY)")
    group.add_argument(
        "--endpoint-url", metavar="URL", help="scoring URL (default: $AZUREML_ENDPOINT_URL)"
    )
    group.add_argument(
        "--api-type",
        choices=("dedicated", "serverless"),
        help="endpoint kind (default: $AZUREML_ENDPOINT_API_TYPE, else inferred from the URL)",
    )
    group.add_argument(
        "--deployment", metavar="NAME", help="deployment to call (default: the traffic split)"
    )
    group.add_argument(
        "--formatter",
        metavar="KEY",
        help="model family, see 'azml formatters' (default: llama; openai on serverless)",
    )
    group.add_argument(
        "--timeout", type=_positive, metavar="SECONDS", help="per-attempt timeout (default 60)"
    )
    group.add_argument(
        "--max-retries", type=int, metavar="N", help="retries after the first attempt (default 2)"
    )
    group.add_argument(
        "--api-key",
        metavar="KEY",
        help="the key; prefer AZUREML_ENDPOINT_API_KEY (a flag shows in ps and shell history)",
    )
    emu = parent.add_argument_group("embedded emulator")
    emu.add_argument(
        "--emulator",
        action="store_true",
        help="run against a local emulator started for this command (loopback, random key)",
    )
    emu.add_argument(
        "--emulator-family",
        metavar="KEY",
        help="wire format of the emulator's /score (default: the --formatter family, else vllm)",
    )
    emu.add_argument("--emulator-seed", type=int, metavar="N", help="emulator seed (default 0)")
    add_fault_flags(parent, prefix="emulator-")
    return parent


def _call_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("call")
    group.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="model parameter, repeatable; VALUE is JSON when it parses (max_tokens=64)",
    )
    group.add_argument("--stream", action="store_true", help="print tokens as they arrive")
    group.add_argument(
        "--json",
        action="store_true",
        help="print {text, finish_reason, usage, request_id, attempts} as JSON",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The whole ``azml`` parser."""
    from . import __version__

    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=PROG, description=DESCRIPTION, epilog=EPILOG, formatter_class=raw
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    conn, call = _connection_parent(), _call_parent()

    p = sub.add_parser(
        "complete",
        parents=[conn, call],
        help="complete a prompt",
        usage="%(prog)s PROMPT [--stream] [--json] [--param K=V ...] [connection | --emulator]",
        description="Send one prompt and print the generated text.",
    )
    p.add_argument("prompt", metavar="PROMPT", help="the prompt ('-' reads it from stdin)")

    p = sub.add_parser(
        "chat",
        parents=[conn, call],
        help="answer a chat message",
        usage=(
            "%(prog)s MESSAGE [--system TEXT ...] [--stream] [--json] [--param K=V ...]\n"
            "       [connection | --emulator]"
        ),
        description="Send one user message (after optional system messages) and print the reply.",
    )
    p.add_argument("message", metavar="MESSAGE", help="the user message ('-' reads stdin)")
    p.add_argument("--system", action="append", metavar="TEXT", help="a system message, repeatable")

    p = sub.add_parser(
        "batch",
        parents=[conn],
        help="run a resumable JSONL batch job",
        usage=(
            "%(prog)s IN.jsonl -o OUT.jsonl [--concurrency auto|N] [--max-rps RPS]\n"
            "       [--max-tpm TPM] [--json] [connection | --emulator]"
        ),
        description=BATCH_DESCRIPTION,
        formatter_class=raw,
    )
    p.add_argument("input", metavar="IN.jsonl", help="input file, one JSON object per line")
    p.add_argument(
        "-o", "--output", required=True, metavar="OUT.jsonl", help="results file (appended to)"
    )
    p.add_argument(
        "--concurrency",
        type=parse_concurrency,
        default="auto",
        metavar="auto|N",
        help="requests in flight: 'auto' adapts to 429s and latency (default), or a fixed N",
    )
    p.add_argument("--max-rps", type=_positive, metavar="RPS", help="cap on requests per second")
    p.add_argument("--max-tpm", type=_positive, metavar="TPM", help="cap on tokens per minute")
    p.add_argument("--json", action="store_true", help="print the final summary as JSON on stdout")

    p = sub.add_parser(
        "formatters",
        help="list the model families (formatters)",
        description="List the registered model families with aliases, api types and support.",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list")

    p = sub.add_parser(
        "emulate",
        help="serve a local endpoint emulator",
        usage=(
            "%(prog)s [--host HOST] [--port N] [--key KEY] [--family KEY]\n"
            "       [--deployment NAME=FAMILY[:TRAFFIC] ...] [--seed N] [fault flags]"
        ),
        description=(
            "Serve an emulated Azure ML endpoint (dedicated /score and serverless /v1 routes) "
            "until Ctrl-C or SIGTERM. Prints its URLs and key."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=8000, metavar="N", help="port (default 8000; 0 = a free one)"
    )
    p.add_argument("--key", metavar="KEY", help="the key clients must send (default: random)")
    p.add_argument(
        "--family",
        default="llama",
        metavar="KEY",
        help="wire format of /score (default llama; see 'azml formatters')",
    )
    p.add_argument(
        "--deployment",
        dest="deployments",
        action="append",
        type=parse_deployment,
        metavar="NAME=FAMILY[:TRAFFIC]",
        help="a deployment behind /score, repeatable (default: one named 'default')",
    )
    p.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed of the text and the faults"
    )
    add_fault_flags(p)
    return parser
