"""Client options: grouped arguments and their deprecated flat names, ``NOT_GIVEN``,
``with_options``, proxies through the client, and mocking the client in a user's test."""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from azml_client import (
    NOT_GIVEN,
    APITimeoutError,
    ClientClosedError,
    ConfigurationError,
    EndpointClient,
    RetryPolicy,
)

from .conftest import CANARY_KEY, DEDICATED_URL, SleepRecorder
from .faultserver import FaultServer, RawRequest, answer, forward_proxy, response

OK = response(200, json.dumps({"output": "fine"}).encode())


@pytest.fixture
async def server() -> AsyncIterator[FaultServer]:
    async with FaultServer(answer(OK)) as srv:
        yield srv


def test_grouped_arguments_fill_the_settings() -> None:
    client = EndpointClient(
        DEDICATED_URL,
        CANARY_KEY,
        timeout=httpx.Timeout(30, connect=4, pool=7),
        retry=RetryPolicy(max_retries=5, backoff_base=0.25, backoff_max=4, max_retry_after=20),
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=8, keepalive_expiry=9),
    )
    s = client.settings
    assert (s.timeout, s.connect_timeout, s.pool_timeout) == (30, 4, 7)
    assert (s.max_retries, s.backoff_base, s.backoff_max, s.max_retry_after) == (5, 0.25, 4, 20)
    assert (s.max_connections, s.max_keepalive_connections, s.keepalive_expiry) == (16, 8, 9)
    assert client.retry_policy.max_retry_after == 20


@pytest.mark.parametrize(
    ("name", "value", "replacement"),
    [
        ("connect_timeout", 3, "timeout=httpx.Timeout"),
        ("backoff_base", 0.1, "retry=RetryPolicy"),
        ("backoff_max", 2, "retry=RetryPolicy"),
        ("max_retry_after", 5, "retry=RetryPolicy"),
        ("max_connections", 8, "limits=httpx.Limits"),
        ("max_keepalive_connections", 8, "limits=httpx.Limits"),
        ("keepalive_expiry", 8, "limits=httpx.Limits"),
    ],
)
def test_flat_names_still_work_with_a_warning_naming_the_replacement(
    name: str, value: float, replacement: str
) -> None:
    with pytest.warns(DeprecationWarning, match=replacement):
        client = EndpointClient(DEDICATED_URL, CANARY_KEY, **{name: value})  # type: ignore[arg-type]
    assert getattr(client.settings, name) == value


