"""Rate and concurrency control for bulk runs (decisions are plain methods; time is injected).

* :class:`TokenBucket`: a budget that refills at ``rate`` per second up to ``capacity``; used for
  the caller's explicit ``max_rps`` and ``max_tpm``, which are never exceeded.
* :class:`AdaptiveLimiter`: what ``concurrency="auto"`` means.

  - Concurrency grows by slow start (doubling per window of successes) and then additively,
    and shrinks by half on overload signals (503, 408, timeouts, "too many pending requests").
  - The start is paced too: 50 requests/second, doubled every quarter second until the first
    429, so that a run which finds a token bucket's burst used up has few requests in flight.
  - The first 429 sets a pacing rate from a guess: what got through (a burst may inflate it),
    bounded by the start's pace and by a token bucket's refill step (a Retry-After under
    0.1 s is one), times 0.75. Later 429s cut to what got through since the last cut, times
    0.985 (saturated, that is the limit), once at least 0.1 s has passed to measure it; a cut
    never halves the rate at once. Only 429s from requests sent after the last cut count, so
    one burst of 429s is one signal. The rate then probes upwards: quickly (25 % per 0.2 s)
    while it is a guess, gently (3 % per second) once measured.
  - ``Retry-After`` pauses every worker until then, so they do not collide again one by one.
  - Azure ML's two 429s are told apart by :func:`classify`: "too many pending requests" is
    about concurrency (the limit halves), "rate limited" about pace (the pacing rate).
  - Sends are booked one slot each (:meth:`AdaptiveLimiter.book`): a waiting sender sleeps
    once, until its slot, instead of polling; a change of pace or a pause voids the bookings
    made before, and their senders book again.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .._constants import DEFAULT_INITIAL_CONCURRENCY, DEFAULT_MAX_CONCURRENCY
from .._exceptions import APIConnectionError, APIStatusError, RateLimitError

__all__ = ["AdaptiveLimiter", "Signal", "TokenBucket", "classify"]

Clock = Callable[[], float]
#: The shortest time after a cut over which the success rate tells what the cut did, and the
#: time over which it is trusted enough to probe gently from then on.
_MIN_SPAN = 0.1
_TRUSTED_SPAN = 0.5
#: A Retry-After this short reads as a token bucket's refill step (an endpoint of 10 req/s or
#: more); a longer one may be a window's reset and says nothing about the rate.
_TOKEN_WAIT_MAX = 0.1
#: Rates are measured over the last second; older timestamps are dropped as new ones come, so
#: a run of any length keeps at most one second of them.
_WINDOW = 1.0


def _trim(stamps: deque[float], before: float) -> None:
    while stamps and stamps[0] < before:
        stamps.popleft()


class TokenBucket:
    """``rate`` tokens per second, at most ``capacity`` saved up. Debt is allowed (reconcile).

    ``initial`` is what the bucket starts with (default: full); a budget that must never be
    exceeded over any window starts empty, so that its first second is no burst.
    """

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        clock: Clock = time.monotonic,
        *,
        initial: float | None = None,
    ):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate)
        self._clock = clock
        self._tokens = self.capacity if initial is None else min(initial, self.capacity)
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


class Signal:
    """What one attempt told the limiter."""

    SUCCESS = "success"
    RATE_LIMITED = "rate_limited"  # 429
    OVERLOADED = "overloaded"  # 503, 408, pending-request 429, timeouts
    ERROR = "error"  # anything else: no change


#: Statuses that say "too much at once" rather than "too fast".
_OVERLOAD_STATUSES = frozenset({408, 502, 503, 504})
#: Words of a 429 about concurrency: Azure ML's "Too many pending requests" (more than
#: 2 x max_concurrent_requests_per_instance x instances in flight), TGI's "Model is overloaded".
_CONCURRENCY_WORDS = ("pending", "overloaded", "concurrent")


def classify(error: BaseException) -> str:
    """The :class:`Signal` an attempt's error sends to the limiter."""
    if isinstance(error, RateLimitError):
        text = f"{error.message} {error.body}".lower()
        if any(word in text for word in _CONCURRENCY_WORDS):
            return Signal.OVERLOADED
        return Signal.RATE_LIMITED
    if isinstance(error, APIStatusError) and error.status_code in _OVERLOAD_STATUSES:
        return Signal.OVERLOADED
    if isinstance(error, APIConnectionError):
        return Signal.OVERLOADED
    return Signal.ERROR


