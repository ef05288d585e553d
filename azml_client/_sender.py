"""One HTTP exchange with retries: the part of the client that talks to httpx.

:class:`HTTPSender` is the base of :class:`~azml_client.EndpointClient`; it holds the retry loop
(tenacity), one attempt (timeouts, auth header, the direct-to-transport fast path), and the one
place where httpx's exceptions and error statuses become ours.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, NamedTuple, TypeVar

import anyio
import httpx
from tenacity import AsyncRetrying, RetryCallState

from ._auth import Auth
from ._config import ClientSettings
from ._constants import (
    HEADER_CLIENT_REQUEST_ID,
    HEADER_DEPLOYMENT,
    HEADER_EXTRA_PARAMETERS,
    HEADER_MODEL_ERROR_REASON,
    HEADER_MODEL_ERROR_STATUS,
    SERVER_REQUEST_ID_HEADERS,
    ApiType,
    ExtraParameters,
)
from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ConfigurationError,
    excerpt,
    status_error,
)
from ._retry import RetryPolicy, backoff, is_retryable_error, parse_retry_after
from ._transport import mocking_active

__all__ = ["CallOptions", "HTTPSender"]

logger = logging.getLogger("azml_client")

_T = TypeVar("_T")
_NO_SCOPE = contextlib.nullcontext()
_REQUEST_ID_KEYS = tuple(name.encode() for name in SERVER_REQUEST_ID_HEADERS)


def _new_request_id() -> str:
    """A random id in UUID form (36 characters: within the front door's 40)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _server_request_id(headers: httpx.Headers) -> str | None:
    """The first of ``SERVER_REQUEST_ID_HEADERS`` present (one pass over the raw headers)."""
    found: dict[bytes, bytes] = {}
    for key, value in headers.raw:
        name = key.lower()
        if name in _REQUEST_ID_KEYS and value:
            found.setdefault(name, value)
    for name in _REQUEST_ID_KEYS:
        if name in found:
            return found[name].decode("latin-1")
    return None


async def _read(response: httpx.Response) -> None:
    """``await response.aread()``, without httpx's decoder chain when nothing is encoded.

    Reading the raw stream costs a fifth of ``aread()`` for a small JSON body; a
    ``Content-Encoding`` (gzip, ...) still goes through httpx's decoders.
    """
    if "content-encoding" in response.headers or not isinstance(
        response.stream, httpx.AsyncByteStream
    ):
        await response.aread()
        return
    chunks = [chunk async for chunk in response.stream]
    response._content = b"".join(chunks)  # what aread() stores; httpx reads it as .content
    await response.aclose()


def _server_message(body: bytes) -> str | None:
    """The human message inside an error body, for the shapes Azure ML endpoints send."""
    try:
        data = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return text[:300] or None
    if isinstance(data, dict):
        for key in ("message", "error", "detail"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message", value.get("code"))
            if isinstance(value, str) and value:
                return value[:300]
    return None


def _as_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class CallOptions(NamedTuple):
    """The per-call overrides every public call accepts (``None``: the client's setting)."""

    timeout: float | None
    deadline: float | None
    max_retries: int | RetryPolicy | None
    extra_parameters: str | ExtraParameters | None
    deployment_name: str | None


class HTTPSender:
    """Sends requests for a client; the client sets these attributes up."""

    _settings: ClientSettings
    _auth: Auth
    _policy: RetryPolicy
    _sleep: Callable[[float], Awaitable[Any]]
    _base_headers: dict[str, str]
    _params: dict[str, str]
    _http: httpx.AsyncClient
    _direct: httpx.AsyncBaseTransport | None
    _parsed_urls: dict[str, httpx.URL]

    def _ensure_open(self) -> None:
        raise NotImplementedError

    async def _send(
        self,
        url: str,
        body: bytes,
        parse: Callable[[httpx.Response, dict[str, Any]], _T],
        opts: CallOptions,
        *,
        stream: bool = False,
        read_timeout: float | None = None,
    ) -> tuple[_T, dict[str, Any]]:
        """POST with retries; return ``(parse(response, meta), meta)``.

        ``parse`` runs inside the retry loop, so an error reported inside a 200 answer is
        retried like the same HTTP status would be. With ``stream=True`` the response is
        returned open, its body unread: retries happen only until the headers arrive.
        """
        self._ensure_open()
        s = self._settings
        timeout, deadline, max_retries = opts.timeout, opts.deadline, opts.max_retries
        attempt_timeout = s.timeout if timeout is None else float(timeout)
        total = s.deadline if deadline is None else float(deadline)
        if attempt_timeout <= 0 or (total is not None and total <= 0):
            raise ConfigurationError("timeout and deadline must be positive numbers of seconds")
        if isinstance(max_retries, RetryPolicy):
            policy = max_retries
        elif max_retries is not None:
            policy = replace(self._policy, max_retries=int(max_retries))
        else:
            policy = self._policy
        retries = policy.max_retries
        if retries < 0:
            raise ConfigurationError("max_retries must be >= 0 (0 disables retrying)")
        headers = self._call_headers(opts.extra_parameters, opts.deployment_name)
        if stream:
            headers["Accept"] = "text/event-stream, application/json"
        client_request_id = headers[HEADER_CLIENT_REQUEST_ID]
        deadline_at = None if total is None else time.monotonic() + total
        attempts = 0

        async def attempt() -> tuple[_T, dict[str, Any]]:
            nonlocal attempts
            attempts += 1
            response = await self._attempt(
                url,
                body,
                headers,
                attempt_timeout,
                deadline_at,
                client_request_id,
                stream,
                read_timeout,
            )
            meta: dict[str, Any] = {
                "request_id": _server_request_id(response.headers) or client_request_id,
                "client_request_id": client_request_id,
                "attempts": attempts,
            }
            return parse(response, meta), meta

        try:
            # The first attempt runs outside tenacity: most calls succeed at once, and setting
            # up the retry loop costs more than a fast request. A failure is then replayed as
            # tenacity's first attempt, so its decisions, waits and logs apply unchanged.
            try:
                return await attempt()
            except (APIConnectionError, APIStatusError) as exc:
                if retries == 0 or not is_retryable_error(exc):
                    raise
                first: BaseException | None = exc

            async def replay_then_attempt() -> tuple[_T, dict[str, Any]]:
                nonlocal first
                if first is not None:
                    failed, first = first, None
                    raise failed
                return await attempt()

            retrying = AsyncRetrying(
                stop=lambda state: state.attempt_number > retries,
                retry=lambda state: self._should_retry(state, deadline_at, policy),
                wait=lambda state: self._wait(state, policy),
                sleep=self._sleep,
                before_sleep=lambda state: self._log_retry(state, url, client_request_id),
                reraise=True,
            )
            return await retrying(replay_then_attempt)
        except (APIConnectionError, APIStatusError) as exc:
            exc.attempts = attempts
            exc.client_request_id = client_request_id
            exc.url = url
            raise

    def _call_headers(
        self, extra_parameters: str | ExtraParameters | None, deployment_name: str | None
    ) -> dict[str, str]:
        headers = dict(self._base_headers)
        headers[HEADER_CLIENT_REQUEST_ID] = _new_request_id()
        if deployment_name is not None:
            headers[HEADER_DEPLOYMENT] = deployment_name
        if extra_parameters is not None:
            if self._settings.api_type is not ApiType.SERVERLESS:
                raise ConfigurationError("extra_parameters applies to serverless endpoints only")
            try:
                headers[HEADER_EXTRA_PARAMETERS] = str(ExtraParameters(str(extra_parameters)))
            except ValueError:
                raise ConfigurationError(
                    f"unknown extra_parameters {extra_parameters!r}: use 'pass-through', "
                    "'drop' or 'error'"
                ) from None
        return headers

    @staticmethod
    def _retry_after(exc: BaseException | None) -> float | None:
        return exc.retry_after if isinstance(exc, APIStatusError) else None

    def _wait(self, state: RetryCallState, policy: RetryPolicy) -> float:
        exc = state.outcome.exception() if state.outcome else None
        server = self._retry_after(exc)
        if server is not None:
            return server
        return backoff(state.attempt_number, base=policy.backoff_base, cap=policy.backoff_max)

    def _should_retry(
        self, state: RetryCallState, deadline_at: float | None, policy: RetryPolicy
    ) -> bool:
        if state.outcome is None or not state.outcome.failed:
            return False
        exc = state.outcome.exception()
        if exc is None or not is_retryable_error(exc):
            return False
        server = self._retry_after(exc)
        if server is not None and server > policy.max_retry_after:
            return False  # the server wants longer than we may wait: fail now with retry_after
        if deadline_at is not None:
            wait = server if server is not None else policy.backoff_base
            if time.monotonic() + wait >= deadline_at:
                return False
        return True

    def _log_retry(self, state: RetryCallState, url: str, client_request_id: str) -> None:
        exc = state.outcome.exception() if state.outcome else None
        what = f"HTTP {exc.status_code}" if isinstance(exc, APIStatusError) else type(exc).__name__
        wait = state.next_action.sleep if state.next_action else 0.0
        logger.info(
            "retrying %s after %s (attempt %d failed), waiting %.3fs, client request id %s",
            url,
            what,
            state.attempt_number,
            wait,
            client_request_id,
        )

    async def _attempt(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        timeout: float,
        deadline_at: float | None,
        client_request_id: str,
        stream: bool,
        read_timeout: float | None = None,
    ) -> httpx.Response:
        """One HTTP attempt; maps every lower-layer failure to our exceptions.

        Returns the response read and closed, or, with ``stream=True``, open and unread (its
        reads then wait at most ``read_timeout`` each: a stream's idle timeout).
        """
        self._ensure_open()
        budget = timeout
        if deadline_at is not None:
            budget = min(budget, deadline_at - time.monotonic())
            if budget <= 0:
                raise APITimeoutError(
                    "the call's deadline ran out before this attempt could start", url=url
                )
        authorization = await self._auth.authorization()
        if authorization is not None:
            headers = {**headers, "Authorization": authorization}
        connect = min(budget, self._settings.connect_timeout)
        response: httpx.Response | None = None
        handed_over = False
        try:
            # Inside the call's deadline the whole attempt is bounded; otherwise httpx's
            # connect / read / write / pool timeouts bound each phase (as other SDKs do).
            with anyio.fail_after(budget) if deadline_at is not None else _NO_SCOPE:
                response = await self._send_request(
                    url,
                    body,
                    headers,
                    httpx.Timeout(budget, connect=connect, read=read_timeout or budget),
                )
                if not stream or response.status_code >= 400:
                    await _read(response)
                else:
                    handed_over = True
        except TimeoutError:
            raise APITimeoutError(f"no answer within {budget:.3g}s", url=url) from None
        except httpx.TimeoutException as exc:
            raise APITimeoutError(
                f"{type(exc).__name__}: no answer within {budget:.3g}s", url=url
            ) from None
        except httpx.TransportError as exc:
            raise APIConnectionError(
                f"could not reach the endpoint ({type(exc).__name__}: {exc})", url=url
            ) from None
        finally:
            # Whatever happened, only a stream handed to the caller stays open.
            if response is not None and not handed_over:
                await response.aclose()
        if response.status_code >= 400:
            if response.status_code == 401:
                self._auth.invalidate()
            raise self._status_error(
                response, _server_request_id(response.headers), url, client_request_id
            )
        return response

    async def _send_request(
        self, url: str, body: bytes, headers: dict[str, str], timeout: httpx.Timeout
    ) -> httpx.Response:
        """Send one request; the response comes back open (``stream=True`` semantics).

        With the transport this client built and no mock active, the request goes straight to
        the transport: ``httpx.AsyncClient.send`` costs about as much CPU as the transport
        itself (cookies, auth flow, redirects, hooks), none of which applies here. A client or
        transport of the caller's is always used through ``httpx.AsyncClient``.
        """
        direct = self._direct
        if direct is not None and not mocking_active():
            target = self._url(url)
            raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
            raw_headers.append((b"host", target.netloc))
            raw_headers.append((b"content-length", str(len(body)).encode()))
            request = httpx.Request(
                "POST",
                target,
                headers=raw_headers,
                stream=httpx.ByteStream(body),  # the headers above are complete: no _prepare()
                extensions={"timeout": timeout.as_dict()},
            )
            request.read()  # the body is in memory: let the transport see it as such
            response = await direct.handle_async_request(request)
            response.request = request
            return response
        request = self._http.build_request(
            "POST", url, content=body, headers=headers, params=self._params or None, timeout=timeout
        )
        return await self._http.send(request, stream=True)

    def _url(self, url: str) -> httpx.URL:
        """The parsed URL of a route, with the client's query parameters (cached)."""
        parsed = self._parsed_urls.get(url)
        if parsed is None:
            parsed = httpx.URL(url)
            if self._params:
                parsed = parsed.copy_merge_params(self._params)
            self._parsed_urls[url] = parsed
        return parsed

    @staticmethod
    def _status_error(
        response: httpx.Response, request_id: str | None, url: str, client_request_id: str
    ) -> APIStatusError:
        body = response.content
        server_message = _server_message(body)
        h = response.headers
        return status_error(
            response.status_code,
            body=excerpt(body),
            message=server_message,
            request_id=request_id or client_request_id,
            retry_after=parse_retry_after(h),
            headers=dict(h),
            url=url,
            client_request_id=client_request_id,
            model_status_code=_as_int(h.get(HEADER_MODEL_ERROR_STATUS)),
            model_reason=h.get(HEADER_MODEL_ERROR_REASON),
        )