def test_loading_a_saved_config_never_warns(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "c.json"
    monkeypatch.setenv("AZUREML_ENDPOINT_API_KEY", CANARY_KEY)
    EndpointClient(
        DEDICATED_URL,
        CANARY_KEY,
        limits=httpx.Limits(max_connections=9, max_keepalive_connections=9),
    ).save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = EndpointClient.from_config(path)
    assert loaded.settings.max_connections == 9


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"timeout": 0}, "timeout must be a positive"),
        ({"timeout": httpx.Timeout(None)}, "needs a read timeout"),
        ({"limits": httpx.Limits(max_connections=None)}, "unbounded pool"),
        ({"retry": 3}, "retry must be a RetryPolicy"),
        ({"default_headers": {"X-Bad": "caf\u00e9\u2603"}}, "cannot carry"),
        ({"default_headers": {"X-Bad": "a\r\nInjected: 1"}}, "not a valid header"),
        ({"http_client": object()}, "httpx.AsyncClient"),
    ],
)
def test_bad_options_name_the_fix(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        EndpointClient(DEDICATED_URL, CANARY_KEY, **kwargs)  # type: ignore[arg-type]


def test_retry_policy_validates_its_fields() -> None:
    with pytest.raises(ConfigurationError, match="max_retries"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ConfigurationError, match="max_retry_after"):
        RetryPolicy(max_retry_after=float("nan"))


def test_not_given_is_a_falsy_singleton() -> None:
    import pickle

    assert not NOT_GIVEN and repr(NOT_GIVEN) == "NOT_GIVEN"
    assert pickle.loads(pickle.dumps(NOT_GIVEN)) is NOT_GIVEN


async def test_per_call_deadline_none_lifts_the_clients_deadline(server: FaultServer) -> None:
    async def slow(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.4)
        writer.write(OK)

    server.handler = slow
    async with EndpointClient(
        server.url(), CANARY_KEY, formatter="llama", deadline=0.1, max_retries=0
    ) as client:
        with pytest.raises(APITimeoutError):
            await client.complete("x")
        assert (await client.complete("x", deadline=None)).text == "fine"
        with pytest.raises(APITimeoutError):  # NOT_GIVEN: the client's deadline again
            await client.complete("x", deadline=NOT_GIVEN, timeout=5)


async def test_with_options_shares_the_pool_and_closes_nothing(server: FaultServer) -> None:
    client = EndpointClient(server.url(), CANARY_KEY, formatter="llama", max_retries=0)
    fast = client.with_options(timeout=5, retry=RetryPolicy(max_retries=0), model_kwargs={"t": 1})
    assert fast._driver.connections is client._driver.connections
    assert fast.model_kwargs == {"t": 1} and client.model_kwargs == {}
    assert (await fast.complete("x")).text == "fine"
    await fast.aclose()
    assert fast.is_closed and not client.is_closed
    assert (await client.complete("x")).text == "fine"
    second = client.with_options(deployment_name="blue")
    await client.aclose()
    with pytest.raises(ClientClosedError):
        await second.complete("x")
    assert server.requests[0].body and json.loads(server.requests[0].body)


def test_with_options_refuses_what_belongs_to_the_pool() -> None:
    client = EndpointClient(DEDICATED_URL, CANARY_KEY)
    for name, value in (("limits", httpx.Limits()), ("proxy", "http://p:1"), ("api_key", "x")):
        with pytest.raises(ConfigurationError, match=f"cannot change {name}"):
            client.with_options(**{name: value})


async def test_with_options_uses_its_own_sleep(sleeps: SleepRecorder) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(503 if calls == 1 else 200, json={"output": "ok"})

    client = EndpointClient(DEDICATED_URL, CANARY_KEY, transport=httpx.MockTransport(handler))
    patient = client.with_options(sleep=sleeps, retry=RetryPolicy(max_retries=1))
    assert (await patient.complete("x")).attempts == 2
    assert len(sleeps.waits) == 1


@pytest.mark.parametrize("how", ["argument", "environment"])
async def test_the_client_sends_through_a_proxy(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    async with forward_proxy() as proxy:
        kwargs: dict[str, object] = {}
        if how == "argument":
            kwargs["proxy"] = proxy.url
        else:
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
        async with EndpointClient(server.url(), CANARY_KEY, formatter="llama", **kwargs) as c:  # type: ignore[arg-type]
            assert (await c.complete("x")).text == "fine"
        assert proxy.lines == [f"POST {server.url()} HTTP/1.1"]
        if how == "environment":
            async with EndpointClient(
                server.url(), CANARY_KEY, formatter="llama", trust_env=False
            ) as direct:
                await direct.complete("x")
            assert len(proxy.lines) == 1  # trust_env=False: the environment's proxy is ignored
            assert len(server.requests) == 2


async def test_no_proxy_bypasses_the_environment_proxy(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with forward_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with EndpointClient(server.url(), CANARY_KEY, formatter="llama") as client:
            await client.complete("x")
    assert proxy.lines == [] and len(server.requests) == 1


async def test_a_users_respx_test_sees_every_request_and_nothing_leaves() -> None:
    """The README's recipe: the default client under ``respx.mock`` is intercepted."""
    url = "http://127.0.0.1:9/score"  # the discard port: nothing answers there
    with respx.mock(assert_all_called=True) as router:
        route = router.post(url).mock(return_value=httpx.Response(200, json={"output": "mocked"}))
        async with EndpointClient(url, formatter="llama") as client:
            assert (await client.complete("x")).text == "mocked"
            async with client.map(["a", "b"], concurrency=2) as run:
                texts = sorted([getattr(r, "text", "") async for _, r in run])
    assert texts == ["mocked", "mocked"]
    assert route.call_count == 3
