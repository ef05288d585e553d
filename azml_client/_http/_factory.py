"""TLS contexts, proxy resolution, and the transports and httpx clients built from them.

Why this module exists
----------------------
A client sends through one of two stacks: :class:`~._aiohttp.AiohttpTransport` (fast, asyncio
only) or a plain ``httpx.AsyncClient`` (trio, and whenever respx or pytest-httpx intercept
httpx). Both must trust the same servers and go through the same proxies, so the two settings
that decide this are turned into objects here, once:

* :func:`create_ssl_context`: ``verify`` (as httpx accepts it) becomes an ``ssl.SSLContext``.
  The default (certifi's bundle) is built once per process: loading it costs tens of
  milliseconds.
* :class:`ProxyResolver`: ``proxy=`` or, with ``trust_env``, ``HTTP(S)_PROXY`` / ``ALL_PROXY`` /
  ``NO_PROXY``, answered per URL with httpx's rules. httpx applies them itself; aiohttp must not
  (its ``trust_env`` also reads ``~/.netrc``), so the aiohttp transport asks this resolver.

:func:`mocks_active` tells the caller when to prefer the httpx stack: respx and pytest-httpx
patch httpx, and aiohttp would send a mocked request to the network instead.
"""

from __future__ import annotations

import functools
import ipaddress
import operator
import os
import ssl
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeAlias

import httpx

if TYPE_CHECKING:
    from ._aiohttp import AiohttpTransport

__all__ = [
    "ProxyResolver",
    "ProxyTypes",
    "VerifyTypes",
    "aiohttp_transport",
    "create_ssl_context",
    "httpx_client",
    "mocks_active",
]

#: What ``verify=`` accepts, as in httpx: True (certifi), False, a CA file or directory, or a
#: context used as given.
VerifyTypes: TypeAlias = bool | str | os.PathLike[str] | ssl.SSLContext
#: What ``proxy=`` accepts, as in httpx.
ProxyTypes: TypeAlias = str | httpx.URL | httpx.Proxy | None

_IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
_IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

# -- TLS ---------------------------------------------------------------------------------------


def create_ssl_context(verify: VerifyTypes, *, trust_env: bool) -> ssl.SSLContext:
    """The one place where ``verify`` becomes an ``ssl.SSLContext``.

    ``True`` is httpx's default (certifi's CA bundle), or with ``trust_env`` the file or
    directory named by ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` as httpx reads them; these contexts
    are cached per process, so treat them as read-only. ``False`` turns verification off. A
    path names a CA bundle file or a directory of hashed certificates. A context is returned
    as given.
    """
    if verify is True:
        cafile = capath = None
        if trust_env:
            cafile = os.environ.get("SSL_CERT_FILE") or None
            if cafile is None:
                capath = os.environ.get("SSL_CERT_DIR") or None
        return _verifying_context(cafile, capath)
    if verify is False:
        return _unverified_context()
    if isinstance(verify, ssl.SSLContext):
        return verify
    path = os.fspath(verify)
    if os.path.isdir(path):
        return ssl.create_default_context(capath=path)
    return ssl.create_default_context(cafile=path)


@functools.lru_cache(maxsize=8)
def _verifying_context(cafile: str | None, capath: str | None) -> ssl.SSLContext:
    if cafile is None and capath is None:
        return httpx.create_ssl_context(verify=True, trust_env=False)
    return ssl.create_default_context(cafile=cafile, capath=capath)


@functools.lru_cache(maxsize=1)
def _unverified_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# -- proxies -----------------------------------------------------------------------------------

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
#: Distinct (scheme, host, port) answers kept; a client talks to a handful of hosts.
_CACHE_SIZE: Final = 1024


@dataclass(frozen=True)
class _Bypass:
    """One ``NO_PROXY`` entry.

    ``domain`` matches that host and its subdomains, or only its subdomains when written with
    a leading dot (httpx's reading of ``.example.com`` / ``example.com``); ``network`` matches IP
    addresses (a single address is a /32 or /128 network).
    """

    scheme: str | None
    domain: str | None
    subdomains_only: bool
    network: _IPNetwork | None
    port: int | None

    def matches(self, scheme: str, host: str, ip: _IPAddress | None, port: int) -> bool:
        if self.scheme is not None and self.scheme != scheme:
            return False
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return ip is not None and ip.version == self.network.version and ip in self.network
        assert self.domain is not None
        if host.endswith("." + self.domain):
            return True
        return not self.subdomains_only and host == self.domain


