"""The one place where lower-layer failures become azml errors.

* :func:`transport_error`: an exception raised while sending or reading (httpx's, or whatever a
  caller's transport raises) becomes an :class:`~azml_client.APIConnectionError` /
  :class:`~azml_client.APITimeoutError` (or a :class:`~azml_client.ResponseFormatError` for a
  body that cannot be decoded).
* :func:`response_error`: an error status becomes its typed error (the class comes from
  :func:`~azml_client._exceptions.status_error`, the only status-to-class table).

Messages and bodies pass through the client's :class:`~azml_client._redact.Redactor`, and the
lower-layer exception is never chained: httpx's carry the request (and so the key).
"""

from __future__ import annotations

import httpx

from .._constants import HEADER_MODEL_ERROR_REASON, HEADER_MODEL_ERROR_STATUS
from .._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AzmlError,
    ResponseFormatError,
    excerpt,
    status_error,
)
from .._redact import Redactor
from .._retry import parse_retry_after
from ._body import server_message

__all__ = ["TRANSPORT_ERRORS", "response_error", "transport_error"]

#: What a transport raises when the network or the peer fails: httpx's errors (ours map
#: aiohttp's to them), the OS's, and a cancel scope's timeout. Anything else is a bug, and
#: propagates as it is.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    httpx.HTTPError,
    httpx.StreamError,
    OSError,
    TimeoutError,
    EOFError,
)

_TIMEOUT_PHASES: dict[type[BaseException], str] = {
    httpx.ConnectTimeout: "while connecting",
    httpx.WriteTimeout: "while sending",
    httpx.PoolTimeout: "while waiting for a free connection",
    httpx.ReadTimeout: "while waiting for data",
}


def transport_error(
    exc: BaseException,
    *,
    url: str,
    timeout: float | None,
    redactor: Redactor,
    streaming: bool = False,
) -> AzmlError:
    """The azml error for a failure below the HTTP status (see the module docstring)."""
    name = type(exc).__name__
    detail = redactor.text(str(exc))[:300]
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        phase = _TIMEOUT_PHASES.get(type(exc), "")
        limit = f" within {timeout:.3g}s" if timeout is not None else ""
        what = "no data" if streaming else "no answer"
        return APITimeoutError(f"{what}{limit} {phase}".rstrip() + f" ({name})", url=url)
    if isinstance(exc, httpx.DecodingError):
        return ResponseFormatError(f"the answer could not be decoded ({name}: {detail})")
    if isinstance(exc, httpx.ProxyError):
        return APIConnectionError(
            f"the proxy failed ({name}: {detail}): check proxy=, HTTPS_PROXY / HTTP_PROXY and "
            "NO_PROXY, or pass trust_env=False to ignore the environment",
            url=url,
        )
    if isinstance(exc, httpx.UnsupportedProtocol):
        return APIConnectionError(f"unsupported URL ({detail})", url=url)
    if streaming:
        return APIConnectionError(f"the stream broke ({name}: {detail})", url=url)
    return APIConnectionError(f"could not reach the endpoint ({name}: {detail})", url=url)


def _as_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def response_error(
    status: int,
    headers: httpx.Headers,
    body: bytes,
    *,
    url: str,
    request_id: str,
    client_request_id: str,
    redactor: Redactor,
) -> APIStatusError:
    """The typed error of an answer whose status is not 2xx."""
    message = server_message(body)
    if 300 <= status < 400:
        where = headers.get("location")
        message = f"the endpoint redirected{f' to {where}' if where else ''}; use the final URL"
    return status_error(
        status,
        body=redactor.text(excerpt(body)),
        message=redactor.text(message) if message else None,
        request_id=request_id,
        retry_after=parse_retry_after(headers),
        headers=redactor.headers(headers),
        url=url,
        client_request_id=client_request_id,
        model_status_code=_as_int(headers.get(HEADER_MODEL_ERROR_STATUS)),
        model_reason=headers.get(HEADER_MODEL_ERROR_REASON),
    )
