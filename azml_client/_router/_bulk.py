"""Bulk runs across a router's endpoints: one shared queue, one :class:`BatchRun` per endpoint.

::

    input ──► _Dispatch (shared queue: new items, and items sent back) ──► feed(A) ──► A.map()
                  ▲                                                    └─► feed(B) ──► B.map()
                  └──────────── settle(): success / final error ──► results ◄──── drains

Each endpoint's run is its client's own ``map()`` (its :class:`RateBudget`, adaptive limiter,
429 retries in place, ``max_retries=0`` for the rest), so every endpoint works at its own
learnt limit at once. Its source is :meth:`_Dispatch.feed`, which hands it an item when the
strategy lets it take one: ``capacity`` while what it holds would be sent soon at its learnt
pace (``_HORIZON``: so each endpoint takes what it can send, and none ends the run alone with a
backlog), ``weighted`` while it is not more than ``_SLACK`` items ahead of its share (the split
holds, and a moment's stall of one endpoint does not stall the others), ``priority`` while no
endpoint before it is healthy. A resting endpoint takes nothing; a
recovering one takes one item (its probe) until that succeeds.

An item whose attempt fails over goes back to the queue (not to the endpoint that failed it,
while another can take it) until its retry budget is spent. Every item is in exactly one place
at a time (the input, the queue, or one endpoint's run), and its final result (success, or
error with ``tried``) is handed out exactly once, with its original index.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .._bulk import BatchRun, BatchStats, Item
from .._bulk._run import IteratedOnce
from .._bulk._stats import usage_tokens
from .._exceptions import AzmlError, ConfigurationError, RateLimitError
from .._retry import RetryPolicy
from .._types import Completion, Embeddings
from ._endpoint import Endpoint, able
from ._policy import annotate, is_failover_error, label, next_step

if TYPE_CHECKING:
    from .._bulk import Concurrency, RateBudget
    from ._router import EndpointRouter

__all__ = ["EndpointRunStats", "RouterResults", "RouterRun", "RouterStats", "collect"]

_OPS = {"completion": "complete", "chat": "chat", "embed": "embed"}
#: Items an endpoint that cannot serve them leaves in the queue before it stops reading input.
_READAHEAD = 64
#: ``weighted``: items an endpoint may take beyond its share before it waits for the others.
#: The split holds over the run, but a moment's stall of one endpoint does not stall the rest
#: (which would also make their limiters measure a pace they were never given the items for).
_SLACK = 64
#: Finished results not yet taken by the consumer before the endpoints' runs are held back.
_BUFFER = 256
#: ``capacity``: an endpoint takes another item only while what it holds already would be sent
#: within this many seconds at its learnt pace (its limiter's bookings). An endpoint that
#: accepted more than it can send soon would hold items the others could have sent, and end
#: the run alone with a tail of them.
_HORIZON = 0.1


@dataclass
class EndpointRunStats:
    """What one endpoint did in a router run."""

    endpoint_url: str
    budget: RateBudget = field(repr=False)
    #: Items handed to it; items it answered; items it sent back for another endpoint (their
    #: attempt failed over); items that ended in an error there.
    taken: int = 0
    succeeded: int = 0
    failed_over: int = 0
    failed: int = 0
    run: BatchStats | None = field(default=None, repr=False)

    @property
    def sent(self) -> int:
        """HTTP attempts it was sent (429 retries in place included)."""
        return self.run.sent if self.run else 0

    @property
    def rate_limited(self) -> int:
        return self.run.rate_limited if self.run else 0

    @property
    def retried(self) -> int:
        return self.run.retried if self.run else 0

    @property
    def rate(self) -> float | None:
        """The pacing rate its budget learnt (requests/second), None before a 429."""
        return self.budget.rate

    @property
    def concurrency(self) -> int:
        return self.budget.concurrency

    def as_dict(self) -> dict[str, Any]:
        rate = self.rate
        return {
            "endpoint_url": self.endpoint_url,
            "taken": self.taken,
            "sent": self.sent,
            "succeeded": self.succeeded,
            "failed_over": self.failed_over,
            "failed": self.failed,
            "rate_limited": self.rate_limited,
            "rate": None if rate is None else round(rate, 2),
            "concurrency": self.concurrency,
        }


@dataclass
class RouterStats:
    """Counters of a router run: totals over the items, and each endpoint's share."""

    endpoints: list[EndpointRunStats] = field(default_factory=list)
    #: Items pulled from the input; of them, the ones that succeeded, failed at an endpoint,
    #: or were refused before sending (malformed, or no endpoint can serve them).
    pulled: int = 0
    succeeded: int = 0
    failed: int = 0
    rejected: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    def count(self, result: Any) -> None:
        if isinstance(result, ConfigurationError):
            self.rejected += 1
            self.errors[type(result).__name__] += 1
        elif isinstance(result, AzmlError):
            self.failed += 1
            self.errors[type(result).__name__] += 1
        elif isinstance(result, Completion | Embeddings):
            self.succeeded += 1
            tokens_in, tokens_out = usage_tokens(result)
            self.tokens_in += tokens_in
            self.tokens_out += tokens_out

    @property
    def sent(self) -> int:
        return sum(e.sent for e in self.endpoints)

    @property
    def rate_limited(self) -> int:
        return sum(e.rate_limited for e in self.endpoints)

    @property
    def failed_over(self) -> int:
        return sum(e.failed_over for e in self.endpoints)

    @property
    def retried(self) -> int:
        """Attempts beyond each item's first: retries in place and failovers."""
        return sum(e.retried for e in self.endpoints) + self.failed_over

    @property
    def concurrency(self) -> int:
        """The endpoints' concurrency limits, added up."""
        return sum(e.concurrency for e in self.endpoints)

    @property
    def concurrency_history(self) -> list[tuple[float, int]]:
        return [(round(self.elapsed, 3), self.concurrency)]

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.rejected

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def rps(self) -> float:
        """Achieved successful items per second, over all endpoints."""
        return self.succeeded / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "pulled": self.pulled,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "rejected": self.rejected,
            "sent": self.sent,
            "retried": self.retried,
            "failed_over": self.failed_over,
            "rate_limited": self.rate_limited,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "errors": dict(self.errors.most_common()),
            "elapsed_s": round(self.elapsed, 3),
            "rps": round(self.rps, 2),
            "endpoints": [e.as_dict() for e in self.endpoints],
        }


