"""The flags of ``azml``: one argparse parser, and the parsing of flag values.

The emulator's fault flags are generated from the fields of
:class:`~azml_client.emulator.Faults` (see :func:`azml_client.emulator._faults.fault_flags`) and
added twice: bare on ``azml emulate`` (``--rate-limit``) and prefixed on every client command
(``--emulator-rate-limit``), so neither spelling can drift from the dataclass.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from typing import Any

from .._constants import DEFAULT_MODELS_API_VERSION, ApiType
from .._embeddings import ENCODING_FORMATS, INPUT_TYPES
from .._exceptions import ConfigurationError
from ..emulator._faults import FaultFlag, fault_flags

__all__ = [
    "API_TYPES",
    "build_parser",
    "faults_in_cli_terms",
    "faults_kwargs",
    "given_fault_flags",
    "parse_concurrency",
    "parse_deployment",
    "parse_params",
]

PROG = "azml"

#: The endpoint kinds --api-type accepts.
API_TYPES = tuple(t.value for t in ApiType)

DESCRIPTION = """\
Command line of azml-client: call Azure ML online endpoints, serverless endpoints, the Azure AI
model inference API and the Foundry / Azure OpenAI v1 API (chat, completions, embeddings, model
info), run resumable JSONL batch jobs, and serve a local endpoint emulator.

