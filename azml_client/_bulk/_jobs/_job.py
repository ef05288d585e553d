"""One job: check, lock and resume the output, stream the input through ``client.map``."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from contextlib import aclosing
from typing import Any, Protocol

import anyio
import anyio.to_thread

from ..._exceptions import ConfigurationError
from .._items import Item
from .._stats import usage_tokens
from ._ids import IdIndex
from ._input import EMBEDDING_OPTIONS, TASKS, InputProblem, JobId, Task, aread_input
from ._output import BackgroundWriter, ResultWriter, ResumeState, encode_line, prepare_output
from ._paths import JobError, OutputLock, check_paths, output_error
from ._summary import JobSummary, RunCounters, embeddings_record, error_record, ok_record, tally

__all__ = ["BatchJob", "BulkClient", "run_job"]


class _BulkRun(Protocol):
    @property
    def stats(self) -> RunCounters: ...

    def __aiter__(self) -> AsyncIterator[tuple[int, Any]]: ...

    async def aclose(self) -> None: ...


class BulkClient(Protocol):
    """What :class:`BatchJob` calls: :meth:`EndpointClient.map` (or a test double)."""

    def map(
        self,
        items: AsyncIterable[Item],
        *,
        concurrency: Any = "auto",
        max_rps: float | None = None,
        max_tpm: float | None = None,
        **params: Any,
    ) -> _BulkRun: ...


class BatchJob:
    """One run of a JSONL job: check, lock and resume (:meth:`open`), then :meth:`run`.

    ``with BatchJob(...) as job`` opens it and releases the lock at the end; :meth:`run` alone
    does both. :attr:`summary` counts items live, :meth:`stats` adds the run's own counters;
    ``on_problem`` receives each bad input line.

    ``task="generate"`` (the default) sends ``prompt`` / ``messages`` lines; ``"embeddings"``
    embeds ``input`` lines and writes their vectors. ``params`` go to every item (its own
    ``params`` win): model parameters, or for embeddings only ``input_type``,
    ``encoding_format``, ``dimensions`` and ``model``.
    """

    def __init__(
        self,
        input_path: str | os.PathLike[str],
        output_path: str | os.PathLike[str],
        *,
        concurrency: Any = "auto",
        max_rps: float | None = None,
        max_tpm: float | None = None,
        task: Task = "generate",
        params: Mapping[str, Any] | None = None,
        on_problem: Callable[[InputProblem], None] | None = None,
        fsync_every: int = 256,
        fsync_interval: float = 1.0,
    ) -> None:
        if task not in TASKS:
            raise ConfigurationError(f"unknown task {task!r}: use 'generate' or 'embeddings'")
        params = dict(params or {})
        unknown = sorted(set(params) - EMBEDDING_OPTIONS) if task == "embeddings" else []
        if unknown:
            raise ConfigurationError(
                f"an embeddings job takes {', '.join(sorted(EMBEDDING_OPTIONS))}; not "
                f"{', '.join(unknown)}"
            )
        self.input_path = os.fspath(input_path)
        self.output_path = os.fspath(output_path)
        self.task: Task = task
        self._map_options: dict[str, Any] = {
            **params,
            "concurrency": concurrency,
            "max_rps": max_rps,
            "max_tpm": max_tpm,
        }
        self._on_problem = on_problem
        self._fsync = (fsync_every, fsync_interval)
        self.summary = JobSummary()
        self._lock: OutputLock | None = None
        self._done: set[JobId] = set()
        self._run: _BulkRun | None = None

    def open(self) -> ResumeState:
        """Check the paths, lock the output and prepare it for resuming; :class:`JobError` if not.

        Needs no client, so local problems show before any endpoint is contacted.
        """
        check_paths(self.input_path, self.output_path)
        try:
            with open(self.input_path, "rb"):
                pass
        except OSError as exc:
            message = f"cannot read the input file {self.input_path!r}: {exc.strerror or exc}"
            raise JobError(
                "input_unreadable", message, path=self.input_path, strerror=exc.strerror
            ) from None
        lock = OutputLock(self.output_path)
        try:
            lock.acquire()
            resume = prepare_output(self.output_path, lock)
        except OSError as exc:
            lock.release()
            raise output_error(exc, self.output_path) from None
        except BaseException:
            lock.release()
            raise
        self._lock = lock
        self._done = resume.done
        self.summary.resumed = len(resume.done)
        self.summary.dropped_failed = resume.failed_dropped
        return resume

    def close(self) -> None:
        """Release the output lock. Idempotent."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> BatchJob:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def stats(self) -> JobSummary:
        """:attr:`summary` with the bulk run's counters (retries, 429s, concurrency) as of now.

        Called when the summary is shown (a progress tick) and once at the end: never per result.
        """
        if self._run is not None:
            self.summary.observe(self._run.stats)
        return self.summary

    def _problem(self, problem: InputProblem) -> None:
        self.summary.bad_input += 1
        if self._on_problem is not None:
            self._on_problem(problem)

    async def _items(self, pending: dict[int, tuple[JobId, float, bool]]) -> AsyncIterator[Item]:
        """The items to send, in input order; records each one's id, start and whether it is a
        single text to embed in ``pending``.

        Ids are remembered as hashes (:class:`IdIndex`, 16 bytes an id): a hash collision makes
        a distinct id look like a duplicate, and that line is reported, never dropped silently.
        """
        seen = IdIndex()
        index = 0
        async with aclosing(aread_input(self.input_path, self.task)) as entries:
            async for entry in entries:
                if isinstance(entry, InputProblem):
                    self._problem(entry)
                    continue
                first = seen.add(entry.id, entry.line)
                if first is not None:
                    message = f"duplicate id {entry.id!r} (first on line {first})"
                    self._problem(InputProblem(entry.line, message))
                    continue
                if entry.id in self._done:
                    self.summary.skipped += 1
                    continue
                pending[index] = (entry.id, time.monotonic(), entry.single)
                index += 1
                yield entry.item

    def _record(self, item_id: JobId, result: Any, started: float, single: bool) -> dict[str, Any]:
        """Count one result and return its output line."""
        s = self.summary
        if isinstance(result, ConfigurationError):  # refused by the client: nothing was sent
            s.rejected += 1
            tally(s.rejections, item_id, result)
            return error_record(item_id, result)
        s.sent += 1
        if isinstance(result, BaseException):
            s.failed += 1
            tally(s.failures, item_id, result)
            return error_record(item_id, result)
        s.ok += 1
        tokens_in, tokens_out = usage_tokens(result)
        s.tokens_in += tokens_in
        s.tokens_out += tokens_out
        latency_ms = round((time.monotonic() - started) * 1000)
        if self.task == "embeddings":
            return embeddings_record(item_id, result, latency_ms, single=single)
        return ok_record(item_id, result, latency_ms)

    async def run(self, client: BulkClient) -> JobSummary:
        """Run the job to the end and return its summary (also on :attr:`summary`)."""
        if self._lock is not None:
            return await self._send_all(client)
        await anyio.to_thread.run_sync(self.open)  # scanning a large output takes a while
        try:
            return await self._send_all(client)
        finally:
            self.close()

    async def _send_all(self, client: BulkClient) -> JobSummary:
        self.summary.started = time.monotonic()
        every, interval = self._fsync
        try:
            writer = ResultWriter(self.output_path, fsync_every=every, fsync_interval=interval)
        except OSError as exc:
            raise output_error(exc, self.output_path) from None
        out = BackgroundWriter(writer)
        pending: dict[int, tuple[JobId, float, bool]] = {}
        run = self._run = client.map(self._items(pending), **self._map_options)
        try:
            async for index, result in run:
                item_id, started, single = pending.pop(index)
                await out.put(encode_line(self._record(item_id, result, started, single)))
        finally:
            with anyio.CancelScope(shield=True):
                await run.aclose()
                self.stats()
                self.summary.finished = time.monotonic()
                await out.aclose()
        return self.summary


async def run_job(
    client: BulkClient,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    **options: Any,
) -> JobSummary:
    """Run one JSONL job (see the module docstring); ``options`` go to :class:`BatchJob`."""
    return await BatchJob(input_path, output_path, **options).run(client)
