"""``azml batch``: drive the engine of :mod:`azml_client._bulk._jobs` and show what it reports
with :mod:`._render`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import anyio

from .._bulk._jobs import BatchJob, InputProblem, JobSummary, count_lines
from .._exceptions import ConfigurationError
from .._pricing import Pricing
from .._router import EndpointRouter, RouterRun, RouterStats
from ._calls import embedding_options
from ._connection import check_client, connect, endpoint
from ._errors import say
from ._render import ProgressRenderer, ProgressSnapshot, progress_renderer, summary_text

__all__ = ["batch"]


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


class _Routed:
    """A router as the job's bulk client, keeping its run for the per-endpoint summary."""

    def __init__(self, router: EndpointRouter) -> None:
        self.router = router
        self.run: RouterRun | None = None

    def map(self, items: Any, **options: Any) -> RouterRun:
        self.run = self.router.map(items, **options)
        return self.run


async def _run(
    args: argparse.Namespace, job: BatchJob, client_kwargs: dict[str, Any], view: _BatchView
) -> tuple[JobSummary, RouterStats | None]:
    """Run the job; with ``--routes`` also return the run's per-endpoint counters."""
    async with connect(client_kwargs) as client:
        check_client(client, args)  # e.g. embeddings on /score: one line, not one per item
        view.start(job)  # once the client accepted its settings: no progress before a usage error
        bulk = _Routed(client) if isinstance(client, EndpointRouter) else client
        try:
            if view.renderer is None:
                summary = await job.run(bulk)
            else:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(view.tick, job)
                    summary = await job.run(bulk)
                    tg.cancel_scope.cancel()
        finally:
            view.close(job)
    routed = bulk.run if isinstance(bulk, _Routed) else None
    return summary, None if routed is None else routed.stats


def endpoint_lines(stats: RouterStats) -> list[str]:
    """One summary line per endpoint of a ``--routes`` run: its share and what it learnt."""
    lines = ["  endpoints"]
    for e in stats.endpoints:
        rate = "no 429s" if e.rate is None else f"learnt {e.rate:.1f} req/s"
        lines.append(
            f"    {e.endpoint_url}  {e.succeeded} ok, {e.sent} sent, {e.rate_limited} 429s, "
            f"{e.failed_over} failed over, {e.failed} failed; {rate}"
        )
    return lines


def _job_params(args: argparse.Namespace) -> dict[str, Any]:
    """The embeddings flags, refused (naming the flag) unless ``--task embeddings``."""
    options = embedding_options(args)
    if options and args.task != "embeddings":
        flag = "--" + next(iter(options)).replace("_", "-")
        raise ConfigurationError(f"{flag} only applies with --task embeddings")
    return options


def _pricing(args: argparse.Namespace) -> Pricing | None:
    """The prices the flags give (``None``: no cost estimate)."""
    if args.instances is not None and args.price_hour is None:
        raise ConfigurationError("--instances only applies with --price-hour")
    if args.price_in is None and args.price_out is None and args.price_hour is None:
        return None
    return Pricing(
        input_per_1k=args.price_in or 0.0,
        output_per_1k=args.price_out or 0.0,
        hourly=args.price_hour or 0.0,
        instances=args.instances or 1,
    )


def batch(args: argparse.Namespace) -> int:
    """``azml batch``: run (or resume) one JSONL job; exit 1 when some lines did not succeed."""
    if args.ray:  # the same job on Ray Data's actors
        from ._ray_batch import ray_batch

        return ray_batch(args)
    view = _BatchView(args.input, None, args.progress_interval)
    job = BatchJob(
        args.input,
        args.output,
        concurrency=args.concurrency,
        max_rps=args.max_rps,
        max_tpm=args.max_tpm,
        task=args.task,
        params=_job_params(args),
        on_problem=view.problem,
    )
    job.summary.pricing = _pricing(args)
    with job:  # paths, lock and resume first: local problems show before any connection
        view.total = count_lines(args.input) if args.progress else None
        with endpoint(args) as client_kwargs:
            summary, routed = anyio.run(_run, args, job, client_kwargs, view)
    if args.json:
        data = summary.as_dict()
        if routed is not None:
            data["endpoints"] = [e.as_dict() for e in routed.endpoints]
        say(json.dumps(data), sys.stdout)
    else:
        text = summary_text(summary, args.output)
        if routed is not None:
            text = "\n".join([text, *endpoint_lines(routed)])
        say(text)
    return 0 if summary.success else 1
