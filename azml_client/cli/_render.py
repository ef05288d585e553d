"""What a bulk run shows a person: live progress and the final summary, from plain data.

Progress is a ``rich`` bar when the stream is a terminal (``rich`` is imported only then), and
otherwise, for CI logs and ``nohup``, a plain line every ``interval`` seconds. Both take a
:class:`ProgressSnapshot`, so any engine can feed them: ``azml batch`` builds it from its job,
``client.batch(progress=True)`` from the run's ``BatchStats`` with
:meth:`ProgressSnapshot.from_stats`. Nothing here reads an engine or awaits anything.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    from .._bulk._jobs import ErrorTally, JobSummary

__all__ = [
    "ProgressRenderer",
    "ProgressSnapshot",
    "RunProgress",
    "format_progress",
    "progress_renderer",
    "summary_text",
]


class RunStats(Protocol):
    """The live counters :meth:`ProgressSnapshot.from_stats` reads (``BatchStats`` has them)."""

    @property
    def done(self) -> int: ...

    @property
    def failed(self) -> int: ...

    @property
    def rate_limited(self) -> int: ...

    @property
    def concurrency(self) -> int: ...

    @property
    def rps(self) -> float: ...

    @property
    def elapsed(self) -> float: ...


@dataclass(frozen=True)
class ProgressSnapshot:
    """One moment of a run: items done (of ``total``, when known), errors, 429s, pace."""

    done: int
    total: int | None = None
    failed: int = 0
    rate_limited: int = 0
    concurrency: int = 0
    #: Results per second this run (the pace of the ETA).
    rps: float = 0.0
    elapsed: float = 0.0
    #: Of ``done``, the items found done by an earlier run.
    resumed: int = 0

    @classmethod
    def from_stats(
        cls, stats: RunStats, *, total: int | None = None, resumed: int = 0
    ) -> ProgressSnapshot:
        """A snapshot of any object with ``done``, ``failed``, ``rate_limited``,
        ``concurrency``, ``rps`` and ``elapsed`` (e.g. a run's ``BatchStats``)."""
        return cls(
            done=stats.done + resumed,
            total=total,
            failed=stats.failed,
            rate_limited=stats.rate_limited,
            concurrency=stats.concurrency,
            rps=stats.rps,
            elapsed=stats.elapsed,
            resumed=resumed,
        )

    @property
    def eta(self) -> float | None:
        """Seconds left at the current pace, when it can be told."""
        if self.total is None or self.rps <= 0:
            return None
        return max(0, self.total - self.done) / self.rps


def _clock(seconds: float | None) -> str:
    return "?" if seconds is None else str(timedelta(seconds=round(seconds)))


def _counters(snap: ProgressSnapshot) -> str:
    return (
        f"{snap.rps:.1f} req/s  ETA {_clock(snap.eta)}  errors {snap.failed}  "
        f"429s {snap.rate_limited}  concurrency {snap.concurrency}"
    )


def format_progress(snap: ProgressSnapshot) -> str:
    """The plain progress line: ``[0:00:05] 120/500 done (24%)  35.2 req/s  ETA 0:00:11 ...``."""
    total = "?" if snap.total is None else str(snap.total)
    share = f" ({snap.done * 100 // snap.total}%)" if snap.total else ""
    resumed = f", {snap.resumed} resumed" if snap.resumed else ""
    return f"[{_clock(snap.elapsed)}] {snap.done}/{total} done{share}{resumed}  {_counters(snap)}"


class ProgressRenderer(Protocol):
    """Shows the progress of one run; :meth:`close` it once, with the final snapshot."""

    def update(self, snapshot: ProgressSnapshot) -> None:
        """Show ``snapshot`` (cheap: call it as often as you like; it throttles itself)."""

    def note(self, text: str) -> None:
        """Print one line of text without garbling the progress display."""

    def close(self, final: ProgressSnapshot) -> None:
        """Show ``final`` and stop. Idempotent."""


class _PlainProgress:
    """A line now, then one every ``interval`` seconds, and a last one at :meth:`close`."""

    def __init__(self, stream: TextIO, first: ProgressSnapshot, interval: float) -> None:
        self._stream = stream
        self._interval = interval
        self._lock = threading.Lock()
        self._closed = False
        self._write(format_progress(first))
        self._last = time.monotonic()

    def _write(self, text: str) -> None:
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()

    def update(self, snapshot: ProgressSnapshot) -> None:
        now = time.monotonic()
        if not self._closed and now - self._last >= self._interval:
            self._last = now
            self._write(format_progress(snapshot))

    def note(self, text: str) -> None:
        self._write(text)

    def close(self, final: ProgressSnapshot) -> None:
        if not self._closed:
            self._closed = True
            self._write(format_progress(final))


class _RichProgress:
    """A ``rich`` live bar: done/total, percentage, rate, ETA, errors, 429s, concurrency."""

    def __init__(self, stream: TextIO, first: ProgressSnapshot) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[counters]}", markup=False),
            TimeElapsedColumn(),
            console=Console(file=stream),
            refresh_per_second=4,
        )
        self._task = self._progress.add_task(
            "batch", total=first.total, completed=first.done, counters=_counters(first)
        )
        self._closed = False
        self._progress.start()

    def update(self, snapshot: ProgressSnapshot) -> None:
        if not self._closed:
            self._progress.update(
                self._task,
                total=snapshot.total,
                completed=snapshot.done,
                counters=_counters(snapshot),
            )

    def note(self, text: str) -> None:
        self._progress.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def close(self, final: ProgressSnapshot) -> None:
        if not self._closed:
            self.update(final)
            self._closed = True
            self._progress.stop()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_renderer(
    total: int | None,
    *,
    stream: TextIO | None = None,
    initial_done: int = 0,
    interval: float = 5.0,
) -> ProgressRenderer:
    """The progress display for ``stream`` (default: stderr), showing its first frame now.

    A ``rich`` bar on a terminal (plain lines if ``rich`` is not installed), else a plain line
    every ``interval`` seconds. ``initial_done`` items were done before this run (a resume): the
    first frame counts them.
    """
    out = stream if stream is not None else sys.stderr
    first = ProgressSnapshot(done=initial_done, total=total, resumed=initial_done)
    if _is_terminal(out):
        try:
            return _RichProgress(out, first)
        except ImportError:
            pass
    return _PlainProgress(out, first, interval)


