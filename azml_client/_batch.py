"""Bulk runs: bounded, rate-aware, ordered on demand, never more input in memory than in flight.

:class:`BatchRun` pulls items from any sync or async iterable only as capacity frees, runs each
through the client's one request driver, and yields ``(index, result)`` as results complete. A
failed item's result is its typed exception. The run does not retry anything itself: its
:class:`_ItemHook` rides along on every attempt of the driver, holding an attempt back for the
shared Retry-After pause, the pacing rate and the ``max_rps`` / ``max_tpm`` budgets, and feeding
each outcome to the adaptive limiter. Leaving the loop early, cancelling, or an error cancels
the items in flight and awaits them: no task outlives the run and their connections are
released.

The run uses asyncio tasks (not an anyio task group) so that an ``async for`` left with
``break`` can be finalised from any task; it therefore needs the asyncio backend, which is what
anyio, the sync client and the ``azml`` command use by default.
"""

from __future__ import annotations

import asyncio
import logging
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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    AzmlError,
    ConfigurationError,
    RateLimitError,
)
from ._limiter import AdaptiveLimiter, Signal, TokenBucket
from ._types import Completion

if TYPE_CHECKING:
    from .cli._render import ProgressRenderer

__all__ = ["BatchItem", "BatchResults", "BatchRun", "BatchStats", "Concurrency"]

logger = logging.getLogger("azml_client.batch")

BatchItem = str | list[Mapping[str, Any]] | Mapping[str, Any]
Concurrency = int | Literal["auto"]
ItemResult = Completion | AzmlError
#: Runs one item through the client's driver, with the run's hook on every attempt:
#: (kind, prompt-or-messages, params, hook) -> result; raises AzmlError.
ItemCaller = Callable[[str, Any, dict[str, Any], "_ItemHook"], Awaitable[Completion]]

_OVERLOAD_STATUSES = frozenset({408, 502, 503, 504})
_AUTO_INITIAL = 8
#: How often a worker held by the pacing rate looks again (the rate may have risen).
_POLL = 0.05


@dataclass
class BatchStats:
    """Counters of a run; read them while it runs or after."""

    #: HTTP attempts sent (first tries and retries).
    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    #: Attempts beyond the first, over all items.
    retried: int = 0
    #: 429 answers received.
    rate_limited: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    limiter: AdaptiveLimiter | None = field(default=None, repr=False)

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def rps(self) -> float:
        """Achieved successful requests per second."""
        return self.succeeded / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def concurrency(self) -> int:
        return self.limiter.limit if self.limiter else 0

    @property
    def concurrency_history(self) -> list[tuple[float, int]]:
        """``(seconds since start, limit)`` at each change of the concurrency limit."""
        return list(self.limiter.history) if self.limiter else []

    @property
    def pacing_rps(self) -> float | None:
        """The pacing rate the limiter settled on after a 429, if any."""
        return self.limiter.rate if self.limiter else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "retried": self.retried,
            "rate_limited": self.rate_limited,
            "elapsed_s": round(self.elapsed, 3),
            "rps": round(self.rps, 2),
            "concurrency": self.concurrency,
        }


class BatchResults(list[ItemResult]):
    """The results of :meth:`EndpointClient.batch`, in input order, with the run's ``stats``."""

    stats: BatchStats


def normalize_item(item: Any) -> tuple[str, Any, dict[str, Any]]:
    """``(kind, prompt-or-messages, params)`` of one batch item, or a ConfigurationError."""
    if isinstance(item, str):
        return "completion", item, {}
    if isinstance(item, list):
        return "chat", item, {}
    if isinstance(item, Mapping):
        params = item.get("params") or {}
        if not isinstance(params, Mapping):
            raise ConfigurationError("an item's 'params' must be an object of model parameters")
        if "messages" in item:
            return "chat", item["messages"], dict(params)
        if "prompt" in item:
            return "completion", item["prompt"], dict(params)
    raise ConfigurationError(
        "a batch item is a prompt string, a list of messages, or a dict with 'prompt' or "
        f"'messages' (and optional 'params'); got {type(item).__name__}: {item!r:.80}"
    )


def _estimate_tokens(kind: str, payload: Any, params: Mapping[str, Any]) -> float:
    """A rough token count for ``max_tpm`` before the answer says: chars / 4 + max tokens."""
    text = payload if kind == "completion" else " ".join(str(m.get("content", "")) for m in payload)
    out = params.get("max_tokens", params.get("max_new_tokens", 256))
    return len(str(text)) / 4 + (out if isinstance(out, int | float) else 256)


