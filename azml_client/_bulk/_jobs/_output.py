"""The output of a job: resume scan and rewrite, line encoding, and the writer off the loop."""

from __future__ import annotations

import json
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import anyio
import anyio.to_thread

from ._input import JobId, load_json, valid_id
from ._paths import JobError, OutputLock, output_error

__all__ = ["BackgroundWriter", "ResultWriter", "ResumeState", "encode_line", "prepare_output"]

#: Encoded result lines waiting for the writer thread before the consumer waits.
_WRITE_QUEUE = 1024


_SURROGATE = re.compile("[\\ud800-\\udfff]")


def encode_line(record: dict[str, Any]) -> bytes:
    """One JSON line in UTF-8; lone surrogates become ``\\uXXXX`` escapes, valid JSON that reads
    back the same (``ensure_ascii=False`` keeps every other character readable)."""
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
    try:
        return text.encode()
    except UnicodeEncodeError:  # surrogates only occur inside JSON strings: escape them there
        return _SURROGATE.sub(lambda m: f"\\u{ord(m[0]):04x}", text).encode()


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
            data = load_json(raw)
        except ValueError:
            yield raw, "invalid", None
            continue
        item_id = data.get("id") if isinstance(data, dict) else None
        if not valid_id(item_id):
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


def prepare_output(path: str | os.PathLike[str], lock: OutputLock | None = None) -> ResumeState:
    """Make ``path`` hold only ok lines, one per id, each newline-terminated; return the state.

    Crash-safe: a rewrite goes to a temporary file, is fsynced, then renamed over ``path`` (and
    ``lock``, when given, follows it to the new file).
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
                if lock is not None:
                    lock.follow(dst.fileno())
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
    """Appends JSON lines to a file with ``os.write`` on an ``O_APPEND`` descriptor (blocking).

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
        self.write_lines(encode_line(record), 1)

    def write_lines(self, data: bytes, count: int) -> None:
        """Append ``count`` whole encoded lines."""
        if self._fd is None:
            raise ValueError("the result file is closed")
        view = memoryview(data)
        while view:  # a short write happens only on a full disk or a signal; finish the lines
            view = view[os.write(self._fd, view) :]
        self.lines += count
        self._unsynced += count
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


class BackgroundWriter:
    """Feeds a :class:`ResultWriter` from a dedicated thread, through a bounded queue.

    The event loop only enqueues encoded lines; the thread writes all those waiting with one
    ``os.write`` and fsyncs as the writer decides. A full queue (a slow disk) makes the consumer
    wait in a worker thread, never the loop. The thread's error (a full disk) is raised, as a
    :class:`JobError`, by the next :meth:`put` or by :meth:`aclose`.
    """

    def __init__(self, writer: ResultWriter) -> None:
        self._writer = writer
        self._queue: queue.Queue[bytes | None] = queue.Queue(_WRITE_QUEUE)
        self._error: JobError | None = None
        self._raised = False
        self._thread = threading.Thread(target=self._drain, name="azml-job-writer", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        stop = False
        while not stop:
            lines = [self._queue.get()]
            while len(lines) < _WRITE_QUEUE:
                try:
                    lines.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = lines[-1] is None
            data = [line for line in lines if line is not None]
            try:
                if self._error is None and data:  # after an error, drain without writing
                    self._writer.write_lines(b"".join(data), len(data))
            except Exception as exc:  # the thread must go on draining, or put() would block
                self._fail(exc)
            if stop:
                try:
                    self._writer.close()  # closes the descriptor even when the fsync fails
                except Exception as exc:
                    self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        if self._error is not None:
            return
        path, written = self._writer.path, self._writer.lines
        if isinstance(exc, OSError):
            self._error = output_error(exc, path, written)
        else:
            message = f"writing {path!r} failed: {exc!r}"
            self._error = JobError("write_failed", message, path=path, written=written)

    def _check(self) -> None:
        if self._error is not None and not self._raised:
            self._raised = True
            raise self._error

    async def put(self, line: bytes) -> None:
        self._check()
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            await anyio.to_thread.run_sync(self._queue.put, line)

    async def aclose(self) -> None:
        """Write what is queued, fsync, close; then raise the thread's error if not raised yet."""
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._queue.put, None)
            await anyio.to_thread.run_sync(self._thread.join)
        self._check()
