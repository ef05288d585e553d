"""The errors azml-client raises.

Every error derives from :class:`AzmlError`, so ``except AzmlError`` catches all of them::

    AzmlError
    ├── ConfigurationError              bad arguments; raised at construction, names the fix
    ├── ClientClosedError               the client was used after ``aclose()``
    ├── CredentialError                 the token provider failed or gave no token: nothing sent
    ├── APIConnectionError              the request got no answer (never sent, or connection lost)
    │   ├── APITimeoutError             ... because a timeout or the call's deadline ran out
    │   └── StreamInterruptedError      a stream was cut before its end marker
    ├── APIStatusError                  the endpoint answered with an error status
    │   ├── BadRequestError             400
    │   ├── AuthenticationError         401: wrong, missing or expired key / token
    │   ├── PermissionDeniedError       403
    │   ├── NotFoundError               404: wrong route, or no deployment with traffic
    │   ├── RequestTimeoutError         408: the model took longer than request_timeout_ms
    │   ├── UnprocessableEntityError    422
    │   ├── ModelError                  424: the model container failed (model status + reason)
    │   ├── RateLimitError              429: rate limit or too many pending requests
    │   └── ServerError                 5xx
    └── ResponseFormatError             the answer did not match the formatter
        ├── EmptyResponseError          HTTP 200 with an empty body (e.g. content-safety block)
        └── StructuredOutputError       a response_format answer is not JSON or misses the schema

Status errors carry ``status_code``, a capped ``body`` excerpt, the server's ``request_id``, the
client's ``client_request_id``, ``retry_after`` (seconds, when the server said) and ``attempts``.
They never include request headers, so the key cannot leak through them; what a server echoes
back (a body or header quoting the key) is for :func:`azml_client._redact.scrub` to remove.

Every error pickles with all its fields (``AzmlError.__reduce__``), so errors cross process
pools and multiprocessing queues intact even though most constructors are keyword-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ._constants import BODY_EXCERPT_LIMIT

if TYPE_CHECKING:  # _types imports this module
    from ._types import Usage

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "AzmlError",
    "BadRequestError",
    "ClientClosedError",
    "ConfigurationError",
    "CredentialError",
    "EmptyResponseError",
    "ModelError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTimeoutError",
    "ResponseFormatError",
    "ServerError",
    "StreamInterruptedError",
    "StructuredOutputError",
    "UnprocessableEntityError",
    "reported_error",
    "status_error",
]


def excerpt(body: bytes | str | None, limit: int = BODY_EXCERPT_LIMIT) -> str:
    """Return at most ``limit`` characters of a body, decoded leniently, marked when cut."""
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters]"


_E = TypeVar("_E", bound="AzmlError")


def _rebuild(cls: type[_E], args: tuple[Any, ...], state: dict[str, Any]) -> _E:
    """Recreate a pickled error without calling ``__init__`` (see ``AzmlError.__reduce__``)."""
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class AzmlError(Exception):
    """Root of every error raised by azml-client."""

    #: Set by an :class:`EndpointRouter` on the error it raises: ``(endpoint URL, error)`` of
    #: each attempt it made.
    tried: list[tuple[str, str]] | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # BaseException pickles as ``cls(*self.args)`` plus ``__dict__``: that calls __init__
        # with the message only, which the keyword-only constructors below refuse (and
        # ClientClosedError would rewrite). Rebuilding from args and fields needs no
        # constructor at all, so every subclass, present or future, pickles as it is.
        return (_rebuild, (type(self), self.args, self.__dict__))


class ConfigurationError(AzmlError, ValueError):
    """An argument or setting is invalid; the message says what is expected."""


class ClientClosedError(AzmlError, RuntimeError):
    """The client was closed; create a new one or use it inside ``async with``."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "this client is closed: create a new EndpointClient, or keep using the client "
            "inside its 'async with' block"
        )


