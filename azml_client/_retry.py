"""Retry decisions as pure functions; tenacity only runs the loop (see ``_http/_driver.py``).

* :func:`parse_retry_after` reads how long the server asked us to wait.
* :func:`is_retryable_status` / :func:`is_retryable_error` say whether an answer is worth another
  attempt.
* :func:`backoff` is the exponential backoff with jitter used when the server said nothing.
* :func:`decide` puts them together: after a failed attempt, retry or not, and how long to wait.
  It is the only place these rules meet, for single calls and bulk items alike.
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
from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    AzmlError,
    ConfigurationError,
    ModelError,
    RateLimitError,
)

__all__ = [
    "RETRYABLE_STATUSES",
    "RetryDecision",
    "RetryPolicy",
    "backoff",
    "decide",
    "honoured_retry_after",
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
    #: Retries allowed for 429 answers, counted apart from ``max_retries`` (None: 429s count
    #: against ``max_retries`` like any other retryable answer). Bulk runs use a larger budget:
    #: their pacing makes 429s rare, and the ones left are worth waiting for.
    max_rate_limit_retries: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_retries", "max_rate_limit_retries"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ConfigurationError(
                    f"RetryPolicy.{name} must be an integer >= 0 (0 disables retrying), "
                    f"got {value!r}"
                )
        for name in ("backoff_base", "backoff_max", "max_retry_after"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0 or value != value:
                raise ConfigurationError(
                    f"RetryPolicy.{name} must be a number of seconds >= 0, got {value!r}"
                )


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


@dataclass(frozen=True)
class RetryDecision:
    """What to do after a failed attempt: retry after ``wait`` seconds, or stop (``why``)."""

    retry: bool
    wait: float = 0.0
    #: Why the call stops (or, when it retries, what went wrong), for logs and error notes.
    why: str = ""


def decide(
    error: BaseException,
    *,
    retries: int,
    rate_limit_retries: int,
    policy: RetryPolicy,
    remaining: float | None,
    rand: Callable[[], float] = random.random,
) -> RetryDecision:
    """Retry or not after ``error``; pure, so it is tested as a table.

    ``retries`` / ``rate_limit_retries`` are the retries already made (429s counted apart when
    the policy gives them their own budget); ``remaining`` is what is left of the call's deadline
    (None: no deadline). The server's ``Retry-After`` wins over the backoff; a server that asks
    for longer than ``policy.max_retry_after``, or a wait that would pass the deadline, stops the
    call at once: the caller gets the error (with ``retry_after``) instead of a frozen call.
    """
    if not is_retryable_error(error):
        return RetryDecision(False, why="not retryable")
    separate = policy.max_rate_limit_retries is not None and isinstance(error, RateLimitError)
    if separate:
        assert policy.max_rate_limit_retries is not None
        if rate_limit_retries >= policy.max_rate_limit_retries:
            return RetryDecision(False, why="rate-limit retries exhausted")
        attempt = rate_limit_retries + 1
    else:
        if retries >= policy.max_retries:
            return RetryDecision(False, why="retries exhausted")
        attempt = retries + 1
    server = error.retry_after if isinstance(error, APIStatusError) else None
    if server is not None and server > policy.max_retry_after:
        return RetryDecision(
            False,
            why=f"the server asked to wait {server:g}s, more than max_retry_after "
            f"({policy.max_retry_after:g}s)",
        )
    wait = (
        server
        if server is not None
        else backoff(attempt, base=policy.backoff_base, cap=policy.backoff_max, rand=rand)
    )
    if remaining is not None and wait >= remaining:
        return RetryDecision(False, why="the deadline would pass before the next attempt")
    return RetryDecision(True, wait)


def honoured_retry_after(error: AzmlError, policy: RetryPolicy) -> float | None:
    """The wait the server asked for with ``error``, when ``policy`` may honour it (never
    more than its ``max_retry_after``); None otherwise."""
    retry_after = error.retry_after if isinstance(error, APIStatusError) else None
    if retry_after is None or retry_after > policy.max_retry_after:
        return None
    return retry_after
