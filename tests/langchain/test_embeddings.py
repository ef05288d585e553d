"""``AzureMLEmbeddings`` beyond the standard suites: many texts through the bulk engine, in
order; dimensions and input types on the wire."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("langchain_core")

from azml_client import EndpointClient, RateBudget
from azml_client.emulator import EmulatorServer
from azml_client.langchain import AzureMLEmbeddings

from .conftest import API_KEY, RECORDED_SERVERLESS, Recorder

TEXTS = [f"document number {i} about {word}" for i, word in enumerate("abcdefghij")]


def vectors(body: dict[str, Any]) -> Any:
    data = [{"index": i, "embedding": [float(i), 1.0]} for i, _ in enumerate(body["input"])]
    return {"data": data, "model": "m", "usage": {"prompt_tokens": 1, "total_tokens": 1}}


def test_many_texts_go_through_the_bulk_engine_in_order(api_emulator: EmulatorServer) -> None:
    budget = RateBudget()
    client = EndpointClient(api_emulator.models_url, API_KEY, model="embed", budget=budget)
    embeddings = AzureMLEmbeddings(client=client, chunk_size=3)
    one_by_one = [embeddings.embed_query(text) for text in TEXTS]
    assert budget.sent == 0
    assert embeddings.embed_documents(TEXTS) == one_by_one
    assert budget.sent == 4  # ten texts, three per request
    assert embeddings.embed_documents([]) == []


async def test_async_embeddings_in_order(api_emulator: EmulatorServer) -> None:
    embeddings = AzureMLEmbeddings(
        endpoint_url=api_emulator.models_url, api_key=API_KEY, model="embed", chunk_size=4
    )
    one_by_one = [await embeddings.aembed_query(text) for text in TEXTS]
    assert await embeddings.aembed_documents(TEXTS) == one_by_one
    assert await embeddings.aembed_documents(TEXTS[:2]) == one_by_one[:2]


def test_dimensions_shorten_the_vectors(api_emulator: EmulatorServer) -> None:
    embeddings = AzureMLEmbeddings(
        endpoint_url=api_emulator.openai_v1_url, api_key=API_KEY, model="embed", dimensions=16
    )
    assert len(embeddings.embed_query("Hello")) == 16


def test_input_types_are_sent_when_asked() -> None:
    recorder = Recorder(vectors)
    plain = AzureMLEmbeddings(
        endpoint_url=RECORDED_SERVERLESS,
        api_key="k",
        client_kwargs={"transport": recorder.transport},
    )
    plain.embed_query("q")
    assert "input_type" not in recorder.last
    typed = AzureMLEmbeddings(
        endpoint_url=RECORDED_SERVERLESS,
        api_key="k",
        send_input_type=True,
        client_kwargs={"transport": recorder.transport},
    )
    assert typed.embed_documents(["a", "b"]) == [[0.0, 1.0], [1.0, 1.0]]
    assert recorder.last["input_type"] == "document"
    typed.embed_query("q")
    assert recorder.last["input_type"] == "query"
