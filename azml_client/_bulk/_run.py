"""Bulk runs: bounded, rate-aware, ordered on demand, never more input in memory than in flight.

:class:`BatchRun` pulls items from any sync or async iterable as capacity frees, runs each
through the client's one request driver, and yields ``(index, result)`` as results complete. A
failed item's result is its typed exception. The run retries nothing itself: an
:class:`_ItemHook` rides along on every attempt of the driver, holding the attempt back for the
shared Retry-After pause, the pacing rate and the ``max_rps`` / ``max_tpm`` budgets, and feeding
each outcome to the endpoint's :class:`~._budget.RateBudget`.

Input is pulled by a feeder task while the consumer waits for results, so answers that came
back are handed out even while a live source (a queue) has nothing new. Leaving the loop early,
cancelling, or an error cancels the feeder and the items in flight and awaits them: no task
outlives the run and their connections are released.

The run uses asyncio tasks (not an anyio task group) so that an ``async for`` left with
``break`` can be finalised from any task; it therefore needs the asyncio backend, which is what
anyio, the sync client and the ``azml`` command use by default.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from typing import Any, Generic, Literal, Protocol, TypeVar

from .._constants import DEFAULT_MAX_CONCURRENCY
from .._exceptions import APIStatusError, AzmlError, ConfigurationError, RateLimitError
from .._pricing import Pricing
from .._types import Completion
from ._budget import RateBudget, rps_bucket, tpm_bucket
from ._items import Item
from ._limiter import Signal, classify
from ._stats import BatchResults, BatchStats

__all__ = [
    "BatchRun",
    "Concurrency",
    "ItemCaller",
    "ProgressObserver",
    "collect",
    "estimate_tokens",
]

Concurrency = int | Literal["auto"]
ItemResult = Completion | AzmlError
#: Runs one item through the client's driver, with the run's hook on every attempt.
ItemCaller = Callable[[Item, "_ItemHook"], Awaitable[Completion]]

#: Finished results the consumer has not taken yet, beyond the concurrency, before the feeder
#: stops pulling input: a slow consumer bounds memory instead of filling a queue.
_BUFFER = 64
#: Output tokens assumed for an item whose parameters set no limit.
_DEFAULT_OUTPUT_TOKENS = 256
_OUTPUT_LIMIT_KEYS = ("max_tokens", "max_new_tokens", "max_completion_tokens", "max_length")


def estimate_tokens(item: Item, params: Mapping[str, Any]) -> float:
    """Tokens an item may use, before its answer says: prompt chars / 4 + its output limit.

    ``params`` are the parameters the item is sent with (the client's, the run's and its own),
    so an output limit set anywhere is seen.
    """
    if item.kind == "completion":
        chars = len(item.payload)
    elif item.kind == "embed":  # no output tokens
        return sum(len(text) for text in item.payload) / 4
    else:
        chars = sum(len(str(m.get("content", ""))) for m in item.payload)
    out: Any = None
    for key in _OUTPUT_LIMIT_KEYS:
        out = params.get(key)
        if isinstance(out, int | float) and not isinstance(out, bool) and out > 0:
            break
        out = None
    return chars / 4 + (out if out is not None else _DEFAULT_OUTPUT_TOKENS)


def _used_tokens(item: Item, result: Completion) -> float | None:
    """What an answer really used: its usage, else a guess from its text (chars / 4)."""
    usage = result.usage
    if usage is not None:
        if usage.total_tokens:
            return float(usage.total_tokens)
        if usage.prompt_tokens is not None or usage.completion_tokens is not None:
            return float((usage.prompt_tokens or 0) + (usage.completion_tokens or 0))
    prompt = estimate_tokens(item, {"max_tokens": 1}) - 1
    return prompt + len(getattr(result, "text", "")) / 4


_T = TypeVar("_T")
_Run = TypeVar("_Run", bound="IteratedOnce[Any]")


class IteratedOnce(Generic[_T]):
    """A run's results as an async iterator, iterated once (``_run`` makes them), and an async
    context manager whose exit closes it: cancels what is in flight and waits for it."""

    _iterator: AsyncIterator[_T] | None = None

    def _run(self) -> AsyncIterator[_T]:
        raise NotImplementedError

    def __aiter__(self) -> AsyncIterator[_T]:
        if self._iterator is not None:
            raise RuntimeError("a batch run can be iterated once")
        self._iterator = self._run()
        return self._iterator

    async def __aenter__(self: _Run) -> _Run:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel what is in flight and wait for it. Idempotent."""
        iterator = self._iterator
        if iterator is not None and hasattr(iterator, "aclose"):
            await iterator.aclose()