# -- the summary of ``azml batch`` --------------------------------------------------------------


def _reasons(title: str, tallies: list[ErrorTally]) -> list[str]:
    lines = [f"  {title}:"] if tallies else []
    for t in tallies[:5]:
        lines.append(f"    {t.type:<24}{t.count:>6}  e.g. id {t.example_id!r}: {t.example:.120}")
    return lines


def summary_text(summary: JobSummary, output: str) -> str:
    """The human summary printed at the end of ``azml batch``."""
    s = summary
    rows: list[tuple[str, Any]] = [
        ("sent", f"{s.sent}  (items sent to the endpoint)"),
        ("ok", s.ok),
        ("failed", s.failed),
        ("rejected", f"{s.rejected}  (refused by the client before sending)"),
        ("bad input", s.bad_input),
        ("skipped", f"{s.skipped}  (already done)"),
        ("retried", s.retried),
        ("429s", s.rate_limited),
        ("tokens", f"{s.tokens_in} in, {s.tokens_out} out"),
        ("wall time", f"{s.elapsed:.2f} s"),
        ("req/s", f"{s.rps:.1f}"),
        ("concurrency", f"{s.concurrency}  (peak {s.peak_concurrency})"),
    ]
    if s.cost is not None and s.pricing is not None:
        rows.append(
            ("cost", f"~{s.cost:.4f} {s.pricing.currency}  (estimate from the prices given)")
        )
    lines = [f"azml batch -> {output}"] + [f"  {k:<13}{v}" for k, v in rows]
    lines += _reasons("failed by type", s.top_failures())
    lines += _reasons("rejected by type", s.top_rejections())
    if not s.success:
        lines.append(
            f"  {s.failed} failed, {s.rejected} rejected, {s.bad_input} bad input line(s): fix "
            "the input or the flags if needed and rerun the same command to retry only those"
        )
    text = "\n".join(lines)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class RunProgress:
    """``client.batch(progress=True)``: a run's stats, drawn by the same renderer as ``azml
    batch`` (a rich bar on a terminal, plain lines elsewhere)."""

    def __init__(self, total: int | None, *, stream: TextIO | None = None) -> None:
        self._total = total
        self._renderer = progress_renderer(total, stream=stream)

    def update(self, stats: RunStats) -> None:
        self._renderer.update(ProgressSnapshot.from_stats(stats, total=self._total))

    def close(self, stats: RunStats) -> None:
        self._renderer.close(ProgressSnapshot.from_stats(stats, total=self._total))
