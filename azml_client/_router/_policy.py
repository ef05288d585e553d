"""Routing decisions as pure functions and small state objects; nothing here awaits.

* :func:`is_failover_error`: whether another endpoint may answer where one failed;
* :func:`next_step`: after a failed attempt, go to another endpoint (after ``wait``) or stop;
* :class:`Health`: one endpoint's cooldown: failures in a row, until when it rests, probes;
* :func:`choose` / :class:`SmoothWeights`: which endpoint a call goes to, per strategy;
* :func:`label` / :func:`annotate`: what an attempt's error is called, and the ``tried`` list
  the router's final error carries.

Which failures fail over::

    APIConnectionError (refused, reset, timeout)    another endpoint; this one cools down
    5xx, 408, 429, a 424 the model may recover from another endpoint; this one cools down
    401, 403, 404                                   another endpoint: a key, a permission or a
                                                    route of this endpoint, not the request
    400, 413, 422, other 4xx, ResponseFormatError   raised at once: the request itself is wrong
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from .._exceptions import (
    APIConnectionError,
    APIStatusError,
    AzmlError,
    ConfigurationError,
    ModelError,
    RateLimitError,
)
from .._retry import RetryDecision, RetryPolicy, backoff, is_retryable_error

__all__ = [
    "STRATEGIES",
    "Health",
    "SmoothWeights",
    "Strategy",
    "View",
    "annotate",
    "choose",
    "cooldown",
    "is_failover_error",
    "label",
    "next_step",
]

Strategy = Literal["capacity", "weighted", "priority"]
STRATEGIES: tuple[Strategy, ...] = ("capacity", "weighted", "priority")

#: Statuses about the endpoint that answered (its key, its permissions, its route or
#: deployment), not about the request: another endpoint may well answer.
_ENDPOINT_STATUSES = frozenset({401, 403, 404})


def is_failover_error(error: BaseException) -> bool:
    """Whether another endpoint may answer where this attempt failed (see the module docstring)."""
    if isinstance(error, APIConnectionError):
        return True
    if not isinstance(error, APIStatusError):
        return False
    status = error.status_code
    if isinstance(error, ModelError):
        model = error.model_status_code
        return is_retryable_error(error) or (model is not None and model >= 500)
    return status >= 500 or status in (408, 429) or status in _ENDPOINT_STATUSES


def label(error: BaseException) -> str:
    """An attempt's error in a few words: ``"ServerError 503"``, ``"APIConnectionError"``."""
    name = type(error).__name__
    if isinstance(error, APIStatusError):
        return f"{name} {error.status_code}"
    return name


def annotate(error: AzmlError, tried: Sequence[tuple[str, str]], attempts: int) -> AzmlError:
    """Give the router's final error what was tried: ``error.tried`` (a list of ``(endpoint
    URL, error)`` pairs), ``attempts`` over all endpoints, and a note in the message.

    The error keeps its class (``except RateLimitError`` still works) and pickles with its new
    fields like any :class:`AzmlError`.
    """
    fields = vars(error)
    if fields.get("tried") is not None:
        return error  # annotated already (an error raised twice)
    tried_list = [(str(url), str(what)) for url, what in tried]
    fields["tried"] = tried_list
    if isinstance(error, APIConnectionError | APIStatusError):
        error.attempts = max(attempts, 1)
    if not tried_list:
        return error
    note = "tried " + "; ".join(f"{url} ({what})" for url, what in tried_list)
    old = fields.get("message")
    first = error.args[0] if error.args else None
    if isinstance(old, str):
        fields["message"] = f"{old} [{note}]"
        if first == old:
            error.args = (fields["message"], *error.args[1:])
    elif isinstance(first, str):
        error.args = (f"{first} [{note}]", *error.args[1:])
    return error


