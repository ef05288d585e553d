"""``azml batch --ray``: a JSONL (or Parquet) job through Ray Data, resumable by its output's ids.

The same job as :mod:`azml_client._bulk._jobs`, run by actors instead of one process: the input
is read by Ray (``read_json`` / ``read_parquet``), each row is called by :func:`infer`, and the
driver writes one output line per id, in the same format, to the same kind of locked, appended
file. So resuming works the same way: before the run the output is scanned (torn last line and
failed lines dropped, ``ok`` ids collected) and the rows of those ids are filtered out before
any actor sees them; they are never sent again. Every id ends up in the output exactly once.

Differences from the one-process job: every input row needs an ``id`` (there is no line number
to fall back on); a line that is not valid JSON stops the read (Ray reads whole blocks); a
duplicate id is reported when its second result comes back (it was sent). Nothing here prints:
problems go to ``on_problem``, progress to ``on_progress``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from .._bulk._jobs import JobSummary, ResultWriter, encode_line, prepare_output
from .._bulk._jobs._ids import IdIndex
from .._bulk._jobs._paths import OutputLock, check_paths, output_error
from .._bulk._jobs._summary import ErrorTally
from .._exceptions import ConfigurationError
from ._columns import OUTPUT_COLUMNS
from ._config import settings_of
from ._coordinator import pace_coordinator
from ._infer import infer

__all__ = ["read_rows", "run_ray_job"]

_PARQUET = (".parquet", ".pq")


def read_rows(path: str, *, num_cpus: float = 0.25) -> Any:
    """The input as a Ray dataset: Parquet by its suffix (``.parquet``, ``.pq``), JSON lines
    otherwise."""
    import ray.data

    if path.lower().endswith(_PARQUET):
        return ray.data.read_parquet(path, num_cpus=num_cpus)
    return ray.data.read_json(path, num_cpus=num_cpus)  # Arrow's reader reads JSON lines


def _skip_done(done: frozenset[Any]) -> Callable[[Any], Any]:
    def skip(batch: Any) -> Any:
        import pyarrow as pa

        keep = [value not in done for value in batch.column("id").to_pylist()]
        return batch.filter(pa.array(keep, type=pa.bool_()))

    return skip


def _tally(tallies: dict[str, ErrorTally], item_id: Any, kind: str, message: str) -> None:
    if kind in tallies:
        tallies[kind].count += 1
    else:
        tallies[kind] = ErrorTally(kind, 1, item_id, " ".join(message.split())[:200])


def _record(summary: JobSummary, row: Mapping[str, Any]) -> dict[str, Any]:
    """Count one result row and return its output line (the one-process job's format)."""
    item_id = row["id"]
    kind = row["error_type"]
    if kind is None:
        summary.sent += 1
        summary.ok += 1
        summary.retried += max(0, (row["attempts"] or 1) - 1)
        usage = {k: row[k] for k in ("prompt_tokens", "completion_tokens") if row[k] is not None}
        summary.tokens_in += usage.get("prompt_tokens", 0)
        summary.tokens_out += usage.get("completion_tokens", 0)
        return {
            "id": item_id,
            "ok": True,
            "text": row["text"],
            "finish_reason": row["finish_reason"],
            "usage": usage or None,
            "attempts": row["attempts"],
            "latency_ms": row["latency_ms"],
        }
    message = row["error_message"] or kind
    if kind == ConfigurationError.__name__:  # refused before sending
        summary.rejected += 1
        _tally(summary.rejections, item_id, kind, message)
    else:
        summary.sent += 1
        summary.failed += 1
        summary.retried += max(0, (row["attempts"] or 1) - 1)
        _tally(summary.failures, item_id, kind, message)
    return {
        "id": item_id,
        "ok": False,
        "error": {"type": kind, "status": row["status"], "message": message, "request_id": None},
        "attempts": row["attempts"],
    }


def run_ray_job(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    config: Any,
    *,
    actors: int = 4,
    max_rps: float | None = None,
    max_tpm: float | None = None,
    params: Mapping[str, Any] | None = None,
    total: int | None = None,
    summary: JobSummary | None = None,
    on_problem: Callable[[str], None] | None = None,
    on_progress: Callable[[JobSummary], None] | None = None,
    fsync_every: int = 256,
    fsync_interval: float = 1.0,
) -> JobSummary:
    """Run (or resume) one job on the running Ray cluster; return its summary.

    ``config`` is a client config file or settings dict (see :func:`infer`); ``params`` are
    model parameters for every row (a row's ``params`` win). ``total`` (input rows, when known)
    lets the summary count the rows skipped as done. Raises ``JobError`` for local problems
    (paths, the lock, the disk) and ``ConfigurationError`` for an input without ids.
    """
    source, target = os.fspath(input_path), os.fspath(output_path)
    check_paths(source, target)
    settings = settings_of(config)
    summary = summary if summary is not None else JobSummary()
    lock = OutputLock(target)
    try:
        lock.acquire()
        resume = prepare_output(target, lock)
    except OSError as exc:
        lock.release()
        raise output_error(exc, target) from None
    except BaseException:
        lock.release()
        raise
    try:
        summary.resumed = len(resume.done)
        summary.dropped_failed = resume.failed_dropped
        ds = read_rows(source)
        names = set(ds.schema().names)
        if "id" not in names:
            raise ConfigurationError(
                f"{source!r} has no 'id' column: azml batch --ray matches results to rows by id "
                "(to resume); give every line an id, or run without --ray"
            )
        if resume.done:
            ds = ds.map_batches(_skip_done(frozenset(resume.done)), batch_format="pyarrow")
        coordinator = pace_coordinator(settings, max_rps=max_rps)
        out = infer(
            ds,
            settings,
            prompt_column="prompt" if "prompt" in names else None,
            messages_column="messages" if "messages" in names else None,
            params_column="params" if "params" in names else None,
            actors=actors,
            max_rps=max_rps,
            max_tpm=max_tpm,
            **dict(params or {}),
        ).select_columns(["id", *OUTPUT_COLUMNS])
        summary.started = time.monotonic()
        fsync = (fsync_every, fsync_interval)
        rows = _write(out, target, summary, on_problem, on_progress, fsync)
        summary.rate_limited = int(_snapshot(coordinator).get("rate_limited", 0))
        summary.skipped = len(resume.done) if total is None else max(0, total - rows)
    finally:
        summary.finished = time.monotonic()
        lock.release()
    return summary


def _write(
    out: Any,
    target: str,
    summary: JobSummary,
    on_problem: Callable[[str], None] | None,
    on_progress: Callable[[JobSummary], None] | None,
    fsync: tuple[int, float],
) -> int:
    """Stream the results to the output, one line per id, as they come back; return the
    number of rows that came back."""
    try:
        writer = ResultWriter(target, fsync_every=fsync[0], fsync_interval=fsync[1])
    except OSError as exc:
        raise output_error(exc, target) from None
    seen = IdIndex()
    rows = 0
    try:
        for batch in out.iter_batches(batch_format="pyarrow", batch_size=None):
            rows += batch.num_rows
            lines: list[bytes] = []
            for row in batch.to_pylist():
                item_id = row["id"]
                if item_id is None or isinstance(item_id, bool):
                    summary.bad_input += 1
                    if on_problem is not None:
                        on_problem("a row without an 'id' was sent but cannot be recorded")
                    continue
                if seen.add(item_id, 0) is not None:
                    summary.bad_input += 1
                    if on_problem is not None:
                        on_problem(f"duplicate id {item_id!r}: only its first result is kept")
                    continue
                lines.append(encode_line(_record(summary, row)))
            if lines:
                writer.write_lines(b"".join(lines), len(lines))
            if on_progress is not None:
                on_progress(summary)
    except OSError as exc:
        raise output_error(exc, target, writer.lines) from None
    finally:
        writer.close()
    return rows


def _snapshot(coordinator: Any) -> dict[str, Any]:
    import ray

    try:
        snapshot: dict[str, Any] = ray.get(coordinator.snapshot.remote(), timeout=10)
    except Exception:  # the counts are a nicety; the results are written
        return {}
    return snapshot
