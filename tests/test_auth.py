"""Entra ID token providers: sync and async get_token, caching, refresh before expiry."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import httpx
import pytest
import respx

from azml_client import AuthenticationError, ConfigurationError, EndpointClient
from azml_client._auth import TokenAuth
from azml_client._exceptions import CredentialError
from azml_client._redact import REDACTED, Redactor

from .conftest import DEDICATED_URL


class AccessToken(NamedTuple):
    token: str
    expires_on: int


class FakeCredential:
    """Shaped like azure-identity's sync credentials."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(f"tok-{len(self.scopes)}", int(time.time() + self.lifetime))


class FakeAsyncCredential(FakeCredential):
    """Shaped like azure.identity.aio credentials."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:  # type: ignore[override]
        return FakeCredential.get_token(self, *scopes)


@pytest.mark.parametrize("cls", [FakeCredential, FakeAsyncCredential])
@respx.mock
async def test_token_is_cached_while_fresh(cls: type[FakeCredential]) -> None:
    route = respx.post(DEDICATED_URL).mock(return_value=httpx.Response(200, json=["x"]))
    credential = cls(lifetime=3600)
    async with EndpointClient(endpoint_url=DEDICATED_URL, credential=credential) as client:
        await client.complete("a")
        await client.complete("b")
    assert credential.scopes == [("https://ml.azure.com/.default",)]
    assert {c.request.headers["Authorization"] for c in route.calls} == {"Bearer tok-1"}


@respx.mock
async def test_token_is_refreshed_before_expiry_and_after_401() -> None:
    route = respx.post(DEDICATED_URL).mock(
        side_effect=[
            httpx.Response(200, json=["x"]),
            httpx.Response(200, json=["x"]),
            httpx.Response(401),
            httpx.Response(200, json=["x"]),
        ]
    )
    credential = FakeCredential(lifetime=60)  # inside the 300 s refresh margin
    async with EndpointClient(
        endpoint_url=DEDICATED_URL,
        credential=credential,
        token_scope="api://custom/.default",
        max_retries=0,
    ) as client:
        await client.complete("a")
        await client.complete("b")
        credential.lifetime = 3600
        with pytest.raises(AuthenticationError):
            await client.complete("c")
        await client.complete("d")
    assert [c.request.headers["Authorization"] for c in route.calls] == [
        "Bearer tok-1",
        "Bearer tok-2",
        "Bearer tok-3",
        "Bearer tok-4",
    ]
    assert credential.scopes[0] == ("api://custom/.default",)


@respx.mock
async def test_failing_credential_is_a_credential_error_and_nothing_is_sent() -> None:
    class Broken:
        def get_token(self, *scopes: str) -> Any:
            raise RuntimeError("no identity here")

    route = respx.post(DEDICATED_URL).mock(return_value=httpx.Response(200, json=["x"]))
    async with EndpointClient(endpoint_url=DEDICATED_URL, credential=Broken()) as client:
        with pytest.raises(CredentialError) as raised:
            await client.complete("x")
    exc = raised.value
    assert not isinstance(exc, AuthenticationError)  # no 401 was ever received
    assert not route.called
    message = str(exc)
    for part in ("Broken.get_token('https://ml.azure.com/.default')", "RuntimeError"):
        assert part in message
    assert "no request was sent" in message and "az login" in message
    assert "token_scope=" in message
    assert (exc.scope, exc.credential) == ("https://ml.azure.com/.default", "Broken")
    # The credential's own explanation stays reachable for the traceback.
    assert isinstance(exc.__cause__, RuntimeError)
    assert str(exc.__cause__) == "no identity here"


@pytest.mark.parametrize("result", [None, AccessToken("", 0), ("", 0), object()])
async def test_credential_without_a_token_is_a_credential_error(result: Any) -> None:
    class Empty:
        async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            return result

    auth = TokenAuth(Empty(), "api://custom/.default")
    with pytest.raises(CredentialError, match=r"Empty\.get_token\('api://custom/\.default'\) "):
        await auth.authorization()
    with pytest.raises(CredentialError, match="returned no token"):
        await auth.authorization()  # nothing was cached: it asks again


async def test_fetched_tokens_are_added_to_the_redactor() -> None:
    redactor = Redactor()
    auth = TokenAuth(FakeCredential(lifetime=60), "api://x/.default", redactor=redactor)
    assert await auth.authorization() == "Bearer tok-1"  # shorter than 8: ignored
    long_token = "eyJhbGciOiJSUzI1NiJ9.payload.signature"

    class Long:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken(long_token, int(time.time() + 3600))

    auth = TokenAuth(Long(), "api://x/.default", redactor=redactor)
    assert await auth.authorization() == f"Bearer {long_token}"
    assert redactor.text(f"echo {long_token}") == f"echo {REDACTED}"


def test_credential_without_get_token_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="get_token"):
        EndpointClient(endpoint_url=DEDICATED_URL, credential=object())
