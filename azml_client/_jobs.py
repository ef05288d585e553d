"""Resumable, crash-safe JSONL batch jobs: the engine of ``azml batch``.

Input (read line by line, never whole)::

    {"id": "q1", "prompt": "Write a haiku about rain", "params": {"max_tokens": 32}}
    {"id": "q2", "messages": [{"role": "user", "content": "Hi"}]}

``id`` (a string or an integer) defaults to the 1-based line number; ``params`` is optional.
Blank lines are ignored. A bad line (invalid JSON, not an object, neither ``prompt`` nor
``messages``, a malformed field, or an id seen before in the file) is reported through
``on_problem`` with its line number, counted in :attr:`JobSummary.bad_input`, and **not** written
to the output: the output only ever holds endpoint results, one line per id.

Output (one line per finished id)::

    {"id": "q1", "ok": true, "text": "...", "finish_reason": "stop", "usage": {...},
     "attempts": 1, "latency_ms": 212}
    {"id": "q2", "ok": false, "error": {"type": "ServerError", "status": 503, "message": "...",
     "request_id": "..."}, "attempts": 3}

Resume and crash safety:

* Every result line is written whole (newline included) with one ``os.write`` on an
  ``O_APPEND`` descriptor, so a crash leaves at worst one torn *last* line.
* On start the output is scanned: a torn last line (no newline) is dropped, ids with an
  ``ok: true`` line are skipped this time. If the file holds anything else (failed lines, lines
  that do not parse, a repeated ok id), it is first rewritten without them into a temporary file
  that is fsynced and atomically renamed over the output; otherwise a torn tail is truncated.
  Failed ids are thus retried, and no id ever has two lines.
* Lines are fsynced every ``fsync_every`` lines or ``fsync_interval`` seconds, and at the end.
  (After ``kill -9`` the kernel still has every line written; fsync only matters for power loss.)

Two jobs must not write the same output at the same time; nothing here locks the file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol, TypeGuard

from ._exceptions import ConfigurationError

__all__ = [
    "BatchJob",
    "InputProblem",
    "JobItem",
    "JobSummary",
    "ResultWriter",
    "ResumeState",
    "count_lines",
    "prepare_output",
    "read_input",
    "run_job",
]

JobId = str | int
_ERROR_FIELDS = ("type", "status", "message", "request_id")


# -- what the job needs from a client ---------------------------------------------------------


class _RunStats(Protocol):
    @property
    def retried(self) -> int: ...

    @property
    def rate_limited(self) -> int: ...

    @property
    def concurrency(self) -> int: ...


class _BulkRun(Protocol):
    @property
    def stats(self) -> _RunStats: ...

    def __aiter__(self) -> AsyncIterator[tuple[int, Any]]: ...

    async def aclose(self) -> None: ...


class BulkClient(Protocol):
    """What :class:`BatchJob` calls: :meth:`EndpointClient.map` (or a test double)."""

    def map(
        self,
        items: Iterable[Any],
        *,
        concurrency: Any = "auto",
        max_rps: float | None = None,
        max_tpm: float | None = None,
    ) -> _BulkRun: ...


# -- input ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobItem:
    """One valid input line: its id, line number and the item handed to ``client.map``."""

    id: JobId
    line: int
    request: dict[str, Any]


@dataclass(frozen=True)
class InputProblem:
    """One bad input line."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def _valid_id(value: Any) -> TypeGuard[JobId]:
    return isinstance(value, str | int) and not isinstance(value, bool)


def _parse_line(raw: bytes, line: int) -> JobItem | InputProblem:
    try:
        data = json.loads(raw)
    except ValueError as exc:  # includes UnicodeDecodeError
        return InputProblem(line, f"invalid JSON ({exc})")
    if not isinstance(data, dict):
        return InputProblem(line, f"expected a JSON object, got {type(data).__name__}")
    item_id = data.get("id", line)
    if not _valid_id(item_id):
        return InputProblem(line, f"'id' must be a string or an integer, got {item_id!r:.60}")
    request: dict[str, Any] = {}
    if "prompt" in data and "messages" in data:
        return InputProblem(line, "give either 'prompt' or 'messages', not both")
    if "prompt" in data:
        if not isinstance(data["prompt"], str):
            return InputProblem(line, "'prompt' must be a string")
        request["prompt"] = data["prompt"]
    elif "messages" in data:
        messages = data["messages"]
        if not isinstance(messages, list) or not messages:
            return InputProblem(line, "'messages' must be a non-empty list of messages")
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                return InputProblem(line, f"message {i} must be an object with a 'role'")
        request["messages"] = messages
    else:
        return InputProblem(line, "no 'prompt' or 'messages'")
    params = data.get("params")
    if params is not None:
        if not isinstance(params, dict):
            return InputProblem(line, "'params' must be an object of model parameters")
        request["params"] = params
    return JobItem(item_id, line, request)


