"""Conformance against the real bodies in ``../shared/wire-samples/`` (model cards, samples).

These files are third-party data and are read where they are, never copied into the repo. On a
fresh clone without ``../shared`` this module skips; ``test_formatters.py`` still covers every
family with vectors of our own.

Only generative families are checked here. The samples of other tasks (fill-mask, question
answering, text/token classification, translation, speech recognition) have no formatter in
azml-client: those deployments are called with ``client.invoke(payload)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from azml_client import get_formatter
from azml_client._constants import ApiType
from azml_client.formatters._base import FormatRequest, decode_response, encode_request
from azml_client.formatters._registry import formatter_from_config

from .conftest import WIRE_SAMPLES

pytestmark = pytest.mark.skipif(
    not WIRE_SAMPLES.is_dir(),
    reason="../shared/wire-samples is absent (fresh clone): conformance over the shared "
    "samples skipped; test_formatters.py covers every family with its own vectors",
)

#: File name prefix -> (text family, chat family).
FAMILIES = {
    "gpt2": "gpt2",
    "text-generation__gpt2": "gpt2",
    "databricks-dolly-v2-12b": "dolly",
    "text-generation__dolly": "dolly",
    "Llama-2-7b-chat": "llama-chat",
    "Llama-2-7b": "llama",
    "llama3-8b-instruct": "llama-chat",
    "llama3-8b": "llama",
    "Mistral-7B-Instruct-v0-2": "llama-chat",
    "Mistral-7B-v0-1": "llama",
    "microsoft-phi-2": "llama",
    "phi-3-mini-4k-instruct": "llama-chat",
    "visual-chat": "llama-chat",
    "facebook-bart-large-cnn": "bart",
    "summarization": "bart",
    "hf-hub-tgi": "tgi",
}


def _family(path: Path) -> str | None:
    name = path.name
    # Longest prefix first, so "Llama-2-7b-chat" wins over "Llama-2-7b".
    for prefix in sorted(FAMILIES, key=len, reverse=True):
        if name.startswith(prefix + "__"):
            return FAMILIES[prefix]
    return None


def _samples(kind: str) -> list[Path]:
    if not WIRE_SAMPLES.is_dir():
        return []
    files = sorted(WIRE_SAMPLES.glob("dedicated/*/*.json"))
    out = []
    for f in files:
        if _family(f) is None or "openapi" in f.parent.name:
            continue
        is_response = f.name.endswith("_response.json")
        if (kind == "response") == is_response:
            out.append(f)
    return out


def _split(sample: Any) -> tuple[str, list[Any], dict[str, Any]]:
    """(schema, inputs, params) of a recorded request body."""
    if isinstance(sample.get("inputs"), str):
        return "tgi", [sample["inputs"]], sample.get("parameters", {})
    if "inputs" in sample:
        return "v1", sample["inputs"]["input_string"], sample.get("parameters", {})
    data = sample["input_data"]
    if isinstance(data, list):
        return "v3", data, sample.get("params", {})
    return "v2", data["input_string"], data.get("parameters", {})


def _with_inputs(schema: str, sample: Any, inputs: list[Any]) -> Any:
    body = json.loads(json.dumps(sample))
    if schema == "v1":
        body["inputs"]["input_string"] = inputs
    elif schema == "v2":
        body["input_data"]["input_string"] = inputs
    elif schema == "v3":
        body["input_data"] = inputs
    return body


@pytest.mark.parametrize("path", _samples("request"), ids=lambda p: p.name)
def test_request_bodies_match_the_recorded_ones(path: Path) -> None:
    sample = json.loads(path.read_text(encoding="utf-8"))
    family = _family(path)
    assert family is not None
    schema, inputs, params = _split(sample)
    if inputs and isinstance(inputs[0], dict):  # a conversation
        for key in (family, "vllm"):
            request = FormatRequest(api_type=ApiType.DEDICATED, messages=inputs, params=params)
            assert json.loads(encode_request(get_formatter(key), request)) == sample
        return
    options = {} if schema == "tgi" else {"schema": schema}
    formatter = formatter_from_config(family, options)
    for prompt in inputs:
        request = FormatRequest(api_type=ApiType.DEDICATED, prompt=prompt, params=params)
        built = json.loads(encode_request(formatter, request))
        assert built == _with_inputs(schema, sample, [prompt])


def _expected_text(data: Any) -> str:
    """The first generated string, read by hand from the recorded shape."""
    if isinstance(data, dict):
        data = data["output"]
    if isinstance(data, list):
        data = data[0]
    if isinstance(data, dict):
        data = data["0"]
    assert isinstance(data, str)
    return data


@pytest.mark.parametrize("path", _samples("response"), ids=lambda p: p.name)
def test_recorded_answers_parse(path: Path) -> None:
    raw = path.read_bytes()
    family = _family(path)
    assert family is not None
    formatter = get_formatter(family)
    if formatter.supports_chat:
        request = FormatRequest(
            api_type=ApiType.DEDICATED, messages=[{"role": "user", "content": "q"}]
        )
    else:
        request = FormatRequest(api_type=ApiType.DEDICATED, prompt="q")
    parsed, data = decode_response(formatter, raw, request)
    assert parsed.text == _expected_text(json.loads(raw))
    assert data == json.loads(raw)


def test_the_samples_cover_every_dedicated_generation_family() -> None:
    covered = {_family(p) for p in _samples("request") + _samples("response")}
    assert {"gpt2", "dolly", "llama", "llama-chat", "bart", "tgi"} <= covered
