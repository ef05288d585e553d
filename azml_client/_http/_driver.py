"""The one request driver: every HTTP exchange of a client goes through :meth:`Driver.run`.

complete, chat, invoke, a stream until its headers, and every bulk item alike::

    Driver.run(call, parse)
      attempt: [hook.before_attempt] -> auth header -> send -> read body -> parse
               failure -> transport_error / response_error (one place each, ``_errors.py``)
               [hook.after_attempt]
      decide (pure, ``_retry.decide``) -> wait (injected sleep, via tenacity) -> next attempt

An :class:`AttemptHook` is how bulk pacing plugs in: it sees the outcome of every attempt (to
feed the adaptive limiter and the shared Retry-After pause), may hold an attempt back, and may
shorten a wait that its own pacing already covers; it never runs a loop of its own.

Time: ``timeout`` bounds one whole attempt (connect, send, headers and body); for a stream it
bounds the attempt until the headers, and ``idle_timeout`` then bounds each wait for a chunk.
``deadline`` bounds the whole call: every attempt's budget is cut to what is left of it, a wait
that would pass it ends the call, and a stream reads its body within it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

import anyio
import httpx

from .._auth import Auth
from .._constants import HEADER_CLIENT_REQUEST_ID
from .._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AzmlError,
    RateLimitError,
    ResponseFormatError,
)
from .._redact import Redactor, scrub
from .._retry import RetryDecision, RetryPolicy, decide, honoured_retry_after
from ._body import HeaderFacts, header_facts, read_body
from ._errors import TRANSPORT_ERRORS, response_error, transport_error
from ._pool import Connections, _on_asyncio

if TYPE_CHECKING:
    from .._telemetry import CallTrace

__all__ = ["AttemptHook", "Call", "Driver", "Exchange", "new_request_id"]

logger = logging.getLogger("azml_client")

_T = TypeVar("_T")
#: ``asyncio.timeout`` (Python 3.11+).
_ASYNCIO_TIMEOUT: Callable[[float], contextlib.AbstractAsyncContextManager[Any]] | None = getattr(
    asyncio, "timeout", None
)


def new_request_id() -> str:
    """A random id in UUID form (36 characters: within the front door's 40)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Exchange(NamedTuple):
    """One answered attempt: the response (closed, or open for a stream) and its body."""

    response: httpx.Response
    #: The whole body; empty for a stream handed back open.
    body: bytes
    request_id: str
    client_request_id: str
    attempts: int
    #: The deployment that answered (its ``azureml-model-deployment`` header), if it said.
    deployment: str | None = None


class AttemptHook(Protocol):
    """Observes every attempt of a call (bulk pacing); see the module docstring."""

    async def before_attempt(self) -> None:
        """Wait until this attempt may go (a shared pause, a pacing rate, a budget)."""

    def after_attempt(
        self, error: AzmlError | None, *, sent_at: float, retry_after: float | None
    ) -> None:
        """The outcome of the attempt sent at ``sent_at`` (``error`` None: success).

        ``retry_after`` is the server's requested wait when the call may honour it (never more
        than the policy's ``max_retry_after``).
        """

    def retry_wait(self, error: AzmlError, wait: float) -> float:
        """The wait before the next attempt, given the policy's ``wait``."""
        return wait


@dataclass(slots=True)
class Call:
    """Everything one call sends and how long it may take."""

    url: httpx.URL
    body: bytes
    #: Every header but Authorization (added per attempt); includes the client request id.
    headers: dict[str, str]
    timeout: float
    connect_timeout: float
    pool_timeout: float | None
    deadline_at: float | None
    policy: RetryPolicy
    stream: bool = False
    idle_timeout: float | None = None
    hook: AttemptHook | None = None
    #: ``POST`` for every call but ``GET /info``.
    method: str = "POST"
    #: The call's span and metrics (``None``: nothing records).
    trace: CallTrace | None = None

    @property
    def client_request_id(self) -> str:
        return self.headers[HEADER_CLIENT_REQUEST_ID]


class _Progress:
    """A call's counters across attempts."""

    __slots__ = ("attempts", "first", "rate_limit_retries", "retries", "wait")

    def __init__(self) -> None:
        self.attempts = 0
        self.retries = 0
        self.rate_limit_retries = 0
        self.wait = 0.0
        #: The first attempt's failure and its decision, replayed into tenacity's loop.
        self.first: tuple[AzmlError, RetryDecision] | None = None


class Driver:
    """Sends a client's calls (see the module docstring); one per client."""

    def __init__(
        self,
        connections: Connections,
        auth: Auth,
        *,
        sleep: Callable[[float], Awaitable[Any]],
        redactor: Redactor,
    ) -> None:
        self.connections = connections
        self.auth = auth
        self.sleep = sleep
        self.redactor = redactor
        #: The hash of the last Authorization value added to the redactor (not the value).
        self._known_authorization = 0

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, call: Call, parse: Callable[[Exchange], _T]) -> _T:
        """Send ``call`` with retries; return ``parse(exchange)`` of the answer that succeeded.

        ``parse`` runs inside the loop, so an error reported inside a 2xx answer is retried
        like the same HTTP status would be.
        """
        progress = _Progress()
        try:
            try:
                return await self._attempt_and_parse(call, parse, progress)
            except (APIConnectionError, APIStatusError) as exc:
                decision = self._decide(exc, call, progress)
                if not decision.retry:
                    raise
                progress.first = (exc, decision)
            return await self._retry(call, parse, progress)
        except AzmlError as exc:
            if isinstance(exc, APIConnectionError | APIStatusError):
                exc.attempts = progress.attempts
                exc.client_request_id = call.client_request_id
                exc.url = str(call.url)
            scrub(exc, self.redactor)
            raise

    async def _retry(self, call: Call, parse: Callable[[Exchange], _T], progress: _Progress) -> _T:
        """Attempts after the first, run by tenacity with the injected sleep.

        The first attempt runs outside tenacity (most calls succeed at once, and building the
        retry loop costs more than a fast request); its failure is replayed as tenacity's first
        attempt, so the same decisions, waits and logs apply to it.
        """
        from tenacity import AsyncRetrying, RetryCallState

        def should_retry(state: RetryCallState) -> bool:
            if state.outcome is None or not state.outcome.failed:
                return False
            exc = state.outcome.exception()
            if progress.first is not None and exc is progress.first[0]:
                decision = progress.first[1]
            elif isinstance(exc, APIConnectionError | APIStatusError):
                decision = self._decide(exc, call, progress)
            else:
                return False
            if not decision.retry:
                return False
            assert isinstance(exc, AzmlError)
            if isinstance(exc, RateLimitError) and call.policy.max_rate_limit_retries is not None:
                progress.rate_limit_retries += 1
            else:
                progress.retries += 1
            wait = decision.wait
            if call.hook is not None:
                wait = call.hook.retry_wait(exc, wait)
            if call.trace is not None:
                reason = (
                    str(exc.status_code) if isinstance(exc, APIStatusError) else type(exc).__name__
                )
                call.trace.retried(reason, rate_limited=isinstance(exc, RateLimitError))
            progress.wait = max(0.0, wait)
            return True

        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, APIStatusError):
                what = f"HTTP {exc.status_code}"
            else:
                what = type(exc).__name__
            logger.info(
                "retrying %s after %s (attempt %d failed), waiting %.3fs, client request id %s",
                self.redactor.text(str(call.url)),
                what,
                progress.attempts,
                progress.wait,
                call.client_request_id,
            )

        retrying = AsyncRetrying(
            stop=lambda state: False,  # decide() says when to stop
            retry=should_retry,
            wait=lambda state: progress.wait,
            sleep=self.sleep,
            before_sleep=log_retry,
            reraise=True,
        )
        replay = [progress.first[0]] if progress.first is not None else []

        async def attempt() -> _T:
            if replay:
                raise replay.pop()
            return await self._attempt_and_parse(call, parse, progress)

        result: _T = await retrying(attempt)
        return result

    def _decide(self, exc: AzmlError, call: Call, progress: _Progress) -> RetryDecision:
        remaining = None if call.deadline_at is None else call.deadline_at - time.monotonic()
        return decide(
            exc,
            retries=progress.retries,
            rate_limit_retries=progress.rate_limit_retries,
            policy=call.policy,
            remaining=remaining,
        )

    # -- one attempt ------------------------------------------------------------------------

    async def _attempt_and_parse(
        self, call: Call, parse: Callable[[Exchange], _T], progress: _Progress
    ) -> _T:
        hook = call.hook
        if hook is not None:
            await self._hold(hook, call)
        progress.attempts += 1
        sent_at = time.monotonic()
        try:
            exchange = await self._attempt(call, progress.attempts)
            try:
                result = parse(exchange)
            except AzmlError:
                raise
            except Exception as exc:  # a parser tripped on the server's data
                error: AzmlError = ResponseFormatError(
                    f"the answer could not be read ({type(exc).__name__}: "
                    f"{self.redactor.text(str(exc))[:200]})",
                    request_id=exchange.request_id,
                )
            else:
                if hook is not None:
                    hook.after_attempt(None, sent_at=sent_at, retry_after=None)
                return result
        except AzmlError as exc:
            if hook is not None:
                honoured = honoured_retry_after(exc, call.policy)
                hook.after_attempt(exc, sent_at=sent_at, retry_after=honoured)
            raise
        if hook is not None:
            hook.after_attempt(error, sent_at=sent_at, retry_after=None)
        raise error

    async def _hold(self, hook: AttemptHook, call: Call) -> None:
        """Let the hook hold the attempt back, within the call's deadline."""
        if call.deadline_at is None:
            await hook.before_attempt()
            return
        remaining = call.deadline_at - time.monotonic()
        with anyio.move_on_after(max(0.0, remaining)) as scope:
            await hook.before_attempt()
        if scope.cancelled_caught:
            raise APITimeoutError(
                "the call's deadline ran out while waiting for the rate budget",
                url=str(call.url),
            )

    async def _attempt(self, call: Call, attempt: int) -> Exchange:
        """One HTTP attempt: its answer, or the one typed error that says what went wrong."""
        budget = call.timeout
        if call.deadline_at is not None:
            budget = min(budget, call.deadline_at - time.monotonic())
            if budget <= 0:
                raise APITimeoutError(
                    "the call's deadline ran out before this attempt could start", url=str(call.url)
                )
        headers = call.headers
        authorization = await self.auth.authorization()
        if authorization is not None:
            if hash(authorization) != self._known_authorization:
                self._known_authorization = hash(authorization)
                self.redactor.add(authorization.partition(" ")[2] or authorization)
            headers = {**headers, self.auth.header: authorization}
        started = time.monotonic()
        held: list[httpx.Response] = []
        error: AzmlError | None = None
        try:
            # Transports bound each phase (connect, each read); the whole attempt (a server
            # dripping its answer) is bounded here: until the headers for a stream. asyncio's
            # own timeout where it runs costs a third of a cancel scope (and aiohttp's
            # per-request total timer more still).
            if _ASYNCIO_TIMEOUT is not None and _on_asyncio():
                async with _ASYNCIO_TIMEOUT(budget):
                    response, body, facts = await self._exchange(call, headers, budget, held)
            else:
                with anyio.fail_after(budget):
                    response, body, facts = await self._exchange(call, headers, budget, held)
        except AzmlError:
            if held:
                await _close(held[0])
            raise
        except TRANSPORT_ERRORS as exc:
            error = transport_error(exc, url=str(call.url), timeout=budget, redactor=self.redactor)
        except BaseException:  # cancelled: release the connection, then let it through
            if held:
                await _close(held[0])
            raise
        if error is not None:
            if held:
                await _close(held[0])
            raise error
        status = response.status_code
        request_id = facts.request_id or call.client_request_id
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %d in %.1f ms (attempt %d, request id %s)",
                call.method,
                self.redactor.text(str(call.url)),
                status,
                (time.monotonic() - started) * 1000,
                attempt,
                request_id,
            )
        if not 200 <= status < 300:
            if status == 401:
                self.auth.invalidate()
            raise response_error(
                status,
                response.headers,
                body,
                url=str(call.url),
                request_id=request_id,
                client_request_id=call.client_request_id,
                redactor=self.redactor,
            )
        return Exchange(
            response, body, request_id, call.client_request_id, attempt, facts.deployment
        )

    async def _exchange(
        self, call: Call, headers: dict[str, str], budget: float, held: list[httpx.Response]
    ) -> tuple[httpx.Response, bytes, HeaderFacts]:
        """Send and read; the response goes into ``held`` as soon as there is one. The body is
        read whole, but for a stream handed back open (an error status is read)."""
        response = await self._send(call, headers, budget)
        held.append(response)
        facts = header_facts(response.headers)
        if call.stream and 200 <= response.status_code < 300:
            return response, b"", facts
        return response, await read_body(response, encoded=facts.encoded), facts

    async def _send(self, call: Call, headers: dict[str, str], budget: float) -> httpx.Response:
        """Send; the response comes back open."""
        timeouts = {
            "connect": min(budget, call.connect_timeout),
            "read": min(budget, call.idle_timeout or budget) if call.stream else budget,
            "write": budget,
            "pool": budget if call.pool_timeout is None else min(budget, call.pool_timeout),
        }
        connections = self.connections
        direct = connections.direct()
        if direct is not None and call.method == "POST":  # no httpx.Request to build
            response: httpx.Response = await direct.post(call.url, headers, call.body, timeouts)
            return response
        client, users = connections.client()
        if users:
            request = client.build_request(
                call.method,
                call.url,
                content=call.body or None,
                headers=headers,
                extensions={"timeout": timeouts},
            )
        else:
            request = _request(call.method, call.url, headers, call.body, timeouts)
        return await client.send(request, stream=True)


def _request(
    method: str,
    url: httpx.URL,
    headers: dict[str, str],
    body: bytes,
    timeouts: dict[str, float],
) -> httpx.Request:
    """An ``httpx.Request`` built from complete headers (cheaper than ``build_request``)."""
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"Host", url.netloc))
    if body or method == "POST":
        raw.append((b"Content-Length", str(len(body)).encode()))
    request = httpx.Request(
        method,
        url,
        headers=raw,
        stream=httpx.ByteStream(body),
        extensions={"timeout": timeouts},
    )
    request.read()  # the body is in memory: let the transport see it as such
    return request


async def _close(response: httpx.Response) -> None:
    """Release a response's connection, even while the task is being cancelled."""
    with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
        await response.aclose()
