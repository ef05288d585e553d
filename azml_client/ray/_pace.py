"""One rate budget for a whole cluster: what the coordinator decides and what each actor does.

Every actor keeps its own :class:`~azml_client.RateBudget` (shared by all its batches); a
:class:`PaceLink` ties it to the endpoint's coordinator, whose decisions are a
:class:`PaceBoard`. The protocol, in plain data:

* **report** (actor -> coordinator), every ``interval`` seconds while the actor has rows, at
  once after a 429, and when it runs out of rows: its successes since the last report, counted
  in 25 ms bins by when they came back, each 429 (when it was sent, its ``Retry-After``), the
  pause the actor is serving and its backlog (rows it holds, unfinished). Times are ages
  ("0.13 s ago"), so no two clocks are ever compared.
* **answer** (coordinator -> actor): the actor's share of the cluster's pace (the pace divided
  among the actors that have rows), a ``Retry-After`` pause still running, and the board's
  epoch. The actor sets its limiter's pace to the share (``AdaptiveLimiter.set_rate``) and
  serves the pause (``AdaptiveLimiter.pause``). While it follows a coordinator, its own limiter
  does not cut the pace on a 429 (the coordinator does, for everyone).
* **watch** (actor -> coordinator, a long poll): answers as soon as the epoch moves (the pace
  dropped, another actor started sending, a pause started), so every actor slows down within
  milliseconds of the first 429, not at its next report.

The board runs the one-process limiter's policy (:mod:`azml_client._bulk._limiter`) on what
the whole cluster got through:

* a slow start: 50 requests/second, doubled every quarter second while answers come back, until
  the first 429, which ends it with a guess: three quarters of what got through lately;
* then one cut per episode: a 429 sent before the last cut is part of the same burst, and one
  that comes sooner than 0.1 s of measurement after it tells nothing yet. The cut keeps 0.96 of
  the successes per second since the last cut (one process keeps 0.985: several actors never
  space their sends as evenly as one pacer, so the endpoint's bucket keeps a few tokens for
  their jitter), counted up to ``lag`` ago, when every actor has reported. A token bucket's
  short ``Retry-After`` (its refill step) bounds the pace from above;
* a gentle probe upwards: 3 % a second (25 % every 0.2 s while the rate is a guess), while
  answers come back without 429s;
* a ``Retry-After`` longer than 0.1 s pauses every actor until it ends.

So N actors start like one client, learn the limit once, probe it together and pause together,
instead of each learning it alone. An actor that cannot reach the coordinator keeps its last
share, lets its own limiter learn again, and says so once in its log.

Nothing here imports Ray: the coordinator actor wraps a :class:`PaceBoard`, and a link sends
through any pair of async callables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._bulk import RateBudget
from .._bulk._limiter import Signal

__all__ = ["BIN", "SHARED_PAUSE_MIN", "PaceBoard", "PaceLink", "SignalBudget"]

log = logging.getLogger("azml_client.ray")

Clock = Callable[[], float]
Report = dict[str, Any]
Reply = dict[str, Any]

#: A Retry-After this short is a token bucket's refill step: the actor that heard it serves it
#: alone (by the time others heard of it, it is over). Longer pauses are shared.
SHARED_PAUSE_MIN = 0.1
#: 429s kept between two reports.
_MAX_LIMITED = 512
#: The first 429 ends the slow start at this much of what got through lately (a guess).
_GUESS_CUT = 0.75
#: What a measured cut keeps of what got through (one process keeps 0.985): several actors'
#: sends are never as evenly spaced as one pacer's, so the endpoint's bucket keeps a few
#: tokens in reserve for their jitter.
_MARGIN = 0.96
#: Successes are counted in bins of this many seconds.
BIN = 0.025
#: The shortest measurement of what got through that a cut is made on, and the one long
#: enough to trust (then the probe upwards is gentle).
_MIN_SPAN = 0.1
_TRUSTED_SPAN = 0.5
#: The pace never goes below this (requests/second).
_MIN_PACE = 0.5
#: Beyond this the slow start is over: no endpoint is that fast.
_RAMP_END = 1e5


class SignalBudget(RateBudget):
    """A :class:`RateBudget` that also keeps, for its next report, what its attempts said."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        #: Successes since the last report by when they came: ``{bin: count}``, bins of
        #: ``BIN`` seconds of this actor's clock.
        self.bins: dict[int, int] = {}
        #: ``(sent_at, retry_after)`` of each 429 since the last report.
        self.limited: deque[tuple[float, float | None]] = deque(maxlen=_MAX_LIMITED)
        #: Rows this actor holds and has not finished (its demand).
        self.backlog = 0
        #: Called on each 429 (the link reports it at once).
        self.on_limited: Callable[[], None] | None = None
        #: While the coordinator answers, it alone sets the pace: 429s do not cut it here.
        self.follow = False
        self._reported_sent = 0

    def observe(self, signal: str, *, sent_at: float, retry_after: float | None) -> None:
        if signal == Signal.RATE_LIMITED:
            self.limited.append((sent_at, retry_after))
            if self.follow:
                # The coordinator sets the pace (told at once, below): the limiter only serves
                # a wait longer than its own spacing, and cuts nothing itself.
                rate = self.limiter.rate
                long = retry_after and (rate is None or retry_after > 1.0 / rate)
                signal, retry_after = Signal.ERROR, retry_after if long else None
            if self.on_limited is not None:
                self.on_limited()
        super().observe(signal, sent_at=sent_at, retry_after=retry_after)
        if signal == Signal.SUCCESS:
            slot = int(self.limiter.clock() / BIN)
            self.bins[slot] = self.bins.get(slot, 0) + 1

    @property
    def unreported(self) -> bool:
        """Whether attempts came back since the last report."""
        return self.sent != self._reported_sent or bool(self.bins or self.limited)

    def take_report(self) -> Report:
        """What happened since the last report, as plain data with ages instead of times."""
        limiter = self.limiter
        now = limiter.clock()
        report: Report = {
            "sent": self.sent - self._reported_sent,
            "ok": sum(self.bins.values()),
            # Each bin by the age of its middle.
            "bins": [(round(now - (b + 0.5) * BIN, 4), n) for b, n in self.bins.items()],
            "limited": [(round(now - sent, 4), wait) for sent, wait in self.limited],
            "pause": round(max(0.0, limiter.pause_until - now), 4),
            "backlog": self.backlog,
        }
        self._reported_sent = self.sent
        self.bins = {}
        self.limited.clear()
        return report

    def apply(self, reply: Mapping[str, Any]) -> None:
        """Take the coordinator's answer: this actor's share of the pace, and a shared pause."""
        rate = reply.get("rate")
        self.limiter.set_rate(float(rate) if rate is not None else None)
        pause = reply.get("pause") or 0.0
        if pause > 0:
            self.limiter.pause(float(pause))


