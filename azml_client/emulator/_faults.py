"""Seeded fault decisions: a token bucket, one guarded RNG, and the draws made from it.

Every random decision of an app (faults and the traffic split) comes from one
``random.Random(seed)``, guarded by a lock, and a draw is only made when the matching setting is
non-zero, so the same seed, settings and request order reproduce the same run.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Sequence

from azml_client.emulator._config import Faults

__all__ = ["FaultInjector", "TokenBucket", "retry_after_headers"]


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