class BatchRun(IteratedOnce[tuple[int, ItemResult]]):
    """An iterator of ``(index, result)`` over a bulk run; also an async context manager.

    ``async with`` guarantees the run is finished (in-flight items cancelled) when the block
    exits, whatever the consumer did; a plain ``async for`` left early is cleaned up when the
    iterator is finalised.
    """

    def __init__(
        self,
        call: ItemCaller,
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: Concurrency = "auto",
        budget: RateBudget | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        max_rps: float | None = None,
        max_tpm: float | None = None,
        params: Mapping[str, Any] | None = None,
        return_exceptions: bool = True,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        on_finish: Callable[[BatchStats, BaseException | None], None] | None = None,
        pricing: Pricing | None = None,
    ) -> None:
        if concurrency != "auto" and (
            not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1
        ):
            raise ConfigurationError(
                f"concurrency must be 'auto' or a positive integer, got {concurrency!r}"
            )
        for name, value in (("max_rps", max_rps), ("max_tpm", max_tpm)):
            if value is not None and not value > 0:
                raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
        self._call = call
        self._items = items
        self._adaptive = concurrency == "auto"
        if self._adaptive:
            self.budget = budget or RateBudget(max_concurrency=max_concurrency)
        else:
            # A fixed concurrency is the user's own choice: a private budget that never adapts.
            self.budget = RateBudget(
                max_concurrency=int(concurrency), initial_concurrency=int(concurrency)
            )
            self.budget.limiter.fixed = True
        self.limiter = self.budget.limiter
        self.stats = BatchStats(budget=self.budget, pricing=pricing)
        self._rps = rps_bucket(max_rps) if max_rps else None
        self._tpm = tpm_bucket(max_tpm) if max_tpm else None
        self._params = dict(params or {})
        self._return_exceptions = return_exceptions
        self._sleep = sleep
        #: Told once, when the run ends (its stats, and the error that ended it, if any).
        self._on_finish = on_finish
        self._source: Iterator[Any] | AsyncIterator[Any] = iter(())

    # -- engine -----------------------------------------------------------------------------

    async def _next_item(self) -> Any:
        """The next input item; raises StopAsyncIteration at the end."""
        source = self._source
        if isinstance(source, AsyncIterator):
            return await source.__anext__()
        try:
            return next(source)
        except StopIteration:
            raise StopAsyncIteration from None

    async def _run(self) -> AsyncIterator[tuple[int, ItemResult]]:
        items = self._items
        self._source = items.__aiter__() if isinstance(items, AsyncIterable) else iter(items)
        queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
        tasks: set[asyncio.Task[None]] = set()
        taken = asyncio.Event()
        self.stats.started = time.monotonic()
        feeder = asyncio.ensure_future(self._feed(queue, tasks, taken))
        fed_all = False
        yielded = 0
        ended_by: BaseException | None = None
        try:
            while not (fed_all and yielded == self.stats.pulled):
                position, result = await queue.get()
                taken.set()
                if position < 0:  # the feeder's last word: the end of input, or its error
                    fed_all = True
                    if result is not None:
                        raise result
                    continue
                yielded += 1
                if isinstance(result, BaseException) and not isinstance(result, AzmlError):
                    raise result  # a bug, not an endpoint answer: never swallow it
                if isinstance(result, AzmlError) and not self._return_exceptions:
                    raise result
                yield position, result
        except BaseException as exc:
            ended_by = exc
            raise
        finally:
            self.stats.finished = time.monotonic()
            if self._on_finish is not None:
                on_finish, self._on_finish = self._on_finish, None
                on_finish(self.stats, ended_by)
            feeder.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(feeder, *tasks, return_exceptions=True)
            source = self._source
            if hasattr(source, "aclose"):
                await source.aclose()

    async def _feed(
        self,
        queue: asyncio.Queue[tuple[int, Any]],
        tasks: set[asyncio.Task[None]],
        taken: asyncio.Event,
    ) -> None:
        """Pull input as capacity frees and start a worker per item; the end goes on the queue.

        The item is pulled before its slot is taken, so a live source that has nothing yet
        holds no slot that another run of the same budget could use.
        """
        budget = self.budget
        stats = self.stats
        try:
            while True:
                while queue.qsize() >= budget.concurrency + _BUFFER:
                    taken.clear()
                    await taken.wait()
                try:
                    item = await self._next_item()
                except StopAsyncIteration:
                    break
                await budget.acquire()
                index = stats.pulled
                stats.pulled += 1
                task = asyncio.ensure_future(self._worker(index, item, queue))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                # Released however the task ends, even cancelled before it ever ran.
                task.add_done_callback(_release_to(budget))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the source failed: the consumer raises it
            queue.put_nowait((-1, exc))
            return
        queue.put_nowait((-1, None))

    async def _worker(self, index: int, item: Any, queue: asyncio.Queue[tuple[int, Any]]) -> None:
        try:
            result: ItemResult | BaseException = await self._one(item)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the consumer, which re-raises it
            result = exc
        self.stats.count(result)
        queue.put_nowait((index, result))

    async def _one(self, raw: Any) -> ItemResult:
        try:
            item = Item.of(raw)
        except ConfigurationError as exc:
            return exc
        params = {**self._params, **item.params}
        tokens = estimate_tokens(item, params) if self._tpm or self.budget.tpm else 0.0
        hook = _ItemHook(self, tokens)
        try:
            result = await self._call(item, hook)
        except AzmlError as exc:
            return exc
        used = _used_tokens(item, result)
        if used is not None:
            self.stats.add_usage(result)
            if tokens:
                for bucket in (self._tpm, self.budget.tpm):
                    if bucket is not None:
                        bucket.adjust(tokens - used)  # correct the reservation by the truth
        return result

    async def _gate(self, tokens: float) -> None:
        """Wait for the shared pause, the pacing rate and the hard budgets."""
        limiter = self.limiter
        if self._adaptive:
            while True:
                delay, epoch = limiter.book()
                if delay <= 0:
                    break
                await self._sleep(delay)
                if limiter.epoch == epoch and limiter.pause_until <= limiter.clock():
                    break
                # The pace changed while this sender waited: book again at the new one.
        delay = 0.0
        for bucket, amount in (
            (self._rps, 1.0),
            (self.budget.rps, 1.0),
            (self._tpm, tokens),
            (self.budget.tpm, tokens),
        ):
            if bucket is not None:
                delay = max(delay, bucket.reserve(amount))
        if delay > 0:
            await self._sleep(delay)

    def _refund(self, tokens: float) -> None:
        """An attempt that failed used no tokens: give its reservation back."""
        for bucket in (self._tpm, self.budget.tpm):
            if bucket is not None and tokens:
                bucket.adjust(tokens)


