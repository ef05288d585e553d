"""Several deployments behind one endpoint: the routing header, the seeded split, 404s."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from azml_client.emulator import Deployment, EmulatorConfig, EmulatorServer

Factory = Callable[..., EmulatorServer]
KEY = "routing-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
BODY = {"input_data": {"input_string": ["Hello! How are you?"], "parameters": {}}}
NO_ROUTE = (
    "No valid deployments to route to. Please check that the endpoint has at least one "
    "deployment with positive weight values or use a deployment specific header to route."
)


def blue_green(factory: Factory, green_traffic: float = 50, seed: int = 0) -> EmulatorServer:
    deployments = [
        Deployment("blue", "llama", traffic=100 - green_traffic),
        Deployment("green", "dolly", traffic=green_traffic),
    ]
    return factory(EmulatorConfig(api_key=KEY, deployments=deployments, seed=seed))


def split(emu: EmulatorServer, count: int) -> list[str]:
    with httpx.Client(headers=AUTH) as http:
        return [http.post(emu.score_url, json=BODY).headers["azureml-model-deployment"]
                for _ in range(count)]  # fmt: skip


def test_header_picks_the_deployment_and_its_format(azml_emulator_factory: Factory) -> None:
    emu = blue_green(azml_emulator_factory)
    with httpx.Client(headers=AUTH) as http:
        blue = http.post(emu.score_url, json=BODY, headers={"azureml-model-deployment": "blue"})
        green = http.post(emu.score_url, json=BODY, headers={"azureml-model-deployment": "green"})
    assert blue.headers["azureml-model-deployment"] == "blue"
    assert green.headers["azureml-model-deployment"] == "green"
    # Same seed and prompt, so the same words, each in its own family's response shape.
    assert blue.json() == [{"0": green.json()[0].removeprefix("Hello! How are you? ")}]


def test_traffic_split_is_seeded(azml_emulator_factory: Factory) -> None:
    first = split(blue_green(azml_emulator_factory, seed=5), 30)
    again = split(blue_green(azml_emulator_factory, seed=5), 30)
    other = split(blue_green(azml_emulator_factory, seed=6), 30)
    assert first == again != other
    assert 5 <= first.count("green") <= 25


def test_zero_traffic_deployment_only_through_the_header(azml_emulator_factory: Factory) -> None:
    emu = blue_green(azml_emulator_factory, green_traffic=0)
    assert set(split(emu, 10)) == {"blue"}
    assert emu.stats.by_deployment == {"blue": 10}
    with httpx.Client(headers=AUTH) as http:
        green = http.post(emu.score_url, json=BODY, headers={"azureml-model-deployment": "green"})
    assert green.status_code == 200


def test_unknown_deployment_is_404(azml_emulator_factory: Factory) -> None:
    emu = blue_green(azml_emulator_factory)
    with httpx.Client(headers=AUTH) as http:
        response = http.post(emu.score_url, json=BODY, headers={"azureml-model-deployment": "red"})
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found", "message": NO_ROUTE, "status": 404}
    assert "azureml-model-deployment" not in response.headers


def test_no_positive_weight_is_404(azml_emulator_factory: Factory) -> None:
    deployments = [Deployment("blue", "llama", traffic=0)]
    emu = azml_emulator_factory(EmulatorConfig(api_key=KEY, deployments=deployments))
    with httpx.Client(headers=AUTH) as http:
        assert http.post(emu.score_url, json=BODY).status_code == 404
        routed = http.post(emu.score_url, json=BODY, headers={"azureml-model-deployment": "blue"})
    assert routed.status_code == 200


def test_implicit_default_deployment(azml_emulator_factory: Factory) -> None:
    emu = azml_emulator_factory(EmulatorConfig(api_key=KEY, family="dolly"))
    with httpx.Client(headers=AUTH) as http:
        response = http.post(emu.score_url, json=BODY)
        named = http.post(emu.score_url, json=BODY, headers={"azureml-model-deployment": "default"})
    assert response.headers["azureml-model-deployment"] == "default"
    assert isinstance(response.json()[0], str)
    assert named.json() == response.json()