@dataclass
class _Member:
    backlog: int
    seen: float


class PaceBoard:
    """The coordinator's decisions for one endpoint (plain code; time is injected).

    ``max_rps`` caps the whole cluster's pace. An actor counts as sending while its last report,
    at most ``idle_after`` seconds old, showed a backlog; the pace is shared equally among
    those (and the one asking).
    """

    def __init__(
        self,
        *,
        max_rps: float | None = None,
        idle_after: float = 1.0,
        lag: float = 0.25,
        ramp_start: float = 50.0,
        ramp_step: float = 0.25,
        clock: Clock = time.monotonic,
    ) -> None:
        self.max_rps = max_rps
        self.idle_after = idle_after
        self._clock = clock
        now = clock()
        #: The rate learnt from 429s (requests/second), None before the first.
        self.rate: float | None = None
        #: The slow-start pace, None once a 429 ended it (or it outgrew any endpoint).
        self.ramp: float | None = ramp_start
        self._ramp_step = ramp_step
        self._last_ramp = now
        self._last_cut = float("-inf")
        self._last_probe = now
        #: Whether a cut was ever measured, and whether the rate is trusted (probed gently).
        self._measured = False
        self._reliable = False
        self._token_wait = 0.0
        self.pause_until = 0.0
        self._members: dict[str, _Member] = {}
        #: Successes by when they came (bins of the board's clock), the last two seconds.
        self._bins: dict[int, int] = {}
        self._first: float | None = None
        #: How far behind the reports may be: successes are counted up to this long ago.
        self.lag = lag
        #: Moves when an actor's share drops or a shared pause starts (see :meth:`report`).
        self.epoch = 0
        #: Over the board's life: successes and 429s reported, reports received, cuts made.
        self.succeeded = 0
        self.rate_limited = 0
        self.reports = 0
        self.cuts = 0

    # -- the pace --------------------------------------------------------------------------------

    def _own_pace(self) -> float | None:
        return self.rate if self.rate is not None else self.ramp

    def pace(self) -> float | None:
        """The cluster's pace now (requests/second), or None when nothing holds it back."""
        pace = self._own_pace()
        if self.max_rps is not None:
            pace = self.max_rps if pace is None else min(pace, self.max_rps)
        return pace

    def _count(self, start: float, end: float) -> float:
        """Successes between two times of the board's clock (bins cut in proportion)."""
        total = 0.0
        for slot, count in self._bins.items():
            low, high = slot * BIN, (slot + 1) * BIN
            overlap = min(high, end) - max(low, start)
            if overlap > 0:
                total += count * overlap / BIN
        return total

    def _measure(self, now: float) -> tuple[float, float] | None:
        """``(successes per second, span)`` since the last cut (at most the last second),
        up to ``lag`` ago, when every actor has reported that far; None if too short."""
        end = now - self.lag
        start = max(self._last_cut, end - 1.0, self._first or end)
        if end - start < _MIN_SPAN:
            return None
        return self._count(start, end) / (end - start), end - start

    def _limited(self, now: float, sent_at: float, wait: float | None) -> None:
        self.rate_limited += 1
        self._last_probe = now  # no probing upwards while 429s come
        if wait is not None and 0 < wait <= SHARED_PAUSE_MIN:
            self._token_wait = max(self._token_wait, float(wait))
        if sent_at < self._last_cut or (self.rate is not None and self._measure(now) is None):
            # The same burst, or too soon after the last cut to see what it did; while the
            # rate is a guess, a token bucket's longer refill step still sharpens it.
            if self.rate is not None and not self._reliable and self._token_wait:
                self.rate = max(_MIN_PACE, min(self.rate, 0.985 / self._token_wait))
            return
        current = self._own_pace() or _RAMP_END
        if self.max_rps is not None:
            current = min(current, self.max_rps)
        if self.rate is None:
            # The first 429: a guess from what got through lately (a burst may inflate it).
            span = min(max(now - (self._first or now), 0.05), 1.0)
            got = self._count(now - span, now) / span
            new = _GUESS_CUT * min(current, max(got, 2 * _MIN_PACE))
            self._reliable = False
        else:
            measure = self._measure(now)
            assert measure is not None
            got, span = measure
            # What got through under the current pace is the limit; never halve at once.
            new = min(_MARGIN * max(got, 0.5 * current), current)
            # One long measurement, or a second short one, is trusted: probe gently then.
            self._reliable = span >= _TRUSTED_SPAN or self._measured
            self._measured = True
        if self._token_wait:  # a token bucket's refill step bounds its rate
            new = min(new, 0.985 / self._token_wait)
        if new < current or self.rate is None:
            self.cuts += 1
        self.rate, self.ramp = max(_MIN_PACE, new), None
        self._last_cut = now

    def _grow(self, now: float) -> None:
        if self.rate is None:
            if self.ramp is not None and now - self._last_ramp >= self._ramp_step:
                self.ramp *= 2
                self._last_ramp = now
                if self.ramp > _RAMP_END:
                    self.ramp = None
            return
        period, factor = (1.0, 1.03) if self._reliable else (0.2, 1.25)
        if now - self._last_probe >= period:
            self.rate *= factor
            if self.max_rps is not None:
                self.rate = min(self.rate, self.max_rps)
            self._last_probe = now

    # -- the protocol ----------------------------------------------------------------------------

    def report(self, actor: str, report: Mapping[str, Any]) -> Reply:
        """Take one actor's report (see :meth:`SignalBudget.take_report`); answer its share.

        :attr:`epoch` moves when the pace drops, an actor starts sending (the others' shares
        shrink) or a shared pause starts: the actors watching hear of it at once, not at their
        next report.
        """
        now = self._clock()
        pace, paused = self.pace(), self.pause_until
        sending = len(self._sending(now))
        self.reports += 1
        ok = int(report.get("ok", 0))
        self.succeeded += ok
        if ok and self._first is None:
            self._first = now
        for age, count in report.get("bins", ()):
            slot = int((now - float(age)) / BIN)
            self._bins[slot] = self._bins.get(slot, 0) + int(count)
        oldest = int((now - 2.0) / BIN)
        for slot in [b for b in self._bins if b < oldest]:
            del self._bins[slot]
        limited = sorted(report.get("limited", ()), key=lambda event: -float(event[0]))
        for age, wait in limited:  # the oldest first
            self._limited(now, now - float(age), wait)
        if ok and not limited:
            self._grow(now)
        pause = float(report.get("pause", 0.0))
        if pause > SHARED_PAUSE_MIN:
            self.pause_until = max(self.pause_until, now + pause)
        self._members[actor] = _Member(int(report.get("backlog", 0)), now)
        new = self.pace()
        slower = new is not None and (pace is None or new < 0.99 * pace)
        joined = len(self._sending(now)) > sending  # the others' shares shrink
        if slower or joined or self.pause_until > max(paused, now + SHARED_PAUSE_MIN):
            self.epoch += 1
        return self.answer(actor)

    def leave(self, actor: str) -> None:
        """An actor is done (or gone): it no longer takes a share."""
        self._members.pop(actor, None)

    def _sending(self, now: float) -> list[str]:
        return [
            name
            for name, m in self._members.items()
            if m.backlog > 0 and now - m.seen <= self.idle_after
        ]

    def answer(self, actor: str) -> Reply:
        """``actor``'s share of the pace now, any shared pause, and the epoch they belong to."""
        now = self._clock()
        sending = self._sending(now)
        count = len(sending) + (actor not in sending)
        pace = self.pace()
        pause = self.pause_until - now
        return {
            "rate": None if pace is None else pace / count,
            "pause": round(pause, 4) if pause > SHARED_PAUSE_MIN else 0.0,
            "actors": count,
            "epoch": self.epoch,
        }

    def snapshot(self) -> dict[str, Any]:
        """The board's state as plain data (for logs, the CLI summary, benchmarks)."""
        pace = self.pace()
        now = self._clock()
        return {
            "pace": None if pace is None else round(pace, 3),
            "learnt_rate": None if self.rate is None else round(self.rate, 3),
            "actors": len(self._members),
            "sending": len(self._sending(now)),
            "succeeded": self.succeeded,
            "rate_limited": self.rate_limited,
            "cuts": self.cuts,
            "reports": self.reports,
            "paused_for": round(max(0.0, self.pause_until - now), 3),
        }