def _release_to(budget: RateBudget) -> Callable[[asyncio.Task[None]], None]:
    def release(task: asyncio.Task[None]) -> None:
        budget.release()

    return release


class _ItemHook:
    """The run's hook on every attempt of one item (see :class:`~.._http.AttemptHook`)."""

    __slots__ = ("_attempts", "_run", "_tokens")

    def __init__(self, run: BatchRun, tokens: float) -> None:
        self._run = run
        self._tokens = tokens
        self._attempts = 0

    async def before_attempt(self) -> None:
        run = self._run
        await run._gate(self._tokens)
        self._attempts += 1
        run.stats.sent += 1
        run.budget.sent += 1
        if self._attempts > 1:
            run.stats.retried += 1

    def after_attempt(
        self, error: AzmlError | None, *, sent_at: float, retry_after: float | None
    ) -> None:
        run = self._run
        if error is None:
            if run._adaptive:
                run.budget.observe(Signal.SUCCESS, sent_at=sent_at, retry_after=None)
            return
        run._refund(self._tokens)
        signal = classify(error)
        if isinstance(error, RateLimitError):  # either kind of 429
            run.stats.rate_limited += 1
            run.budget.rate_limited += 1
        if run._adaptive:
            run.budget.observe(signal, sent_at=sent_at, retry_after=retry_after)

    def retry_wait(self, error: AzmlError, wait: float) -> float:
        """In adaptive mode the shared pause (Retry-After) and the pacing rate (a 429 without
        one) already hold the next attempt back: no wait of the item's own on top."""
        run = self._run
        if run._adaptive and (
            isinstance(error, RateLimitError)
            or (isinstance(error, APIStatusError) and error.retry_after is not None)
        ):
            return 0.0
        return wait


class ProgressObserver(Protocol):
    """What :func:`collect` tells about a run as it goes (the CLI's renderer is one)."""

    def update(self, stats: BatchStats) -> None: ...

    def close(self, stats: BatchStats) -> None: ...


async def collect(run: BatchRun, *, observer: ProgressObserver | None = None) -> BatchResults:
    """Run to the end and return the results in input order.

    ``observer`` sees the stats after each result and at the end; the engine itself never
    writes to a terminal.
    """
    results: dict[int, ItemResult] = {}
    try:
        async with run:
            async for index, result in run:
                results[index] = result
                if observer is not None:
                    observer.update(run.stats)
    finally:
        if observer is not None:
            observer.close(run.stats)
    out = BatchResults(results[i] for i in range(len(results)))
    out.stats = run.stats
    return out