class RouterResults(list[Completion | AzmlError]):
    """The results of :meth:`EndpointRouter.batch`, in input order, with the run's ``stats``."""

    stats: RouterStats


class _Entry:
    """One item on its way: where it failed, who refused it, what it tried."""

    __slots__ = (
        "attempts",
        "failed_on",
        "handed",
        "index",
        "item",
        "rate_limit_retries",
        "refused_by",
        "retries",
        "tried",
    )

    def __init__(self, index: int, item: Item) -> None:
        self.index = index
        self.item = item
        self.failed_on: set[int] = set()
        self.refused_by: set[int] = set()
        self.tried: list[tuple[str, str]] = []
        self.attempts = 0
        self.retries = 0
        self.rate_limit_retries = 0
        self.handed = 0.0


class _Dispatch:
    """The shared queue of one run (see the module docstring)."""

    def __init__(
        self,
        router: EndpointRouter,
        items: Iterable[Any] | AsyncIterable[Any],
        results: asyncio.Queue[tuple[int, Any]],
        stats: RouterStats,
        policy: RetryPolicy,
    ) -> None:
        self.router = router
        self.endpoints = router.endpoints
        self.strategy = router.strategy
        self.results = results
        self.stats = stats
        self.policy = policy
        self.source: Iterator[Any] | AsyncIterator[Any] = (
            items.__aiter__() if isinstance(items, AsyncIterable) else iter(items)
        )
        self.exhausted = False
        self.pending: deque[_Entry] = deque()
        #: Items handed to an endpoint's run and not settled yet.
        self.live = 0
        self.taken = {ep.position: 0 for ep in self.endpoints}
        self.local: dict[int, dict[int, _Entry]] = {ep.position: {} for ep in self.endpoints}
        pairs = zip(self.endpoints, stats.endpoints, strict=True)
        self.by_position = {ep.position: counts for ep, counts in pairs}
        self._changed = asyncio.Event()
        self._source_lock = asyncio.Lock()

    # -- waking ------------------------------------------------------------------------------

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait(self, timeout: float | None) -> None:
        event = self._changed
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    @property
    def done(self) -> bool:
        return self.exhausted and not self.pending and self.live == 0

    # -- what an endpoint may take -----------------------------------------------------------

    def _awake(self, ep: Endpoint, now: float) -> bool:
        return ep.health.resting(now) <= 0

    def _healthy(self, ep: Endpoint, now: float) -> bool:
        return self._awake(ep, now) and not ep.health.rested

    def _may_take_new(self, ep: Endpoint, now: float) -> bool:
        """Whether the strategy lets ``ep`` take an item from the input now."""
        if len(self.pending) >= _READAHEAD:
            return False  # the queue holds enough for now: take from it first
        others = [o for o in self.endpoints if o is not ep]
        if self.strategy == "priority":
            return not any(o.position < ep.position and self._healthy(o, now) for o in others)
        if self.strategy == "weighted":
            awake = [o for o in others if o.weight > 0 and self._awake(o, now)]
            if ep.weight <= 0:
                return not awake  # a standby takes input only when no weighted endpoint can
            share = (self.taken[ep.position] - _SLACK) / ep.weight
            return all(share < self.taken[o.position] / o.weight for o in awake)
        return True

    def _may_take(self, ep: Endpoint, entry: _Entry, now: float) -> bool:
        """Whether ``ep`` may take ``entry`` from the queue now."""
        op = _OPS[entry.item.kind]
        if ep.position in entry.refused_by or not able(ep.client, op):
            return False

        def eligible(o: Endpoint) -> bool:
            return (
                o.position not in entry.refused_by
                and o.position not in entry.failed_on
                and able(o.client, op)
                and self._awake(o, now)
            )

        others = [o for o in self.endpoints if o is not ep]
        if ep.position in entry.failed_on and any(eligible(o) for o in others):
            return False  # it failed here: another endpoint first
        if self.strategy == "priority":
            return not any(
                o.position < ep.position and eligible(o) and not o.health.rested for o in others
            )
        return True

    async def _take(self, ep: Endpoint) -> _Entry | None:
        """The next item for ``ep``'s run, waiting while it may take none; None at the end."""
        clock = self.router._clock
        while True:
            if self.done:
                return None
            now = clock()
            rest = ep.health.resting(now)
            probing = ep.health.rested and ep.health.probing
            if rest <= 0 and not probing:
                backlog = self._backlog(ep)
                if backlog > 0:
                    await self._wait(backlog)
                    continue
                for entry in self.pending:
                    if self._may_take(ep, entry, now):
                        self.pending.remove(entry)
                        return self._hand(ep, entry)
                if not self.exhausted and self._may_take_new(ep, now):
                    pulled = await self._pull(ep)
                    if pulled is not None:
                        return self._hand(ep, pulled)
                    continue
            await self._wait(rest if rest > 0 else None)

    def _backlog(self, ep: Endpoint) -> float:
        """``capacity``: seconds until ``ep`` could send what it holds, beyond the horizon
        (0: it has spare capacity now)."""
        if self.strategy != "capacity":
            return 0.0
        return max(0.0, ep.client.budget.limiter.send_delay() - _HORIZON)

    def _hand(self, ep: Endpoint, entry: _Entry) -> _Entry:
        entry.handed = self.router._clock()
        self.live += 1
        self.by_position[ep.position].taken += 1
        if ep.health.rested:
            ep.health.probing = True
        self.notify()  # a weighted endpoint ahead of its share may take again
        return entry

    async def _pull(self, ep: Endpoint) -> _Entry | None:
        """An input item for ``ep``; None when the input ended, or the item went elsewhere
        (queued for an endpoint that can serve it, or refused)."""
        async with self._source_lock:
            if self.exhausted:
                return None
            source = self.source
            try:
                if isinstance(source, AsyncIterator):
                    raw = await source.__anext__()
                else:
                    raw = next(source)
            except (StopIteration, StopAsyncIteration):
                self.exhausted = True
                self.notify()
                await self.results.put((-1, None))
                return None
            except Exception as exc:  # the input failed: the consumer raises it
                self.exhausted = True
                self.notify()
                await self.results.put((-1, exc))
                return None
            index = self.stats.pulled
            self.stats.pulled += 1
        self.taken[ep.position] += 1
        try:
            item = Item.of(raw)
        except ConfigurationError as exc:
            await self._final(index, exc)
            return None
        entry = _Entry(index, item)
        op = _OPS[item.kind]
        if able(ep.client, op):
            return entry
        if not self.router.able(op):
            await self._final(index, ConfigurationError(self.router._unable(op)))
            return None
        self.pending.append(entry)
        self.notify()
        return None

    async def feed(self, ep: Endpoint) -> AsyncIterator[Item]:
        """The source of ``ep``'s run: the items the strategy hands it, until the end."""
        local = self.local[ep.position]
        count = 0
        while True:
            entry = await self._take(ep)
            if entry is None:
                return
            local[count] = entry
            count += 1
            yield entry.item
            # Let the run start the item (and book its send) before the next is weighed.
            await asyncio.sleep(0)

    # -- what comes back ---------------------------------------------------------------------

    async def _final(self, index: int, result: Any) -> None:
        self.stats.count(result)
        await self.results.put((index, result))

    async def settle(self, ep: Endpoint, position: int, result: Any) -> None:
        """The result of ``ep``'s run for its item ``position``: hand it out, or queue the
        item again for another endpoint."""
        entry = self.local[ep.position].pop(position)
        self.live -= 1
        counts = self.by_position[ep.position]
        try:
            if isinstance(result, Completion | Embeddings):
                counts.succeeded += 1
                ep.health.succeeded()
                result.attempts += entry.attempts
                await self._final(entry.index, result)
            elif isinstance(result, ConfigurationError):
                await self._refused(ep, entry, result)
            elif isinstance(result, AzmlError):
                await self._failed(ep, entry, result)
            else:  # not an answer of the client: a bug, never swallowed
                await self.results.put((-1, result))
        finally:
            self.notify()

    async def _refused(self, ep: Endpoint, entry: _Entry, error: ConfigurationError) -> None:
        """``ep``'s client refused the item before sending it: another endpoint may not."""
        entry.refused_by.add(ep.position)
        op = _OPS[entry.item.kind]
        if any(o.position not in entry.refused_by for o in self.router.able(op)):
            self.pending.appendleft(entry)
            return
        await self._final(entry.index, annotate(error, entry.tried, entry.attempts))

    async def _failed(self, ep: Endpoint, entry: _Entry, error: AzmlError) -> None:
        counts = self.by_position[ep.position]
        entry.attempts += getattr(error, "attempts", 1)
        entry.tried.append((ep.url, label(error)))
        if is_failover_error(error):
            router = self.router
            ep.health.failed(
                error,
                sent_at=entry.handed,
                now=router._clock(),
                policy=router.retry_policy,
                allowed_fails=router._allowed_fails,
                rand=router._rand,
            )
            entry.failed_on.add(ep.position)
            op = _OPS[entry.item.kind]
            candidates = [o for o in router.able(op) if o.position not in entry.refused_by]
            decision = next_step(
                error,
                retries=entry.retries,
                rate_limit_retries=entry.rate_limit_retries,
                policy=self.policy,
                remaining=None,
                wait=router.ready_in(candidates),
            )
            if decision.retry:
                if isinstance(error, RateLimitError):
                    entry.rate_limit_retries += 1
                else:
                    entry.retries += 1
                counts.failed_over += 1
                self.pending.append(entry)
                return
        counts.failed += 1
        await self._final(entry.index, annotate(error, entry.tried, entry.attempts))


