"""The ids of a job's input, kept compactly: duplicate detection in flat memory.

A dict of every id read (with its line) costs about 100 bytes an id, so a 10-million-line
input would hold a gigabyte for this alone. :class:`IdIndex` keeps each id as a 64-bit hash
(``blake2b``) with its line number, 16 bytes an id, in an LSM-style list of sorted arrays:

* the newest ids go to a small dict;
* when it holds ``fresh`` ids they are sorted into an ``array('Q')`` run of keys (and one of
  lines), and runs of equal or smaller size are merged into it (``heapq.merge``, streamed), so
  sizes double from the newest run to the oldest and there are about ``log2(n / fresh)`` runs;
* a lookup is a dict probe and one ``bisect`` per run.

Hash collisions: two distinct ids with the same 64-bit hash (odds about ``n**2 / 2**65``,
3e-10 for 100,000 ids) make the later one look like a duplicate of the earlier. The job then
reports that line as a bad input line naming the other id's line (:class:`InputProblem`,
counted in ``bad_input``): an item is never dropped silently, and never sent twice.
"""

from __future__ import annotations

import hashlib
import heapq
from array import array
from bisect import bisect_left

from ._input import JobId

__all__ = ["IdIndex", "id_key"]

#: Ids kept in the dict before they are sorted into a run.
_FRESH = 4096


def id_key(item_id: JobId) -> int:
    """The 64-bit hash of an id; ``"1"`` and ``1`` differ (a lone surrogate is fine too)."""
    if isinstance(item_id, str):
        raw = b"s" + item_id.encode("utf-8", "surrogatepass")
    else:
        raw = b"i" + str(item_id).encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little")


class _Run:
    """Sorted, distinct keys and the line of each."""

    __slots__ = ("keys", "lines")

    def __init__(self, keys: array[int], lines: array[int]) -> None:
        self.keys = keys
        self.lines = lines

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, key: int) -> int | None:
        i = bisect_left(self.keys, key)
        return self.lines[i] if i < len(self.keys) and self.keys[i] == key else None


def _merge(older: _Run, newer: _Run) -> _Run:
    """One run of both (their keys are distinct), built without a list of all the pairs."""
    keys: array[int] = array("Q")
    lines: array[int] = array("Q")
    older_pairs = zip(older.keys, older.lines, strict=True)
    for key, line in heapq.merge(older_pairs, zip(newer.keys, newer.lines, strict=True)):
        keys.append(key)
        lines.append(line)
    return _Run(keys, lines)


class IdIndex:
    """The ids seen so far, each with the line it was first seen on.

    ``index.add(item_id, line)`` returns ``None`` for a new id (now recorded) and the earlier
    line for one seen before. See the module docstring for the layout and for collisions.
    """

    def __init__(self, fresh: int = _FRESH) -> None:
        self._fresh_limit = max(1, fresh)
        self._fresh: dict[int, int] = {}
        #: Oldest (largest) first.
        self._runs: list[_Run] = []

    def __len__(self) -> int:
        return len(self._fresh) + sum(len(run) for run in self._runs)

    def __contains__(self, item_id: JobId) -> bool:
        return self.line_of(item_id) is not None

    @property
    def runs(self) -> list[int]:
        """The sizes of the sorted runs, oldest first (for tests and curiosity)."""
        return [len(run) for run in self._runs]

    def line_of(self, item_id: JobId) -> int | None:
        """The line ``item_id`` was first seen on, or ``None``."""
        return self._find(id_key(item_id))

    def add(self, item_id: JobId, line: int) -> int | None:
        """Record ``item_id`` as seen on ``line``; if it was seen before, the earlier line."""
        key = id_key(item_id)
        earlier = self._find(key)
        if earlier is not None:
            return earlier
        self._fresh[key] = line
        if len(self._fresh) >= self._fresh_limit:
            self._flush()
        return None

    def _find(self, key: int) -> int | None:
        line = self._fresh.get(key)
        if line is not None:
            return line
        for run in reversed(self._runs):  # the newest first: small and likely for near repeats
            line = run.find(key)
            if line is not None:
                return line
        return None

    def _flush(self) -> None:
        pairs = sorted(self._fresh.items())
        self._fresh = {}
        run = _Run(array("Q", [k for k, _ in pairs]), array("Q", [n for _, n in pairs]))
        while self._runs and len(self._runs[-1]) <= len(run):
            run = _merge(self._runs.pop(), run)
        self._runs.append(run)