The endpoint comes from --endpoint-url or AZUREML_ENDPOINT_URL, its kind from --api-type (else
from the URL: .../score, .../v1, .../models, .../openai/v1); the key from the environment
variable AZUREML_ENDPOINT_API_KEY (keep keys out of the command line). AZUREML_DEPLOYMENT_NAME,
AZUREML_ENDPOINT_API_TYPE and AZUREML_TIMEOUT are read too. The v1 API needs --model (the
deployment's name). Add --emulator to any client command to run it against an embedded local
emulator instead, no Azure needed.
"""

EPILOG = """\
examples:
  azml complete "Write a haiku about rain" --emulator
  azml chat "Hi" --system "Answer in French" --emulator --stream
  azml chat "Hi" --endpoint-url https://RES.openai.azure.com/openai/v1 --model gpt-4o-mini
  azml chat "Weather in Paris?" --tools tools.json --json --emulator --api-type openai_v1
  azml embed "first text" "second text" --emulator --dimensions 8
  azml info --endpoint-url https://RES.services.ai.azure.com/models
  azml batch examples/prompts.jsonl -o results.jsonl --emulator --emulator-rate-limit 50
  azml batch docs.jsonl -o vectors.jsonl --task embeddings --emulator --api-type openai_v1
  azml batch prompts.jsonl -o results.jsonl --routes routes.json
  azml emulate --port 8000 --family vllm --rate-limit 20
  azml formatters

exit codes: 0 success, 1 an endpoint error or some batch items failed, 2 a usage,
configuration or local problem (a path, the disk, another batch on the same output),
130 interrupted. Errors are one line on stderr; --debug adds the traceback.
"""

BATCH_DESCRIPTION = """\
Send every line of IN.jsonl to the endpoint, with adaptive concurrency, and append one result
line per item to OUT.jsonl.

--task generate (the default): prompts and chats.
Input lines:  {"id": ..., "prompt": "..."}  or  {"id": ..., "messages": [{"role": ..., ...}]}
              with an optional "params" object of model parameters (e.g. {"max_tokens": 64});
              "id" (a string or an integer) defaults to the line number.
Output lines: {"id", "ok": true, "text", "finish_reason", "usage", "attempts", "latency_ms"}

--task embeddings: texts to embed (a serverless, models or openai_v1 endpoint).
Input lines:  {"id": ..., "input": "text"}  or  {"id": ..., "input": ["text", ...]}
              with optional "params" ({"input_type": "query", "dimensions": 256}), which win
              over --input-type, --dimensions and --encoding-format.
Output lines: {"id", "ok": true, "vector": [...], "usage", "attempts", "latency_ms"}
              ("vectors": [[...], ...] for a list input, one per text, in order)

Failures:     {"id", "ok": false, "error": {"type", "status", "message", "request_id"},
               "attempts"}

Keys a task does not read are ignored: an "input" key on a prompt line is not embedded, and a
line without the task's keys is a bad input line.

Resumable: run the same command again to skip the ids already done, retry the failed ones
(their old lines are removed first, so each id appears once) and carry on after a crash or a
kill at any moment. Bad input lines (invalid JSON, no prompt/messages or no input, duplicate
id) are reported on stderr with their line numbers, are not written to OUT and count as
failures. OUT is locked while the batch runs: a second batch on it is refused. The summary
counts tokens (embedded tokens as "in").

Progress goes to stderr: a live bar on a terminal, else a plain line every
--progress-interval seconds. The summary follows (on stdout with --json).
"""


def _number(text: str, kind: type[int] | type[float]) -> float:
    try:
        return kind(text)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def _positive(text: str) -> float:
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _api_type(text: str) -> str:
    """``openai-v1`` and ``OpenAI_V1`` read as ``openai_v1`` (then argparse checks the choice)."""
    return text.strip().lower().replace("-", "_")


# -- emulator fault flags ----------------------------------------------------------------------


def _fault_dest(flag: FaultFlag) -> str:
    return f"fault_{flag.field}"


def _fault_type(flag: FaultFlag) -> Any:
    def parse(text: str) -> int | float:
        try:
            return flag.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = flag.kind.__name__
    return parse


def faults_in_cli_terms(text: str, prefix: str = "", *, keep: str = "") -> str:
    """``text`` with each ``Faults`` field name (but ``keep``) replaced by its flag."""
    for flag in fault_flags():
        if flag.field != keep:
            text = re.sub(rf"\b{flag.field}\b", f"--{prefix}{flag.name}", text)
    return text


def add_fault_flags(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """Add one flag per ``Faults`` field, named ``--{prefix}{name}``."""
    title = "emulator faults" if not prefix else "embedded emulator faults (with --emulator)"
    group = parser.add_argument_group(title)
    for flag in fault_flags():
        group.add_argument(
            f"--{prefix}{flag.name}",
            dest=_fault_dest(flag),
            type=_fault_type(flag),
            metavar=flag.metavar,
            default=None,
            help=faults_in_cli_terms(flag.help, prefix, keep=flag.field).replace("%", "%%"),
        )


def given_fault_flags(args: argparse.Namespace) -> list[FaultFlag]:
    """The fault flags set on the command line."""
    return [flag for flag in fault_flags() if getattr(args, _fault_dest(flag), None) is not None]


def faults_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The ``Faults`` keyword arguments given on the command line (unset flags left out)."""
    return {flag.field: getattr(args, _fault_dest(flag)) for flag in given_fault_flags(args)}


# -- other values ------------------------------------------------------------------------------


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


# -- the parser --------------------------------------------------------------------------------


def _common_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--debug", action="store_true", help="on an error, print the traceback too")
    return parent


def _connection_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False, parents=[_common_parent()])
    group = parent.add_argument_group("connection (the key is read from AZUREML_ENDPOINT_API_KEY)")
    group.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="endpoint URL: .../score, .../v1, .../models or .../openai/v1 "
        "(default: $AZUREML_ENDPOINT_URL)",
    )
    group.add_argument(
        "--api-type",
        type=_api_type,
        choices=API_TYPES,
        metavar="KIND",
        help="endpoint kind: dedicated (/score), serverless (/v1), models (the model inference "
        "API), openai_v1 (Foundry / Azure OpenAI v1) (default: $AZUREML_ENDPOINT_API_TYPE, "
        "else inferred from the URL)",
    )
    group.add_argument(
        "--model",
        metavar="NAME",
        help="model sent in OpenAI-style requests; on openai_v1 the Azure OpenAI deployment "
        "name, required there",
    )
    group.add_argument(
        "--api-version",
        metavar="VERSION",
        help=f"api-version query parameter (default on models: {DEFAULT_MODELS_API_VERSION})",
    )
    group.add_argument(
        "--deployment", metavar="NAME", help="deployment to call (default: the traffic split)"
    )
    group.add_argument(
        "--formatter",
        metavar="KEY",
        help="model family, see 'azml formatters' (default: llama on /score; openai on the "
        "other kinds)",
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
    group.add_argument(
        "--routes",
        metavar="ROUTES.json",
        help="several endpoints of one model behind one router (complete, chat, embed, batch): "
        "a JSON routes file listing saved client configs or settings, with weights and a "
        "strategy (capacity, weighted, priority); replaces --endpoint-url and the other "
        "per-endpoint flags; --timeout and --max-retries apply to the router's calls",
    )
    emu = parent.add_argument_group("embedded emulator")
    emu.add_argument(
        "--emulator",
        action="store_true",
        help="run against a local emulator started for this command (loopback, random key); "
        "--api-type picks the emulated kind (openai_v1 with a --model, default azml-emulator)",
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
        help="print {text, finish_reason, usage, request_id, attempts} as JSON, with "
        "tool_calls when the model called tools (--stream: one line per chunk first)",
    )
    return parent


def _add_embedding_flags(parser: argparse.ArgumentParser, title: str) -> None:
    group = parser.add_argument_group(title)
    group.add_argument(
        "--dimensions",
        type=_positive_int,
        metavar="N",
        help="length of each vector (if the model can)",
    )
    group.add_argument(
        "--input-type", choices=INPUT_TYPES, help="what the texts are, for models that care"
    )
    group.add_argument(
        "--encoding-format",
        choices=ENCODING_FORMATS,
        help="how vectors travel (base64 is decoded to numbers; default: the server's, float)",
    )


def _add_batch(sub: Any, conn: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "batch",
        parents=[conn],
        help="run a resumable JSONL batch job",
        usage=(
            "%(prog)s IN.jsonl -o OUT.jsonl [--task generate|embeddings] [--concurrency auto|N]\n"
            "       [--max-rps RPS] [--max-tpm TPM] [--json] [--no-progress]\n"
            "       [--dimensions N] [--input-type TYPE] [--encoding-format FORMAT]\n"
            "       [connection | --emulator]"
        ),
        description=BATCH_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="IN.jsonl", help="input file, one JSON object per line")
    p.add_argument(
        "-o", "--output", required=True, metavar="OUT.jsonl", help="results file (appended to)"
    )
    p.add_argument(
        "--task",
        choices=("generate", "embeddings"),
        default="generate",
        help="generate: prompt/messages lines (default); embeddings: input lines",
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
    price = p.add_argument_group("cost estimate (printed in the summary)")
    price.add_argument(
        "--price-in", type=_non_negative, metavar="PRICE", help="price of 1,000 input tokens"
    )
    price.add_argument(
        "--price-out", type=_non_negative, metavar="PRICE", help="price of 1,000 output tokens"
    )
    price.add_argument(
        "--price-hour",
        type=_non_negative,
        metavar="PRICE",
        help="price of one instance-hour of a dedicated deployment (the run's wall time is billed)",
    )
    price.add_argument(
        "--instances",
        type=_positive_int,
        metavar="N",
        help="instances of the deployment, with --price-hour (default 1)",
    )
    p.add_argument("--json", action="store_true", help="print the final summary as JSON on stdout")
    p.add_argument(
        "--no-progress", dest="progress", action="store_false", help="show no progress on stderr"
    )
    p.add_argument(
        "--progress-interval",
        type=_positive,
        default=5.0,
        metavar="SECONDS",
        help="seconds between progress lines when stderr is not a terminal (default 5)",
    )
    _add_embedding_flags(p, "embeddings (with --task embeddings)")
    ray = p.add_argument_group("Ray Data (pip install 'azml-client[ray]')")
    ray.add_argument(
        "--ray",
        action="store_true",
        help="run the job on Ray Data (RAY_ADDRESS, else a local cluster): JSONL or .parquet "
        "input with an id on every row, one rate budget for all actors; resumable the same way",
    )
    ray.add_argument(
        "--actors",
        type=_positive_int,
        default=4,
        metavar="N",
        help="actors calling the endpoint, with --ray (default 4, a quarter CPU each)",
    )


def _add_emulate(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "emulate",
        parents=[common],
        help="serve a local endpoint emulator",
        usage=(
            "%(prog)s [--host HOST] [--port N] [--key KEY] [--family KEY]\n"
            "       [--deployment NAME=FAMILY[:TRAFFIC] ...] [--seed N] [fault flags]"
        ),
        description=(
            "Serve an emulated endpoint (dedicated /score, serverless /v1, the model inference "
            "API under /models and the OpenAI v1 API under /openai/v1, with chat, completions, "
            "embeddings and /info) until Ctrl-C or SIGTERM. Prints its URLs and key."
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


def build_parser() -> argparse.ArgumentParser:
    """The whole ``azml`` parser."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common, conn, call = _common_parent(), _connection_parent(), _call_parent()

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
            "       [--tools FILE.json] [--response-format json_object|FILE.json]\n"
            "       [connection | --emulator]"
        ),
        description=(
            "Send one user message (after optional system messages) and print the reply, and "
            "the tool calls when the model made some."
        ),
    )
    p.add_argument("message", metavar="MESSAGE", help="the user message ('-' reads stdin)")
    p.add_argument("--system", action="append", metavar="TEXT", help="a system message, repeatable")
    p.add_argument(
        "--tools",
        metavar="FILE.json",
        help="tools the model may call: a JSON list of {type: function, function: {name, "
        "parameters}} (add --param tool_choice=required to force a call)",
    )
    p.add_argument(
        "--response-format",
        metavar="json_object|FILE.json",
        help="ask for JSON: json_object, or a file holding a JSON schema (or a whole "
        "response_format object); --json then adds 'parsed'",
    )

    p = sub.add_parser(
        "embed",
        parents=[conn],
        help="embed texts and print the vectors",
        usage=(
            "%(prog)s TEXT [TEXT ...] [--dimensions N] [--input-type TYPE]\n"
            "       [--encoding-format FORMAT] [--batch-size N] [--json] [connection | --emulator]"
        ),
        description=(
            "Embed texts on a serverless, models or openai_v1 endpoint and print one vector per "
            "text, in order, each as a JSON list on its own line (--json: one object with "
            "vectors, usage, model, request_id, attempts). With --emulator the models API is "
            "emulated unless --api-type says otherwise."
        ),
    )
    p.add_argument(
        "texts", nargs="+", metavar="TEXT", help="a text to embed; '-' reads one text per line"
    )
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        default=64,
        metavar="N",
        help="texts per request when there are more (default 64)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _add_embedding_flags(p, "embeddings")

    p = sub.add_parser(
        "info",
        parents=[conn],
        help="print what the endpoint says of its model (GET /info)",
        usage="%(prog)s [--json] [connection | --emulator]",
        description=(
            "Print the model name, type and provider from GET /info of a models or serverless "
            "endpoint (the v1 API and /score have none). With --emulator the models API is "
            "emulated unless --api-type says otherwise."
        ),
    )
    p.add_argument("--json", action="store_true", help="print the info as JSON")

    _add_batch(sub, conn)

    p = sub.add_parser(
        "formatters",
        parents=[common],
        help="list the model families (formatters)",
        description="List the registered model families with aliases, api types and support.",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list")

    _add_emulate(sub, common)
    return parser
