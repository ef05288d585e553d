"""Resumable, crash-safe JSONL batch jobs: the engine of ``azml batch``.

Input (read line by line, never whole), for the default task ``generate``::

    {"id": "q1", "prompt": "Write a haiku about rain", "params": {"max_tokens": 32}}
    {"id": "q2", "messages": [{"role": "user", "content": "Hi"}]}

and for ``task="embeddings"`` (``params`` may hold ``input_type``, ``dimensions``, ...)::

    {"id": "d1", "input": "a text to embed"}
    {"id": "d2", "input": ["several", "texts"]}

``id`` (a string or an integer) defaults to the 1-based line number; ``params`` is optional.
Blank lines are ignored; keys the task does not read are ignored. A bad line (invalid JSON, not
an object, without the task's ``prompt``/``messages`` or ``input``, a malformed field, or an id
seen before in the file) is reported through ``on_problem`` with its line number, counted in
:attr:`JobSummary.bad_input`, and **not** written to the output: the output only ever holds
results, one line per id.

Output (one line per finished id)::

    {"id": "q1", "ok": true, "text": "...", "finish_reason": "stop", "usage": {...},
     "attempts": 1, "latency_ms": 212}
    {"id": "d1", "ok": true, "vector": [0.12, ...], "usage": {...}, "attempts": 1,
     "latency_ms": 35}
    {"id": "d2", "ok": true, "vectors": [[...], [...]], "usage": {...}, ...}
    {"id": "q2", "ok": false, "error": {"type": "ServerError", "status": 503, "message": "...",
     "request_id": "..."}, "attempts": 3}

Anything a JSON string can hold is written: a lone surrogate (valid in JSON, not in UTF-8) is
written as its ``\\uXXXX`` escape, so the line stays valid UTF-8 and reads back the same.

Resume and crash safety:

* The output is locked for the whole job (``flock`` on POSIX), so a second job on the same
  file is refused at once (:class:`JobError` ``"locked"``).
* Every result line is written whole (newline included) on an ``O_APPEND`` descriptor, by a
  writer thread: the event loop never waits on the disk. A crash leaves at worst one torn
  *last* line.
* On start the output is scanned: a torn last line (no newline) is dropped, ids with an
  ``ok: true`` line are skipped this time. If the file holds anything else (failed lines, lines
  that do not parse, a repeated ok id), it is first rewritten without them into a temporary file
  that is fsynced and atomically renamed over the output; otherwise a torn tail is truncated.
  Failed ids are thus retried, and no id ever has two lines.
* Lines are fsynced every ``fsync_every`` lines or ``fsync_interval`` seconds, and at the end.
  (After ``kill -9`` the kernel still has every line written; fsync only matters for power loss.)

Local problems (a missing input, an unwritable output, a full disk, another job's lock) raise
:class:`JobError`, whose ``reason`` tells them apart; nothing here prints. Use::

    summary = await run_job(client, "in.jsonl", "out.jsonl", concurrency=8)

or, to fail on local problems before connecting, ``with BatchJob(...) as job`` (checks, locks,
resumes) then ``await job.run(client)``.

Memory stays flat with the input's length: lines are read as they are sent, results written as
they come, and the ids seen (for duplicates) are kept as 64-bit hashes with their lines, 16
bytes an id (:mod:`._ids`; a hash collision can only make a distinct id reported as a
duplicate, never dropped silently). The ids done in an earlier run are a plain set.

Modules: ``_input`` (reading lines into checked :class:`~azml_client._bulk._items.Item`
objects), ``_ids`` (the compact id index), ``_paths`` (checks, the lock, :class:`JobError`),
``_output`` (resume, encoding, the writer thread), ``_summary`` (records and counters),
``_job`` (the run).
"""

from ._input import EMBEDDING_OPTIONS as EMBEDDING_OPTIONS
from ._input import TASKS as TASKS
from ._input import InputProblem as InputProblem
from ._input import JobItem as JobItem
from ._input import Task as Task
from ._input import count_lines as count_lines
from ._input import read_input as read_input
from ._job import BatchJob as BatchJob
from ._job import BulkClient as BulkClient
from ._job import run_job as run_job
from ._output import ResultWriter as ResultWriter
from ._output import ResumeState as ResumeState
from ._output import encode_line as encode_line
from ._output import prepare_output as prepare_output
from ._paths import JobError as JobError
from ._paths import OutputLock as OutputLock
from ._paths import check_paths as check_paths
from ._summary import ErrorTally as ErrorTally
from ._summary import JobSummary as JobSummary
from ._summary import embeddings_record as embeddings_record
from ._summary import error_record as error_record
from ._summary import ok_record as ok_record

__all__ = [
    "EMBEDDING_OPTIONS",
    "TASKS",
    "BatchJob",
    "BulkClient",
    "ErrorTally",
    "InputProblem",
    "JobError",
    "JobItem",
    "JobSummary",
    "OutputLock",
    "ResultWriter",
    "ResumeState",
    "Task",
    "check_paths",
    "count_lines",
    "embeddings_record",
    "encode_line",
    "error_record",
    "ok_record",
    "prepare_output",
    "read_input",
    "run_job",
]
