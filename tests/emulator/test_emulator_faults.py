"""Fault injection: throttling, pending limit, injected errors, timeouts, broken streams and bodies."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from azml_client.emulator import Deployment, EmulatorConfig, EmulatorServer, Faults

Factory = Callable[..., EmulatorServer]
KEY = "fault-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
G2 = {"input_data": {"input_string": ["hello"], "parameters": {"max_new_tokens": 4}}}
CHAT = {"messages": [{"role": "user", "content": "hi"}], "stream": True}


def fraction(name: str) -> dict[str, Any]:
    """``{name: 1.0}``: the fault always happens."""
    return {name: 1.0}


def start(factory: Factory, faults: Faults, **options: Any) -> EmulatorServer:
    return factory(EmulatorConfig(api_key=KEY, faults=faults, **options))


def test_token_bucket_429(azml_emulator_factory: Factory) -> None:
    emu = start(azml_emulator_factory, Faults(rate_limit_rps=0.5, burst=2))
    with httpx.Client(headers=AUTH) as http:
        statuses = [http.post(emu.score_url, json=G2) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    throttled = statuses[-1]
    assert throttled.headers["retry-after"] == "2"  # 1 token at 0.5/s, rounded up
    assert 1900 <= int(throttled.headers["retry-after-ms"]) <= 2000
    assert throttled.json()["status"] == 429
    assert emu.stats.rate_limited == emu.stats.throttled == 1


async def test_pending_request_limit(azml_emulator_factory: Factory) -> None:
    faults = Faults(latency=0.4, max_concurrent_requests_per_instance=1, instance_count=1)
    emu = start(azml_emulator_factory, faults)
    results: list[httpx.Response] = []

    async with httpx.AsyncClient(headers=AUTH) as http:

        async def one() -> None:
            results.append(await http.post(emu.score_url, json=G2))

        async with anyio.create_task_group() as group:
            for _ in range(5):
                group.start_soon(one)
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 200, 429, 429, 429]
    rejected = next(r for r in results if r.status_code == 429)
    assert rejected.json()["message"] == "Too many pending requests"
    assert emu.stats.max_in_flight == 2
    assert emu.stats.pending_rejected == 3


@pytest.mark.parametrize("status", [503, 500, 424, 408])
def test_injected_errors(azml_emulator_factory: Factory, status: int) -> None:
    emu = start(azml_emulator_factory, Faults(**fraction(f"error_{status}")))
    with httpx.Client(headers=AUTH) as http:
        dedicated = http.post(emu.score_url, json=G2)
        serverless = http.post(f"{emu.serverless_url}/completions", json={"prompt": "x"})
    assert dedicated.status_code == serverless.status_code == status
    if status == 424:
        assert dedicated.headers["ms-azureml-model-error-statuscode"] == "500"
        assert dedicated.headers["ms-azureml-model-error-reason"] == "model_error"
        assert "scoring script" in dedicated.json()["message"]
    elif status == 408:
        assert dedicated.text == "upstream request timeout"
    else:
        assert dedicated.json()["status"] == status
    assert emu.stats.by_status[status] == 2


def test_latency_over_request_timeout_is_408(azml_emulator_factory: Factory) -> None:
    emu = start(azml_emulator_factory, Faults(latency=5.0, request_timeout_ms=20))
    with httpx.Client(headers=AUTH, timeout=2.0) as http:
        response = http.post(emu.score_url, json=G2)
    assert response.status_code == 408
    assert response.text == "upstream request timeout"
    assert response.elapsed.total_seconds() < 1.0


def test_faults_are_seeded(azml_emulator_factory: Factory) -> None:
    runs = []
    for _ in range(2):
        emu = start(azml_emulator_factory, Faults(error_503=0.5), seed=7)
        with httpx.Client(headers=AUTH) as http:
            runs.append([http.post(emu.score_url, json=G2).status_code for _ in range(16)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 503}


def test_stream_cut(azml_emulator_factory: Factory) -> None:
    emu = start(azml_emulator_factory, Faults(stream_cut=1.0))
    received = b""
    url = f"{emu.serverless_url}/chat/completions"
    with (
        httpx.Client(headers=AUTH) as http,
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", url, json=CHAT) as r,
    ):
        assert r.status_code == 200
        for chunk in r.iter_bytes():
            received += chunk
    assert received.startswith(b"data: {")
    assert b"[DONE]" not in received
    assert emu.stats.streams_cut == 1


def test_token_latency_spaces_stream_chunks(azml_emulator_factory: Factory) -> None:
    emu = start(azml_emulator_factory, Faults(token_latency=0.01))
    body = {**CHAT, "max_tokens": 5}
    with httpx.Client(headers=AUTH) as http:
        response = http.post(f"{emu.serverless_url}/chat/completions", json=body)
    assert response.text.endswith("data: [DONE]\n\n")
    assert response.elapsed.total_seconds() >= 0.06  # 6 gaps between the 7 chunks


def test_malformed_json(azml_emulator_factory: Factory) -> None:
    emu = start(azml_emulator_factory, Faults(malformed_json=1.0))
    with httpx.Client(headers=AUTH) as http:
        response = http.post(emu.score_url, json=G2)
        unauthorized = http.post(emu.score_url, json=G2, headers={"Authorization": "x"})
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert unauthorized.json()["status"] == 401  # errors stay intact
    assert emu.stats.malformed == 1


@pytest.mark.parametrize("fault", ["error_in_200", "empty_200"])
def test_vllm_200_faults(azml_emulator_factory: Factory, fault: str) -> None:
    deployments = [Deployment("fms", "vllm"), Deployment("old", "llama", traffic=0)]
    emu = start(azml_emulator_factory, Faults(**fraction(fault)), deployments=deployments)
    body = {"input_data": {"input_string": [{"role": "user", "content": "hi"}]}}
    with httpx.Client(headers=AUTH) as http:
        response = http.post(emu.score_url, json=body)
        llama = http.post(
            emu.score_url, json={"input_data": {"input_string": ["hi"]}},
            headers={"azureml-model-deployment": "old"},
        )  # fmt: skip
    assert response.status_code == 200
    if fault == "empty_200":
        assert response.json() == {}
    else:
        answer = response.json()
        assert answer["output"] is None
        assert answer["error"]["status_code"] == 500
        assert answer["error"]["body"]["code"] == 500
    assert isinstance(llama.json()[0]["0"], str)  # other families are untouched