def next_step(
    error: BaseException,
    *,
    retries: int,
    rate_limit_retries: int,
    policy: RetryPolicy,
    remaining: float | None,
    wait: float | None,
) -> RetryDecision:
    """After a failed attempt: try again (on the endpoint the router picks) after
    ``decision.wait`` seconds, or stop.

    ``retries`` / ``rate_limit_retries`` are the retries the call made so far (429s apart when
    the policy gives them a budget of their own); ``remaining`` is what is left of the call's
    deadline (None: none); ``wait`` is how long until an endpoint can take the call (0: one can
    now; None: none ever can). The failed endpoint's own ``Retry-After`` does not count: it
    cools down while the call goes elsewhere; only a wait for every endpoint longer than
    ``policy.max_retry_after``, or past the deadline, stops the call.
    """
    if not is_failover_error(error):
        return RetryDecision(False, why="the request itself was refused: no other endpoint tried")
    if policy.max_rate_limit_retries is not None and isinstance(error, RateLimitError):
        if rate_limit_retries >= policy.max_rate_limit_retries:
            return RetryDecision(False, why="rate-limit retries exhausted")
    elif retries >= policy.max_retries:
        return RetryDecision(False, why="retries exhausted")
    if wait is None:
        return RetryDecision(False, why="no other endpoint can take the call")
    if wait > policy.max_retry_after:
        return RetryDecision(
            False,
            why=f"every endpoint rests for {wait:g}s or more, longer than max_retry_after "
            f"({policy.max_retry_after:g}s)",
        )
    if remaining is not None and wait >= remaining:
        return RetryDecision(False, why="the deadline would pass before an endpoint is free")
    return RetryDecision(True, max(0.0, wait))


def cooldown(
    error: BaseException,
    streak: int,
    policy: RetryPolicy,
    rand: Callable[[], float] = random.random,
) -> float:
    """How long an endpoint rests after ``error``: the server's ``Retry-After`` when it sent
    one, else the policy's backoff for the ``streak``-th failure in a row."""
    server = error.retry_after if isinstance(error, APIStatusError) else None
    if server is not None:
        return max(0.0, server)
    return backoff(max(1, streak), base=policy.backoff_base, cap=policy.backoff_max, rand=rand)


