"""Serverless OpenAI-style routes: bodies, auth, extra-parameters, streaming, generation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from azml_client.emulator import EmulatorConfig, EmulatorServer, create_app, run_emulator

KEY = "serverless-key"
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant"},
    {"role": "user", "content": "Explain Riemann's conjecture in 1 paragraph"},
]
SSEParser = Callable[[str], list[Any]]
CHAT_ROUTES = ["/v1/chat/completions", "/chat/completions", "/models/chat/completions"]
TEXT_ROUTES = ["/v1/completions", "/completions"]


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with run_emulator(EmulatorConfig(api_key=KEY, model_name="llama-emu", seed=11)) as emu:
        yield emu


@pytest.fixture(scope="module")
def client(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    # The raw key, without "Bearer", as Microsoft's serverless notebooks send it.
    with httpx.Client(base_url=emulator.base_url, headers={"Authorization": KEY}) as http:
        yield http


def chat(client: httpx.Client, route: str = "/v1/chat/completions", **body: Any) -> httpx.Response:
    return client.post(route, json={"messages": MESSAGES, **body})


@pytest.mark.parametrize("route", CHAT_ROUTES)
def test_chat_completion_body(client: httpx.Client, route: str) -> None:
    response = client.post(
        route, params={"api-version": "2024-05-01-preview"}, json={"messages": MESSAGES}
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "object", "created", "model", "choices", "usage"}
    assert body["object"] == "chat.completion" and body["model"] == "llama-emu"
    assert isinstance(body["created"], int) and body["id"].startswith("chatcmpl-")
    (choice,) = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    usage = body["usage"]
    assert usage["prompt_tokens"] == 5 + 6
    assert usage["completion_tokens"] == len(choice["message"]["content"].split())
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize("route", TEXT_ROUTES)
def test_text_completion_body(client: httpx.Client, route: str) -> None:
    response = client.post(route, json={"prompt": "This is a very good text", "max_tokens": 3})
    body = response.json()
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "length" and choice["logprobs"] is None
    assert len(choice["text"].split()) == 3
    assert body["usage"] == {"prompt_tokens": 6, "completion_tokens": 3, "total_tokens": 9}


def test_trailing_slash_is_the_same_route(client: httpx.Client) -> None:
    assert chat(client, "/v1/chat/completions/").status_code == 200


def test_auth(emulator: EmulatorServer) -> None:
    with httpx.Client(base_url=emulator.base_url) as http:
        body = {"messages": MESSAGES}
        missing = http.post("/v1/chat/completions", json=body)
        wrong = http.post("/v1/chat/completions", json=body, headers={"Authorization": "nope"})
        bearer = http.post(
            "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
        )
        info = http.get("/info")
    assert missing.status_code == wrong.status_code == info.status_code == 401
    assert missing.json() == {
        "error": "Unauthorized",
        "message": "Missing or invalid authorization key.",
        "status": 401,
    }
    assert bearer.status_code == 200


@pytest.mark.parametrize("route", ["/info", "/v1/info"])
def test_info(client: httpx.Client, route: str) -> None:
    response = client.get(route, params={"api-version": "2024-04-01-preview"})
    assert response.json() == {
        "model_name": "llama-emu",
        "model_type": "chat-completions",
        "model_provider_name": "azml-emulator",
    }
    assert client.post(route).status_code == 405


def test_prompt_on_a_chat_route_is_400(client: httpx.Client) -> None:
    response = client.post("/v1/chat/completions", json={"prompt": "hi"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == 400 and "messages" in error["message"]
    assert client.post("/v1/completions", json={"messages": MESSAGES}).status_code == 400


def test_invalid_bodies(client: httpx.Client) -> None:
    assert client.post("/v1/completions", content=b"{oops").status_code == 400
    assert client.post("/v1/completions", json=["prompt"]).status_code == 400
    assert client.post("/v1/completions", json={"prompt": 3}).status_code == 400
    assert chat(client, max_tokens=-1).status_code == 400
    assert client.post("/v1/chat/completions", json={"messages": "hi"}).status_code == 400


def test_extra_parameters(client: httpx.Client) -> None:
    body = {"messages": MESSAGES, "max_new_tokens": 2, "safe_prompt": True}
    default = client.post("/v1/chat/completions", json=body)
    assert default.status_code == 400
    assert default.json()["error"]["message"] == (
        "Extra parameters ['max_new_tokens', 'safe_prompt'] are not allowed when "
        "extra-parameters is set to 'error'."
    )
    explicit = client.post("/v1/chat/completions", json=body, headers={"extra-parameters": "error"})
    assert explicit.status_code == 400
    passed = client.post(
        "/v1/chat/completions", json=body, headers={"extra-parameters": "pass-through"}
    )
    assert passed.status_code == 200
    assert passed.json()["usage"]["completion_tokens"] == 2  # the model saw max_new_tokens
    dropped = client.post("/v1/chat/completions", json=body, headers={"extra-parameters": "drop"})
    assert dropped.status_code == 200
    assert dropped.json()["usage"]["completion_tokens"] > 2
    unknown = client.post("/v1/chat/completions", json=body, headers={"extra-parameters": "ignore"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"].startswith(
        "Unexpected EXTRA_PARAMETERS option ignore"
    )


async def test_extra_parameters_default_can_be_pass_through() -> None:
    app = create_app(EmulatorConfig(api_key="k", extra_parameters_default="pass-through"))
    body = {"prompt": "hi", "best_of": 2}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as h:
        response = await h.post("/v1/completions", json=body, headers={"Authorization": "k"})
    assert response.status_code == 200


def test_stop_and_determinism(client: httpx.Client) -> None:
    first = chat(client, max_tokens=30).json()["choices"][0]["message"]["content"]
    assert chat(client, max_tokens=30).json()["choices"][0]["message"]["content"] == first
    stop = first.split()[3]
    cut = chat(client, max_tokens=30, stop=[stop, "never-there"]).json()["choices"][0]
    assert cut["finish_reason"] == "stop"
    assert cut["message"]["content"] == first[: first.index(stop)]
    text = client.post("/v1/completions", json={"prompt": "x", "stop": stop}).json()
    assert stop not in text["choices"][0]["text"]


async def test_a_different_seed_gives_a_different_text(client: httpx.Client) -> None:
    ours = chat(client).json()["choices"][0]["message"]["content"]
    app = create_app(EmulatorConfig(api_key=KEY, seed=12))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as h:
        body = {"messages": MESSAGES}
        theirs = await h.post("/v1/chat/completions", json=body, headers={"Authorization": KEY})
    assert theirs.json()["choices"][0]["message"]["content"] != ours


@pytest.mark.parametrize("flag", [True, "True"])
def test_chat_stream(client: httpx.Client, parse_sse: SSEParser, flag: object) -> None:
    whole = chat(client).json()
    body = {"messages": MESSAGES, "stream": flag}
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(r.read().decode())
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == whole["choices"][0]["message"]["content"]
    assert all("usage" not in c for c in chunks)


def test_stream_with_usage_and_text_completions(client: httpx.Client, parse_sse: SSEParser) -> None:
    body = {"prompt": "Say this is a test", "max_tokens": 5, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    response = client.post("/v1/completions", json=body)
    events = parse_sse(response.text)
    assert events[-1] == "[DONE]"
    *chunks, usage_chunk = events[:-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}
    assert all(c["object"] == "text_completion" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert "".join(c["choices"][0]["text"] for c in chunks).count(" ") == 4


def test_stream_false_string_is_not_a_stream(client: httpx.Client) -> None:
    response = client.post("/v1/completions", json={"prompt": "hi", "stream": "false"})
    assert response.headers["content-type"] == "application/json"
