"""SyncEndpointClient: the same calls, blocking; also from a thread that runs an event loop."""

from __future__ import annotations

import asyncio
import gc
import inspect
import threading
from typing import Any

import httpx
import pytest
import respx

from azml_client import ClientClosedError, EndpointClient, RateLimitError, SyncEndpointClient

from .conftest import CANARY_KEY, DEDICATED_URL, SERVERLESS_URL


def make(**kwargs: Any) -> SyncEndpointClient:
    kwargs.setdefault("endpoint_url", DEDICATED_URL)
    kwargs.setdefault("api_key", CANARY_KEY)
    kwargs.setdefault("max_retries", 0)
    return SyncEndpointClient(**kwargs)


@respx.mock
def test_sync_complete_chat_invoke() -> None:
    respx.post(DEDICATED_URL).mock(return_value=httpx.Response(200, json={"output": "hey"}))
    with make(formatter="llama-chat") as client:
        assert client.complete("x").text == "hey"
        assert client.chat([{"role": "user", "content": "x"}]).message.content == "hey"
        assert client.invoke({"raw": True}) == {"output": "hey"}
    assert client.is_closed


@respx.mock
def test_sync_errors_are_the_same_types() -> None:
    respx.post(SERVERLESS_URL).mock(return_value=httpx.Response(429, json={"message": "slow"}))
    with make(endpoint_url=SERVERLESS_URL) as client, pytest.raises(RateLimitError):
        client.chat([{"role": "user", "content": "x"}])


@respx.mock
def test_sync_call_from_inside_a_running_event_loop() -> None:
    """As in Jupyter: the calling thread is running an asyncio loop."""
    respx.post(DEDICATED_URL).mock(return_value=httpx.Response(200, json=["from the portal"]))
    client = make()

    async def notebook_cell() -> str:
        return client.complete("x").text  # a blocking call inside a coroutine

    try:
        assert asyncio.run(notebook_cell()) == "from the portal"
    finally:
        client.close()


def test_closed_sync_client() -> None:
    client = make()
    client.close()
    client.close()
    with pytest.raises(ClientClosedError):
        client.complete("x")
    with pytest.raises(ClientClosedError), client:
        pass


@respx.mock
def test_close_stops_the_portal_thread() -> None:
    """A call from a running loop starts the portal thread; close() must stop it."""
    respx.post(DEDICATED_URL).mock(return_value=httpx.Response(200, json=["x"]))
    before = threading.active_count()
    client = make()

    async def notebook_cell() -> int:
        client.complete("x")  # under a running loop: goes through the portal thread
        return threading.active_count()

    during = asyncio.run(notebook_cell())
    assert during > before  # the portal thread was really started
    client.close()
    assert threading.active_count() == before


def test_repr_has_no_key() -> None:
    with make() as client:
        assert CANARY_KEY not in repr(client)
        assert repr(client).startswith("SyncEndpointClient(")


@respx.mock
def test_a_plain_thread_runs_calls_on_the_clients_own_loop_without_a_thread_hop() -> None:
    respx.post(DEDICATED_URL).mock(return_value=httpx.Response(200, json=["x"]))
    before = threading.active_count()
    with make() as client:
        client.complete("x")
        assert threading.active_count() == before  # no portal thread was needed
        seen: list[int] = []

        def other_thread() -> None:
            seen.append(len(client.complete("y").text))

        threads = [threading.Thread(target=other_thread) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert seen == [1, 1, 1, 1]  # concurrent callers share the client safely


@pytest.mark.parametrize(
    "name",
    [
        "__init__",
        "complete",
        "chat",
        "invoke",
        "stream",
        "batch",
        "map",
        "with_options",
        "embed",
        "embed_images",
        "embed_many",
        "info",
    ],
)
def test_sync_methods_have_the_async_signatures(name: str) -> None:
    """Same parameters, kinds, defaults and annotations: no **kwargs dispatch to drift."""
    sync = inspect.signature(getattr(SyncEndpointClient, name))
    async_ = inspect.signature(getattr(EndpointClient, name))
    assert list(sync.parameters.values()) == list(async_.parameters.values())


def test_the_key_is_in_no_attribute_of_the_sync_client() -> None:
    client = make()
    try:
        seen: list[object] = []
        stack: list[object] = [client]
        while stack:
            obj = stack.pop()
            if any(obj is s for s in seen) or len(seen) > 5000:
                continue
            seen.append(obj)
            if isinstance(obj, str):
                assert CANARY_KEY not in obj
            elif isinstance(obj, dict):
                stack.extend(obj.keys())
                stack.extend(obj.values())
            elif isinstance(obj, list | tuple | set):
                stack.extend(obj)
            elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("azml_client"):
                stack.extend(vars(obj).values())
    finally:
        client.close()


@respx.mock
def test_sync_with_options_shares_the_loop_and_changes_settings() -> None:
    route = respx.post(DEDICATED_URL).mock(return_value=httpx.Response(200, json=["x"]))
    with make() as client:
        tagged = client.with_options(default_headers={"X-Team": "a"}, model_kwargs={"t": 1})
        tagged.complete("x")
        client.complete("y")
        tagged.close()  # closes nothing shared
        client.complete("z")
    sent = [call.request for call in route.calls]
    assert sent[0].headers["x-team"] == "a" and "x-team" not in sent[1].headers
    assert len(sent) == 3


@respx.mock
def test_a_dropped_client_is_collected_from_another_thread() -> None:
    """Dropped without close() in another thread: its loop and connections are released."""
    respx.post(DEDICATED_URL).mock(return_value=httpx.Response(200, json=["x"]))
    client = make()
    client.complete("x")  # the client's own loop and pool are in use
    runners = client._runners  # what the finalizer must close (it does not keep client alive)
    holder = [client]
    del client

    def drop() -> None:
        holder.clear()
        gc.collect()

    thread = threading.Thread(target=drop)
    thread.start()
    thread.join()
    assert runners.closed
    assert runners.own.loop.is_closed()
    assert runners.own_client.is_closed