class BatchRun:
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
        max_concurrency: int = 256,
        max_rps: float | None = None,
        max_tpm: float | None = None,
        return_exceptions: bool = True,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if concurrency != "auto" and (not isinstance(concurrency, int) or concurrency < 1):
            raise ConfigurationError(
                f"concurrency must be 'auto' or a positive integer, got {concurrency!r}"
            )
        for name, value in (("max_rps", max_rps), ("max_tpm", max_tpm)):
            if value is not None and value <= 0:
                raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
        self._call = call
        self._items = items
        fixed = concurrency != "auto"
        self._adaptive = not fixed
        self.limiter = AdaptiveLimiter(
            initial=int(concurrency) if fixed else min(_AUTO_INITIAL, max_concurrency),
            maximum=int(concurrency) if fixed else max_concurrency,
            fixed=fixed,
        )
        self.stats = BatchStats(limiter=self.limiter)
        self._rps = TokenBucket(max_rps, capacity=max(1.0, max_rps / 10)) if max_rps else None
        self._tpm = TokenBucket(max_tpm / 60.0, capacity=max_tpm / 60.0) if max_tpm else None
        self._return_exceptions = return_exceptions
        self._sleep = sleep
        self._iterator: AsyncIterator[tuple[int, ItemResult]] | None = None
        self._source: Iterator[Any] | AsyncIterator[Any] = iter(())

    # -- consumer side ----------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[tuple[int, ItemResult]]:
        if self._iterator is not None:
            raise RuntimeError("a batch run can be iterated once")
        self._iterator = self._run()
        return self._iterator

    async def __aenter__(self) -> BatchRun:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel what is in flight and wait for it. Idempotent."""
        iterator = self._iterator
        if iterator is not None and hasattr(iterator, "aclose"):
            await iterator.aclose()

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
        queue: asyncio.Queue[tuple[int, ItemResult | BaseException]] = asyncio.Queue()
        tasks: set[asyncio.Task[None]] = set()
        exhausted = False
        started = yielded = 0
        self.stats.started = time.monotonic()
        try:
            while True:
                # Items in flight = started but not yet answered; answered ones wait in queue.
                while not exhausted and started - yielded - queue.qsize() < self.limiter.limit:
                    try:
                        item = await self._next_item()
                    except StopAsyncIteration:
                        exhausted = True
                        break
                    task = asyncio.ensure_future(self._worker(started, item, queue))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    started += 1
                if exhausted and yielded == started:
                    return
                position, result = await queue.get()
                yielded += 1
                if isinstance(result, BaseException) and not isinstance(result, AzmlError):
                    raise result  # a bug, not an endpoint answer: never swallow it
                if isinstance(result, AzmlError) and not self._return_exceptions:
                    raise result
                yield position, result
        finally:
            self.stats.finished = time.monotonic()
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            source = self._source
            if hasattr(source, "aclose"):
                await source.aclose()

    async def _worker(
        self, index: int, item: Any, queue: asyncio.Queue[tuple[int, ItemResult | BaseException]]
    ) -> None:
        try:
            result: ItemResult | BaseException = await self._one(item)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the consumer, which re-raises it
            result = exc
        if isinstance(result, AzmlError):
            self.stats.failed += 1
        elif not isinstance(result, BaseException):
            self.stats.succeeded += 1
        queue.put_nowait((index, result))

    async def _one(self, item: Any) -> ItemResult:
        try:
            kind, payload, params = normalize_item(item)
        except ConfigurationError as exc:
            return exc
        tokens = _estimate_tokens(kind, payload, params) if self._tpm else 0.0
        hook = _ItemHook(self, tokens)
        try:
            result = await self._call(kind, payload, params, hook)
        except AzmlError as exc:
            return exc
        if self._tpm is not None and result.usage and result.usage.total_tokens:
            self._tpm.adjust(tokens - result.usage.total_tokens)
        return result

    async def _gate(self, tokens: float) -> None:
        """Wait for the shared pause, the pacing rate and the caller's budgets."""
        if self._adaptive:
            while (delay := self.limiter.send_delay()) > 0:
                await self._sleep(min(delay, _POLL))
            self.limiter.took()
        delay = 0.0
        if self._rps is not None:
            delay = self._rps.reserve(1.0)
        if self._tpm is not None:
            delay = max(delay, self._tpm.reserve(tokens))
        if delay > 0:
            await self._sleep(delay)

    @staticmethod
    def _signal(exc: AzmlError) -> str:
        if isinstance(exc, RateLimitError):
            pending = "pending" in (exc.body or "").lower()
            return Signal.OVERLOADED if pending else Signal.RATE_LIMITED
        if isinstance(exc, APIStatusError) and exc.status_code in _OVERLOAD_STATUSES:
            return Signal.OVERLOADED
        if isinstance(exc, APIConnectionError):
            return Signal.OVERLOADED
        return Signal.ERROR


class _ItemHook:
    """The run's hook on every attempt of one item (see :class:`~._http.AttemptHook`)."""

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
        if self._attempts > 1:
            run.stats.retried += 1

    def after_attempt(
        self, error: AzmlError | None, *, sent_at: float, retry_after: float | None
    ) -> None:
        run = self._run
        if error is None:
            if run._adaptive:
                run.limiter.observe(Signal.SUCCESS, sent_at=sent_at)
            return
        signal = run._signal(error)
        if signal == Signal.RATE_LIMITED or isinstance(error, RateLimitError):
            run.stats.rate_limited += 1
        if run._adaptive:
            run.limiter.observe(signal, sent_at=sent_at, retry_after=retry_after)

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


async def collect(
    run: BatchRun, *, progress: bool = False, total: int | None = None
) -> BatchResults:
    """Run to the end and return the results in input order.

    ``progress=True`` shows the command line's own renderer (a rich bar on a terminal, a plain
    line every few seconds elsewhere): the engine itself never writes to a terminal.
    """
    results: dict[int, ItemResult] = {}
    renderer: ProgressRenderer | None = None
    if progress:
        from .cli._render import ProgressSnapshot, progress_renderer

        renderer = progress_renderer(total)
    try:
        async with run:
            async for index, result in run:
                results[index] = result
                if renderer is not None:
                    renderer.update(ProgressSnapshot.from_stats(run.stats, total=total))
    finally:
        if renderer is not None:
            renderer.close(ProgressSnapshot.from_stats(run.stats, total=total))
    out = BatchResults(results[i] for i in range(len(results)))
    out.stats = run.stats
    return out
