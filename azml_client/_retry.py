"""Retry decisions as pure functions; tenacity only runs the loop (see ``_client.py``).

* :func:`parse_retry_after` reads how long the server asked us to wait.
* :func:`is_retryable_status` / :func:`is_retryable_error` say whether an answer is worth another
  attempt.
* :func:`backoff` is the exponential backoff with jitter used when the server said nothing.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ._constants import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_AFTER,
)
from ._exceptions import APIConnectionError, APIStatusError, ModelError

__all__ = [
    "RETRYABLE_STATUSES",
    "RetryPolicy",
    "backoff",
    "is_retryable_error",
    "is_retryable_status",
    "parse_retry_after",
]

#: Statuses worth another attempt; 424 depends on the model's own status (see below).
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How a call retries; every field can be overridden per call."""

    max_retries: int = DEFAULT_MAX_RETRIES
    backoff_base: float = DEFAULT_BACKOFF_BASE
    backoff_max: float = DEFAULT_BACKOFF_MAX
    #: A server asking for a longer wait than this fails at once (with ``retry_after`` set).
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the server asked to wait, or None.

    Order (as Azure's own SDKs read them): ``retry-after-ms``, ``x-ms-retry-after-ms`` (both
    milliseconds), then ``Retry-After`` as seconds or as an HTTP date. Negative or unreadable
    values are ignored.
    """
    h = _lower(headers)
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        value = h.get(name)
        if value is not None:
            try:
                ms = float(value.strip())
            except ValueError:
                continue
            if ms >= 0 and ms == ms and ms != float("inf"):
                return ms / 1000.0
    value = h.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        current = time.time() if now is None else now
        return max(0.0, when.timestamp() - current)
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        return None
    return seconds


def is_retryable_status(
    status: int, *, model_status: int | None = None, model_reason: str | None = None
) -> bool:
    """Whether an HTTP status deserves another attempt.

    A 424 (model container failed) is retried only when the model's own status is retryable or
    the reason says the model was not ready yet.
    """
    if status == 424:
        if model_status is not None and model_status in RETRYABLE_STATUSES:
            return True
        return (model_reason or "") in {"model_not_ready", "too_few_model_instance"}
    return status in RETRYABLE_STATUSES


def is_retryable_error(exc: BaseException) -> bool:
    """Whether an exception raised by one attempt deserves another attempt."""
    if isinstance(exc, APIConnectionError):
        return True
    if isinstance(exc, ModelError):
        return is_retryable_status(
            exc.status_code, model_status=exc.model_status_code, model_reason=exc.model_reason
        )
    if isinstance(exc, APIStatusError):
        return is_retryable_status(exc.status_code)
    return False


def backoff(
    attempt: int,
    *,
    base: float = DEFAULT_BACKOFF_BASE,
    cap: float = DEFAULT_BACKOFF_MAX,
    rand: Callable[[], float] = random.random,
) -> float:
    """Wait before retry number ``attempt`` (1-based): ``min(cap, base * 2**(attempt-1))``,
    scaled by a jitter factor in [0.5, 1.0) so clients that failed together spread out."""
    step = min(cap, base * (2 ** max(0, attempt - 1)))
    return float(step * (0.5 + rand() / 2))
