"""Constructor and per-call options: grouped arguments, deprecated flat ones, headers.

The client takes ``timeout`` (a number or an ``httpx.Timeout``), ``limits`` (``httpx.Limits``)
and ``retry`` (:class:`~azml_client.RetryPolicy`); the flat names they replace
(``connect_timeout``, ``max_connections``, ``backoff_base``, ...) still work for one release with
a ``DeprecationWarning`` naming the replacement. Everything here turns arguments into the flat
values :class:`~azml_client.ClientSettings` validates (and ``save()`` writes).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, NamedTuple

import httpx

from ._constants import NOT_GIVEN, ExtraParameters, NotGiven
from ._exceptions import ConfigurationError
from ._redact import SENSITIVE_HEADERS
from ._retry import RetryPolicy

__all__ = [
    "DEPRECATED_ARGUMENTS",
    "SENSITIVE_HEADERS",
    "CallOptions",
    "check_headers",
    "check_messages",
    "settings_arguments",
    "split_timeout",
]

#: Flat constructor arguments kept for one release, with what replaces each.
DEPRECATED_ARGUMENTS: dict[str, str] = {
    "connect_timeout": "timeout=httpx.Timeout(60, connect=...)",
    "backoff_base": "retry=RetryPolicy(backoff_base=...)",
    "backoff_max": "retry=RetryPolicy(backoff_max=...)",
    "max_retry_after": "retry=RetryPolicy(max_retry_after=...)",
    "max_connections": "limits=httpx.Limits(max_connections=...)",
    "max_keepalive_connections": "limits=httpx.Limits(max_keepalive_connections=...)",
    "keepalive_expiry": "limits=httpx.Limits(keepalive_expiry=...)",
}


class CallOptions(NamedTuple):
    """The per-call overrides every call method accepts (``NOT_GIVEN``: the client's)."""

    timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN
    deadline: float | NotGiven | None = NOT_GIVEN
    max_retries: int | RetryPolicy | NotGiven | None = NOT_GIVEN
    extra_parameters: str | ExtraParameters | NotGiven | None = NOT_GIVEN
    deployment_name: str | NotGiven | None = NOT_GIVEN
    extra_headers: Mapping[str, str] | None = None


def split_timeout(value: float | httpx.Timeout) -> tuple[float, float | None, float | None]:
    """``(attempt, connect, pool)`` seconds from a number or an ``httpx.Timeout``.

    An ``httpx.Timeout``'s ``read`` value bounds the whole attempt (httpx has no "total");
    ``connect`` and ``pool`` keep their meaning; ``write`` falls within the attempt.
    """
    if isinstance(value, httpx.Timeout):
        attempt = value.read
        if attempt is None:
            raise ConfigurationError(
                "timeout=httpx.Timeout(...) needs a read timeout: it bounds each whole attempt "
                "(a call without one could hang); use deadline= to bound a whole call"
            )
        return _seconds(attempt, "timeout"), value.connect, value.pool
    return _seconds(value, "timeout"), None, None


def _seconds(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def settings_arguments(
    *,
    timeout: float | httpx.Timeout | NotGiven | None,
    retry: RetryPolicy | NotGiven | None,
    limits: httpx.Limits | NotGiven | None,
    max_retries: int | NotGiven | None,
    deprecated: Mapping[str, Any],
) -> dict[str, Any]:
    """The flat settings the grouped (and deprecated flat) arguments stand for."""
    out: dict[str, Any] = {}
    for name, value in deprecated.items():
        if value is None or isinstance(value, NotGiven):
            continue
        warnings.warn(
            f"{name}= is deprecated and will be removed in the next release; "
            f"use {DEPRECATED_ARGUMENTS[name]}",
            DeprecationWarning,
            stacklevel=4,
        )
        out[name] = value
    if isinstance(timeout, httpx.Timeout | int | float):
        attempt, connect, pool = split_timeout(timeout)
        out["timeout"] = attempt
        if connect is not None:
            out["connect_timeout"] = connect
        if pool is not None:
            out["pool_timeout"] = pool
    if isinstance(retry, RetryPolicy):
        out.update(
            max_retries=retry.max_retries,
            backoff_base=retry.backoff_base,
            backoff_max=retry.backoff_max,
            max_retry_after=retry.max_retry_after,
        )
    elif retry is not None and not isinstance(retry, NotGiven):
        raise ConfigurationError(
            f"retry must be a RetryPolicy(...), got {type(retry).__name__}; for a number of "
            "retries pass max_retries="
        )
    if isinstance(limits, httpx.Limits):
        for field in ("max_connections", "max_keepalive_connections", "keepalive_expiry"):
            value = getattr(limits, field)
            if value is None:
                raise ConfigurationError(
                    f"limits.{field} must be a number (an unbounded pool is not supported)"
                )
            out[field] = value
    elif limits is not None and not isinstance(limits, NotGiven):
        raise ConfigurationError(
            f"limits must be an httpx.Limits(...), got {type(limits).__name__}"
        )
    if max_retries is not None and not isinstance(max_retries, NotGiven):
        out["max_retries"] = max_retries
    return out


def check_headers(headers: Mapping[str, str] | None, what: str) -> dict[str, str]:
    """A validated copy of user-given headers (str names and values HTTP can carry)."""
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise ConfigurationError(
            f"{what} must be a mapping of header names to values, got {type(headers).__name__}"
        )
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ConfigurationError(f"{what}: header names and values must be str ({name!r})")
        try:
            name.encode("ascii")
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ConfigurationError(
                f"{what}: header {name!r} has characters HTTP headers cannot carry "
                "(names are ASCII, values Latin-1)"
            ) from None
        if not name or any(c in name for c in " :\r\n") or any(c in value for c in "\r\n"):
            raise ConfigurationError(f"{what}: {name!r} is not a valid header")
        out[name] = value
    return out


def check_messages(messages: Any, what: str = "chat()") -> list[dict[str, Any]]:
    """A list of message dicts, or a ConfigurationError naming what is wrong."""
    if isinstance(messages, str | bytes) or not isinstance(messages, list | tuple):
        raise ConfigurationError(
            f"{what} takes a list of messages such as [{{'role': 'user', 'content': 'Hi'}}]"
            + ("; for a plain prompt use complete()" if what == "chat()" else "")
        )
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise ConfigurationError(
                f"message {i} must be a mapping with a 'role' string and 'content', "
                f"got {message!r:.80}"
            )
        out.append(dict(message))
    if not out:
        raise ConfigurationError(f"{what} needs at least one message")
    return out