def read_input(path: str | os.PathLike[str]) -> Iterator[JobItem | InputProblem]:
    """Parse the input file lazily, one line at a time (blank lines are skipped).

    Duplicate ids are not detected here (that needs the job's state): see :class:`BatchJob`.
    """
    with open(path, "rb") as fh:
        for line, raw in enumerate(fh, start=1):
            if raw.strip():
                yield _parse_line(raw, line)


def count_lines(path: str | os.PathLike[str]) -> int:
    """Number of non-blank lines (the items :func:`read_input` will yield): a progress total."""
    with open(path, "rb") as fh:
        return sum(1 for raw in fh if raw.strip())


# -- output -----------------------------------------------------------------------------------


@dataclass
class ResumeState:
    """What :func:`prepare_output` found in an existing output file."""

    #: Ids with an ``ok: true`` line: skipped this run.
    done: set[JobId] = field(default_factory=set)
    #: ``ok: false`` lines removed so their ids are retried.
    failed_dropped: int = 0
    #: Lines removed because they did not parse or repeated an ok id.
    invalid_dropped: int = 0
    #: Whether a torn last line (no newline) was removed.
    torn_dropped: bool = False


def _scan(fh: BinaryIO) -> Iterator[tuple[bytes, str, JobId | None]]:
    """Classify each output line: ``keep`` (first ok line of an id), ``failed``, ``invalid``,
    ``torn`` (the last line, without newline) or ``duplicate``."""
    seen: set[JobId] = set()
    for raw in fh:
        if not raw.endswith(b"\n"):
            yield raw, "torn", None
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            yield raw, "invalid", None
            continue
        item_id = data.get("id") if isinstance(data, dict) else None
        if not _valid_id(item_id):
            yield raw, "invalid", None
        elif data.get("ok") is not True:
            yield raw, "failed", item_id
        elif item_id in seen:
            yield raw, "duplicate", item_id
        else:
            seen.add(item_id)
            yield raw, "keep", item_id


def _fsync_dir(path: str) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), flags)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def prepare_output(path: str | os.PathLike[str]) -> ResumeState:
    """Make ``path`` hold only ok lines, one per id, each newline-terminated; return the state.

    Crash-safe: a rewrite goes to a temporary file, is fsynced, then renamed over ``path``.
    """
    target = os.fspath(path)
    state = ResumeState()
    if not os.path.exists(target):
        return state
    keep_bytes = 0
    with open(target, "rb") as fh:
        for raw, verdict, item_id in _scan(fh):
            if verdict == "keep":
                assert item_id is not None
                state.done.add(item_id)
                keep_bytes += len(raw)
            elif verdict == "failed":
                state.failed_dropped += 1
            elif verdict == "torn":
                state.torn_dropped = True
            else:
                state.invalid_dropped += 1
    if state.failed_dropped or state.invalid_dropped:
        tmp = f"{target}.rewrite.tmp"  # a fixed name: a stale one from a crash is overwritten
        try:
            with open(target, "rb") as src, open(tmp, "wb") as dst:
                for raw, verdict, _ in _scan(src):
                    if verdict == "keep":
                        dst.write(raw)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        _fsync_dir(target)
    elif state.torn_dropped:
        # Only a torn tail: every complete line before it is kept, so cut the file there.
        os.truncate(target, keep_bytes)
    return state