@dataclass
class AdaptiveLimiter:
    """Concurrency limit + pacing rate + shared pause, adapted from the endpoint's answers."""

    initial: int = DEFAULT_INITIAL_CONCURRENCY
    maximum: int = DEFAULT_MAX_CONCURRENCY
    minimum: int = 1
    clock: Clock = time.monotonic
    #: Fixed concurrency (``concurrency=N``): no adaptation of the limit.
    fixed: bool = False
    #: The send rate a run starts at before it knows the endpoint (requests/second), doubled
    #: every ``ramp_step`` seconds until the first 429: a slow start in rate beside the one in
    #: concurrency, so that a run which finds a token bucket's burst used up has few requests
    #: in flight when it does. None: no ramp.
    ramp_start: float | None = 50.0
    ramp_step: float = 0.25

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
        #: The longest sub-second Retry-After of a 429 so far (a token bucket's refill step).
        self._token_wait = 0.0
        #: Whether a cut was ever made from a measurement under our own pace.
        self._measured = False
        #: Bumped when the pace slows or a pause starts: bookings made before are void.
        self.epoch = 0
        #: The slow-start send rate (see ``ramp_start``); None once a 429 taught a real one.
        self.ramp: float | None = None if self.fixed else self.ramp_start
        self._last_ramp = self._start

        self._record()

    # -- observations -----------------------------------------------------------------------

    def _record(self) -> None:
        self.history.append((round(self.clock() - self._start, 3), self.limit))

    def _success_rate(self, now: float, window: float = _WINDOW) -> float | None:
        """Successes per second over the last second, or since the last adjustment when that
        is more recent (at least a quarter second ago): what the endpoint let through at the
        pace in force, not a burst from before it."""
        _trim(self._successes, now - window)
        if self._last_adjust > self._start:
            since = max(now - window, self._last_adjust)
            span = now - since
            if span < _MIN_SPAN:
                return None  # too soon after the last adjustment to tell
            return sum(1 for t in self._successes if t >= since) / span
        if now - self._start < window:
            return None
        return len(self._successes) / window

    def observe(self, signal: str, *, sent_at: float, retry_after: float | None = None) -> None:
        """Feed the outcome of an attempt sent at ``sent_at``."""
        if signal == Signal.SUCCESS:
            self._observe(signal, sent_at=sent_at, retry_after=retry_after)
            return
        rate, pause, pace = self.rate, self.pause_until, self._pace()
        self._observe(signal, sent_at=sent_at, retry_after=retry_after)
        if self.pause_until > pause or (
            self.rate is not None and (rate is None or self.rate < rate)
        ):
            # Slower from now on: sends booked at the old pace are booked again (see book()).
            self._rebook(self.clock(), pace)

    def _observe(self, signal: str, *, sent_at: float, retry_after: float | None) -> None:
        now = self.clock()
        if retry_after is not None and retry_after > 0:
            self.pause_until = max(self.pause_until, now + retry_after)
            if signal == Signal.RATE_LIMITED and retry_after <= _TOKEN_WAIT_MAX:
                # A token bucket asks to wait for its next token: at most 1/rate seconds, so
                # the longest such wait seen bounds its rate from above.
                self._token_wait = max(self._token_wait, retry_after)
        if signal == Signal.SUCCESS:
            self._successes.append(now)
            _trim(self._successes, now - _WINDOW)
            self._grow(now)
            return
        if sent_at < self._last_adjust:
            # Sent before the last adjustment: part of the same burst, no new cut. While the
            # rate is still a first guess, a token bucket's longer refill wait sharpens it.
            if (
                signal == Signal.RATE_LIMITED
                and self.rate is not None
                and not self._reliable
                and self._token_wait > 0
            ):
                self.rate = max(0.5, min(self.rate, 0.985 / self._token_wait))
            return
        if signal == Signal.RATE_LIMITED:
            ramp, self.ramp = self.ramp, None  # the endpoint said how fast is too fast
            # The first 429 is answered by a guess (below): a success rate measured before any
            # pacing may include a burst the endpoint allowed only once.
            measured = None if self.rate is None else self._success_rate(now)
            if self.rate is not None and measured is None:
                # Too soon after the last cut to see what it did: the same episode (a cut per
                # 429 would undershoot); while the rate is a guess, a token bucket's longer
                # refill wait still sharpens it.
                if not self._reliable and self._token_wait > 0:
                    self.rate = max(0.5, min(self.rate, 0.985 / self._token_wait))
                self._last_rate_probe = now  # no probing upwards while 429s come
                return
            span = now - self._last_adjust
            self._last_adjust = now
            if measured is not None and measured > 0:
                # Saturated under our own pace, what got through since the last cut is the
                # limit. (A cut never exceeds half, so a 429 while the run had little to send
                # cannot collapse the rate.)
                current = self.rate if self.rate is not None else measured
                self.rate = min(0.985 * max(measured, 0.5 * current), current)
                # One long measurement, or a second short one, is trusted: probe gently then.
                self._reliable = span >= _TRUSTED_SPAN or self._measured
                self._measured = True
            else:
                # The first 429: a guess. The successes so far (burst included), or half the
                # send rate, bound the limit from above, and so does a token bucket's refill
                # wait. Each further 429 cuts more, until a measurement since the last cut.
                elapsed = min(max(now - self._start, 0.05), _WINDOW)  # successes: last second
                guess = max(len(self._successes) / elapsed, 0.5 * self._send_rate(now))
                if ramp is not None:
                    guess = min(guess, ramp)  # sending at the slow-start pace was too fast
                if self._token_wait > 0:
                    guess = min(guess, 1.0 / self._token_wait)
                self.rate = max(0.5, 0.75 * min(self.rate or guess, guess))
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
        if self.ramp is not None and now - self._last_ramp >= self.ramp_step:
            pace = self.ramp
            self.ramp *= 2
            self._last_ramp = now
            self._rebook(now, pace)
            if self.ramp > 1e5:
                self.ramp = None  # far beyond any endpoint: the start is over
        if self.rate is not None:
            # A measured rate is probed gently; an early guess recovers fast if it undershot.
            period, factor = (1.0, 1.03) if self._reliable else (0.2, 1.25)
            if now - self._last_rate_probe >= period:
                pace = self.rate
                self.rate *= factor
                self._last_rate_probe = now
                self._rebook(now, pace)
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
        if self.rate is not None or self.ramp is not None:
            wait = max(wait, self._next_send - now)
        return wait

    def _pace(self) -> float | None:
        """Sends per second in force: the rate, else the slow-start ramp (None: unpaced)."""
        return self.rate if self.rate is not None else self.ramp

    def _rebook(self, now: float, old: float | None) -> None:
        """The pace changed (from ``old``), or a pause began: void every booking, so that
        waiting senders book again at the pace now in force.

        Bookings were ``1/old`` apart up to ``_next_send``: the next send keeps the new spacing
        after the last one that went. A fresh schedule from ``now`` would let one go early: a
        429 cut half a slot after a send, and the next went at once, faster than either pace.
        """
        self.epoch += 1
        new = self._pace()
        start = max(now, self.pause_until)
        if old is None or new is None or not self._sends:
            self._next_send = start
            return
        behind = max(0.0, self._next_send - now) * old  # slots booked after now
        last = self._next_send - max(1, math.ceil(behind)) / old
        self._next_send = max(start, last + 1.0 / new)

    def book(self) -> tuple[float, int]:
        """Book the next send: ``(seconds to wait, epoch)``.

        Each caller waits once, for its own slot (no herd of pollers). If the epoch changed
        while it waited (the pace changed, or a 429 paused every send), its slot is void: it
        books again, at the pace now in force.
        """
        now = self.clock()
        at = max(now, self.pause_until)
        pace = self._pace()
        if pace is not None:
            at = max(at, self._next_send)
            self._next_send = at + 1.0 / pace
        self._sends.append(now)
        _trim(self._sends, now - _WINDOW)
        return at - now, self.epoch

    def took(self) -> None:
        """Record a send now (a booking whose wait the caller already served)."""
        self.book()

    # -- steering from outside --------------------------------------------------------------

    def set_rate(self, rps: float | None) -> None:
        """Set the pacing rate from outside, e.g. this process's share of a rate learnt for a
        whole cluster (:mod:`azml_client.ray`); ``None``: no pacing.

        The slow-start ramp ends and the rate counts as measured (probed gently); 429s go on
        cutting it until the next call. A change of more than 1 % voids the bookings made at
        the old pace.
        """
        if rps is not None and not rps > 0:
            raise ValueError(f"rate must be positive or None, got {rps!r}")
        now = self.clock()
        old = self._pace()
        self.rate, self.ramp = rps, None
        self._reliable = True
        self._last_rate_probe = now
        if old is not None and rps is not None and abs(rps - old) <= 0.01 * old:
            return
        self._rebook(now, old)

    def pause(self, seconds: float) -> None:
        """Hold every send for ``seconds`` from now (e.g. a Retry-After another process heard)."""
        now = self.clock()
        if seconds > 0 and now + seconds > self.pause_until:
            self.pause_until = now + seconds
            self._rebook(now, self._pace())
