"""Credentials: a static key, or an Entra ID token provider refreshed before it expires.

A token provider is any object with azure-identity's ``get_token(*scopes)`` (sync, as
``DefaultAzureCredential``, or async, as ``azure.identity.aio.DefaultAzureCredential``);
azure-identity itself is an optional extra. Sync credentials run in a worker thread so they never
block the event loop.
"""

from __future__ import annotations

import inspect
import time
from typing import Any, Protocol, runtime_checkable

import anyio
import anyio.to_thread
from pydantic import SecretStr

from ._constants import TOKEN_REFRESH_MARGIN
from ._exceptions import AuthenticationError, ConfigurationError

__all__ = ["Auth", "KeyAuth", "NoAuth", "TokenAuth", "TokenCredential"]


@runtime_checkable
class TokenCredential(Protocol):
    """What azure-identity credentials provide."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


class Auth:
    """Base: the ``Authorization`` header value of the next request."""

    async def authorization(self) -> str | None:
        raise NotImplementedError

    def invalidate(self) -> None:
        """Forget a cached token (after a 401)."""


class NoAuth(Auth):
    """No credential: for endpoints behind another gateway, or the emulator without a key."""

    async def authorization(self) -> str | None:
        return None

    def __repr__(self) -> str:
        return "NoAuth()"


class KeyAuth(Auth):
    """``Authorization: Bearer <key>``. The key never shows in ``repr``."""

    def __init__(self, key: SecretStr) -> None:
        self._header = f"Bearer {key.get_secret_value()}"

    async def authorization(self) -> str | None:
        return self._header

    def __repr__(self) -> str:
        return "KeyAuth(key='**********')"


class TokenAuth(Auth):
    """``Authorization: Bearer <token>`` from a credential, refreshed ``margin`` s before expiry."""

    def __init__(
        self, credential: TokenCredential, scope: str, *, margin: float = TOKEN_REFRESH_MARGIN
    ) -> None:
        if not callable(getattr(credential, "get_token", None)):
            raise ConfigurationError(
                f"credential {type(credential).__name__} has no get_token(scope) method: pass an "
                "azure-identity credential such as DefaultAzureCredential()"
            )
        self._credential = credential
        self._scope = scope
        self._margin = margin
        self._token: str | None = None
        self._expires_on = 0.0
        self._lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"TokenAuth(credential={type(self._credential).__name__}, scope={self._scope!r})"

    def _fresh(self) -> bool:
        return self._token is not None and self._expires_on - time.time() > self._margin

    def invalidate(self) -> None:
        self._token = None

    async def authorization(self) -> str | None:
        if not self._fresh():
            async with self._lock:
                if not self._fresh():
                    await self._refresh()
        return f"Bearer {self._token}"

    async def _refresh(self) -> None:
        get_token = self._credential.get_token
        try:
            if inspect.iscoroutinefunction(get_token):
                result = await get_token(self._scope)
            else:
                result = await anyio.to_thread.run_sync(get_token, self._scope)
                if inspect.isawaitable(result):
                    result = await result
        except Exception as exc:
            raise AuthenticationError(
                f"the credential could not get a token for {self._scope} "
                f"({type(exc).__name__}: {exc})",
                status_code=401,
            ) from exc
        token = getattr(result, "token", None)
        expires_on = getattr(result, "expires_on", None)
        if token is None and isinstance(result, tuple) and len(result) == 2:
            token, expires_on = result
        if not isinstance(token, str) or not token:
            raise AuthenticationError(
                f"{type(self._credential).__name__}.get_token() returned no token", status_code=401
            )
        self._token = token
        self._expires_on = float(expires_on) if expires_on is not None else time.time() + 3600
