"""Embeddings on every API: deterministic unit vectors, encodings, dimensions, images, errors."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from azml_client.emulator import EmulatorConfig, EmulatorServer, create_app

IMAGE = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
ROUTES = ["/openai/v1/embeddings", "/models/embeddings", "/v1/embeddings", "/embeddings"]


@pytest.fixture(scope="module")
def http(api_emulator: EmulatorServer) -> Iterator[httpx.Client]:
    headers = {"api-key": api_emulator.api_key, "Authorization": f"Bearer {api_emulator.api_key}"}
    params = {"api-version": "2024-05-01-preview"}
    with httpx.Client(base_url=api_emulator.base_url, headers=headers, params=params) as client:
        yield client


def embed(http: httpx.Client, route: str = "/openai/v1/embeddings", **body: Any) -> httpx.Response:
    return http.post(route, json={"model": "emb", **body})


def vectors(response: httpx.Response) -> list[Any]:
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [d["index"] for d in data] == list(range(len(data)))
    assert all(d["object"] == "embedding" for d in data)
    return [d["embedding"] for d in data]


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (norm(a) * norm(b))


@pytest.mark.parametrize("route", ROUTES)
def test_response_shape_and_usage(http: httpx.Client, route: str) -> None:
    response = embed(http, route, input=["This is a very good text", "two words"])
    body = response.json()
    assert set(body) == {"object", "data", "model", "usage"} and body["object"] == "list"
    assert body["usage"] == {"prompt_tokens": 6 + 2, "total_tokens": 6 + 2}
    first, second = vectors(response)
    assert len(first) == len(second) == 256  # EmulatorConfig.embedding_dimensions
    assert all(isinstance(x, float) for x in first)


def test_same_input_same_vector_on_every_route(http: httpx.Client) -> None:
    answers = [vectors(embed(http, route, input="hello world"))[0] for route in ROUTES]
    assert all(a == answers[0] for a in answers)
    assert abs(norm(answers[0]) - 1.0) < 1e-6
    one, two = vectors(embed(http, input=["hello world", "hello worlds"]))
    assert one == answers[0] and two != one


def test_a_string_and_a_one_item_list_agree(http: httpx.Client) -> None:
    assert vectors(embed(http, input="x y z")) == vectors(embed(http, input=["x y z"]))


def test_token_arrays_are_accepted(http: httpx.Client) -> None:
    # LangChain's OpenAIEmbeddings sends token ids by default.
    one = vectors(embed(http, input=[1, 2, 3]))
    many = embed(http, input=[[1, 2, 3], [4]])
    assert vectors(many)[0] == one[0]
    assert many.json()["usage"]["prompt_tokens"] == 4


async def test_the_seed_changes_the_vectors(http: httpx.Client) -> None:
    ours = vectors(embed(http, input="hello world"))[0]
    app = create_app(EmulatorConfig(api_key="k", seed=8))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as h:
        r = await h.post("/openai/v1/embeddings", json={"model": "m", "input": "hello world"},
                         headers={"api-key": "k"})  # fmt: skip
    assert vectors(r)[0] != ours


def test_shared_words_make_similar_vectors(http: httpx.Client) -> None:
    cat, cats, car = vectors(
        embed(http, input=["the cat sat on the mat", "the cat sat on a mat", "quantum flux engine"])
    )
    assert cosine(cat, cats) > 0.6
    assert abs(cosine(cat, car)) < 0.3


def test_base64_decodes_to_the_float_vector(http: httpx.Client) -> None:
    floats = vectors(embed(http, input=["alpha", "beta"], encoding_format="float"))
    encoded = vectors(embed(http, input=["alpha", "beta"], encoding_format="base64"))
    for as_float, as_text in zip(floats, encoded, strict=True):
        assert isinstance(as_text, str)
        raw = base64.b64decode(as_text)
        assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == as_float


def test_dimensions_are_honoured_and_prefix_consistent(http: httpx.Client) -> None:
    full = vectors(embed(http, input="matryoshka", dimensions=1024))[0]
    short = vectors(embed(http, input="matryoshka", dimensions=8))[0]
    assert len(full) == 1024 and len(short) == 8
    assert abs(norm(short) - 1.0) < 1e-6
    # The first dimensions of the long vector point the same way as the short one.
    assert cosine(full[:8], short) > 0.9999


@pytest.mark.parametrize("dimensions", [0, -3, 4097, 2.5, "8", True])
def test_bad_dimensions(http: httpx.Client, dimensions: object) -> None:
    response = embed(http, input="x", dimensions=dimensions)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "dimensions"


def test_int_encodings(http: httpx.Client) -> None:
    floats = vectors(embed(http, input="quantize me", dimensions=16))[0]
    int8 = vectors(embed(http, input="quantize me", dimensions=16, encoding_format="int8"))[0]
    uint8 = vectors(embed(http, input="quantize me", dimensions=16, encoding_format="uint8"))[0]
    ubinary = vectors(embed(http, input="quantize me", dimensions=16, encoding_format="ubinary"))[0]
    binary = vectors(embed(http, input="quantize me", dimensions=16, encoding_format="binary"))[0]
    assert int8 == [round(x * 127) for x in floats]
    assert all(0 <= u <= 255 for u in uint8) and [u > 127 for u in uint8] == [x > 0 for x in floats]
    assert len(ubinary) == len(binary) == 2
    bits = [(byte >> (7 - i)) & 1 for byte in ubinary for i in range(8)]
    assert bits == [int(x > 0) for x in floats]
    assert binary == [b - 128 for b in ubinary]


def test_unknown_encoding_format_names_the_supported_ones(http: httpx.Client) -> None:
    response = embed(http, input="x", encoding_format="float16")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "encoding_format"
    assert all(f in error["message"] for f in ("float", "base64", "int8", "ubinary"))
    flat = embed(http, "/models/embeddings", input="x", encoding_format="float16")
    assert flat.status_code == 400 and "base64" in flat.json()["error"]["message"]


@pytest.mark.parametrize("input_type", ["text", "query", "document"])
def test_input_types(http: httpx.Client, input_type: str) -> None:
    response = embed(http, "/models/embeddings", input="x", input_type=input_type)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"input": "x", "input_type": "passage"},
        {"input": ""},
        {"input": []},
        {"input": ["ok", 3]},
        {"input": {"text": "x"}},
        {},
    ],
)
def test_bad_text_inputs(http: httpx.Client, body: dict[str, Any]) -> None:
    assert embed(http, **body).status_code == 400
    assert embed(http, "/models/embeddings", **body).status_code == 400


def test_image_embeddings(http: httpx.Client) -> None:
    inputs = [{"image": IMAGE}, {"image": IMAGE, "text": "a fake png"},
              {"image": "https://example.com/cat.png"}]  # fmt: skip
    response = http.post("/models/images/embeddings", json={"input": inputs, "dimensions": 32})
    first, second, third = vectors(response)
    assert len(first) == 32 and abs(norm(first) - 1.0) < 1e-6
    assert len({tuple(first), tuple(second), tuple(third)}) == 3
    again = http.post("/v1/images/embeddings", json={"input": inputs[:1], "dimensions": 32})
    assert vectors(again)[0] == first
    assert response.json()["usage"]["prompt_tokens"] == 3 * 85 + 3


@pytest.mark.parametrize(
    "item",
    [
        "data:image/png;base64,AAAA",
        {"text": "no image"},
        {"image": "ftp://example.com/cat.png"},
        {"image": "data:image/png;base64,not base64!"},
        {"image": "data:text/plain;base64,AAAA"},
        {"image": IMAGE, "text": 5},
    ],
)
def test_bad_image_items(http: httpx.Client, item: object) -> None:
    response = http.post("/models/images/embeddings", json={"input": [item]})
    assert response.status_code == 400
    assert "input" in response.json()["error"]["message"]
