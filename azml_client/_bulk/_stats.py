"""What a bulk run did: counters the engine keeps and faces (the CLI, users) read."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._exceptions import AzmlError, ConfigurationError
from .._types import Completion, Embeddings

if TYPE_CHECKING:
    from .._pricing import Pricing
    from ._budget import RateBudget

__all__ = ["BatchResults", "BatchStats", "usage_tokens"]


@dataclass
class BatchStats:
    """Counters of a run; read them while it runs or after."""

    #: HTTP attempts sent (first tries and retries); items refused locally send none.
    sent: int = 0
    succeeded: int = 0
    #: Items that failed at the endpoint (or whose answer could not be read).
    failed: int = 0
    #: Items refused before sending (a malformed item, a chat item for a completion-only
    #: formatter): their result is a ConfigurationError.
    rejected: int = 0
    #: Attempts beyond the first, over all items.
    retried: int = 0
    #: 429 answers received.
    rate_limited: int = 0
    #: Prompt and completion tokens of the successful items, where the endpoint reported them.
    tokens_in: int = 0
    tokens_out: int = 0
    #: Failed and rejected items by error type.
    errors: Counter[str] = field(default_factory=Counter)
    #: Items pulled from the input so far.
    pulled: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    budget: RateBudget | None = field(default=None, repr=False)
    #: The endpoint's prices (the client's ``pricing=``): ``cost`` estimates from them.
    pricing: Pricing | None = field(default=None, repr=False)

    def count(self, result: Any) -> None:
        """Count one item's final result."""
        if isinstance(result, ConfigurationError):
            self.rejected += 1
            self.errors[type(result).__name__] += 1
        elif isinstance(result, AzmlError):
            self.failed += 1
            self.errors[type(result).__name__] += 1
        elif isinstance(result, Completion | Embeddings):
            self.succeeded += 1

    def add_usage(self, result: Completion | Embeddings) -> None:
        tokens_in, tokens_out = usage_tokens(result)
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.rejected

    @property
    def cost(self) -> float | None:
        """Estimated cost of the run from its tokens and wall time (``None``: no pricing)."""
        if self.pricing is None:
            return None
        return self.pricing.cost(self.tokens_in, self.tokens_out, self.elapsed)

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def rps(self) -> float:
        """Achieved successful requests per second."""
        return self.succeeded / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def concurrency(self) -> int:
        return self.budget.concurrency if self.budget else 0

    @property
    def concurrency_history(self) -> list[tuple[float, int]]:
        """``(seconds since the budget's start, limit)`` at each change of the limit."""
        return list(self.budget.limiter.history) if self.budget else []

    @property
    def pacing_rps(self) -> float | None:
        """The pacing rate the limiter settled on after a 429, if any."""
        return self.budget.rate if self.budget else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "rejected": self.rejected,
            "retried": self.retried,
            "rate_limited": self.rate_limited,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "errors": dict(self.errors.most_common()),
            "elapsed_s": round(self.elapsed, 3),
            "rps": round(self.rps, 2),
            "concurrency": self.concurrency,
            **({} if self.cost is None else {"cost": round(self.cost, 6)}),
        }


class BatchResults(list[Completion | AzmlError]):
    """The results of :meth:`EndpointClient.batch`, in input order, with the run's ``stats``."""

    stats: BatchStats


def usage_tokens(result: Any) -> tuple[int, int]:
    """``(input, output)`` tokens a result's usage reports (0 where it reports none).

    Embeddings count their input; some servers report it as ``total_tokens`` only.
    """
    usage = getattr(result, "usage", None)
    if usage is None:
        return 0, 0
    if isinstance(result, Embeddings):
        return usage.prompt_tokens or usage.total_tokens or 0, 0
    return usage.prompt_tokens or 0, usage.completion_tokens or 0
