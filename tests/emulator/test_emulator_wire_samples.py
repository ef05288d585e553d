"""Conformance: the real request bodies in ../shared/wire-samples are accepted by the matching
family, and the emulator answers in the same shape as the recorded response.

The samples are third-party data read in place; on a fresh clone without ../shared the tests skip.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from azml_client.emulator import FAMILIES, Deployment, EmulatorConfig, EmulatorServer, run_emulator

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "wire-samples" / "dedicated"
KEY = "samples-key"

#: model-card request file prefix -> (family, response style that the paired card shows)
CARD_PAIRS = {
    "gpt2__2023-06-27__366fc7e95c__01": ("gpt2", "records"),
    "gpt2__2023-11-16__ae28483d38__01": ("gpt2", "records"),
    "gpt2__2026-07-23__4b41f8ccbc__01": ("gpt2", "list"),
    "databricks-dolly-v2-12b__2023-11-30__59a44ef09e__01": ("dolly", "records"),
    "databricks-dolly-v2-12b__2026-07-23__4b41f8ccbc__01": ("dolly", "list"),
    "Llama-2-7b__2024-05-28__ea53509847__01": ("llama", "records"),
    "Mistral-7B-v0-1__2023-11-20__dcbbf51abf__01": ("llama", "records"),
    "microsoft-phi-2__2024-01-22__bb7ed997ae__01": ("llama", "output"),
    "microsoft-phi-2__2024-03-11__8634362a9d__01": ("llama", "records"),
    "Llama-2-7b-chat__2024-05-13__2a91337879__01": ("llama-chat", "output"),
    "Mistral-7B-Instruct-v0-2__2024-04-04__bd7dbe8562__01": ("llama-chat", "output"),
    "phi-3-mini-4k-instruct__2024-07-01__7a54b91f3a__01": ("llama-chat", "output"),
    "facebook-bart-large-cnn__2024-01-12__b9da2a1e12__01": ("bart", "records"),
    "facebook-bart-large-cnn__2026-07-23__4b41f8ccbc__01": ("bart", "list"),
}
#: azureml-examples request samples (requests only) -> families that must accept them
EXAMPLES = {
    "text-generation__gpt2__sample_score.json": ["gpt2", "hf"],
    "text-generation__dolly__sample_score_dolly.json": ["dolly", "gpt2", "llama", "vllm"],
    "llama3-8b__sample_completions_score.json": ["llama", "vllm"],
    "llama3-8b-instruct__sample_chat_completions_score.json": ["llama-chat", "vllm"],
    "visual-chat__sample_chat_completions_score.json": ["llama-chat", "vllm"],
    "hf-hub-tgi__sample_score.json": ["tgi", "hf"],
    "hf-hub-tgi__sample_score_backup.json": ["tgi"],
    "summarization__sample_score.json": ["bart"],
}

pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/wire-samples is absent")


def shape(value: Any) -> Any:
    """The structure of a JSON value with the text left out."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    deployments = [Deployment(f"{n}.{s}", n, 0, s) for n, f in FAMILIES.items() for s in f.styles]
    config = EmulatorConfig(api_key=KEY, deployments=deployments)
    emu: EmulatorServer
    with (
        run_emulator(config) as emu,
        httpx.Client(base_url=emu.base_url, headers={"Authorization": f"Bearer {KEY}"}) as http,
    ):
        yield http


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("prefix", sorted(CARD_PAIRS))
def test_card_sample_round_trip(client: httpx.Client, prefix: str) -> None:
    family, style = CARD_PAIRS[prefix]
    request = load(SAMPLES / "model-cards" / f"{prefix}_request.json")
    recorded = load(SAMPLES / "model-cards" / f"{prefix[:-2]}02_response.json")
    response = client.post(
        "/score", json=request, headers={"azureml-model-deployment": f"{family}.{style}"}
    )
    assert response.status_code == 200, response.text
    assert shape(response.json()) == shape(recorded)


@pytest.mark.parametrize(("name", "family"), [(n, f) for n, fs in EXAMPLES.items() for f in fs])
def test_example_requests_are_accepted(client: httpx.Client, name: str, family: str) -> None:
    request = load(SAMPLES / "azureml-examples" / name)
    style = FAMILIES[family].styles[0]
    response = client.post(
        "/score", json=request, headers={"azureml-model-deployment": f"{family}.{style}"}
    )
    assert response.status_code == 200, response.text
    assert response.json() != {}
