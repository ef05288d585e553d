"""``azml batch --ray``: the job of :mod:`azml_client.ray._job`, with the command line's face.

Ray is started here (``RAY_ADDRESS`` names a cluster to join, else a local one starts) and shut
down at the end if it was started here. A key given to the command (``--api-key``, or the
``--emulator``'s) reaches the workers as an environment variable of the job
(``runtime_env``); a key in the environment reaches a local cluster's workers by inheritance,
and a remote cluster's must hold it itself.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from .._bulk._jobs import JobSummary, count_lines
from .._client import EndpointClient
from .._constants import ENV_API_KEY
from .._exceptions import ConfigurationError
from ._batch import _pricing
from ._connection import check_client, endpoint
from ._errors import say
from ._render import ProgressRenderer, ProgressSnapshot, progress_renderer, summary_text

__all__ = ["ray_batch"]


def _refuse(args: argparse.Namespace) -> None:
    """Flags the Ray job does not take, named with what to do instead."""
    if args.task != "generate":
        raise ConfigurationError("--ray runs --task generate jobs; embed without --ray")
    if args.concurrency != "auto":
        raise ConfigurationError(
            "--ray adapts each actor's concurrency to the endpoint: drop --concurrency "
            "(--actors sets how many actors call it)"
        )
    if getattr(args, "routes", None):
        raise ConfigurationError("--ray calls one endpoint: drop --routes")
    for name in ("dimensions", "input_type", "encoding_format"):
        if getattr(args, name, None) is not None:
            raise ConfigurationError(f"--{name.replace('_', '-')} only applies to embeddings")


def _start_ray(key_env: str, key: str | None) -> bool:
    """Join or start Ray; True when it was started here (and is to be shut down here)."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(
            "azml batch --ray needs Ray Data: pip install 'azml-client[ray]'"
        ) from exc
    if ray.is_initialized():
        return False
    runtime_env = {"env_vars": {key_env: key}} if key else None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        address=os.environ.get("RAY_ADDRESS"),
        runtime_env=runtime_env,
        logging_level=logging.WARNING,
        include_dashboard=False,
    )
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False  # ours shows instead
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    return True


class _View:
    """Progress on stderr (when asked) and the bad-row reports."""

    def __init__(self, source: str, total: int | None, interval: float) -> None:
        self.source = source
        self.total = total
        self.interval = interval
        self.renderer: ProgressRenderer | None = None

    def start(self, summary: JobSummary) -> None:
        if self.total is not None:
            done = min(summary.resumed, self.total)
            self.renderer = progress_renderer(self.total, initial_done=done, interval=self.interval)

    def problem(self, message: str) -> None:
        text = f"azml: {self.source}: {message}"
        if self.renderer is not None:
            self.renderer.note(text)
        else:
            say(text)

    def snapshot(self, s: JobSummary) -> ProgressSnapshot:
        done = s.done if self.total is None else min(s.done, self.total)
        return ProgressSnapshot(
            done=done,
            total=self.total,
            failed=s.errors,
            rps=s.rps,
            elapsed=s.elapsed,
            resumed=min(s.resumed, done),
        )

    def update(self, summary: JobSummary) -> None:
        if self.renderer is not None:
            self.renderer.update(self.snapshot(summary))

    def close(self, summary: JobSummary) -> None:
        if self.renderer is not None:
            self.renderer.close(self.snapshot(summary))
            self.renderer = None


def ray_batch(args: argparse.Namespace) -> int:
    """``azml batch --ray``: run (or resume) one job on Ray; exit 1 when some rows failed."""
    from ..ray._job import run_ray_job

    _refuse(args)
    summary = JobSummary()
    summary.pricing = _pricing(args)
    parquet = args.input.lower().endswith((".parquet", ".pq"))
    total = count_lines(args.input) if not parquet and os.path.isfile(args.input) else None
    view = _View(args.input, total if args.progress else None, args.progress_interval)
    with endpoint(args) as kwargs:
        key = kwargs.pop("api_key", None)
        settings: dict[str, Any] = {k: v for k, v in kwargs.items() if v is not None}
        # The settings a worker would refuse, refused here in flag terms (one line, not one
        # error per row).
        check_client(EndpointClient(**settings, api_key=key), args)
        started = _start_ray(str(settings.get("api_key_env") or ENV_API_KEY), key)
        try:
            view.start(summary)
            try:
                run_ray_job(
                    args.input,
                    args.output,
                    settings,
                    actors=args.actors,
                    max_rps=args.max_rps,
                    max_tpm=args.max_tpm,
                    total=total,
                    summary=summary,
                    on_problem=view.problem,
                    on_progress=view.update,
                )
            finally:
                view.close(summary)
        finally:
            if started:
                import ray

                ray.shutdown()
    if args.json:
        say(json.dumps(summary.as_dict()), sys.stdout)
    else:
        say(summary_text(summary, args.output))
    return 0 if summary.success else 1
