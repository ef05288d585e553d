"""``RateBudget``: what one endpoint can take, learnt once and shared by every bulk run.

A client owns one budget for its endpoint: all its ``batch()`` / ``map()`` runs (one after
another, or at the same time, and the runs of its ``with_options()`` copies) share one adaptive
limiter, one Retry-After pause and one pool of concurrency slots, so a service that calls
``batch()`` again and again does not relearn the endpoint's limit each time, and two runs at
once do not each take the whole of it. Pass the same ``RateBudget`` to several clients of one
endpoint (``EndpointClient(..., budget=budget)``) to share it between them too.

Slots are handed over first come, first served; the limit they obey is the limiter's current
concurrency, which grows while the endpoint keeps up and halves on overload. The budget may be
used from several event loops (the sync client's own and its portal's): waiters are woken on
their own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .._constants import DEFAULT_INITIAL_CONCURRENCY, DEFAULT_MAX_CONCURRENCY
from .._exceptions import ConfigurationError
from ._limiter import AdaptiveLimiter, TokenBucket

__all__ = ["RateBudget"]


class RateBudget:
    """The shared rate state of one endpoint (see the module docstring).

    ``max_concurrency`` caps what the adaptive limit may grow to (the client's pool size by
    default); ``max_rps`` / ``max_tpm`` are hard budgets for every run that uses this budget
    together (a run's own ``max_rps`` / ``max_tpm`` apply on top). The readable state:
    :attr:`concurrency`, :attr:`rate` (the pacing rate learnt from 429s, requests/second),
    :attr:`in_flight`, :attr:`sent`, :attr:`rate_limited` and :meth:`snapshot`.
    """

    def __init__(
        self,
        *,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        initial_concurrency: int = DEFAULT_INITIAL_CONCURRENCY,
        max_rps: float | None = None,
        max_tpm: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ConfigurationError(
                f"max_concurrency must be a positive integer, got {max_concurrency!r}"
            )
        for name, value in (("max_rps", max_rps), ("max_tpm", max_tpm)):
            if value is not None and not value > 0:
                raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
        self.limiter = AdaptiveLimiter(
            initial=min(initial_concurrency, max_concurrency),
            maximum=max_concurrency,
            clock=clock,
        )
        self.rps = rps_bucket(max_rps, clock) if max_rps else None
        self.tpm = tpm_bucket(max_tpm, clock) if max_tpm else None
        self.in_flight = 0
        #: Attempts sent and 429s received through this budget, over its whole life.
        self.sent = 0
        self.rate_limited = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._lock = threading.Lock()

    # -- what users read ----------------------------------------------------------------------

    @property
    def concurrency(self) -> int:
        """The current concurrency limit shared by the runs."""
        return self.limiter.limit

    @property
    def rate(self) -> float | None:
        """The pacing rate learnt from 429s (requests/second), or None before the first."""
        return self.limiter.rate

    def snapshot(self) -> dict[str, Any]:
        """The state as plain data (for logs and dashboards)."""
        rate = self.rate
        return {
            "concurrency": self.concurrency,
            "rate": None if rate is None else round(rate, 3),
            "in_flight": self.in_flight,
            "sent": self.sent,
            "rate_limited": self.rate_limited,
            "paused_for": round(max(0.0, self.limiter.pause_until - self.limiter.clock()), 3),
        }

    def __repr__(self) -> str:
        state = ", ".join(f"{k}={v}" for k, v in self.snapshot().items())
        return f"RateBudget({state})"

    # -- slots --------------------------------------------------------------------------------

    async def acquire(self) -> None:
        """Wait for a concurrency slot (call :meth:`release` when the item is done)."""
        with self._lock:
            if self.in_flight < self.limiter.limit and not self._waiters:
                self.in_flight += 1
                return
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            with self._lock:
                if waiter.done() and not waiter.cancelled():
                    self._release_locked()  # handed a slot, then cancelled: pass it on
                else:
                    waiter.cancel()
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back; it goes to the first waiter while the limit allows."""
        with self._lock:
            self._release_locked()

    def _release_locked(self) -> None:
        self.in_flight -= 1
        self._wake_locked()

    def _wake_locked(self) -> None:
        while self._waiters and self.in_flight < self.limiter.limit:
            waiter = self._waiters.popleft()
            if waiter.done():
                continue
            self.in_flight += 1
            loop = waiter.get_loop()
            if _running_loop() is loop:
                waiter.set_result(None)
            else:
                loop.call_soon_threadsafe(_grant, waiter, self)

    # -- what every attempt reports ----------------------------------------------------------

    def observe(self, signal: str, *, sent_at: float, retry_after: float | None) -> None:
        """Feed an attempt's outcome to the limiter; a grown limit lets waiters in."""
        limit = self.limiter.limit
        self.limiter.observe(signal, sent_at=sent_at, retry_after=retry_after)
        if self.limiter.limit > limit and self._waiters:
            with self._lock:
                self._wake_locked()


def rps_bucket(max_rps: float, clock: Callable[[], float] = time.monotonic) -> TokenBucket:
    """A hard requests/second budget: a tenth of a second may be saved up, none at the start
    (so no window of the run is ever above the budget)."""
    return TokenBucket(max_rps, capacity=max(1.0, max_rps / 10), clock=clock, initial=0.0)


def tpm_bucket(max_tpm: float, clock: Callable[[], float] = time.monotonic) -> TokenBucket:
    """A hard tokens/minute budget, refilled continuously, a second's worth saved up, none at
    the start."""
    return TokenBucket(max_tpm / 60.0, capacity=max_tpm / 60.0, clock=clock, initial=0.0)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _grant(waiter: asyncio.Future[None], budget: RateBudget) -> None:
    """On the waiter's own loop: hand it the slot, or pass the slot on if it gave up."""
    if waiter.done():
        budget.release()
    else:
        waiter.set_result(None)
