"""The ``/score`` wire format of each catalog model family, written from wire-formats.md section 2.

Request shapes (names used below and in error messages):

- ``g1``  ``{"inputs": {"input_string": [...]}, "parameters": {...}}`` (2023 ``hftransformers``)
- ``g2``  ``{"input_data": {"input_string": [...], "parameters": {...}}}`` (2023-24, FMI)
- ``g3``  ``{"input_data": [...], "params": {...}}`` (MLflow ``transformers``, FMS text-gen)
- ``hf``  ``{"inputs": "text" | ["text", ...], "parameters": {...}}`` (Hugging Face pipeline API)
- ``tgi`` ``{"inputs": "text", "parameters": {...}}`` (text-generation-inference; a string only)

Response styles (the first of a family's ``styles`` is its default):

- ``records``  ``[{"0": "out1"}, {"0": "out2"}]`` (G1/G2 cards, one record per prompt)
- ``fmi``      ``[{"0": "out1", "1": "out2"}]`` (FMI container code, many prompts)
- ``list``     ``["out1", "out2"]`` (G3)
- ``output``   text ``{"output": ["out1"]}`` (Phi-2 card, Jan 2024); chat ``{"output": "..."}``
- ``fms``      ``{"output", "finish_reason", "usage", "model", "id"}`` (+ ``message`` for chat; G4)
- ``generated_text``  ``[{"generated_text": "..."}]`` (HF pipeline / TGI ``POST /``)
- ``summary_text``    ``[{"summary_text": "..."}]`` (HF summarization pipeline)

Container errors are raised as ``ContainerReply``; the app decides whether the front door wraps
them in a 424 (wire-formats.md 4.1/4.2).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from azml_client.emulator._generate import (
    Generation,
    flatten_messages,
    generate,
    max_tokens_from,
    stop_from,
)

__all__ = ["FAMILIES", "ContainerReply", "Family", "ScoreResult", "fms_error_in_200", "score"]

Container = Literal["inference-server", "tgi", "fms"]
Task = Literal["text", "chat", "any"]

_G2_TEXT = '{"input_data": {"input_string": ["str1", "str2", ...], "parameters": {"k1": "v1"}}}'
# The two FMS messages are quoted from managed_inference.py (wire-formats.md 2.2 / 2.3).
_G3_TEXT = '{"input_data": ["str1", "str2", ...], "params": {"k1":"v1", "k2":"v2"}}'
_G2_CHAT = (
    '{"input_data": {"input_string": [{"role":"user", "content": "str1"}, '
    '{"role": "assistant", "content": "str2"} ....], "parameters": {"k1":"v1", "k2":"v2"}}}'
)


class ContainerReply(Exception):  # a reply, not an emulator failure
    """What the model container answered instead of a normal result (status and JSON body)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Family:
    """Static description of one family's ``/score`` behaviour."""

    name: str
    shapes: frozenset[str]
    task: Task
    styles: tuple[str, ...]
    container: Container
    required_key: str
    expected: str
    echo_default: bool = False
    echo_supported: bool = True


def _family(
    name: str, shapes: str, task: Task, styles: str, container: Container, **kw: Any
) -> Family:
    return Family(name, frozenset(shapes.split()), task, tuple(styles.split()), container, **kw)


