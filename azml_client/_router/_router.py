"""``EndpointRouter``: one client over several endpoints of the same model.

Each endpoint keeps its own :class:`EndpointClient` (its formatter, auth, connection pool and
:class:`RateBudget`); the router decides where each call goes and runs the one retry loop
across them::

    EndpointRouter._call(op, send)
      pick (``_policy.choose``: the strategy over endpoints that can serve ``op``, awake first)
      -> client call with max_retries=0 and what is left of the deadline (one attempt)
      -> success: the endpoint is healthy; its budget learns from the answer
      -> failure: ``_policy.next_step`` (pure): another endpoint (after a wait only when every
         endpoint rests), or raise the error with ``tried``; the endpoint cools down
         (``_policy.Health``)

A :class:`ConfigurationError` raised by a client before sending (a chat on a text-only
formatter, tools on a family that cannot send them) skips that endpoint without counting a
retry. Bulk runs are in ``_bulk.py``, streams in ``_stream.py``.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import (
    AsyncIterable,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
    Sized,
)
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import httpx

from .._client import EndpointClient, Message
from .._constants import DEFAULT_BULK_RATE_LIMIT_RETRIES, NOT_GIVEN, NotGiven
from .._exceptions import (
    APITimeoutError,
    AzmlError,
    ClientClosedError,
    ConfigurationError,
    RateLimitError,
)
from .._retry import RetryPolicy, honoured_retry_after
from .._types import ChatCompletion, Completion, Embeddings
from ._endpoint import Endpoint, EndpointArg, able, client_of
from ._policy import (
    STRATEGIES,
    SmoothWeights,
    Strategy,
    annotate,
    choose,
    is_failover_error,
    label,
    next_step,
)

if TYPE_CHECKING:
    from .._bulk import Concurrency
    from ._bulk import RouterResults, RouterRun
    from ._stream import RouterStream

__all__ = ["EndpointArg", "EndpointRouter"]

logger = logging.getLogger("azml_client")

_R = TypeVar("_R")


class EndpointRouter:
    """Several endpoints of one model behind one client: routing, failover, cooldowns.

    Example (two regions, the larger quota first)::

        async with EndpointRouter(
            ["eastus.json", "westus.json"],        # saved configs, settings dicts or clients
            strategy="capacity",                   # or "weighted" (weights=[3, 1]), "priority"
        ) as router:
            reply = await router.chat([{"role": "user", "content": "Hi"}])
            print(reply.text, reply.endpoint_url)  # which endpoint answered
            results = await router.batch(prompts)  # every endpoint at its own learnt limit
            print(results.stats.as_dict())

    Strategies: ``capacity`` sends where the learnt spare capacity is largest (each client's
    :class:`RateBudget`: its pacing rate and concurrency, less what is in flight and was just
    sent); ``weighted`` follows ``weights`` like a traffic split (a weight of 0 is a standby);
    ``priority`` uses the first healthy endpoint and the rest as fallbacks.

    A connection error, a 5xx, a 408, a 429 (when another endpoint is free, or its
    ``Retry-After`` exceeds what the call can wait), a 401/403/404 or a retryable 424 sends
    the call to another endpoint, within the call's retry budget (``retry`` /
    ``max_retries``, per call too) and ``deadline``; the failing endpoint rests for its
    ``Retry-After`` (or a backoff growing with its failures in a row, after
    ``allowed_fails`` tolerated ones) and is probed by one call when the rest is over. A 400,
    422 or other error about the request itself is raised at once. The final error carries
    ``tried``: ``(endpoint URL, error)`` for every attempt. Endpoints may differ in kind and
    formatter: a call goes only to endpoints that can serve it.

    The router closes the clients it built (from settings or paths), never the ones it was
    given.
    """

    def __init__(
        self,
        endpoints: Iterable[EndpointArg],
        *,
        strategy: Strategy | str = "capacity",
        weights: Sequence[float] | None = None,
        retry: RetryPolicy | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        deadline: float | None = None,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        allowed_fails: int = 0,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if isinstance(endpoints, str | os.PathLike | Mapping | EndpointClient):
            raise ConfigurationError(
                "EndpointRouter takes a list of endpoints (clients, settings dicts or config "
                "paths); for a routes file use load_router(path)"
            )
        given = list(endpoints)
        if not given:
            raise ConfigurationError("EndpointRouter needs at least one endpoint")
        if strategy not in STRATEGIES:
            raise ConfigurationError(
                f"unknown strategy {strategy!r}: use {', '.join(repr(s) for s in STRATEGIES)}"
            )
        self._strategy: Strategy = strategy
        self._weights = _check_weights(weights, len(given), self._strategy)
        policy = retry if isinstance(retry, RetryPolicy) else RetryPolicy()
        if not isinstance(max_retries, NotGiven):
            policy = replace(policy, max_retries=max_retries)
        self._policy = policy
        if deadline is not None and (
            isinstance(deadline, bool) or not isinstance(deadline, int | float) or deadline <= 0
        ):
            raise ConfigurationError(
                f"deadline must be a positive number of seconds (or None), got {deadline!r}"
            )
        self._deadline = deadline
        self._timeout = timeout
        fails = allowed_fails
        if not isinstance(fails, int) or isinstance(fails, bool) or fails < 0:
            raise ConfigurationError(f"allowed_fails must be an integer >= 0, got {fails!r}")
        self._allowed_fails = allowed_fails
        self._sleep = sleep or anyio.sleep
        self._clock = clock
        self._rand = rand
        self._smooth = SmoothWeights()
        self._turns = 0
        self._closed = False
        built: list[Endpoint] = []
        for position, (endpoint, weight) in enumerate(zip(given, self._weights, strict=True)):
            client, owned = client_of(endpoint)
            built.append(Endpoint(client, position, weight, owned))
        self._endpoints = built

    @classmethod
    def _over(
        cls, clients: Sequence[tuple[EndpointClient, bool]], **options: Any
    ) -> EndpointRouter:
        """A router over ready clients, each with whether the router owns (closes) it."""
        router = cls([client for client, _ in clients], **options)
        for endpoint, (_, owned) in zip(router._endpoints, clients, strict=True):
            endpoint.owned = owned
        return router

    # -- what users read ---------------------------------------------------------------------

    @property
    def strategy(self) -> Strategy:
        return self._strategy

    @property
    def clients(self) -> list[EndpointClient]:
        """The endpoints' clients, in the order given."""
        return [ep.client for ep in self._endpoints]

    @property
    def retry_policy(self) -> RetryPolicy:
        return self._policy

    @property
    def endpoints(self) -> list[Endpoint]:
        return list(self._endpoints)

    def snapshot(self) -> list[dict[str, Any]]:
        """Each endpoint's state as plain data: health, rest left, failures in a row, in
        flight, what the router sent and how it ended, the budget's learnt rate and
        concurrency."""
        now = self._clock()
        return [ep.snapshot(now) for ep in self._endpoints]

    @property
    def is_closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        urls = ", ".join(repr(ep.url) for ep in self._endpoints)
        return f"EndpointRouter([{urls}], strategy={self._strategy!r})"

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> EndpointRouter:
        self._ensure_open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the clients the router built (never the ones it was given). Idempotent."""
        self._closed = True
        for ep in self._endpoints:
            if ep.owned:
                await ep.client.aclose()

    def _ensure_open(self) -> None:
        if self._closed:
            raise ClientClosedError(
                "this router is closed: create a new EndpointRouter, or keep using it inside "
                "its 'async with' block"
            )

    # -- calls -------------------------------------------------------------------------------

    async def complete(
        self,
        prompt: str,
        *,
        stop: str | Sequence[str] | None = None,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | RetryPolicy | NotGiven | None = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> Completion:
        """:meth:`EndpointClient.complete` on the endpoint the strategy picks, failing over.

        ``max_retries`` (or a :class:`RetryPolicy`) and ``deadline`` bound the whole call
        across endpoints; ``timeout`` each attempt. Other keyword arguments (model
        parameters, ``extra_parameters``, ``deployment_name``) go to the client's call.
        """

        def send(client: EndpointClient, call: dict[str, Any]) -> Awaitable[Completion]:
            return client.complete(prompt, stop=stop, extra_headers=extra_headers, **call, **params)

        return await self._call("complete", send, max_retries, deadline, timeout)

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        stop: str | Sequence[str] | None = None,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | RetryPolicy | NotGiven | None = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> ChatCompletion:
        """:meth:`EndpointClient.chat` on the endpoint the strategy picks, failing over."""

        def send(client: EndpointClient, call: dict[str, Any]) -> Awaitable[ChatCompletion]:
            return client.chat(messages, stop=stop, extra_headers=extra_headers, **call, **params)

        return await self._call("chat", send, max_retries, deadline, timeout)

    async def embed(
        self,
        input: str | Sequence[str],
        *,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | RetryPolicy | NotGiven | None = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Embeddings:
        """:meth:`EndpointClient.embed` (``input_type``, ``dimensions``, ... in ``options``)
        on an endpoint with an embeddings route, failing over."""

        def send(client: EndpointClient, call: dict[str, Any]) -> Awaitable[Embeddings]:
            return client.embed(input, extra_headers=extra_headers, **call, **options)

        return await self._call("embed", send, max_retries, deadline, timeout)

    async def invoke(
        self,
        payload: Mapping[str, Any] | Sequence[Any] | bytes | str,
        *,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | RetryPolicy | NotGiven | None = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Any:
        """:meth:`EndpointClient.invoke`: the same payload to whichever endpoint is picked
        (so every endpoint must read the same schema), failing over."""

        def send(client: EndpointClient, call: dict[str, Any]) -> Awaitable[Any]:
            return client.invoke(payload, extra_headers=extra_headers, **call, **options)

        return await self._call("invoke", send, max_retries, deadline, timeout)

    def stream(
        self,
        prompt_or_messages: str | Sequence[Message],
        *,
        stop: str | Sequence[str] | None = None,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        idle_timeout: float | None = None,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | RetryPolicy | NotGiven | None = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> RouterStream:
        """Stream from the endpoint the strategy picks; the stream fails over to another
        endpoint only until its first chunk (``async with`` waits for it), never after::

            async with router.stream([{"role": "user", "content": "Hi"}]) as stream:
                async for chunk in stream:
                    print(chunk.text, end="")
            print(stream.endpoint_url)
        """
        from ._stream import RouterStream

        self._ensure_open()
        op = "stream_complete" if isinstance(prompt_or_messages, str) else "stream_chat"

        def make(client: EndpointClient, call: dict[str, Any]) -> Any:
            return client.stream(
                prompt_or_messages,
                stop=stop,
                idle_timeout=idle_timeout,
                extra_headers=extra_headers,
                **call,
                **params,
            )

        return RouterStream(self, op, make, max_retries, deadline, timeout)

    # -- bulk --------------------------------------------------------------------------------

    def map(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: Concurrency = "auto",
        max_rps: float | None = None,
        max_tpm: float | None = None,
        max_retries: int | None = None,
        max_rate_limit_retries: int = DEFAULT_BULK_RATE_LIMIT_RETRIES,
        return_exceptions: bool = True,
        **params: Any,
    ) -> RouterRun:
        """Run many items across the endpoints; iterate ``(index, result)`` as they complete.

        One bulk run per endpoint, each at its client's learnt limit (its
        :class:`RateBudget`), pulls from one shared queue: with ``capacity`` every endpoint
        takes what it can, so goodput approaches the sum of their limits; ``weighted``
        splits the items by ``weights``; ``priority`` sends to the first healthy endpoint.
        An item whose attempt fails over goes back to the queue for another endpoint (within
        ``max_retries``, the router's by default); each item ends exactly once.
        ``concurrency``, ``max_rps`` and ``max_tpm`` apply to each endpoint (quotas are per
        deployment). ``run.stats`` counts per endpoint and in total.
        """
        from ._bulk import RouterRun

        self._ensure_open()
        return RouterRun(
            self,
            items,
            concurrency=concurrency,
            max_rps=max_rps,
            max_tpm=max_tpm,
            max_retries=self._policy.max_retries if max_retries is None else max_retries,
            max_rate_limit_retries=max_rate_limit_retries,
            return_exceptions=return_exceptions,
            params=params,
        )

    async def batch(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: Concurrency = "auto",
        max_rps: float | None = None,
        max_tpm: float | None = None,
        max_retries: int | None = None,
        max_rate_limit_retries: int = DEFAULT_BULK_RATE_LIMIT_RETRIES,
        return_exceptions: bool = True,
        progress: bool = False,
        **params: Any,
    ) -> RouterResults:
        """Run many items across the endpoints (see :meth:`map`); results in input order,
        with ``results.stats`` (per endpoint: sent, ok, 429s, learnt rate; and totals)."""
        from ._bulk import collect

        total = len(items) if isinstance(items, Sized) else None
        run = self.map(
            items,
            concurrency=concurrency,
            max_rps=max_rps,
            max_tpm=max_tpm,
            max_retries=max_retries,
            max_rate_limit_retries=max_rate_limit_retries,
            return_exceptions=return_exceptions,
            **params,
        )
        return await collect(run, total=total, progress=progress)

    # -- the loop ----------------------------------------------------------------------------

    def _policy_for(self, max_retries: int | RetryPolicy | NotGiven | None) -> RetryPolicy:
        if isinstance(max_retries, RetryPolicy):
            return max_retries
        if max_retries is None or isinstance(max_retries, NotGiven):
            return self._policy
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError(
                f"max_retries must be an integer >= 0 (0 disables failover), got {max_retries!r}"
            )
        return replace(self._policy, max_retries=max_retries)

    def _deadline_at(self, deadline: float | NotGiven | None) -> float | None:
        value = self._deadline if isinstance(deadline, NotGiven) else deadline
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigurationError(
                f"deadline must be a positive number of seconds (or None), got {value!r}"
            )
        return self._clock() + value

    def _unable(self, op: str) -> str:
        what = {
            "complete": "complete()",
            "chat": "chat()",
            "stream_complete": "stream a completion",
            "stream_chat": "stream a chat",
            "embed": "embed()",
        }.get(op, op)
        kinds = ", ".join(
            f"{ep.url} ({ep.client.api_type}, {ep.client.formatter.name})" for ep in self._endpoints
        )
        return f"no endpoint of this router can {what}: {kinds}"

    def able(self, op: str) -> list[Endpoint]:
        """The endpoints that can serve ``op`` as configured (see :func:`able`)."""
        return [ep for ep in self._endpoints if able(ep.client, op)]

    def pick(
        self, candidates: Sequence[Endpoint], avoided: Collection[int] = ()
    ) -> tuple[Endpoint | None, float | None]:
        """The endpoint the strategy picks among ``candidates``, or ``(None, wait)`` when all
        rest (see :func:`~._policy.choose`). Picking marks the turn and a probe."""
        now = self._clock()
        views = [ep.view(now, avoided=ep.position in avoided) for ep in candidates]
        view, wait = choose(self._strategy, views, self._smooth)
        if view is None:
            return None, wait
        chosen = next(ep for ep in candidates if ep.position == view.position)
        self._turns += 1
        chosen.turn = self._turns
        return chosen, None

    def ready_in(self, candidates: Sequence[Endpoint]) -> float | None:
        """Seconds until one of ``candidates`` may be called (0: now; None: there are none)."""
        if not candidates:
            return None
        now = self._clock()
        return min(ep.health.resting(now) for ep in candidates)

    def begin(self, ep: Endpoint) -> tuple[float, float]:
        """Count an attempt going to ``ep``: ``(sent_at, sent_at on its budget's clock)``."""
        now = self._clock()
        ep.in_flight += 1
        ep.sent += 1
        ep.sends.append(now)
        if ep.health.rested:
            ep.health.probing = True
        return now, ep.client.budget.limiter.clock()

    def succeeded(self, ep: Endpoint, sent: tuple[float, float]) -> None:
        from .._bulk._limiter import Signal

        ep.in_flight -= 1
        ep.ok += 1
        ep.health.succeeded()
        ep.client.budget.observe(Signal.SUCCESS, sent_at=sent[1], retry_after=None)

    def failed(self, ep: Endpoint, error: AzmlError, sent: tuple[float, float]) -> None:
        """Count a failed attempt; a failover-class one cools the endpoint down. Its budget
        learns from it as from a bulk attempt (a 429's pace, an overload)."""
        from .._bulk._limiter import classify

        ep.in_flight -= 1
        ep.failed += 1
        if isinstance(error, RateLimitError):
            ep.rate_limited += 1
        if is_failover_error(error):
            ep.health.failed(
                error,
                sent_at=sent[0],
                now=self._clock(),
                policy=self._policy,
                allowed_fails=self._allowed_fails,
                rand=self._rand,
            )
        honoured = honoured_retry_after(error, ep.client.retry_policy)
        ep.client.budget.observe(classify(error), sent_at=sent[1], retry_after=honoured)

    async def _call(
        self,
        op: str,
        send: Callable[[EndpointClient, dict[str, Any]], Awaitable[_R]],
        max_retries: int | RetryPolicy | NotGiven | None,
        deadline: float | NotGiven | None,
        timeout: float | httpx.Timeout | NotGiven,
        tried: list[tuple[str, str]] | None = None,
    ) -> _R:
        """One call across the endpoints (see the module docstring); ``tried`` collects
        ``(endpoint URL, error)`` of every failed attempt."""
        self._ensure_open()
        policy = self._policy_for(max_retries)
        deadline_at = self._deadline_at(deadline)
        if isinstance(timeout, NotGiven):
            timeout = self._timeout
        candidates = self.able(op)
        if not candidates:
            raise ConfigurationError(self._unable(op))
        tried = [] if tried is None else tried
        avoided: set[int] = set()
        refused: list[ConfigurationError] = []
        attempts = retries = rate_limit_retries = 0
        while True:
            ep, wait = self.pick(candidates, avoided)
            if ep is None:
                if wait is None:  # every endpoint refused the call before sending it
                    raise annotate(refused[0], tried, attempts)
                remaining = self._remaining(deadline_at)
                if wait > policy.max_retry_after or (remaining is not None and wait >= remaining):
                    first = min(candidates, key=lambda e: e.health.until)
                    error = first.health.resting_error(first.url, self._clock())
                    raise annotate(error, tried, attempts)
                await self._sleep(wait)
                continue
            call: dict[str, Any] = {"max_retries": 0}
            remaining = self._remaining(deadline_at)
            if remaining is not None:
                if remaining <= 0:
                    timed_out = APITimeoutError(
                        "the call's deadline ran out before an endpoint could take it", url=ep.url
                    )
                    raise annotate(timed_out, tried, attempts)
                call["deadline"] = remaining
            if not isinstance(timeout, NotGiven):
                call["timeout"] = timeout
            sent = self.begin(ep)
            try:
                result = await send(ep.client, call)
            except ConfigurationError as exc:  # refused before sending: skip the endpoint
                ep.in_flight -= 1
                ep.sent -= 1
                ep.health.probing = False
                refused.append(exc)
                candidates = [c for c in candidates if c is not ep]
                continue
            except AzmlError as exc:
                attempts += 1
                self.failed(ep, exc, sent)
                tried.append((ep.url, label(exc)))
                avoided.add(ep.position)
                decision = next_step(
                    exc,
                    retries=retries,
                    rate_limit_retries=rate_limit_retries,
                    policy=policy,
                    remaining=self._remaining(deadline_at),
                    wait=self.ready_in(candidates),
                )
                if not decision.retry:
                    raise annotate(exc, tried, attempts) from exc.__cause__
                if isinstance(exc, RateLimitError) and policy.max_rate_limit_retries is not None:
                    rate_limit_retries += 1
                else:
                    retries += 1
                logger.info(
                    "%s failed on %s (%s): trying another endpoint in %.3fs",
                    op,
                    ep.url,
                    label(exc),
                    decision.wait,
                )
                if decision.wait > 0:
                    await self._sleep(decision.wait)
                continue
            except BaseException:  # cancelled: the attempt ends without a verdict
                ep.in_flight -= 1
                ep.health.probing = False
                raise
            attempts += 1
            self.succeeded(ep, sent)
            if isinstance(result, Completion | Embeddings):
                result.attempts = attempts
            return result

    def _remaining(self, deadline_at: float | None) -> float | None:
        return None if deadline_at is None else deadline_at - self._clock()


def _check_weights(weights: Sequence[float] | None, count: int, strategy: Strategy) -> list[float]:
    if weights is None:
        return [1.0] * count
    values = list(weights)
    if len(values) != count:
        raise ConfigurationError(f"weights has {len(values)} values for {count} endpoints")
    for value in values:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or value < 0
            or value != value
        ):
            raise ConfigurationError(f"weights must be numbers >= 0, got {value!r}")
    if strategy == "weighted" and not any(values):
        raise ConfigurationError("weights are all 0: give at least one endpoint a weight > 0")
    return [float(v) for v in values]
