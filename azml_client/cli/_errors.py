"""Every failure of ``azml`` as one line on stderr, in the command line's own terms, and its code.

Exit codes: 1 an endpoint error (or failed batch items, decided by the command), 2 a usage,
configuration or local problem, 130 interrupted. ``--debug`` prints the traceback first.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import traceback
from typing import TextIO

from .._bulk._jobs import JobError
from .._constants import ENV_API_KEY, ENV_ENDPOINT_URL
from .._exceptions import (
    APIConnectionError,
    APIStatusError,
    AzmlError,
    ConfigurationError,
    ResponseFormatError,
)

__all__ = ["describe_error", "report", "root_error", "say"]

#: Client arguments named in library messages, and the flag a command-line user sets instead.
_FLAGS = {
    "endpoint_url": "--endpoint-url",
    "api_key": "--api-key",
    "api_type": "--api-type",
    "deployment_name": "--deployment",
    "model": "--model",
    "api_version": "--api-version",
    "input_type": "--input-type",
    "encoding_format": "--encoding-format",
    "dimensions": "--dimensions",
    "max_retries": "--max-retries",
    "max_rps": "--max-rps",
    "max_tpm": "--max-tpm",
    "formatter": "--formatter",
    "timeout": "--timeout",
    "concurrency": "--concurrency",
}
#: What to check when an answer has not the expected shape, by what was reading it.
_FORMAT_HINT = "check --formatter (see 'azml formatters')"
_FORMAT_HINTS = {
    "embeddings": "check that --endpoint-url serves an embeddings model (and --api-type)",
    "info": "check --endpoint-url and --api-type (GET /info of the model inference API)",
    "response_format": "the model did not answer JSON fitting --response-format",
    "tools": "the model's tool call is malformed: check --tools",
}
_ARGUMENT = re.compile(r"\b([a-z]+(?:_[a-z]+)+)\b(?:=\.\.\.)?|\b([a-z]+)=\.\.\.")


def say(text: str, stream: TextIO | None = None) -> None:
    """Write one line and flush (stderr unless told)."""
    out = stream or sys.stderr
    out.write(text + "\n")
    out.flush()


def _cli_terms(text: str) -> str:
    """``pass endpoint_url=...`` -> ``pass --endpoint-url``: flags instead of Python arguments."""

    def flag(match: re.Match[str]) -> str:
        return _FLAGS.get(match[1] or match[2], match[0])

    return _ARGUMENT.sub(flag, text)


def _job_error(exc: JobError) -> str:
    path = exc.path
    why = exc.strerror or ("not a file" if exc.reason == "input_unreadable" else str(exc))
    texts = {
        "input_missing": f"input file {path!r} not found: check the IN.jsonl argument",
        "input_unreadable": f"cannot read the input {path!r} ({why}): give a readable JSONL file",
        "output_dir_missing": (
            f"the directory of --output, {path!r}, does not exist: create it or choose another"
            " --output"
        ),
        "output_is_input": (
            f"--output is the input file {path!r}: write the results to another file"
        ),
        "output_is_directory": (
            f"--output {path!r} is a directory: give a file path, e.g. --output "
            f"{os.path.join(path, 'results.jsonl')}"
        ),
        "output_not_writable": (
            f"cannot write --output {path!r} ({why}): fix its permissions or choose another"
            " --output"
        ),
        "disk_full": (
            f"no space left on the device of --output {path!r} ({exc.written} results written"
            " this run): free some space and rerun the same command to resume"
        ),
        "write_failed": (
            f"writing --output {path!r} failed ({why}): rerun the same command to resume"
        ),
        "locked": (
            f"another azml batch is writing {path!r}"
            + (f" (pid {exc.pid})" if exc.pid else "")
            + ": wait for it to finish or choose another --output"
        ),
    }
    return texts.get(exc.reason, str(exc))


def describe_error(exc: BaseException) -> str:
    """One line saying what went wrong and what to do (never the key)."""
    kind = type(exc).__name__
    if isinstance(exc, JobError):
        text = _job_error(exc)
    elif isinstance(exc, APIStatusError):
        text = f"HTTP {exc.status_code} {kind}: {exc.message}"
        if exc.request_id:
            text += f" (request id {exc.request_id})"
        if exc.attempts > 1:
            text += f", after {exc.attempts} attempts"
        if exc.status_code in (401, 403) and ENV_API_KEY not in text:
            text += f" — check {ENV_API_KEY}"
    elif isinstance(exc, APIConnectionError):
        text = f"{kind}: {exc.message}"
        if exc.url:
            text += f" ({exc.url})"
        text += f" — check --endpoint-url / {ENV_ENDPOINT_URL}"
    elif isinstance(exc, ResponseFormatError):
        text = f"{kind}: {exc} — {_FORMAT_HINTS.get(exc.formatter, _FORMAT_HINT)}"
    elif isinstance(exc, ConfigurationError):
        text = _cli_terms(str(exc))
    elif isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror + (f" {exc.filename!r}" if exc.filename else "")
    elif isinstance(exc, ImportError):
        text = str(exc)
    elif isinstance(exc, AzmlError):
        text = f"{kind}: {exc}"
    else:
        text = f"internal error, {kind}: {exc} (--debug shows the traceback)"
    return " ".join(text.split())


def root_error(exc: BaseException) -> BaseException:
    """The error to report: ``exc``, or the first member of an exception group (task groups
    wrap what their tasks raise) that is not a cancellation, looked for at any depth."""
    members = getattr(exc, "exceptions", None)
    if not isinstance(members, tuple) or not members:
        return exc
    roots = [root_error(m) for m in members if isinstance(m, BaseException)]
    real = [r for r in roots if not isinstance(r, asyncio.CancelledError)]
    return (real or roots or [exc])[0]


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, ConfigurationError | JobError | ImportError):
        return 2
    return 1


def report(exc: BaseException, *, debug: bool = False) -> int:
    """Print ``exc`` as one line (after its traceback with ``debug``); return the exit code."""
    error = root_error(exc)
    if isinstance(error, SystemExit):
        return error.code if isinstance(error.code, int) else 1
    if debug:
        traceback.print_exception(exc)
    if isinstance(error, KeyboardInterrupt):
        say("azml: interrupted (a batch resumes where it stopped when run again)")
        return 130
    if isinstance(error, BrokenPipeError):  # e.g. `azml complete ... | head -1`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 1
    say(f"azml: error: {describe_error(error)}")
    return _exit_code(error)