#: Every family, by key. Sources: cards and samples in wire-formats.md 2.2-2.6.
FAMILIES: Mapping[str, Family] = MappingProxyType({
    f.name: f
    for f in (
        # GPT-2: G1 card (2023-06), G2 card (2023-11), G3 card (HEAD); MLmodel default
        # return_full_text=true.
        _family("gpt2", "g1 g2 g3", "text", "list records", "inference-server",
                required_key="input_data", expected=_G3_TEXT, echo_default=True),
        # Dolly v2: G2 card (2023-11) and sample, G3 card (HEAD).
        _family("dolly", "g2 g3", "text", "list records", "inference-server",
                required_key="input_data", expected=_G3_TEXT, echo_default=True),
        # Hugging Face pipeline API (what LangChain's HFContentFormatter targets), plus G1.
        _family("hf", "hf g1", "text", "generated_text summary_text", "inference-server",
                required_key="inputs", expected='{"inputs": ["str1", ...], "parameters": {}}',
                echo_default=True),
        # TGI behind an HF-registry deployment: `inputs` must be a string.
        _family("tgi", "tgi", "text", "generated_text", "tgi",
                required_key="inputs", expected='{"inputs": "str", "parameters": {}}'),
        # Llama-2 base: G2 cards (max_new_tokens or max_gen_len), return_full_text default false.
        _family("llama", "g2", "text", "records fmi output fms", "inference-server",
                required_key="input_data", expected=_G2_TEXT),
        # Llama-2-chat / Mistral-Instruct / Phi-3: message list in input_string.
        _family("llama-chat", "g2", "chat", "output fms", "inference-server",
                required_key="input_data", expected=_G2_CHAT, echo_supported=False),
        # Foundation-model-serve (vLLM): chat or text-gen G2, text-gen G3; errors answer 200 {}.
        _family("vllm", "g2 g3", "any", "fms", "fms",
                required_key="input_data", expected=_G2_CHAT, echo_supported=False),
        # BART-large-CNN summarization: G1, G2 and G3 cards.
        _family("bart", "g1 g2 g3", "text", "list records", "inference-server",
                required_key="input_data", expected=_G3_TEXT, echo_supported=False),
    )
})  # fmt: skip


@dataclass(frozen=True)
class ScoreResult:
    """A successful ``/score`` answer and the tokens it generated (for token latency)."""

    body: Any
    completion_tokens: int


@dataclass(frozen=True)
class _Input:
    texts: tuple[str, ...] | None
    messages: list[Any] | None
    params: Mapping[str, Any]


def _bad(family: Family, status: int, message: str) -> ContainerReply:
    """The container's error for a request it cannot use, in that container's own body shape."""
    if family.container == "fms":  # FMS /score swallows every failure: HTTP 200, body {}
        return ContainerReply(200, {})
    if family.container == "tgi":
        return ContainerReply(422, {"error": message, "error_type": "validation"})
    return ContainerReply(status, {"message": message})  # azureml-inference-server ErrorResponse


