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
from ._exceptions import ConfigurationError, CredentialError
from ._redact import Redactor

__all__ = ["Auth", "KeyAuth", "NoAuth", "TokenAuth", "TokenCredential"]


@runtime_checkable
class TokenCredential(Protocol):
    """What azure-identity credentials provide."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


class Auth:
    """Base: the value of the credential header (``header``) of the next request."""

    #: The header the credential goes in.
    header: str = "Authorization"

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
    """``Authorization: Bearer <key>``, or the bare key in another header (``api-key`` on Azure
    OpenAI and the model inference API). The key never shows in ``repr``."""

    def __init__(self, key: SecretStr, header: str = "Authorization") -> None:
        self.header = header
        value = key.get_secret_value()
        self._value = SecretStr(f"Bearer {value}" if header.lower() == "authorization" else value)

    async def authorization(self) -> str | None:
        return self._value.get_secret_value()

    def __repr__(self) -> str:
        return f"KeyAuth(key='**********', header={self.header!r})"


class TokenAuth(Auth):
    """``Authorization: Bearer <token>`` from a credential, refreshed ``margin`` s before expiry.

    Each token fetched is added to ``redactor`` (when given) before it is first sent, so an
    error that echoes it back can be scrubbed.
    """

    def __init__(
        self,
        credential: TokenCredential,
        scope: str,
        *,
        margin: float = TOKEN_REFRESH_MARGIN,
        redactor: Redactor | None = None,
    ) -> None:
        if not callable(getattr(credential, "get_token", None)):
            raise ConfigurationError(
                f"credential {type(credential).__name__} has no get_token(scope) method: pass an "
                "azure-identity credential such as DefaultAzureCredential()"
            )
        self._credential = credential
        self._scope = scope
        self._margin = margin
        self._token: SecretStr | None = None
        self._expires_on = 0.0
        self._lock = anyio.Lock()
        self._redactor = redactor

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
        token = self._token
        return None if token is None else f"Bearer {token.get_secret_value()}"

    async def _refresh(self) -> None:
        """Fetch a new token; :class:`CredentialError` when there is none (nothing is sent)."""
        get_token = self._credential.get_token
        try:
            if inspect.iscoroutinefunction(get_token):
                result = await get_token(self._scope)
            else:
                result = await anyio.to_thread.run_sync(get_token, self._scope)
                if inspect.isawaitable(result):
                    result = await result
        except Exception as exc:
            # The credential's own message (often many lines: every credential tried) stays
            # on __cause__ for the traceback; it comes from the credential, never holds our key.
            raise self._error(f"failed with {type(exc).__name__} (see __cause__)") from exc
        token = getattr(result, "token", None)
        expires_on = getattr(result, "expires_on", None)
        if token is None and isinstance(result, tuple) and len(result) == 2:
            token, expires_on = result
        if not isinstance(token, str) or not token:
            raise self._error(f"returned no token (got {type(result).__name__})")
        if self._redactor is not None:
            self._redactor.add(token)
        self._token = SecretStr(token)
        self._expires_on = float(expires_on) if expires_on is not None else time.time() + 3600

    def _error(self, what: str) -> CredentialError:
        credential = type(self._credential).__name__
        return CredentialError(
            f"{credential}.get_token({self._scope!r}) {what}: no request was sent. Check the "
            "identity it uses (`az login`, the managed identity, the AZURE_* variables), or "
            "pass token_scope=... if this endpoint expects another scope",
            scope=self._scope,
            credential=credential,
        )