@dataclass
class Health:
    """One endpoint's cooldown state (time is passed in: ``now``).

    A failover-class failure counts one more failure in a row; past ``allowed_fails`` of them
    (or at once, for a server's ``Retry-After``) the endpoint rests for :func:`cooldown`.
    Failures of requests sent before the rest began belong to the same episode and add
    nothing (many requests in flight fail together). When the rest is over the endpoint is
    *recovering*: one request at a time probes it (``probing``) until one succeeds.
    """

    until: float = 0.0
    #: Failures in a row (no success between).
    streak: int = 0
    #: When the current rest began (failures of requests sent before it are the same episode).
    since: float = -math.inf
    #: It rested since its last success: one request at a time probes it.
    rested: bool = False
    #: That probe is in flight.
    probing: bool = False
    #: What made it rest (for the error of a call that finds every endpoint resting).
    reason: str = ""
    #: The error class and status of that failure, and the server's Retry-After, if any.
    kind: type[AzmlError] | None = None
    status: int | None = None

    def resting(self, now: float) -> float:
        """Seconds of rest left (0: it may be called)."""
        return max(0.0, self.until - now)

    def failed(
        self,
        error: AzmlError,
        *,
        sent_at: float,
        now: float,
        policy: RetryPolicy,
        allowed_fails: int = 0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        """Record a failover-class failure of a request sent at ``sent_at``."""
        server = error.retry_after if isinstance(error, APIStatusError) else None
        if sent_at < self.since:
            # The same episode: only a server asking for a longer rest extends it.
            if server is not None:
                self.until = max(self.until, now + server)
            return
        self.probing = False
        self.streak += 1
        if server is None and self.streak <= allowed_fails:
            return
        self.since = now
        self.rested = True
        rest = cooldown(error, self.streak - allowed_fails, policy, rand)
        self.until = max(self.until, now + rest)
        self.reason = label(error)
        self.kind = type(error)
        self.status = error.status_code if isinstance(error, APIStatusError) else None

    def succeeded(self) -> None:
        """A request succeeded: the endpoint is healthy again (a server's rest still runs)."""
        self.streak = 0
        self.rested = False
        self.probing = False

    def resting_error(self, url: str, now: float) -> AzmlError:
        """A fresh error for a call that found this endpoint resting and could not wait."""
        left = self.resting(now)
        message = f"{url} rests for {left:.3g}s more after {self.reason or 'failures'}"
        if self.kind is not None and issubclass(self.kind, APIStatusError) and self.status:
            from .._exceptions import status_error

            return status_error(self.status, message=message, retry_after=left, url=url)
        if self.kind is not None and issubclass(self.kind, APIConnectionError):
            return self.kind(message, url=url)
        return APIConnectionError(message, url=url)


@dataclass(frozen=True)
class View:
    """What a strategy sees of one endpoint when it routes a call."""

    position: int
    weight: float = 1.0
    #: Seconds of cooldown left (0: it may be called).
    resting: float = 0.0
    #: Recovering, with its one probe in flight: others first.
    probing: bool = False
    #: Failed this very call: others first.
    avoided: bool = False
    in_flight: int = 0
    #: The concurrency limit its budget learnt (bulk runs, and the router's own calls).
    limit: int = 8
    #: The pacing rate its budget learnt from 429s (requests/second), None before any.
    rate: float | None = None
    #: Requests the router sent it over the last second.
    recent: float = 0.0
    #: When the router last picked it (a counter): the least recent wins a tie.
    turn: int = 0


def spare(view: View) -> tuple[bool, float, int, int]:
    """The capacity strategy's key, largest first: a free concurrency slot, spare requests per
    second (the learnt rate less what was sent over the last second; unbounded before any
    429 taught a rate), fewer in flight, the least recently picked."""
    rate = math.inf if view.rate is None else view.rate - view.recent
    return (view.in_flight < view.limit, rate, -view.in_flight, -view.turn)


class SmoothWeights:
    """Smooth weighted round robin (nginx's): over any run of calls each endpoint gets its
    share of the weights, interleaved (3:1 gives A A B A, A A B A, ...), deterministically."""

    def __init__(self) -> None:
        self._current: dict[int, float] = {}

    def pick(self, views: Iterable[View]) -> View:
        chosen: View | None = None
        candidates = list(views)
        total = sum(v.weight for v in candidates)
        for view in candidates:
            current = self._current.get(view.position, 0.0) + view.weight
            self._current[view.position] = current
            if chosen is None or current > self._current[chosen.position]:
                chosen = view
        assert chosen is not None
        self._current[chosen.position] -= total
        return chosen


def _eligible(views: Sequence[View]) -> list[View]:
    """Endpoints not resting; those that failed this call or are being probed only when no
    other is left."""
    awake = [v for v in views if v.resting <= 0]
    free = [v for v in awake if not v.probing]
    return [v for v in free if not v.avoided] or free or awake


def choose(
    strategy: Strategy, views: Sequence[View], weights: SmoothWeights
) -> tuple[View | None, float | None]:
    """The endpoint a call goes to, or ``(None, wait)``: every endpoint that can take the call
    rests, the first for ``wait`` more seconds (``wait`` None: ``views`` is empty).

    ``capacity``: the largest :func:`spare` capacity; ``weighted``: :class:`SmoothWeights`
    over the positive weights (zero-weight endpoints are standbys, used when no weighted one
    is awake); ``priority``: the first in the list.
    """
    if not views:
        return None, None
    eligible = _eligible(views)
    if not eligible:
        return None, min(v.resting for v in views)
    if strategy == "priority":
        return min(eligible, key=lambda v: v.position), None
    if strategy == "weighted":
        weighted = [v for v in eligible if v.weight > 0]
        if weighted:
            return weights.pick(weighted), None
        return min(eligible, key=lambda v: v.position), None
    if strategy == "capacity":
        return max(eligible, key=spare), None
    raise ConfigurationError(f"unknown strategy {strategy!r}: use {', '.join(STRATEGIES)}")
