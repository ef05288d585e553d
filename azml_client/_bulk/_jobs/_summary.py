"""What a job produced: the output records of its results and the counters of the run."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ._input import JobId

if TYPE_CHECKING:
    from ..._pricing import Pricing

__all__ = [
    "ErrorTally",
    "JobSummary",
    "RunCounters",
    "embeddings_record",
    "error_message",
    "error_record",
    "ok_record",
    "tally",
]


def _usage(result: Any) -> dict[str, Any] | None:
    usage = getattr(result, "usage", None)
    return usage.model_dump(exclude_none=True) if usage is not None else None


def ok_record(item_id: JobId, result: Any, latency_ms: int) -> dict[str, Any]:
    """The output line of a success."""
    return {
        "id": item_id,
        "ok": True,
        "text": result.text,
        "finish_reason": getattr(result, "finish_reason", None),
        "usage": _usage(result),
        "attempts": getattr(result, "attempts", 1),
        "latency_ms": latency_ms,
    }


def embeddings_record(
    item_id: JobId, result: Any, latency_ms: int, *, single: bool
) -> dict[str, Any]:
    """The output line of embedded texts: ``vector`` for one string input, else ``vectors``."""
    vectors = result.vectors
    return {
        "id": item_id,
        "ok": True,
        **({"vector": vectors[0]} if single else {"vectors": vectors}),
        "usage": _usage(result),
        "attempts": getattr(result, "attempts", 1),
        "latency_ms": latency_ms,
    }


def error_message(exc: BaseException) -> str:
    """The message of an error as the output shows it."""
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__


def error_record(item_id: JobId, exc: BaseException) -> dict[str, Any]:
    """The output line of a failure (never holds headers, so never the key)."""
    return {
        "id": item_id,
        "ok": False,
        "error": {
            "type": type(exc).__name__,
            "status": getattr(exc, "status_code", None),
            "message": error_message(exc),
            "request_id": getattr(exc, "request_id", None),
        },
        "attempts": getattr(exc, "attempts", 1),
    }


# -- the summary ------------------------------------------------------------------------------


class RunCounters(Protocol):
    """The live counters of a bulk run that a summary copies (``BatchStats`` has them)."""

    @property
    def retried(self) -> int: ...

    @property
    def rate_limited(self) -> int: ...

    @property
    def concurrency(self) -> int: ...

    @property
    def concurrency_history(self) -> Sequence[tuple[float, int]]: ...


@dataclass
class ErrorTally:
    """One kind of error in a run: its type, how many items, and the first as an example."""

    type: str
    count: int
    example_id: JobId
    example: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "count": self.count,
            "example_id": self.example_id,
            "example": self.example,
        }


def tally(tallies: dict[str, ErrorTally], item_id: JobId, exc: BaseException) -> None:
    """Count ``exc`` under its type name (the first of a type is kept as the example)."""
    kind = type(exc).__name__
    if kind in tallies:
        tallies[kind].count += 1
    else:
        tallies[kind] = ErrorTally(kind, 1, item_id, " ".join(error_message(exc).split())[:200])


def _top(tallies: dict[str, ErrorTally]) -> list[ErrorTally]:
    return sorted(tallies.values(), key=lambda t: -t.count)


@dataclass
class JobSummary:
    """Counters of one job run, live while it runs (a progress display may read them).

    The item counters move with each result; the run's own counters (``retried``,
    ``rate_limited``, ``concurrency``, ``peak_concurrency``) are copied by :meth:`observe` when
    someone looks (``BatchJob.stats()``: a progress tick, the end of the run), not per result.
    """

    #: Items sent to the endpoint: every result but the local rejections.
    sent: int = 0
    ok: int = 0
    #: Items the endpoint (or the connection to it) failed, by error type in ``failures``.
    failed: int = 0
    failures: dict[str, ErrorTally] = field(default_factory=dict)
    #: Items the client refused before sending (e.g. a chat item on a completion-only formatter).
    rejected: int = 0
    rejections: dict[str, ErrorTally] = field(default_factory=dict)
    #: Ids found done (ok) in the output at the start.
    resumed: int = 0
    #: Input lines skipped because their id was done.
    skipped: int = 0
    #: Bad input lines (invalid JSON, no prompt/messages, duplicate id...).
    bad_input: int = 0
    #: Attempts beyond the first (from the bulk run's stats, as of the last :meth:`observe`).
    retried: int = 0
    #: 429 answers absorbed (from the bulk run's stats, as of the last :meth:`observe`).
    rate_limited: int = 0
    #: Usage of the successful results: prompt (or embedded input) and completion tokens.
    tokens_in: int = 0
    tokens_out: int = 0
    #: Concurrency now (or at the end) and its highest value.
    concurrency: int = 0
    peak_concurrency: int = 0
    #: Failed lines removed from the output before resuming.
    dropped_failed: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    #: The endpoint's prices (``--price-in`` / ``--price-out`` / ``--price-hour``): ``cost``.
    pricing: Pricing | None = field(default=None, repr=False)

    @property
    def cost(self) -> float | None:
        """Estimated cost of this run: its tokens, and its wall time at an hourly price."""
        if self.pricing is None:
            return None
        return self.pricing.cost(self.tokens_in, self.tokens_out, self.elapsed)

    def observe(self, stats: RunCounters) -> None:
        """Copy the bulk run's counters now (its concurrency limit and the highest so far)."""
        self.retried, self.rate_limited = stats.retried, stats.rate_limited
        self.concurrency = stats.concurrency
        peak = max((limit for _, limit in stats.concurrency_history), default=0)
        self.peak_concurrency = max(self.peak_concurrency, peak, self.concurrency)

    @property
    def done(self) -> int:
        """Input lines accounted for; resumed ids count from the start, before they are read."""
        return (
            self.ok + self.failed + self.rejected + self.bad_input + max(self.skipped, self.resumed)
        )

    @property
    def errors(self) -> int:
        """Items that did not succeed this run: failed, rejected or bad input."""
        return self.failed + self.rejected + self.bad_input

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def rps(self) -> float:
        """Results per second this run."""
        elapsed = self.elapsed
        return (self.ok + self.failed + self.rejected) / elapsed if elapsed > 0 else 0.0

    @property
    def success(self) -> bool:
        """Every input line is done ok (now or in an earlier run)."""
        return self.errors == 0

    def top_failures(self) -> list[ErrorTally]:
        """``failures``, the most frequent first."""
        return _top(self.failures)

    def top_rejections(self) -> list[ErrorTally]:
        """``rejections``, the most frequent first."""
        return _top(self.rejections)

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-able data (``azml batch --json``)."""
        return {
            "sent": self.sent,
            "ok": self.ok,
            "failed": self.failed,
            "failed_by_type": [t.as_dict() for t in self.top_failures()],
            "rejected": self.rejected,
            "rejected_by_type": [t.as_dict() for t in self.top_rejections()],
            "skipped": self.skipped,
            "bad_input": self.bad_input,
            "retried": self.retried,
            "rate_limited": self.rate_limited,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "concurrency": self.concurrency,
            "peak_concurrency": self.peak_concurrency,
            "elapsed_s": round(self.elapsed, 3),
            "rps": round(self.rps, 2),
            **({} if self.cost is None else {"cost": round(self.cost, 6)}),
        }