class ResultWriter:
    """Appends JSON lines to a file, each with one ``os.write`` on an ``O_APPEND`` descriptor.

    fsyncs every ``fsync_every`` lines or ``fsync_interval`` seconds, and on :meth:`close`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync_every: int = 256,
        fsync_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = os.fspath(path)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
        self._fd: int | None = os.open(self.path, flags, 0o644)
        self._fsync_every = max(1, fsync_every)
        self._fsync_interval = fsync_interval
        self._clock = clock
        self._unsynced = 0
        self._last_sync = clock()
        self.lines = 0

    def write(self, record: dict[str, Any]) -> None:
        """Append one record as one line."""
        if self._fd is None:
            raise ValueError("the result file is closed")
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        view = memoryview(data)
        while view:  # a short write happens only on a full disk or a signal; finish the line
            view = view[os.write(self._fd, view) :]
        self.lines += 1
        self._unsynced += 1
        now = self._clock()
        if self._unsynced >= self._fsync_every or now - self._last_sync >= self._fsync_interval:
            self.sync()

    def sync(self) -> None:
        """Flush the written lines to disk."""
        if self._fd is not None and self._unsynced:
            os.fsync(self._fd)
        self._unsynced = 0
        self._last_sync = self._clock()

    def close(self) -> None:
        """fsync and close. Idempotent."""
        if self._fd is None:
            return
        try:
            self.sync()
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def ok_record(item_id: JobId, result: Any, latency_ms: int) -> dict[str, Any]:
    """The output line of a success."""
    usage = getattr(result, "usage", None)
    return {
        "id": item_id,
        "ok": True,
        "text": result.text,
        "finish_reason": getattr(result, "finish_reason", None),
        "usage": usage.model_dump(exclude_none=True) if usage is not None else None,
        "attempts": getattr(result, "attempts", 1),
        "latency_ms": latency_ms,
    }


def error_record(item_id: JobId, exc: BaseException) -> dict[str, Any]:
    """The output line of a failure (never holds headers, so never the key)."""
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return {
        "id": item_id,
        "ok": False,
        "error": {
            "type": type(exc).__name__,
            "status": getattr(exc, "status_code", None),
            "message": message,
            "request_id": getattr(exc, "request_id", None),
        },
        "attempts": getattr(exc, "attempts", 1),
    }


# -- the job ----------------------------------------------------------------------------------


@dataclass
class JobSummary:
    """Counters of one job run (live while it runs)."""

    #: Input lines (only when counted up front, for progress).
    total_lines: int | None = None
    #: Items handed to the endpoint this run.
    sent: int = 0
    ok: int = 0
    failed: int = 0
    #: Ids already done ok in the output: not sent again.
    skipped: int = 0
    #: Bad input lines (invalid JSON, no prompt/messages, duplicate id...).
    bad_input: int = 0
    #: Attempts beyond the first (from the bulk run's stats).
    retried: int = 0
    #: 429 answers absorbed (from the bulk run's stats).
    rate_limited: int = 0
    #: Concurrency at the end and its highest value.
    concurrency: int = 0
    peak_concurrency: int = 0
    #: Lines removed from the output before resuming (failed ones, torn tail, garbage).
    dropped_failed: int = 0
    elapsed: float = 0.0

    @property
    def done(self) -> int:
        """Input lines accounted for so far."""
        return self.ok + self.failed + self.skipped + self.bad_input

    @property
    def rps(self) -> float:
        """Results per second this run."""
        return (self.ok + self.failed) / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def success(self) -> bool:
        """Every input line is done ok (now or in an earlier run)."""
        return self.failed == 0 and self.bad_input == 0

    def table(self, output: str) -> str:
        """The human summary printed at the end of ``azml batch``."""
        rows = [
            ("sent", f"{self.sent}"),
            ("ok", f"{self.ok}"),
            ("failed", f"{self.failed}"),
            ("bad input", f"{self.bad_input}"),
            ("skipped", f"{self.skipped}  (already done)"),
            ("retried", f"{self.retried}"),
            ("429s", f"{self.rate_limited}"),
            ("wall time", f"{self.elapsed:.2f} s"),
            ("req/s", f"{self.rps:.1f}"),
            ("concurrency", f"{self.concurrency}  (peak {self.peak_concurrency})"),
        ]
        lines = [f"azml batch -> {output}"] + [f"  {k:<13}{v}" for k, v in rows]
        if not self.success:
            lines.append(
                f"  {self.failed} failed, {self.bad_input} bad input line(s): fix the input if "
                "needed and rerun the same command to retry only those"
            )
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-able data (``azml batch --json``)."""
        return {
            "sent": self.sent,
            "ok": self.ok,
            "failed": self.failed,
            "skipped": self.skipped,
            "bad_input": self.bad_input,
            "retried": self.retried,
            "rate_limited": self.rate_limited,
            "concurrency": self.concurrency,
            "peak_concurrency": self.peak_concurrency,
            "elapsed_s": round(self.elapsed, 3),
            "rps": round(self.rps, 2),
        }


