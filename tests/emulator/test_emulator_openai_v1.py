"""The OpenAI v1 routes under /openai/v1: auth, OpenAI error shapes, model rules, the model list."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from azml_client.emulator import EmulatorConfig, EmulatorServer, Faults, create_app

SSEParser = Callable[[str], list[Any]]
MESSAGES = [{"role": "user", "content": "Say hello to the emulator"}]
POSTS: dict[str, dict[str, Any]] = {
    "/chat/completions": {"model": "gpt-test", "messages": MESSAGES},
    "/completions": {"model": "gpt-test", "prompt": "Once upon a time"},
    "/embeddings": {"model": "gpt-test", "input": "hello"},
}


@pytest.fixture(scope="module")
def v1(api_emulator: EmulatorServer) -> Iterator[httpx.Client]:
    headers = {"api-key": api_emulator.api_key}
    with httpx.Client(base_url=api_emulator.openai_v1_url, headers=headers) as http:
        yield http


def assert_openai_error(response: httpx.Response, status: int, param: str | None = None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["param"] == param
    expected_type = "server_error" if status >= 500 else "invalid_request_error"
    if status == 429:
        expected_type = "requests"
    assert body["error"]["type"] == expected_type
    message: str = body["error"]["message"]
    assert message
    return message


def test_urls(api_emulator: EmulatorServer) -> None:
    assert api_emulator.openai_v1_url == api_emulator.base_url + "/openai/v1"
    assert api_emulator.models_url == api_emulator.base_url + "/models"


@pytest.mark.parametrize("route", list(POSTS))
def test_every_post_route_answers_and_echoes_the_model(v1: httpx.Client, route: str) -> None:
    response = v1.post(route, json=POSTS[route])
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "gpt-test"
    assert body["usage"]["prompt_tokens"] > 0
    expected = {"/chat/completions": "chat.completion", "/completions": "text_completion"}
    assert body["object"] == expected.get(route, "list")


@pytest.mark.parametrize("route", list(POSTS))
def test_model_is_required(v1: httpx.Client, route: str) -> None:
    body = {k: v for k, v in POSTS[route].items() if k != "model"}
    message = assert_openai_error(v1.post(route, json=body), 400, param="model")
    assert "model" in message
    assert_openai_error(v1.post(route, json={**body, "model": 3}), 400, param="model")


def test_a_missing_required_field_names_it(v1: httpx.Client) -> None:
    response = v1.post("/chat/completions", json={"model": "m"})
    assert_openai_error(response, 400, param="messages")
    assert_openai_error(v1.post("/completions", content=b"{oops"), 400)


def test_api_version_is_optional_and_ignored(v1: httpx.Client) -> None:
    with_version = v1.post("/chat/completions", params={"api-version": "preview"},
                           json=POSTS["/chat/completions"])  # fmt: skip
    without = v1.post("/chat/completions", json=POSTS["/chat/completions"])
    assert with_version.status_code == without.status_code == 200
    content = with_version.json()["choices"][0]["message"]["content"]
    assert content == without.json()["choices"][0]["message"]["content"]


def test_unknown_fields_are_not_refused(v1: httpx.Client) -> None:
    # No extra-parameters header on the OpenAI API: newer OpenAI fields must not break clients.
    body = {**POSTS["/chat/completions"], "parallel_tool_calls": False, "max_completion_tokens": 3}
    response = v1.post("/chat/completions", json=body, headers={"extra-parameters": "error"})
    assert response.status_code == 200
    assert response.json()["usage"]["completion_tokens"] == 3
    assert response.json()["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    "headers",
    [{}, {"api-key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": "RAW"}],
)
def test_auth_failures_use_the_openai_shape(
    api_emulator: EmulatorServer, headers: dict[str, str]
) -> None:
    headers = {k: v.replace("RAW", api_emulator.api_key) for k, v in headers.items()}
    with httpx.Client(base_url=api_emulator.openai_v1_url) as http:
        response = http.post("/chat/completions", json=POSTS["/chat/completions"], headers=headers)
        models = http.get("/models", headers=headers)
    assert_openai_error(response, 401)
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert_openai_error(models, 401)


@pytest.mark.parametrize("scheme", ["api-key", "Bearer"])
def test_auth_with_api_key_or_bearer(api_emulator: EmulatorServer, scheme: str) -> None:
    key = api_emulator.api_key
    headers = {"api-key": key} if scheme == "api-key" else {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=api_emulator.openai_v1_url, headers=headers) as http:
        assert http.post("/embeddings", json=POSTS["/embeddings"]).status_code == 200


def test_model_list(v1: httpx.Client, api_emulator: EmulatorServer) -> None:
    response = v1.get("/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    (model,) = body["data"]
    assert model["id"] == api_emulator.config.model_name == "emu-model"
    assert model["object"] == "model" and isinstance(model["created"], int) and model["owned_by"]
    assert_openai_error(v1.post("/models", json={}), 405)


@pytest.mark.parametrize("path", ["/info", "/images/embeddings", "/nothing"])
def test_no_info_route_on_openai_v1(v1: httpx.Client, path: str) -> None:
    response = v1.request("GET" if path == "/info" else "POST", path, json={"model": "m"})
    message = assert_openai_error(response, 404)
    assert message.startswith("Invalid URL (") and f"/openai/v1{path}" in message


def test_stats_count_the_new_routes(v1: httpx.Client, api_emulator: EmulatorServer) -> None:
    route = "POST /openai/v1/embeddings"
    before = api_emulator.stats.by_route_status[route, 200]
    v1.post("/embeddings", json=POSTS["/embeddings"])
    v1.post("/embeddings", json={"input": "no model"})
    assert api_emulator.stats.by_route_status[route, 200] == before + 1
    assert api_emulator.stats.by_route_status[route, 400] >= 1
    models = api_emulator.stats.by_route["GET /openai/v1/models"]
    v1.get("/models")
    assert api_emulator.stats.by_route["GET /openai/v1/models"] == models + 1


async def test_front_door_errors_use_the_openai_shape() -> None:
    faults = Faults(rate_limit_rps=0.01, burst=1)
    app = create_app(EmulatorConfig(api_key="k", faults=faults))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://e/openai/v1",
                                 headers={"api-key": "k"}) as http:  # fmt: skip
        assert (await http.post("/embeddings", json=POSTS["/embeddings"])).status_code == 200
        limited = await http.post("/embeddings", json=POSTS["/embeddings"])
        models = await http.get("/models")  # answered before the rate limit
    assert_openai_error(limited, 429)
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert limited.headers["retry-after"]
    assert models.status_code == 200
    assert app.stats.rate_limited == 1


@pytest.mark.parametrize(
    ("fault", "status"), [("error_503", 503), ("error_424", 424), ("error_408", 408)]
)
async def test_injected_errors_use_the_openai_shape(fault: str, status: int) -> None:
    always: dict[str, Any] = {fault: 1.0}
    app = create_app(EmulatorConfig(api_key="k", faults=Faults(**always)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://e") as http:
        v1 = await http.post("/openai/v1/chat/completions", json=POSTS["/chat/completions"],
                             headers={"Authorization": "Bearer k"})  # fmt: skip
        serverless = await http.post("/v1/chat/completions", json={"messages": MESSAGES},
                                     headers={"Authorization": "Bearer k"})  # fmt: skip
    assert_openai_error(v1, status)
    # The same fault on a serverless route keeps the platform's own shapes.
    assert serverless.status_code == status
    if status == 503:
        assert serverless.json()["status"] == 503
    elif status == 424:
        assert v1.headers["ms-azureml-model-error-statuscode"] == "500"
        assert set(serverless.json()) == {"message"}
    else:
        assert serverless.text == "upstream request timeout"


def test_streams_echo_the_model(v1: httpx.Client, parse_sse: SSEParser) -> None:
    body = {**POSTS["/chat/completions"], "stream": True, "model": "other-model"}
    events = parse_sse(v1.post("/chat/completions", json=body).text)
    assert events[-1] == "[DONE]"
    assert {e["model"] for e in events[:-1]} == {"other-model"}