def _parse_no_proxy(value: str) -> tuple[bool, tuple[_Bypass, ...]]:
    """``NO_PROXY`` as (bypass everything, entries); unreadable entries are skipped."""
    entries: list[_Bypass] = []
    for raw in value.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True, ()
        scheme: str | None = None
        if "://" in entry:
            scheme, entry = entry.split("://", 1)
        network = _network(entry)  # an address or a CIDR network (its "/" is no path)
        if network is not None:
            entries.append(_Bypass(scheme, None, False, network, None))
            continue
        host, port = _split_port(entry.split("/", 1)[0])
        if port == -1:
            continue
        network = _network(host)
        if network is not None:
            entries.append(_Bypass(scheme, None, False, network, port))
            continue
        domain = host.lstrip("*").lstrip(".").rstrip(".")
        if domain:
            entries.append(_Bypass(scheme, domain, host.startswith((".", "*.")), None, port))
    return False, tuple(entries)


def _network(text: str) -> _IPNetwork | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _split_port(entry: str) -> tuple[str, int | None]:
    """``host[:port]`` / ``[v6][:port]`` / bare IPv6; port -1 flags an unreadable entry."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        if not rest:
            return host, None
        port_text = rest[1:] if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        host, _, port_text = entry.partition(":")
    else:
        return entry, None  # a name, an IPv4 address or network, or a bare IPv6 address
    return (host, int(port_text)) if port_text.isdigit() else (host, -1)


def _env_value(env: Mapping[str, str], name: str) -> str | None:
    """``name_proxy`` with lowercase preferred, as urllib reads it; empty means unset.

    Uppercase ``HTTP_PROXY`` is ignored when ``REQUEST_METHOD`` is set: under CGI a client's
    ``Proxy:`` header arrives as that variable (httpoxy, CVE-2016-5385).
    """
    lower = env.get(f"{name}_proxy")
    if lower is not None:
        return lower or None
    if name == "http" and "REQUEST_METHOD" in env:
        return None
    return env.get(f"{name.upper()}_PROXY") or None


def _env_proxy(value: str | None) -> httpx.Proxy | None:
    if value is None:
        return None
    return httpx.Proxy(value if "://" in value else f"http://{value}")


def _as_proxy(proxy: str | httpx.URL | httpx.Proxy) -> httpx.Proxy:
    return proxy if isinstance(proxy, httpx.Proxy) else httpx.Proxy(proxy)


def _describe(proxy: httpx.Proxy | None) -> str:
    """A proxy for ``repr``: its URL (httpx already stripped the userinfo), never credentials."""
    if proxy is None:
        return "None"
    secret = proxy.auth is not None or "proxy-authorization" in proxy.headers
    return repr(str(proxy.url)) + (" (with credentials)" if secret else "")


class ProxyResolver:
    """Which proxy a request goes through, by httpx's rules.

    An explicit ``proxy`` applies to every URL (and the environment is not read, as in httpx).
    Otherwise, with ``trust_env``, ``HTTPS_PROXY`` serves https URLs and ``HTTP_PROXY`` http
    ones, ``ALL_PROXY`` both (lowercase names win over uppercase ones), and a host listed in
    ``NO_PROXY`` goes direct. ``NO_PROXY`` entries are ``*``, host names (``example.com`` also
    covers its subdomains, ``.example.com`` only them), IP addresses, CIDR networks, each with an
    optional ``:port`` or ``scheme://`` prefix. The environment is read once, at construction
    (``env`` replaces ``os.environ``, for tests).

    Answers are cached per (scheme, host, port): :meth:`proxy_for` runs on every request.
    """

    __slots__ = ("_bypass", "_bypass_all", "_cache", "_explicit", "_schemes", "_trust_env")

    def __init__(
        self,
        proxy: ProxyTypes,
        *,
        trust_env: bool,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._explicit = _as_proxy(proxy) if proxy is not None else None
        self._trust_env = trust_env
        self._schemes: dict[str, httpx.Proxy | None] = {}
        self._bypass_all = False
        self._bypass: tuple[_Bypass, ...] = ()
        self._cache: dict[tuple[str, str, int | None], httpx.Proxy | None] = {}
        if self._explicit is None and trust_env:
            source = os.environ if env is None else env
            every = _env_proxy(_env_value(source, "all"))
            for scheme in ("http", "https"):
                self._schemes[scheme] = _env_proxy(_env_value(source, scheme)) or every
            self._bypass_all, self._bypass = _parse_no_proxy(_env_value(source, "no") or "")
            if not any(self._schemes.values()):
                self._schemes = {}  # no proxy configured: the fast path in proxy_for

    @property
    def explicit(self) -> httpx.Proxy | None:
        """The proxy given to the constructor, if any."""
        return self._explicit

    def proxy_for(self, url: httpx.URL) -> httpx.Proxy | None:
        """The proxy to send ``url`` through, or None to connect directly."""
        if self._explicit is not None or not self._schemes:
            return self._explicit
        key = (url.scheme, url.host, url.port)
        try:
            return self._cache[key]
        except KeyError:
            pass
        proxy = self._schemes.get(url.scheme)
        if proxy is not None and self._bypassed(url):
            proxy = None
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = proxy
        return proxy

    def _bypassed(self, url: httpx.URL) -> bool:
        if self._bypass_all:
            return True
        scheme, host = url.scheme, url.host.rstrip(".")
        port = url.port or _DEFAULT_PORTS.get(scheme, 0)
        try:
            ip: _IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        return any(rule.matches(scheme, host, ip, port) for rule in self._bypass)

    def __repr__(self) -> str:
        if self._explicit is not None:
            return f"ProxyResolver(proxy={_describe(self._explicit)})"
        if not self._trust_env:
            return "ProxyResolver(proxy=None, trust_env=False)"
        no_proxy = "*" if self._bypass_all else f"{len(self._bypass)} entries"
        return (
            f"ProxyResolver(http={_describe(self._schemes.get('http'))}, "
            f"https={_describe(self._schemes.get('https'))}, no_proxy={no_proxy})"
        )


# -- building ----------------------------------------------------------------------------------


def aiohttp_transport(
    *,
    limits: httpx.Limits,
    connect_timeout: float | None,
    proxy: ProxyTypes,
    verify: VerifyTypes,
    trust_env: bool,
) -> AiohttpTransport:
    """The aiohttp-backed transport (needs the ``azml-client[fast]`` extra)."""
    try:
        from ._aiohttp import AiohttpTransport
    except ImportError as exc:  # aiohttp, multidict or yarl missing
        raise ImportError(
            f"the aiohttp transport needs aiohttp ({exc}): install azml-client[fast]"
        ) from None
    return AiohttpTransport(
        limits=limits,
        connect_timeout=connect_timeout,
        proxy=proxy,
        verify=verify,
        trust_env=trust_env,
    )


def httpx_client(
    *,
    limits: httpx.Limits,
    timeout: httpx.Timeout,
    proxy: ProxyTypes,
    verify: VerifyTypes,
    trust_env: bool,
) -> httpx.AsyncClient:
    """A plain ``httpx.AsyncClient`` on httpx's own transport.

    So respx and pytest-httpx intercept it and it runs on trio. httpx reads the proxy
    environment itself (same rules as :class:`ProxyResolver`); redirects are not followed.
    """
    return httpx.AsyncClient(
        limits=limits,
        timeout=timeout,
        proxy=proxy,
        verify=create_ssl_context(verify, trust_env=trust_env),
        trust_env=trust_env,
        follow_redirects=False,
    )


# -- mocks -------------------------------------------------------------------------------------

#: httpx's own method, captured at import and compared by identity on the hot path.
_HTTPX_SEND: Final = httpx.AsyncHTTPTransport.handle_async_request


def _from_httpx(method: object) -> bool:
    module = getattr(method, "__module__", None)
    return isinstance(module, str) and (module == "httpx" or module.startswith("httpx."))


_HTTPX_SEND_IS_OWN: Final = _from_httpx(_HTTPX_SEND)
#: A respx mocker class's started routers (``map`` over it: half the cost of a generator).
_ROUTERS: Final = operator.attrgetter("routers")


def mocks_active() -> bool:
    """Whether respx or pytest-httpx intercepts httpx right now.

    respx (either ``using=``) registers each started router with its mocker class; a mocker
    with routers is patching httpx or httpcore. pytest-httpx replaces
    ``httpx.AsyncHTTPTransport.handle_async_request``. Imports nothing: if respx was never
    imported, no respx mock can be active. It runs on every request: two dictionary look-ups
    and an identity test when nothing is patched.
    """
    send = httpx.AsyncHTTPTransport.handle_async_request
    if (send is not _HTTPX_SEND or not _HTTPX_SEND_IS_OWN) and not _from_httpx(send):
        return True
    respx_mocks = sys.modules.get("respx.mocks")
    if respx_mocks is None:
        return False
    return any(map(_ROUTERS, respx_mocks.Mocker.registry.values()))