class BatchJob:
    """One run of a JSONL job: resume, stream the input through ``client.map``, write results.

    ``summary`` is updated live (a progress display may read it and :meth:`concurrency` while
    :meth:`run` runs). ``on_problem`` receives each bad input line.
    """

    def __init__(
        self,
        client: BulkClient,
        input_path: str | os.PathLike[str],
        output_path: str | os.PathLike[str],
        *,
        concurrency: Any = "auto",
        max_rps: float | None = None,
        max_tpm: float | None = None,
        on_problem: Callable[[InputProblem], None] | None = None,
        fsync_every: int = 256,
        fsync_interval: float = 1.0,
        total_lines: int | None = None,
    ) -> None:
        self.client = client
        self.input_path = os.fspath(input_path)
        self.output_path = os.fspath(output_path)
        self._map_options: dict[str, Any] = {
            "concurrency": concurrency,
            "max_rps": max_rps,
            "max_tpm": max_tpm,
        }
        self._on_problem = on_problem
        self._fsync = (fsync_every, fsync_interval)
        self.summary = JobSummary(total_lines=total_lines)
        self._run: _BulkRun | None = None
        self._started = time.monotonic()

    def _check_paths(self) -> None:
        if not os.path.isfile(self.input_path):
            raise ConfigurationError(f"input file {self.input_path!r} not found")
        out_dir = os.path.dirname(os.path.abspath(self.output_path))
        if not os.path.isdir(out_dir):
            raise ConfigurationError(f"output directory {out_dir!r} does not exist")
        if os.path.exists(self.output_path) and os.path.samefile(self.input_path, self.output_path):
            raise ConfigurationError("the output file must not be the input file")

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def concurrency(self) -> int:
        """The bulk run's current concurrency (0 before it starts)."""
        return self._run.stats.concurrency if self._run is not None else 0

    def progress_line(self) -> str:
        """One line of live progress: done/total, rate, errors, 429s, concurrency, ETA."""
        s, elapsed = self.summary, self.elapsed
        rate = (s.ok + s.failed) / elapsed if elapsed > 0 else 0.0
        total = s.total_lines if s.total_lines is not None else "?"
        eta = "?"
        if rate > 0 and isinstance(total, int) and total >= s.done:
            eta = f"{(total - s.done) / rate:.0f}s"
        return (
            f"{s.done}/{total} done  {rate:.1f} req/s  errors {s.failed + s.bad_input}  "
            f"429s {s.rate_limited}  concurrency {self.concurrency()}  ETA {eta}"
        )

    def _problem(self, problem: InputProblem) -> None:
        self.summary.bad_input += 1
        if self._on_problem is not None:
            self._on_problem(problem)

    def _requests(
        self, done: set[JobId], pending: dict[int, tuple[JobId, float]]
    ) -> Iterator[dict[str, Any]]:
        """The items to send, in input order; records each one's id and start in ``pending``."""
        seen: dict[JobId, int] = {}
        index = 0
        for entry in read_input(self.input_path):
            if isinstance(entry, InputProblem):
                self._problem(entry)
                continue
            first = seen.setdefault(entry.id, entry.line)
            if first != entry.line:
                message = f"duplicate id {entry.id!r} (first on line {first})"
                self._problem(InputProblem(entry.line, message))
                continue
            if entry.id in done:
                self.summary.skipped += 1
                continue
            pending[index] = (entry.id, time.monotonic())
            index += 1
            self.summary.sent += 1
            yield entry.request

    def _record_stats(self) -> None:
        run = self._run
        if run is None:
            return
        stats = run.stats
        self.summary.retried = stats.retried
        self.summary.rate_limited = stats.rate_limited
        self.summary.concurrency = stats.concurrency
        self.summary.peak_concurrency = max(self.summary.peak_concurrency, stats.concurrency)

    async def run(self) -> JobSummary:
        """Run the job to the end and return its summary (also on :attr:`summary`)."""
        self._check_paths()
        self._started = time.monotonic()
        resume = prepare_output(self.output_path)
        self.summary.dropped_failed = resume.failed_dropped
        pending: dict[int, tuple[JobId, float]] = {}
        every, interval = self._fsync
        with ResultWriter(self.output_path, fsync_every=every, fsync_interval=interval) as out:
            run = self._run = self.client.map(
                self._requests(resume.done, pending), **self._map_options
            )
            try:
                async for index, result in run:
                    item_id, started = pending.pop(index)
                    if isinstance(result, BaseException):
                        out.write(error_record(item_id, result))
                        self.summary.failed += 1
                    else:
                        latency_ms = round((time.monotonic() - started) * 1000)
                        out.write(ok_record(item_id, result, latency_ms))
                        self.summary.ok += 1
                    self._record_stats()
            finally:
                await run.aclose()
                self._record_stats()
                self.summary.elapsed = self.elapsed
        return self.summary


async def run_job(
    client: BulkClient,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    **options: Any,
) -> JobSummary:
    """Run one JSONL job (see the module docstring); ``options`` go to :class:`BatchJob`."""
    return await BatchJob(client, input_path, output_path, **options).run()
