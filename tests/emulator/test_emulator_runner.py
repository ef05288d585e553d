"""Running the emulator: loopback server lifecycle, async runner, in-process ASGI, fixtures."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import pytest

from azml_client.emulator import (
    Deployment,
    EmulatorConfig,
    EmulatorServer,
    Faults,
    arun_emulator,
    create_app,
    run_emulator,
)

BODY = {"input_data": {"input_string": ["Hello"], "parameters": {"max_new_tokens": 3}}}


def test_clean_shutdown_leaves_no_thread_or_socket() -> None:
    before = set(threading.enumerate())
    with run_emulator(EmulatorConfig(api_key="k")) as emu:
        url = emu.score_url
        listener = emu._socket
        assert listener is not None and emu.running
        assert emu.base_url.startswith("http://127.0.0.1:")
        assert emu.serverless_url == emu.base_url + "/v1"
        with httpx.Client() as http:
            assert http.post(url, json=BODY, headers={"Authorization": "Bearer k"}).is_success
    assert not emu.running
    assert listener.fileno() == -1  # closed
    assert set(threading.enumerate()) == before
    with httpx.Client() as http, pytest.raises(httpx.ConnectError):
        http.post(url, json=BODY)
    with pytest.raises(RuntimeError):
        _ = emu.port
    emu.stop()  # a second stop is harmless


def test_server_refuses_a_second_start() -> None:
    server = EmulatorServer()
    with server, pytest.raises(RuntimeError):
        server.start()


def test_busy_port_fails_cleanly() -> None:
    with run_emulator() as emu, pytest.raises(OSError):
        EmulatorServer(port=emu.port).start()


async def test_async_runner() -> None:
    async with arun_emulator(EmulatorConfig(api_key="k")) as emu:
        async with httpx.AsyncClient(headers={"Authorization": "Bearer k"}) as http:
            response = await http.post(emu.score_url, json=BODY)
        assert response.status_code == 200
        assert emu.stats.by_route == {"POST /score": 1}
    assert not emu.running


async def test_in_process_asgi_transport() -> None:
    app = create_app(EmulatorConfig(api_key="k", family="gpt2"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as http:
        response = await http.post(
            "/score", json={"input_data": ["Hi"]}, headers={"Authorization": "Bearer k"}
        )
        denied = await http.post("/score", json={"input_data": ["Hi"]})
    assert response.status_code == 200 and denied.status_code == 401
    assert response.json()[0].startswith("Hi ")  # gpt2 echoes the prompt by default
    assert app.stats.by_route_status == {("POST /score", 200): 1, ("POST /score", 401): 1}


async def test_wrap_model_errors_off_returns_the_container_status() -> None:
    app = create_app(EmulatorConfig(api_key="k", family="tgi", wrap_model_errors=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as h:
        response = await h.post(
            "/score", json={"inputs": ["x"]}, headers={"Authorization": "Bearer k"}
        )
    assert response.status_code == 422
    assert "ms-azureml-model-error-statuscode" not in response.headers


def test_random_key_and_secret_free_repr() -> None:
    config = EmulatorConfig()
    first, second = create_app(config), create_app(config)
    assert first.api_key != second.api_key and len(first.api_key) >= 24
    assert "secret" not in repr(EmulatorConfig(api_key="secret"))


def test_stats_reset() -> None:
    with run_emulator(EmulatorConfig(api_key="k")) as emu:
        with httpx.Client() as http:
            http.post(emu.score_url, json=BODY)
        assert emu.stats.by_status == {401: 1}
        emu.stats.reset()
        assert emu.stats.total_requests == 0 and not emu.stats.by_status


def test_default_fixture(azml_emulator: EmulatorServer) -> None:
    headers = {"Authorization": f"Bearer {azml_emulator.api_key}"}
    with httpx.Client(headers=headers) as http:
        response = http.post(azml_emulator.score_url, json=BODY)
    assert response.json()[0]["0"]  # llama family, G2 records by default


def test_factory_fixture_starts_several(
    azml_emulator_factory: Callable[..., EmulatorServer],
) -> None:
    one = azml_emulator_factory(EmulatorConfig(faults=Faults(error_503=1.0)))
    two = azml_emulator_factory()
    assert one.port != two.port and one.running and two.running


@pytest.mark.parametrize(
    "make",
    [
        lambda: EmulatorConfig(family="t5"),
        lambda: EmulatorConfig(family="gpt2", response_style="fms"),
        lambda: EmulatorConfig(extra_parameters_default="ignore"),
        lambda: Faults(error_500=1.5),
        lambda: Faults(error_500=0.6, error_503=0.6),
        lambda: Faults(rate_limit_rps=0),
        lambda: Faults(latency=-1),
        lambda: EmulatorConfig(deployments=[Deployment("a"), Deployment("a", "dolly")]),
        lambda: Deployment("a", traffic=-1),
    ],
)
def test_invalid_settings_fail_early(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()


def test_pending_limit_and_bucket_size() -> None:
    assert Faults().pending_limit is None
    assert Faults(max_concurrent_requests_per_instance=2, instance_count=3).pending_limit == 12
    assert Faults(rate_limit_rps=2.5).bucket_capacity == 3
    assert Faults(rate_limit_rps=2.5, burst=1).bucket_capacity == 1
