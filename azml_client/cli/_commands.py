"""The commands of ``azml``: ``complete``, ``chat``, ``batch``, ``formatters``, ``emulate``.

Each command takes the parsed flags and returns the exit code; :func:`main` turns whatever
they raise into one line on stderr (:mod:`._errors`). ``batch`` drives the engine of
:mod:`azml_client._bulk._jobs` and shows what it reports with :mod:`._render`.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from types import FrameType
from typing import Any

import anyio

from .._bulk._jobs import BatchJob, InputProblem, JobSummary, count_lines
from .._client import EndpointClient
from .._constants import ENV_API_KEY, ENV_ENDPOINT_URL
from .._exceptions import ConfigurationError
from ..formatters import FormatterInfo, get_formatter, list_formatters
from ._errors import report, say
from ._parser import (
    build_parser,
    faults_in_cli_terms,
    faults_kwargs,
    given_fault_flags,
    parse_params,
)
from ._render import ProgressRenderer, ProgressSnapshot, progress_renderer, summary_text

__all__ = ["emulator_plan", "endpoint", "main", "run"]

#: Family of the embedded emulator's /score (and formatter) when neither is given: it answers
#: prompts and chats alike and reports usage, so mixed batch files work out of the box.
EMULATOR_DEFAULT_FAMILY = "vllm"


# -- connection and the embedded emulator ----------------------------------------------------


def _formatter_info(key: str | None) -> FormatterInfo | None:
    if not key:
        return None
    wanted = key.strip().lower().replace("_", "-")
    return next((f for f in list_formatters() if wanted == f.key or wanted in f.aliases), None)


def _streams_on_dedicated(key: str) -> bool:
    try:
        return "dedicated" in {str(t) for t in get_formatter(key).stream_api_types}
    except ConfigurationError:
        return False


def emulator_plan(args: argparse.Namespace) -> tuple[str, str | None, str]:
    """``(api_type, formatter, emulator family)`` of an ``--emulator`` run.

    Dedicated ``/score`` unless ``--api-type serverless``, a serverless-only ``--formatter``
    (``openai``), or ``--stream`` with a family that streams only on serverless. The emulator's
    family follows ``--emulator-family``, else ``--formatter``, else ``vllm``; the formatter
    follows the family when not given.
    """
    from ..emulator import FAMILIES

    info = _formatter_info(args.formatter)
    family = args.emulator_family or (
        info.key if info is not None and info.key in FAMILIES else EMULATOR_DEFAULT_FAMILY
    )
    api_type = args.api_type
    if api_type is None:
        serverless_only = info is not None and "dedicated" not in info.api_types
        wants_stream = getattr(args, "stream", False) and not _streams_on_dedicated(
            args.formatter or family
        )
        api_type = "serverless" if serverless_only or wants_stream else "dedicated"
    if api_type == "serverless":
        return api_type, args.formatter, args.emulator_family or "llama"
    return api_type, args.formatter or family, family


def _given_emulator_flags(args: argparse.Namespace) -> list[str]:
    given = ["--emulator-family"] if args.emulator_family else []
    given += ["--emulator-seed"] if args.emulator_seed is not None else []
    return given + [f"--emulator-{flag.name}" for flag in given_fault_flags(args)]


@contextmanager
def endpoint(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """The ``EndpointClient`` arguments of a client command (starting the emulator if asked)."""
    kwargs: dict[str, Any] = {
        "endpoint_url": args.endpoint_url,
        "api_key": args.api_key,
        "api_type": args.api_type,
        "deployment_name": args.deployment,
        "formatter": args.formatter,
        "timeout": args.timeout,
        "max_retries": args.max_retries,
    }
    if not args.emulator:
        extra = _given_emulator_flags(args)
        if extra:
            raise ConfigurationError(f"{extra[0]} only applies with --emulator")
        yield kwargs
        return
    if args.endpoint_url:
        raise ConfigurationError("--emulator runs a local endpoint: drop --endpoint-url")
    from ..emulator import Deployment, EmulatorConfig, Faults, run_emulator

    api_type, formatter, family = emulator_plan(args)
    try:
        config = EmulatorConfig(
            family=family,
            deployments=[Deployment(args.deployment, family)] if args.deployment else (),
            seed=args.emulator_seed or 0,
            faults=Faults(**faults_kwargs(args)),
        )
    except ValueError as exc:
        raise ConfigurationError(
            f"emulator: {faults_in_cli_terms(str(exc), 'emulator-')}"
        ) from None
    with run_emulator(config) as emu:
        url = emu.score_url if api_type == "dedicated" else emu.serverless_url
        kwargs.update(endpoint_url=url, api_key=emu.api_key, api_type=api_type)
        # "" (not None) so a developer's AZUREML_DEPLOYMENT_NAME is not sent to the emulator.
        kwargs.update(formatter=formatter, deployment_name=args.deployment or "")
        yield kwargs


# -- complete / chat ---------------------------------------------------------------------------


def _text_arg(value: str) -> str:
    return sys.stdin.read() if value == "-" else value


def _result_json(result: Any) -> dict[str, Any]:
    usage = getattr(result, "usage", None)
    return {
        "text": result.text,
        "finish_reason": result.finish_reason,
        "usage": usage.model_dump(exclude_none=True) if usage is not None else None,
        "request_id": result.request_id,
        "attempts": result.attempts,
    }


async def _call(args: argparse.Namespace, client_kwargs: dict[str, Any]) -> int:
    params = parse_params(args.param)
    payload: Any
    if args.command == "complete":
        payload = _text_arg(args.prompt)
    else:
        payload = [{"role": "system", "content": text} for text in args.system or ()]
        payload.append({"role": "user", "content": _text_arg(args.message)})
    out = sys.stdout
    async with EndpointClient(**client_kwargs) as client:
        if args.stream:
            async with client.stream(payload, **params) as stream:
                async for chunk in stream:
                    if args.json:
                        line = {"delta": chunk.text, "finish_reason": chunk.finish_reason}
                        out.write(json.dumps(line, ensure_ascii=False) + "\n")
                    else:
                        out.write(chunk.text)
                    out.flush()
            if args.json:
                out.write(json.dumps(_result_json(stream), ensure_ascii=False) + "\n")
            else:
                out.write("\n")
        else:
            call = client.complete if args.command == "complete" else client.chat
            result = await call(payload, **params)
            text = json.dumps(_result_json(result), ensure_ascii=False) if args.json else None
            out.write((text or result.text) + "\n")
    out.flush()
    return 0


# -- batch -------------------------------------------------------------------------------------


class _BatchView:
    """The face of one batch run: its progress display, if any, and the bad-line reports."""

    def __init__(self, source: str, total: int | None, interval: float) -> None:
        self.source = source
        self.total = total
        self.interval = interval
        self.renderer: ProgressRenderer | None = None

    def start(self, job: BatchJob) -> None:
        """Show the first frame (when progress is wanted): it counts the resumed lines."""
        if self.total is not None:
            done = min(job.summary.done, self.total)
            self.renderer = progress_renderer(self.total, initial_done=done, interval=self.interval)

    def problem(self, problem: InputProblem) -> None:
        text = f"azml: {self.source}:{problem.line}: {problem.message}"
        if self.renderer is not None:
            self.renderer.note(text)
        else:
            say(text)

    def snapshot(self, job: BatchJob) -> ProgressSnapshot:
        s, total = job.stats(), self.total
        done = s.done if total is None else min(s.done, total)
        return ProgressSnapshot(
            done=done,
            total=total,
            failed=s.errors,
            rate_limited=s.rate_limited,
            concurrency=s.concurrency,
            rps=s.rps,
            elapsed=s.elapsed,
            resumed=min(s.resumed, done),
        )

    async def tick(self, job: BatchJob) -> None:
        while self.renderer is not None:
            await anyio.sleep(min(self.interval, 0.5))
            self.renderer.update(self.snapshot(job))

    def close(self, job: BatchJob) -> None:
        if self.renderer is not None:
            self.renderer.close(self.snapshot(job))
            self.renderer = None


async def _run_batch(job: BatchJob, client_kwargs: dict[str, Any], view: _BatchView) -> JobSummary:
    async with EndpointClient(**client_kwargs) as client:
        view.start(job)  # once the client accepted its settings: no progress before a usage error
        try:
            if view.renderer is None:
                return await job.run(client)
            async with anyio.create_task_group() as tg:
                tg.start_soon(view.tick, job)
                summary = await job.run(client)
                tg.cancel_scope.cancel()
            return summary
        finally:
            view.close(job)


def _batch(args: argparse.Namespace) -> int:
    view = _BatchView(args.input, None, args.progress_interval)
    job = BatchJob(
        args.input,
        args.output,
        concurrency=args.concurrency,
        max_rps=args.max_rps,
        max_tpm=args.max_tpm,
        on_problem=view.problem,
    )
    with job:  # paths, lock and resume first: local problems show before any connection
        view.total = count_lines(args.input) if args.progress else None
        with endpoint(args) as client_kwargs:
            summary = anyio.run(_run_batch, job, client_kwargs, view)
    if args.json:
        say(json.dumps(summary.as_dict()), sys.stdout)
    else:
        say(summary_text(summary, args.output))
    return 0 if summary.success else 1


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
            f"  serverless  {server.serverless_url}   (OpenAI-style chat/completions routes)",
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
        return _batch(args)
    with endpoint(args) as client_kwargs:
        return anyio.run(_call, args, client_kwargs)


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