def _decode(family: Family, raw: bytes) -> dict[str, Any]:
    # azureml-inference-server input_parsers.py messages (wire-formats.md 4.2).
    if not raw.strip():
        raise _bad(family, 400, "POST body is empty. Expecting a JSON dictionary.")
    try:
        body = json.loads(raw)
    except ValueError as exc:
        if family.container == "fms":  # json() raises outside score()'s try: the 500 handler
            message = f"An error occurred during the request processing: {exc}"
            error = {"code": "Internal Server Error", "message": message, "status": 500}
            raise ContainerReply(500, {"error": error}) from None
        raise _bad(family, 400, f"POST body could not be decoded as JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _bad(family, 400, "POST body should be a JSON dictionary.")
    return body


def _shape(body: Mapping[str, Any]) -> tuple[str, Any, Any]:
    """Recognise the request shape: ``(shape, items, params)``; shape ``""`` if none fits."""
    if "input_data" in body:
        data = body["input_data"]
        if isinstance(data, list):
            return "g3", data, body.get("params")
        if isinstance(data, dict) and "input_string" in data:
            return "g2", data["input_string"], data.get("parameters")
    elif "inputs" in body:
        data = body["inputs"]
        if isinstance(data, dict) and "input_string" in data:
            return "g1", data["input_string"], body.get("parameters")
        if isinstance(data, str):
            return "tgi", data, body.get("parameters")
        if isinstance(data, list):
            return "hf", data, body.get("parameters")
    return "", None, None


def _parse(family: Family, body: Mapping[str, Any]) -> _Input:
    expected = f"Expected input format: {family.expected}"
    if family.container == "tgi":
        if not isinstance(body.get("inputs"), str):
            got = type(body.get("inputs")).__name__
            raise _bad(family, 422, f"Input validation error: `inputs` must be a string, got {got}")
        shape, items, params = "tgi", [body["inputs"]], body.get("parameters")
    else:
        shape, items, params = _shape(body)
        if family.name == "hf" and shape == "tgi":  # the HF pipeline API also takes one string
            shape, items = "hf", [items]
        keys = {"input_data" if s in ("g2", "g3") else "inputs" for s in family.shapes}
        if not keys.intersection(body):
            message = f"A value is not provided for the '{family.required_key}' parameter."
            raise _bad(family, 400, message)
        if shape not in family.shapes or not isinstance(items, list) or not items:
            raise _bad(family, 400, expected)
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise _bad(family, 400, expected)
    if all(isinstance(i, str) for i in items) and family.task != "chat":
        return _Input(tuple(items), None, params)
    if all(isinstance(i, dict) for i in items) and family.task != "text" and shape == "g2":
        return _Input(None, items, params)
    raise _bad(family, 400, expected)


def _echo(prompt: str, text: str) -> str:
    gap = "" if not prompt or prompt[-1].isspace() or not text else " "
    return f"{prompt}{gap}{text}"


def _fms_meta(gens: Sequence[Generation], model: str, chat: bool) -> dict[str, Any]:
    prompt = sum(g.prompt_tokens for g in gens)
    completion = sum(g.completion_tokens for g in gens)
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    prefix = "chatcmpl" if chat else "cmpl"
    return {"finish_reason": gens[0].finish_reason, "usage": usage, "model": model,
            "id": f"{prefix}-{uuid.uuid4().hex}"}  # fmt: skip


def _render(style: str, texts: list[str], gens: list[Generation], chat: bool, model: str) -> Any:
    if style == "records":
        return [{"0": t} for t in texts]
    if style == "fmi":
        return [{str(i): t for i, t in enumerate(texts)}]
    if style == "list":
        return texts
    if style == "summary_text":  # the Hugging Face summarization pipeline
        return [{"summary_text": t} for t in texts]
    if style == "generated_text":
        return [{"generated_text": t} for t in texts]
    if style == "output":
        return {"output": texts[0] if chat else texts}
    if chat:  # fms
        message = {"role": "assistant", "content": texts[0]}
        return {"output": texts[0], "message": message, **_fms_meta(gens, model, chat)}
    return {"output": texts, **_fms_meta(gens, model, chat)}


def score(
    family_name: str,
    style: str,
    raw: bytes,
    *,
    seed: int,
    default_max_tokens: int,
    model: str,
) -> ScoreResult:
    """Answer one ``/score`` request body as ``family_name`` would, in ``style``.

    Raises:
        ContainerReply: the container would not produce a normal result (bad body or parameters).
    """
    family = FAMILIES[family_name]
    request = _parse(family, _decode(family, raw))
    params = request.params
    try:
        budget = max_tokens_from(params, default_max_tokens)
        stop = stop_from(params)
    except ValueError as exc:
        raise _bad(family, 400, str(exc)) from None
    if request.messages is not None:
        try:
            prompt, used = flatten_messages(request.messages)
        except ValueError:
            raise _bad(family, 400, f"Expected input format: {family.expected}") from None
        gen = generate(prompt, seed=seed, max_tokens=budget, stop=stop, prompt_tokens=used)
        return ScoreResult(_render(style, [gen.text], [gen], True, model), gen.completion_tokens)
    prompts = request.texts or ()
    gens = [generate(p, seed=seed, max_tokens=budget, stop=stop) for p in prompts]
    echo = (
        family.echo_supported
        and style != "summary_text"
        and bool(params.get("return_full_text", family.echo_default))
    )
    texts = [_echo(p, g.text) if echo else g.text for p, g in zip(prompts, gens, strict=True)]
    return ScoreResult(
        _render(style, texts, gens, False, model), sum(g.completion_tokens for g in gens)
    )


def fms_error_in_200(status_code: int = 500) -> dict[str, Any]:
    """The FMS container's "HTTP 200 carrying an engine error" body (wire-formats.md 4.2)."""
    engine = {"object": "error", "message": "The engine failed to generate a response.",
              "type": "InternalServerError", "code": status_code}  # fmt: skip
    return {"output": None, "error": {"status_code": status_code, "body": engine}}
