"""Rate and concurrency control for bulk runs (decisions are plain methods; time is injected).

* :class:`TokenBucket`: a budget that refills at ``rate`` per second up to ``capacity``; used for
  the caller's explicit ``max_rps`` and ``max_tpm``, which are never exceeded.
* :class:`AdaptiveLimiter`: what ``concurrency="auto"`` means.

  - Concurrency grows by slow start (doubling per window of successes) and then additively,
    and shrinks by half on overload signals (503, 408, timeouts, "too many pending requests").
  - A rate limit (429) sets a pacing rate: the successes per second measured just before it,
    times 0.985 (when the endpoint is saturated, that is its limit), and the pacing then probes
    upwards by 3 % per second without a 429. Only 429s from requests sent after the last
    adjustment count, so one burst of 429s is one signal.
  - ``Retry-After`` pauses every worker until then, so they do not collide again one by one.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

__all__ = ["AdaptiveLimiter", "Signal", "TokenBucket"]

Clock = Callable[[], float]
#: Rates are measured over the last second; older timestamps are dropped as new ones come, so
#: a run of any length keeps at most one second of them.
_WINDOW = 1.0


def _trim(stamps: deque[float], before: float) -> None:
    while stamps and stamps[0] < before:
        stamps.popleft()


class TokenBucket:
    """``rate`` tokens per second, at most ``capacity`` saved up. Debt is allowed (reconcile)."""

    def __init__(self, rate: float, capacity: float | None = None, clock: Clock = time.monotonic):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate)
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def reserve(self, amount: float = 1.0) -> float:
        """Take ``amount`` now (possibly into debt); return the seconds to wait before using it."""
        self._refill()
        self._tokens -= amount
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def adjust(self, delta: float) -> None:
        """Give back (positive) or charge (negative) tokens after the fact."""
        self._refill()
        self._tokens = min(self.capacity, self._tokens + delta)

    async def acquire(self, amount: float = 1.0) -> None:
        wait = self.reserve(amount)
        if wait > 0:
            await anyio.sleep(wait)


class Signal:
    """What one attempt told the limiter."""

    SUCCESS = "success"
    RATE_LIMITED = "rate_limited"  # 429
    OVERLOADED = "overloaded"  # 503, 408, pending-request 429, timeouts
    ERROR = "error"  # anything else: no change


@dataclass
class AdaptiveLimiter:
    """Concurrency limit + pacing rate + shared pause, adapted from the endpoint's answers."""

    initial: int = 8
    maximum: int = 256
    minimum: int = 1
    clock: Clock = time.monotonic
    #: Fixed concurrency (``concurrency=N``): no adaptation of the limit.
    fixed: bool = False

    limit: int = field(init=False)
    rate: float | None = field(default=None, init=False)
    pause_until: float = field(default=0.0, init=False)
    history: list[tuple[float, int]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.limit = max(self.minimum, min(self.initial, self.maximum))
        self._start = self.clock()
        self._ssthresh: float = float("inf")
        self._window_successes = 0
        self._last_adjust = self._start
        self._last_rate_probe = self._start
        self._successes: deque[float] = deque()
        self._sends: deque[float] = deque()
        self._next_send = self._start
        #: False while the pacing rate is a guess made before a full second of history.
        self._reliable = False
        self._record()

    # -- observations -----------------------------------------------------------------------

    def _record(self) -> None:
        self.history.append((round(self.clock() - self._start, 3), self.limit))

    def _success_rate(self, now: float, window: float = _WINDOW) -> float | None:
        _trim(self._successes, now - window)
        if now - self._start < window:
            return None
        return len(self._successes) / window

    def observe(self, signal: str, *, sent_at: float, retry_after: float | None = None) -> None:
        """Feed the outcome of an attempt sent at ``sent_at``."""
        now = self.clock()
        if retry_after is not None and retry_after > 0:
            self.pause_until = max(self.pause_until, now + retry_after)
        if signal == Signal.SUCCESS:
            self._successes.append(now)
            _trim(self._successes, now - _WINDOW)
            self._grow(now)
            return
        if sent_at < self._last_adjust:
            return  # sent before the last adjustment: part of the same burst
        if signal == Signal.RATE_LIMITED:
            self._last_adjust = now
            measured = self._success_rate(now)
            if measured is not None and measured > 0:
                # Saturated, the success rate is the limit; a cut never exceeds 15 % at once,
                # so a 429 seen while we were sending slowly (a burst) cannot collapse the rate.
                current = self.rate if self.rate is not None else measured
                self.rate = 0.985 * max(measured, 0.85 * current)
                self.rate = min(self.rate, current)
                self._reliable = True
            else:
                # Under a second of history: successes so far (burst included), or half the
                # send rate, bound the limit from above; each further 429 episode cuts 15 %.
                elapsed = max(now - self._start, 0.05)
                guess = max(len(self._successes) / elapsed, 0.5 * self._send_rate(now))
                self.rate = max(0.5, 0.85 * min(self.rate or guess, guess))
                self._reliable = False
            self._last_rate_probe = now
        elif signal == Signal.OVERLOADED:
            self._last_adjust = now
            if not self.fixed:
                self._ssthresh = max(self.minimum, self.limit / 2)
                self.limit = max(self.minimum, self.limit // 2)
                self._window_successes = 0
                self._record()

    def _send_rate(self, now: float) -> float:
        """Sends per second over the last second (or since the start, if shorter)."""
        _trim(self._sends, now - _WINDOW)
        return max(1.0, len(self._sends) / max(min(1.0, now - self._start), 0.01))

    def _grow(self, now: float) -> None:
        if self.rate is not None:
            # A measured rate is probed gently; an early guess recovers fast if it undershot.
            period, factor = (1.0, 1.03) if self._reliable else (0.2, 1.25)
            if now - self._last_rate_probe >= period:
                self.rate *= factor
                self._last_rate_probe = now
        if self.fixed or self.limit >= self.maximum:
            return
        self._window_successes += 1
        if self._window_successes < self.limit:
            return
        self._window_successes = 0
        if self.limit < self._ssthresh:
            self.limit = min(self.maximum, self.limit * 2)
        else:
            self.limit = min(self.maximum, self.limit + 1)
        self._record()

    # -- gating -----------------------------------------------------------------------------

    def send_delay(self) -> float:
        """Seconds until the next send may go (shared pause and pacing); reserves nothing.

        Callers poll: wait ``min(delay, a short step)``, ask again, and call :meth:`took` when
        the delay is 0. So a rate that rises while workers wait takes effect at once, instead
        of sends booked at an old, slower rate.
        """
        now = self.clock()
        wait = max(0.0, self.pause_until - now)
        if self.rate is not None:
            wait = max(wait, self._next_send - now)
        return wait

    def took(self) -> None:
        """Record a send now."""
        now = self.clock()
        if self.rate is not None:
            self._next_send = max(self._next_send, now) + 1.0 / self.rate
        self._sends.append(now)
        _trim(self._sends, now - _WINDOW)
