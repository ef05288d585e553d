"""Seeded fault decisions: a token bucket, one guarded RNG, and the draws made from it.

Every random decision of an app (faults and the traffic split) comes from one
``random.Random(seed)``, guarded by a lock, and a draw is only made when the matching setting is
non-zero, so the same seed, settings and request order reproduce the same run.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import random
import re
import threading
import time
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from azml_client.emulator._config import Faults

__all__ = ["FaultFlag", "FaultInjector", "TokenBucket", "fault_flags", "retry_after_headers"]


class TokenBucket:
    """Classic token bucket: ``rate`` tokens per second, at most ``capacity`` stored."""

    def __init__(
        self, rate: float, capacity: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._capacity = float(capacity)
        self._tokens = float(capacity)
        self._clock = clock
        self._stamp = clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """Take one token: ``0.0`` when allowed, else the seconds until a token is available."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self._rate


def retry_after_headers(wait: float) -> dict[str, str]:
    """``Retry-After`` (whole seconds, rounded up, at least 1) and ``retry-after-ms``."""
    return {
        "retry-after": str(max(1, math.ceil(wait))),
        "retry-after-ms": str(max(1, math.ceil(wait * 1000))),
    }


class FaultInjector:
    """Owns the seeded RNG and the token bucket of one app."""

    def __init__(self, faults: Faults, seed: int) -> None:
        self.faults = faults
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        rate = faults.rate_limit_rps
        self._bucket = None if rate is None else TokenBucket(rate, faults.bucket_capacity)

    def _draw(self) -> float:
        with self._lock:
            return self._rng.random()

    def chance(self, fraction: float) -> bool:
        """``True`` with probability ``fraction`` (no draw at all when it is 0)."""
        return fraction > 0 and self._draw() < fraction

    def pick_weighted(self, weights: Sequence[float]) -> int | None:
        """Index chosen with probability proportional to its weight; ``None`` if all are 0."""
        total = sum(weights)
        if total <= 0:
            return None
        if sum(1 for w in weights if w > 0) == 1:
            return next(i for i, w in enumerate(weights) if w > 0)
        point = self._draw() * total
        for index, weight in enumerate(weights):
            point -= weight
            if point < 0 and weight > 0:
                return index
        return max(i for i, w in enumerate(weights) if w > 0)

    def rate_limited(self) -> float:
        """Seconds to wait when the token bucket is empty, else ``0.0``."""
        return 0.0 if self._bucket is None else self._bucket.take()

    @property
    def timed_out(self) -> bool:
        """``latency`` exceeds ``request_timeout_ms``: every request ends in 408."""
        return self.faults.latency * 1000 > self.faults.request_timeout_ms

    def pick_error(self) -> int | None:
        """One draw deciding between 503, 500, 424, 408 and "no error"."""
        f = self.faults
        table = ((503, f.error_503), (500, f.error_500), (424, f.error_424), (408, f.error_408))
        if not any(fraction for _, fraction in table):
            return None
        point = self._draw()
        for status, fraction in table:
            if point < fraction:
                return status
            point -= fraction
        return None

    def pick_fms_fault(self) -> str | None:
        """``vllm`` only: ``"error_in_200"``, ``"empty_200"`` or ``None``, from one draw."""
        f = self.faults
        if not (f.error_in_200 or f.empty_200):
            return None
        point = self._draw()
        if point < f.error_in_200:
            return "error_in_200"
        return "empty_200" if point < f.error_in_200 + f.empty_200 else None


# -- command-line flags: one per ``Faults`` field, derived from the field -------------------

#: Flag names shorter than their field's (kept from the first release of ``azml emulate``).
#: Every other field's flag is its own name with dashes: ``error_503`` -> ``--error-503``.
_SHORT_NAMES = {
    "rate_limit_rps": "rate-limit",
    "max_concurrent_requests_per_instance": "max-concurrent",
    "instance_count": "instances",
}


@dataclass(frozen=True)
class FaultFlag:
    """The command-line flag of one :class:`Faults` field.

    Name, type, help and validation all come from the field: its name, its annotation, its entry
    in the ``Attributes:`` section of the docstring, and :class:`Faults`'s own checks. A new
    field therefore gets its flag (on ``azml emulate`` and, prefixed, on every ``--emulator``
    command) without touching the command line.
    """

    field: str
    name: str
    kind: type[int] | type[float]
    metavar: str
    help: str

    def parse(self, text: str) -> int | float:
        """``text`` as a value of the field, checked by :class:`Faults`; ``ValueError`` if not."""
        try:
            value = self.kind(text)
        except ValueError:
            expected = "an integer" if self.kind is int else "a number"
            raise ValueError(f"expected {expected}, got {text!r}") from None
        settings: dict[str, Any] = {self.field: value}
        try:
            Faults(**settings)
        except ValueError as exc:
            message = str(exc)
            raise ValueError(message.removeprefix(f"{self.field} ")) from None
        return value


def _field_docs() -> dict[str, str]:
    """``{field: text}`` from the ``Attributes:`` section of the ``Faults`` docstring."""
    _, _, section = inspect.cleandoc(Faults.__doc__ or "").partition("Attributes:\n")
    docs: dict[str, str] = {}
    current = ""
    for line in section.splitlines():
        entry = re.match(r" {4}(\w+): (.*)", line)
        if entry:
            current = entry[1]
            docs[current] = entry[2]
        elif current and line.startswith(" " * 8):
            docs[current] += " " + line.strip()
        elif line.strip():
            break
    return {name: text.replace("``", "") for name, text in docs.items()}


def _metavar(name: str, kind: type, doc: str) -> str:
    if "fraction" in doc.lower():
        return "FRACTION"
    if doc.startswith("Seconds"):
        return "SECONDS"
    if name.endswith(("_ms", "_rps")):
        return name.rsplit("_", 1)[1].upper()
    return "N" if kind is int else "X"


def fault_flags() -> tuple[FaultFlag, ...]:
    """One :class:`FaultFlag` per :class:`Faults` field, in field order."""
    hints = typing.get_type_hints(Faults)
    docs = _field_docs()
    flags = []
    for item in dataclasses.fields(Faults):
        hint = hints[item.name]
        kind: type[int] | type[float] = int if int in (hint, *typing.get_args(hint)) else float
        doc = docs.get(item.name, "")
        name = _SHORT_NAMES.get(item.name, item.name.replace("_", "-"))
        flags.append(FaultFlag(item.name, name, kind, _metavar(item.name, kind, doc), doc))
    return tuple(flags)
