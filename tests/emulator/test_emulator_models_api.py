"""The model-inference routes under /models: api-version, auth, /info, model echo, error shapes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from azml_client.emulator import EmulatorConfig, EmulatorServer, Faults, create_app

KNOWN = ["2024-04-01-preview", "2024-05-01-preview", "2024-08-01-preview", "2025-04-01"]
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
IMAGE = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="
ROUTES: dict[str, dict[str, Any]] = {
    "/chat/completions": {"messages": MESSAGES},
    "/completions": {"prompt": "The capital of France is"},
    "/embeddings": {"input": ["Paris"]},
    "/images/embeddings": {"input": [{"image": IMAGE, "text": "a tiny image"}]},
}


@pytest.fixture(scope="module")
def models(api_emulator: EmulatorServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {api_emulator.api_key}"}
    params = {"api-version": "2024-05-01-preview"}
    with httpx.Client(base_url=api_emulator.models_url, headers=headers, params=params) as http:
        yield http


def flat_400(response: httpx.Response) -> str:
    """The FMS validation error shape ``{"error": {"code", "message", "status"}}``."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "Bad Request" and error["status"] == 400
    message: str = error["message"]
    return message


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("version", KNOWN)
def test_each_route_with_each_known_version(models: httpx.Client, route: str, version: str) -> None:
    response = models.post(route, params={"api-version": version}, json=ROUTES[route])
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "emu-model"  # no model asked: the endpoint's own


@pytest.mark.parametrize("route", [*ROUTES, "/info"])
def test_api_version_is_required(api_emulator: EmulatorServer, route: str) -> None:
    headers = {"api-key": api_emulator.api_key}
    with httpx.Client(base_url=api_emulator.models_url, headers=headers) as http:
        method = "GET" if route == "/info" else "POST"
        missing = http.request(method, route, json=ROUTES.get(route))
        empty = http.request(method, route, params={"api-version": ""}, json=ROUTES.get(route))
        unknown = http.request(
            method, route, params={"api-version": "2023-01-01"}, json=ROUTES.get(route)
        )
    assert "api-version" in flat_400(missing)
    assert "api-version" in flat_400(empty)
    message = flat_400(unknown)
    assert "2023-01-01" in message and all(v in message for v in KNOWN)


def test_auth_comes_before_the_api_version_check(api_emulator: EmulatorServer) -> None:
    with httpx.Client(base_url=api_emulator.models_url) as http:
        response = http.post("/embeddings", json=ROUTES["/embeddings"])
    assert response.status_code == 401
    assert response.json() == {
        "error": "Unauthorized",
        "message": "Missing or invalid authorization key.",
        "status": 401,
    }


async def test_a_bad_api_version_spends_no_rate_limit_token() -> None:
    app = create_app(EmulatorConfig(api_key="k", faults=Faults(rate_limit_rps=0.01, burst=1)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://e/models",
                                 headers={"api-key": "k"}) as http:  # fmt: skip
        bad = await http.post("/embeddings", json=ROUTES["/embeddings"])
        good = await http.post("/embeddings", params={"api-version": KNOWN[-1]},
                               json=ROUTES["/embeddings"])  # fmt: skip
        limited = await http.post("/embeddings", params={"api-version": KNOWN[-1]},
                                  json=ROUTES["/embeddings"])  # fmt: skip
    assert [bad.status_code, good.status_code, limited.status_code] == [400, 200, 429]
    assert limited.json()["status"] == 429 and limited.headers["retry-after"]


@pytest.mark.parametrize("header", ["api-key", "bearer", "raw"])
def test_auth_forms(api_emulator: EmulatorServer, header: str) -> None:
    key = api_emulator.api_key
    headers = {
        "api-key": {"api-key": key},
        "bearer": {"Authorization": f"Bearer {key}"},
        "raw": {"Authorization": key},
    }[header]
    with httpx.Client(base_url=api_emulator.models_url, params={"api-version": "2025-04-01"}) as h:
        assert h.get("/info", headers=headers).status_code == 200
        assert h.get("/info", headers={"api-key": "wrong"}).status_code == 401


def test_info(models: httpx.Client) -> None:
    assert models.get("/info").json() == {
        "model_name": "emu-model",
        "model_type": "chat-completions",
        "model_provider_name": "azml-emulator",
    }


def test_the_model_is_optional_and_echoed(models: httpx.Client) -> None:
    body = {**ROUTES["/chat/completions"], "model": "Phi-4"}
    assert models.post("/chat/completions", json=body).json()["model"] == "Phi-4"
    assert "model" in flat_400(models.post("/chat/completions", json={**body, "model": 7}))


def test_extra_parameters_rules_apply(models: httpx.Client) -> None:
    body = {**ROUTES["/embeddings"], "truncate": "END"}
    assert "truncate" in flat_400(models.post("/embeddings", json=body))
    passed = models.post("/embeddings", json=body, headers={"extra-parameters": "pass-through"})
    assert passed.status_code == 200
    chat = {**ROUTES["/chat/completions"], "safe_prompt": True}
    assert models.post(
        "/chat/completions", json=chat, headers={"extra-parameters": "drop"}
    ).is_success


def test_unknown_models_route_is_a_flat_404(models: httpx.Client) -> None:
    response = models.post("/audio/speech", json={})
    assert response.status_code == 404
    assert response.json()["status"] == 404


def test_serverless_routes_gain_embeddings_and_ignore_api_version(
    api_emulator: EmulatorServer,
) -> None:
    with httpx.Client(base_url=api_emulator.base_url,
                      headers={"Authorization": api_emulator.api_key}) as http:  # fmt: skip
        for prefix in ("/v1", ""):
            text = http.post(f"{prefix}/embeddings", json=ROUTES["/embeddings"])
            image = http.post(f"{prefix}/images/embeddings", json=ROUTES["/images/embeddings"],
                              params={"api-version": "1999-01-01"})  # fmt: skip
            assert text.status_code == image.status_code == 200
            assert text.json()["model"] == image.json()["model"] == "emu-model"
        asked = http.post("/v1/embeddings", json={**ROUTES["/embeddings"], "model": "x"})
    assert asked.json()["model"] == "emu-model"  # serverless serves its one model
    assert api_emulator.stats.by_route["POST /v1/images/embeddings"] >= 1