SendReport = Callable[[Report], Awaitable[Reply]]
Watch = Callable[[int], Awaitable[Reply]]


class PaceLink:
    """An actor's side, two tasks on its event loop: one reports the budget's signals every
    ``interval`` seconds while the actor has rows (at once after a 429), the other watches
    the coordinator for a drop of the pace or a pause; both apply the answers."""

    def __init__(
        self,
        budget: SignalBudget,
        report: SendReport,
        watch: Watch,
        *,
        interval: float = 0.2,
        timeout: float = 5.0,
    ) -> None:
        self.budget = budget
        self._report = report
        self._watch = watch
        self.interval = interval
        self.timeout = timeout
        self._epoch = -1
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._warned = False
        budget.on_limited = self._wake.set

    async def start(self) -> None:
        """Join: the first report's answer sets the pace before anything is sent."""
        await self._exchange()
        self._tasks = [
            asyncio.ensure_future(self._report_loop()),
            asyncio.ensure_future(self._watch_loop()),
        ]

    def busy(self) -> None:
        """Rows arrived: report (the report loop sleeps while the actor has nothing to do)."""
        self._wake.set()

    async def flush(self) -> None:
        """Report now what is unreported (the actor ran out of rows: its share is free)."""
        if self.budget.unreported:
            await self._exchange()

    def _apply(self, reply: Reply) -> None:
        self._warned = False
        self.budget.follow = True
        epoch = int(reply.get("epoch", self._epoch))
        if epoch < self._epoch:
            return  # an answer from before a drop that another answer already brought
        self._epoch = epoch
        self.budget.apply(reply)

    def _lost(self, exc: BaseException) -> None:
        self.budget.follow = False  # the actor's own limiter learns from its 429s again
        if not self._warned:  # the coordinator is gone or slow: keep the last share
            self._warned = True
            log.warning(
                "azml_client.ray: the pace coordinator did not answer (%r); this actor keeps "
                "its last share of the rate and its own limiter",
                exc,
            )

    async def _exchange(self) -> None:
        try:
            reply = await asyncio.wait_for(self._report(self.budget.take_report()), self.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._lost(exc)
            return
        self._apply(reply)

    async def _report_loop(self) -> None:
        while True:
            self._wake.clear()
            # Once the last signals are reported as idle, sleep until rows arrive.
            idle = self.budget.backlog == 0 and not self.budget.unreported
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), None if idle else self.interval)
            await self._exchange()

    async def _watch_loop(self) -> None:
        while True:
            try:
                reply = await self._watch(self._epoch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._lost(exc)
                await asyncio.sleep(self.timeout)
                continue
            self._apply(reply)

    async def aclose(self) -> None:
        """Stop reporting and watching. Idempotent."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
