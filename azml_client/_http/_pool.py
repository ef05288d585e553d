"""Where a client's requests go: its connection pool, shared with its ``with_options()`` copies.

Three ways out, chosen per request:

* **the default**: the client's own :class:`~._aiohttp.AiohttpTransport`, called through the
  public ``httpx.AsyncBaseTransport`` interface (``httpx.AsyncClient.send`` would add ~100 µs of
  cookie, auth and redirect plumbing per request, none of which applies to a POST with a key);
* **a caller's** ``http_client=`` (through ``build_request`` + ``send``, so its default headers,
  auth and event hooks apply) or ``transport=`` (through an ``httpx.AsyncClient`` around it);
* **plain httpx** (``httpx.AsyncClient`` with httpx's own transport) when the running loop is not
  asyncio (trio), or while respx / pytest-httpx intercept httpx (:func:`~._factory.mocks_active`),
  so that a user's ``@respx.mock`` test sees every request and nothing reaches the network.

Proxies (``proxy=``, or ``HTTP(S)_PROXY`` / ``NO_PROXY`` unless ``trust_env=False``) and TLS
(``verify=``) apply on every way out that the client builds itself.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from .._exceptions import ClientClosedError

__all__ = ["Connections"]

if TYPE_CHECKING:
    import ssl

    Verify = bool | str | os.PathLike[str] | ssl.SSLContext
    Proxy = str | httpx.URL | httpx.Proxy | None


class Connections:
    """The ways out of one client (see the module docstring); created once, closed once."""

    def __init__(
        self,
        *,
        limits: httpx.Limits,
        timeout: httpx.Timeout,
        proxy: Proxy,
        verify: Verify,
        trust_env: bool,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._limits = limits
        self._timeout = timeout
        self._proxy = proxy
        self._verify = verify
        self._trust_env = trust_env
        self._user_client = http_client
        self._user_transport = transport
        # A caller's transport is used through an httpx client of ours; closing that client
        # would close the caller's transport, so it is never closed (it holds nothing else).
        self._wrapper = (
            httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False)
            if transport is not None
            else None
        )
        self._aiohttp: Any = None
        self._httpx: httpx.AsyncClient | None = None
        self.closed = False
        if self.owned:
            # Built now (aiohttp imported, TLS context loaded: a few hundred ms once per
            # process) rather than inside the first call's time; its session starts lazily,
            # in the loop of the first request.
            self._aiohttp = self._build_aiohttp()

    def fresh(self) -> Connections:
        """New connections with the same configuration (for another event loop)."""
        return Connections(
            limits=self._limits,
            timeout=self._timeout,
            proxy=self._proxy,
            verify=self._verify,
            trust_env=self._trust_env,
            http_client=self._user_client,
            transport=self._user_transport,
        )

    @property
    def owned(self) -> bool:
        """Whether the requests go through transports this client built (and so closes)."""
        return self._user_client is None and self._user_transport is None

    def _check_open(self) -> None:
        if self.closed:
            raise ClientClosedError()

    def direct(self) -> Any:
        """The aiohttp transport to call directly, or None when a request must go through httpx.

        Cheap: it runs on every request.
        """
        if not self.owned or _mocks_active() or not _on_asyncio():
            return None
        transport = self._aiohttp
        if transport is None:
            self._check_open()
            transport = self._aiohttp = self._build_aiohttp()
        return transport

    def _build_aiohttp(self) -> Any:
        from ._factory import aiohttp_transport

        return aiohttp_transport(
            limits=self._limits,
            connect_timeout=self._timeout.connect,
            proxy=self._proxy,
            verify=self._verify,
            trust_env=self._trust_env,
        )

    def client(self) -> tuple[httpx.AsyncClient, bool]:
        """The httpx client to send through, and whether it is the caller's own."""
        self._check_open()
        if self._user_client is not None:
            return self._user_client, True
        if self._wrapper is not None:
            return self._wrapper, False
        if self._httpx is None:
            from ._factory import httpx_client

            self._httpx = httpx_client(
                limits=self._limits,
                timeout=self._timeout,
                proxy=self._proxy,
                verify=self._verify,
                trust_env=self._trust_env,
            )
        return self._httpx, False

    async def aclose(self) -> None:
        """Close what this client built; a caller's client or transport stays open."""
        if self.closed:
            return
        self.closed = True
        aio, self._aiohttp = self._aiohttp, None
        plain, self._httpx = self._httpx, None
        try:
            if aio is not None:
                await aio.aclose()
        finally:
            if plain is not None:
                await plain.aclose()


def _on_asyncio() -> bool:
    """Whether an asyncio loop runs here (aiohttp's only home); False under trio."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


_mocks_check: Callable[[], bool] | None = None


def _mocks_active() -> bool:
    """:func:`~._factory.mocks_active`, imported on first use (the factory loads TLS)."""
    global _mocks_check
    if _mocks_check is None:
        from ._factory import mocks_active

        _mocks_check = mocks_active
    return _mocks_check()
