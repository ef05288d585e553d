"""Connection pools follow event loops: one model used from many loops (``asyncio.run`` again
and again, pytest-asyncio's loop per test), dropped while its loop runs, or closed, leaves no
session open. An unclosed aiohttp session warns at garbage collection; with warnings as
errors, any such warning fails these tests."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from collections.abc import Iterator

import pytest

pytest.importorskip("langchain_core")

from azml_client import EndpointClient
from azml_client.emulator import EmulatorServer
from azml_client.langchain import (
    AzureMLChatOnlineEndpoint,
    AzureMLEmbeddings,
    AzureMLOnlineEndpoint,
)

from .conftest import API_KEY


def chat_model(server: EmulatorServer) -> AzureMLChatOnlineEndpoint:
    return AzureMLChatOnlineEndpoint(endpoint_url=server.serverless_url, api_key=API_KEY)


def test_many_asyncio_runs_on_one_model(api_emulator: EmulatorServer) -> None:
    chat = chat_model(api_emulator)
    embeddings = AzureMLEmbeddings(endpoint_url=api_emulator.serverless_url, api_key=API_KEY)
    seen: list[EndpointClient] = []

    async def use() -> None:
        assert (await chat.ainvoke("Hello")).content
        assert [c async for c in chat.astream("Hi")]
        assert await embeddings.aembed_query("Hello")
        seen.append(await chat._clients.aget())
        assert chat._clients.loop_count == 1

    for _ in range(4):
        asyncio.run(use())
        # The loop is gone and its client closed with it.
        assert chat._clients.loop_count == 0
        assert seen[-1].is_closed
    assert len({id(c) for c in seen}) == 4
    chat.invoke("And a blocking call")  # the sync client is untouched by all this
    chat.close()
    embeddings.close()
    gc.collect()


def test_sync_and_async_calls_mix_from_threads(api_emulator: EmulatorServer) -> None:
    llm = AzureMLOnlineEndpoint(endpoint_url=api_emulator.serverless_url, api_key=API_KEY)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            assert llm.invoke("Hello")
            assert asyncio.run(llm.ainvoke("Hello"))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert llm._clients.loop_count == 0
    llm.close()
    gc.collect()


def test_a_model_dropped_while_its_loop_runs_closes_its_client(
    api_emulator: EmulatorServer,
) -> None:
    async def main() -> None:
        chat = chat_model(api_emulator)
        await chat.ainvoke("Hello")
        client = await chat._clients.aget()
        dropped = weakref.ref(chat)
        del chat
        gc.collect()
        assert dropped() is None
        for _ in range(5):  # the loop runs the guard's finalizer: a task closing the client
            await asyncio.sleep(0)
        assert client.is_closed

    asyncio.run(main())
    gc.collect()


def test_a_dropped_model_releases_its_blocking_client(api_emulator: EmulatorServer) -> None:
    llm = AzureMLOnlineEndpoint(endpoint_url=api_emulator.serverless_url, api_key=API_KEY)
    assert llm.invoke("Hello")
    runners = llm._clients.sync()._runners  # its loop and pools, closed by its finalizer
    del llm
    gc.collect()
    assert runners.closed


def test_close_then_use_again(api_emulator: EmulatorServer) -> None:
    chat = chat_model(api_emulator)
    assert chat.invoke("Hello").content
    chat.close()
    assert chat.invoke("Hello again").content  # a new blocking client
    chat.close()


async def test_aclose_closes_the_running_loops_client(api_emulator: EmulatorServer) -> None:
    chat = chat_model(api_emulator)
    await chat.ainvoke("Hello")
    client = await chat._clients.aget()
    await chat.aclose()
    assert client.is_closed and chat._clients.loop_count == 0
    assert (await chat.ainvoke("Hello again")).content


# pytest-asyncio gives each test a loop of its own: one model shared by the tests below is used
# from three loops, each closed after its test.


@pytest.fixture(scope="module")
def shared_chat(api_emulator: EmulatorServer) -> Iterator[AzureMLChatOnlineEndpoint]:
    chat = chat_model(api_emulator)
    yield chat
    chat.close()
    assert chat._clients.loop_count == 0
    gc.collect()


@pytest.mark.parametrize("round", range(3))
async def test_a_model_shared_across_test_loops(
    shared_chat: AzureMLChatOnlineEndpoint, round: int
) -> None:
    assert (await shared_chat.ainvoke(f"Hello {round}")).content
    assert shared_chat._clients.loop_count == 1
    assert await shared_chat.abatch(["a", "b"])