class CredentialError(AzmlError):
    """The credential (an azure-identity token provider) failed or returned no token.

    No request was sent. The credential's own exception, if it raised one, is ``__cause__``;
    ``scope`` is the token scope asked for and ``credential`` the credential's type name.
    """

    def __init__(
        self, message: str, *, scope: str | None = None, credential: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.scope = scope
        self.credential = credential


class _RequestError(AzmlError):
    """Shared fields of errors tied to one call."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        client_request_id: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.url = url
        self.client_request_id = client_request_id
        self.attempts = attempts


class APIConnectionError(_RequestError):
    """No answer came back: the connection failed, was refused or was lost."""


class APITimeoutError(APIConnectionError):
    """A timeout or the call's deadline ran out before an answer came back."""


class StreamInterruptedError(APIConnectionError):
    """The server closed a stream before its end marker: the answer is incomplete."""


class APIStatusError(_RequestError):
    """The endpoint answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: str = "",
        request_id: str | None = None,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
        url: str | None = None,
        client_request_id: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message, url=url, client_request_id=client_request_id, attempts=attempts)
        self.status_code = status_code
        self.body = body
        self.request_id = request_id
        self.retry_after = retry_after
        self.headers: dict[str, str] = dict(headers or {})

    def __str__(self) -> str:
        parts = [f"HTTP {self.status_code}: {self.message}"]
        if self.request_id:
            parts.append(f"request id {self.request_id}")
        if self.retry_after is not None:
            parts.append(f"retry after {self.retry_after:g}s")
        if self.attempts > 1:
            parts.append(f"after {self.attempts} attempts")
        return " | ".join(parts)


class BadRequestError(APIStatusError):
    """400: the endpoint rejected the request body or a parameter."""


class AuthenticationError(APIStatusError):
    """401: the key or token is wrong, missing or expired."""


class PermissionDeniedError(APIStatusError):
    """403: the credential may not score this endpoint."""


class NotFoundError(APIStatusError):
    """404: wrong route, unknown deployment, or no deployment with positive traffic."""


class RequestTimeoutError(APIStatusError):
    """408: the model ran longer than the deployment's ``request_timeout_ms``."""


class UnprocessableEntityError(APIStatusError):
    """422: a parameter or value the model does not support."""


class ModelError(APIStatusError):
    """424: the model container answered with an error; see ``model_status_code``."""

    def __init__(
        self,
        message: str,
        *,
        model_status_code: int | None = None,
        model_reason: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.model_status_code = model_status_code
        self.model_reason = model_reason

    def __str__(self) -> str:
        base = super().__str__()
        if self.model_status_code is None and not self.model_reason:
            return base
        return f"{base} | model status {self.model_status_code} ({self.model_reason or '?'})"


class RateLimitError(APIStatusError):
    """429: the endpoint's rate limit or its pending-request limit was hit."""


class ServerError(APIStatusError):
    """5xx: the endpoint or the Azure ML infrastructure failed."""


class ResponseFormatError(AzmlError):
    """The endpoint's answer does not have the shape the formatter expects."""

    def __init__(
        self,
        message: str,
        *,
        formatter: str = "",
        api_type: str = "",
        body: str = "",
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.formatter = formatter
        self.api_type = api_type
        self.body = body
        self.request_id = request_id

    def __str__(self) -> str:
        where = f"formatter {self.formatter!r}" if self.formatter else "formatter"
        if self.api_type:
            where += f" ({self.api_type})"
        text = f"{where}: {self.message}"
        if self.body:
            text += f" | body: {excerpt(self.body, 300)}"
        if self.request_id:
            text += f" | request id {self.request_id}"
        return text


class EmptyResponseError(ResponseFormatError):
    """HTTP 200 with an empty answer, as a content-safety block or a container failure gives."""


class StructuredOutputError(ResponseFormatError):
    """The answer to a ``response_format`` request is not JSON, or does not fit the schema.

    ``text`` holds what the model wrote (also when it was cut off: ``finish_reason`` says
    ``"length"`` then), ``usage`` the tokens the answer cost when the endpoint reported them.
    """

    def __init__(
        self,
        message: str,
        *,
        text: str = "",
        finish_reason: str | None = None,
        request_id: str | None = None,
        usage: Usage | None = None,
    ) -> None:
        super().__init__(message, formatter="response_format", body=text, request_id=request_id)
        self.text = text
        self.finish_reason = finish_reason
        self.usage = usage


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: RequestTimeoutError,
    422: UnprocessableEntityError,
    424: ModelError,
    429: RateLimitError,
}

_ADVICE: dict[int, str] = {
    400: "the endpoint rejected the request: check the formatter and the parameters",
    401: "check the key (AZUREML_ENDPOINT_API_KEY) or the token provider",
    403: "the credential lacks the score permission on this endpoint",
    404: "check the URL route and the deployment name",
    408: "the model exceeded the deployment's request_timeout_ms; raise it or send less",
    422: "a parameter or value is not supported by this model",
    424: "the model container failed; see model_status_code and model_reason",
    429: "the endpoint is rate limiting; lower concurrency or wait retry_after seconds",
}


def _as_status(value: Any) -> int | None:
    """``value`` as an integer status, or None when it is not one (``"503"`` counts)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (str, bytes)):
        try:
            return int(value)  # not str.isdigit(): it accepts "²", which int() refuses
        except ValueError:
            return None
    return None


def status_error(
    status_code: int,
    *,
    body: str = "",
    message: str | None = None,
    model_status_code: int | None = None,
    model_reason: str | None = None,
    **kwargs: Any,
) -> APIStatusError:
    """Build the typed error for an HTTP status (the one place statuses map to classes).

    It runs while another error is being reported, so it never fails itself: a status that is
    not an integer (``status_code`` becomes 0) or lies outside 100-599 gives a plain
    :class:`APIStatusError` saying so, rather than a crash or a misleading ``ServerError``.
    """
    status = _as_status(status_code)
    if status is None or not 100 <= status <= 599:
        cls: type[APIStatusError] = APIStatusError
        advice = f"unexpected status {status_code!r}: not an HTTP status"
    else:
        cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else APIStatusError)
        advice = _ADVICE.get(status) or (
            "the endpoint failed; retry later" if status >= 500 else "unexpected status"
        )
    text = f"{message} ({advice})" if message else advice
    code = 0 if status is None else status
    if cls is ModelError:
        return ModelError(
            text,
            status_code=code,
            body=body,
            model_status_code=model_status_code,
            model_reason=model_reason,
            **kwargs,
        )
    return cls(text, status_code=code, body=body, **kwargs)


def reported_error(
    error: Any, *, context: str, body: str | None = None, **kwargs: Any
) -> APIStatusError:
    """The status error for an error object an endpoint put inside a successful answer.

    The FMS container's ``{"error": {"status_code": 503, "body": ...}}`` in an HTTP 200, an
    OpenAI-style ``{"error": {"status": 429, "message": ...}}``, or an SSE ``error`` event: the
    status comes from ``status_code`` / ``status`` / ``code`` when it is an HTTP error status
    (else 500), the text from ``body`` / ``message``. ``context`` opens the message.
    """
    status = 500
    detail: Any = error
    if isinstance(error, Mapping):
        raw = _as_status(error.get("status_code", error.get("status", error.get("code"))))
        if raw is not None and 400 <= raw < 600:
            status = raw
        detail = error.get("body", error.get("message", error))
    text = detail if isinstance(detail, str) else repr(detail)
    return status_error(
        status,
        body=(text if body is None else body)[:2048],
        message=f"{context}: {text[:200]}",
        **kwargs,
    )