class RouterRun(IteratedOnce[tuple[int, Completion | AzmlError]]):
    """An iterator of ``(index, result)`` over a bulk run across a router's endpoints; also an
    async context manager (see :meth:`EndpointRouter.map`)."""

    def __init__(
        self,
        router: EndpointRouter,
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: Concurrency,
        max_rps: float | None,
        max_tpm: float | None,
        max_retries: int,
        max_rate_limit_retries: int,
        return_exceptions: bool,
        params: Mapping[str, Any],
    ) -> None:
        self._router = router
        self._items = items
        self._options: dict[str, Any] = {
            "concurrency": concurrency,
            "max_rps": max_rps,
            "max_tpm": max_tpm,
            "max_retries": 0,  # failover is the router's: one attempt, 429s retried in place
            "max_rate_limit_retries": max_rate_limit_retries,
            "return_exceptions": True,
            **params,
        }
        self._policy = replace(
            router.retry_policy,
            max_retries=max_retries,
            max_rate_limit_retries=max_rate_limit_retries,
        )
        self._return_exceptions = return_exceptions
        self.stats = RouterStats(
            endpoints=[EndpointRunStats(ep.url, ep.client.budget) for ep in router.endpoints]
        )

    async def _drain(self, dispatch: _Dispatch, ep: Endpoint, run: BatchRun) -> None:
        """Take ``ep``'s results as they come and settle them."""
        try:
            async with run:
                async for position, result in run:
                    await dispatch.settle(ep, position, result)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug in a run: the consumer raises it
            await dispatch.results.put((-1, exc))

    async def _run(self) -> AsyncIterator[tuple[int, Completion | AzmlError]]:
        results: asyncio.Queue[tuple[int, Any]] = asyncio.Queue(_BUFFER)
        dispatch = _Dispatch(self._router, self._items, results, self.stats, self._policy)
        self.stats.started = time.monotonic()
        tasks: list[asyncio.Task[None]] = []
        fed_all = False
        yielded = 0
        try:
            for ep, counts in zip(dispatch.endpoints, self.stats.endpoints, strict=True):
                run = ep.client.map(dispatch.feed(ep), **self._options)
                counts.run = run.stats
                tasks.append(asyncio.ensure_future(self._drain(dispatch, ep, run)))
            while not (fed_all and yielded == self.stats.pulled):
                index, result = await results.get()
                if index < 0:
                    if result is not None:
                        raise result  # the input failed, or a bug in a run
                    fed_all = True
                    continue
                yielded += 1
                if isinstance(result, AzmlError) and not self._return_exceptions:
                    raise result
                yield index, result
        finally:
            self.stats.finished = time.monotonic()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            source = dispatch.source
            if hasattr(source, "aclose"):
                await source.aclose()


async def collect(run: RouterRun, *, total: int | None, progress: bool) -> RouterResults:
    """Run to the end; the results in input order, with the run's stats."""
    observer = None
    if progress:  # the command line's renderer: the engine knows no terminal
        from ..cli._render import RunProgress

        observer = RunProgress(total)
    results: dict[int, Completion | AzmlError] = {}
    try:
        async with run:
            async for index, result in run:
                results[index] = result
                if observer is not None:
                    observer.update(run.stats)
    finally:
        if observer is not None:
            observer.close(run.stats)
    out = RouterResults(results[i] for i in range(len(results)))
    out.stats = run.stats
    return out
