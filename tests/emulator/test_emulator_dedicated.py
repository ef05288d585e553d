"""Dedicated ``/score``: each family's request and response shapes, its errors, and auth."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from azml_client.emulator import FAMILIES, Deployment, EmulatorConfig, EmulatorServer, run_emulator

KEY = "dedicated-key"
#: One zero-traffic deployment per (family, style), reached through the routing header.
DEPLOYMENTS = [
    Deployment(f"{name}.{style}", name, traffic=0, response_style=style)
    for name, family in FAMILIES.items()
    for style in family.styles
]
G1 = {"inputs": {"input_string": ["My name is John and I am", "Once upon a time,"]}}
G2 = {"input_data": {"input_string": ["I believe the meaning of life is"], "parameters": {}}}
G3 = {"input_data": ["I believe the meaning of life is"], "params": {"max_new_tokens": 20}}
CHAT = {
    "input_data": {
        "input_string": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Who won the world series in 2020?"},
        ],
        "parameters": {"max_new_tokens": 30},
    }
}
MISSING_INPUT_DATA = "A value is not provided for the 'input_data' parameter."


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with run_emulator(EmulatorConfig(api_key=KEY, deployments=DEPLOYMENTS, seed=3)) as emu:
        yield emu


@pytest.fixture(scope="module")
def client(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=emulator.base_url, headers=headers) as http:
        yield http


def score(client: httpx.Client, deployment: str, body: Any) -> httpx.Response:
    headers = {"azureml-model-deployment": deployment}
    response = client.post("/score", json=body, headers=headers)
    assert response.headers["azureml-model-deployment"] == deployment
    return response


@pytest.mark.parametrize("body", [G1, G2, G3], ids=["g1", "g2", "g3"])
@pytest.mark.parametrize("family", ["gpt2", "bart"])
def test_mlflow_families_take_every_generation(
    client: httpx.Client, family: str, body: dict[str, Any]
) -> None:
    prompts = len(next(iter(body.values()))["input_string"]) if "inputs" in body else 1
    listed = score(client, f"{family}.list", body)
    assert listed.status_code == 200
    assert isinstance(listed.json(), list) and len(listed.json()) == prompts
    assert all(isinstance(text, str) and text for text in listed.json())
    records = score(client, f"{family}.records", body).json()
    assert [list(r) for r in records] == [["0"]] * prompts


def test_dolly_takes_g2_and_g3_but_not_g1(client: httpx.Client) -> None:
    assert score(client, "dolly.list", G2).status_code == 200
    assert score(client, "dolly.records", G3).status_code == 200
    wrong = score(client, "dolly.list", G1)
    assert wrong.status_code == 424
    assert wrong.headers["ms-azureml-model-error-statuscode"] == "400"
    assert wrong.headers["ms-azureml-model-error-reason"]
    assert wrong.json() == {"message": MISSING_INPUT_DATA}


def test_llama_response_styles(client: httpx.Client) -> None:
    two = {"input_data": {"input_string": ["a b c", "d e"], "parameters": {"max_new_tokens": 5}}}
    records = score(client, "llama.records", two).json()
    assert [list(r) for r in records] == [["0"], ["0"]]
    fmi = score(client, "llama.fmi", two).json()
    assert len(fmi) == 1 and list(fmi[0]) == ["0", "1"]
    assert fmi[0]["0"] == records[0]["0"] and fmi[0]["1"] == records[1]["0"]
    assert score(client, "llama.output", two).json() == {"output": [r["0"] for r in records]}
    fms = score(client, "llama.fms", two).json()
    assert set(fms) == {"output", "finish_reason", "usage", "model", "id"}
    assert fms["output"] == [r["0"] for r in records]
    assert fms["finish_reason"] == "length"
    assert fms["usage"] == {"prompt_tokens": 5, "completion_tokens": 10, "total_tokens": 15}


def test_llama_rejects_other_shapes(client: httpx.Client) -> None:
    g3 = score(client, "llama.records", G3)
    assert g3.status_code == 424
    assert g3.json()["message"].startswith("Expected input format: ")
    chat = score(client, "llama.records", CHAT)
    assert chat.status_code == 424


def test_llama_honours_return_full_text_and_max_gen_len(client: httpx.Client) -> None:
    prompt = "I believe the meaning of life is"
    params: dict[str, Any] = {"max_gen_len": 4, "return_full_text": True}
    body = {"input_data": {"input_string": [prompt], "parameters": params}}
    full = score(client, "llama.records", body).json()[0]["0"]
    assert full.startswith(prompt + " ")
    assert len(full[len(prompt) :].split()) == 4
    params["return_full_text"] = False
    bare = score(client, "llama.records", body).json()[0]["0"]
    assert full == f"{prompt} {bare}"


def test_stop_sequence_in_parameters(client: httpx.Client) -> None:
    params: dict[str, Any] = {"max_new_tokens": 40}
    body = {"input_data": {"input_string": ["stop here"], "parameters": params}}
    text = score(client, "llama.fms", body).json()["output"][0]
    stop = text.split()[2]
    params["stop"] = [stop]
    cut = score(client, "llama.fms", body).json()
    assert cut["finish_reason"] == "stop"
    assert cut["output"][0] == text[: text.index(stop)]


@pytest.mark.parametrize("deployment", ["llama-chat.output", "vllm.fms", "llama-chat.fms"])
def test_chat_families(client: httpx.Client, deployment: str) -> None:
    body = score(client, deployment, CHAT).json()
    assert isinstance(body["output"], str) and body["output"]
    if deployment.endswith(".output"):
        assert body == {"output": body["output"]}
    else:
        assert body["message"] == {"role": "assistant", "content": body["output"]}
        assert set(body) == {"output", "message", "finish_reason", "usage", "model", "id"}
        assert body["usage"]["prompt_tokens"] == 5 + 7  # words of both messages


def test_chat_family_rejects_plain_strings(client: httpx.Client) -> None:
    response = score(client, "llama-chat.output", G2)
    assert response.status_code == 424
    assert "role" in response.json()["message"]


def test_visual_chat_content_parts(client: httpx.Client) -> None:
    parts = [
        {"type": "image_url", "image_url": {"url": "https://example.com/stop.jpg"}},
        {"type": "text", "text": "What is shown in this image?"},
    ]
    body = {"input_data": {"input_string": [{"role": "user", "content": parts}]}}
    answer = score(client, "llama-chat.fms", body).json()
    assert answer["usage"]["prompt_tokens"] == 6


def test_vllm_text_generation_g2_and_g3(client: httpx.Client) -> None:
    g2 = score(client, "vllm.fms", G2).json()
    g3 = score(client, "vllm.fms", G3).json()
    assert isinstance(g2["output"], list) and isinstance(g3["output"], list)
    assert g2["id"].startswith("cmpl-") and "message" not in g2


def test_vllm_answers_malformed_bodies_with_an_empty_200(client: httpx.Client) -> None:
    response = score(client, "vllm.fms", G1)
    assert response.status_code == 200
    assert response.json() == {}


def test_hf_pipeline_shape(client: httpx.Client) -> None:
    one = score(client, "hf.generated_text", {"inputs": "Hello there"}).json()
    assert len(one) == 1 and one[0]["generated_text"].startswith("Hello there ")
    two = score(client, "hf.generated_text", {"inputs": ["a", "b"], "parameters": {}}).json()
    assert [list(r) for r in two] == [["generated_text"], ["generated_text"]]
    bare = {"inputs": ["a"], "parameters": {"return_full_text": False}}
    assert not score(client, "hf.generated_text", bare).json()[0]["generated_text"].startswith("a ")
    assert score(client, "hf.generated_text", G1).status_code == 200
    missing = score(client, "hf.generated_text", G2)
    assert missing.json() == {"message": "A value is not provided for the 'inputs' parameter."}


def test_tgi_wants_a_string(client: httpx.Client) -> None:
    ok = score(client, "tgi.generated_text", {"inputs": "My name is Julien and I like to"})
    assert ok.status_code == 200
    assert list(ok.json()[0]) == ["generated_text"]
    wrong = score(client, "tgi.generated_text", {"inputs": ["a list"], "parameters": {}})
    assert wrong.status_code == 424
    assert wrong.headers["ms-azureml-model-error-statuscode"] == "422"
    assert wrong.json()["error_type"] == "validation"
    assert "must be a string" in wrong.json()["error"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "POST body could not be decoded as JSON: "),
        (b"", "POST body is empty. Expecting a JSON dictionary."),
        (b"[1, 2]", "POST body should be a JSON dictionary."),
    ],
)
def test_inference_server_body_errors(client: httpx.Client, raw: bytes, message: str) -> None:
    headers = {"azureml-model-deployment": "gpt2.list", "content-type": "application/json"}
    response = client.post("/score", content=raw, headers=headers)
    assert response.status_code == 424
    assert response.json()["message"].startswith(message)


def test_bad_parameters_are_a_model_error(client: httpx.Client) -> None:
    body = {"input_data": ["x"], "params": {"max_new_tokens": "many"}}
    response = score(client, "gpt2.list", body)
    assert response.status_code == 424
    assert "max_new_tokens" in response.json()["message"]


def test_auth(emulator: EmulatorServer) -> None:
    body = {"input_data": ["hi"]}
    headers = {"azureml-model-deployment": "gpt2.list"}
    with httpx.Client(base_url=emulator.base_url, headers=headers) as http:
        missing = http.post("/score", json=body)
        wrong = http.post("/score", json=body, headers={"Authorization": "Bearer nope"})
        raw_key = http.post("/score", json=body, headers={"Authorization": KEY})
        good = http.post("/score", json=body, headers={"Authorization": f"bearer {KEY}"})
    for response in (missing, wrong, raw_key):
        assert response.status_code == 401
        assert response.json()["status"] == 401 and response.json()["message"]
    assert good.status_code == 200


def test_tracing_headers(client: httpx.Client) -> None:
    response = client.post(
        "/score",
        json=G3,
        headers={"azureml-model-deployment": "gpt2.list", "x-ms-client-request-id": "abc-123_x"},
    )
    assert response.headers["x-ms-client-request-id"] == "abc-123_x"
    assert response.headers["x-ms-request-id"] == "abc-123_x"
    request_id = response.headers["x-request-id"]
    assert len(request_id) == 36 and request_id.count("-") == 4
    plain = client.post("/score", json=G3, headers={"azureml-model-deployment": "gpt2.list"})
    assert "x-ms-client-request-id" not in plain.headers
    assert plain.headers["x-ms-request-id"] == plain.headers["x-request-id"] != request_id


def test_unknown_path_and_method(client: httpx.Client) -> None:
    assert client.post("/nope").status_code == 404
    assert client.get("/score").status_code == 405
