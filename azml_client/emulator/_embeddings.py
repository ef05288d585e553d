"""Deterministic embeddings for ``/embeddings`` and ``/images/embeddings``.

A vector is the sum of one pseudo-random vector per word (so texts sharing words point the same
way, which makes retrieval demos behave) plus a smaller one for the whole input (so different
inputs never coincide), unit-normalised. Every pseudo-random vector comes from
``sha256(seed, text)``: the same seed and input give the same vector in any request order.
``dimensions=k`` gives the first ``k`` draws, renormalised, like a Matryoshka model.

Values are float32 (rounded once) so ``encoding_format="base64"``, little-endian float32 as the
OpenAI SDK decodes it, carries exactly the numbers of ``"float"``. The other formats of
[MI-EMB] (wire-formats.md 3.5): ``int8`` / ``uint8`` scale ``[-1, 1]`` linearly (our choice),
``binary`` / ``ubinary`` pack the sign bits eight to a byte, ``binary`` offset by -128 as in
sentence-transformers ``quantize_embeddings``.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import re
import struct
from array import array
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Final

from azml_client.emulator._config import MAX_EMBEDDING_DIMENSIONS
from azml_client.emulator._errors import Rejected
from azml_client.emulator._generate import IMAGE_TOKENS, check_image_url, count_tokens

__all__ = [
    "ENCODING_FORMATS",
    "INPUT_TYPES",
    "embed",
    "embeddings_body",
    "encode",
]

ENCODING_FORMATS: Final = ("float", "base64", "int8", "uint8", "binary", "ubinary")
INPUT_TYPES: Final = ("text", "query", "document")  # [MI-EMB]
_WORDS = re.compile(r"\w+")
_WHOLE_TEXT_WEIGHT: Final = 0.35


def _draws(seed: int, material: str, dimensions: int) -> array[float]:
    # Cached by digest, not by text: image inputs are whole data URLs.
    return _gauss(hashlib.sha256(f"{seed}\x00{material}".encode()).digest(), dimensions)


@lru_cache(maxsize=512)
def _gauss(digest: bytes, dimensions: int) -> array[float]:
    rng = random.Random(digest)
    return array("d", (rng.gauss(0.0, 1.0) for _ in range(dimensions)))


def embed(material: str, *, seed: int, dimensions: int, words: bool = True) -> list[float]:
    """The unit-norm float32 vector of ``material`` (words and whole text, see the docstring)."""
    total = list(_draws(seed, "text:" + material, dimensions))
    scale = _WHOLE_TEXT_WEIGHT
    tokens = _WORDS.findall(material.lower()) if words else []
    if tokens:
        total = [x * scale * math.sqrt(len(tokens)) for x in total]
        for token in tokens:
            word = _draws(seed, "word:" + token, dimensions)
            total = [a + b for a, b in zip(total, word, strict=True)]
    norm = math.sqrt(sum(x * x for x in total)) or 1.0
    return array("f", (x / norm for x in total)).tolist()


def encode(vector: Sequence[float], encoding: str) -> list[float] | list[int] | str:
    """``vector`` in one of ``ENCODING_FORMATS``."""
    if encoding == "float":
        return list(vector)
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    if encoding == "int8":
        return [max(-128, min(127, round(x * 127))) for x in vector]
    if encoding == "uint8":
        return [max(0, min(255, round((x + 1) * 127.5))) for x in vector]
    packed: list[int] = []
    for start in range(0, len(vector), 8):
        bits = [x > 0 for x in vector[start : start + 8]]
        packed.append(sum(1 << (7 - i) for i, bit in enumerate(bits) if bit))
    return packed if encoding == "ubinary" else [b - 128 for b in packed]


def _options(body: dict[str, Any], default_dimensions: int) -> tuple[str, int]:
    encoding = body.get("encoding_format") or "float"
    if encoding not in ENCODING_FORMATS:
        raise Rejected(
            f"Unsupported encoding_format {encoding!r}; supported: {list(ENCODING_FORMATS)}.",
            param="encoding_format",
        )
    input_type = body.get("input_type")
    if input_type is not None and input_type not in INPUT_TYPES:
        raise Rejected(
            f"Unsupported input_type {input_type!r}; supported: {list(INPUT_TYPES)}.",
            param="input_type",
        )
    dimensions = body.get("dimensions")
    if dimensions is None:
        return encoding, default_dimensions
    if isinstance(dimensions, bool) or not isinstance(dimensions, int):
        raise Rejected(f"dimensions must be an integer, got {dimensions!r}.", param="dimensions")
    if not 1 <= dimensions <= MAX_EMBEDDING_DIMENSIONS:
        raise Rejected(
            f"dimensions must be between 1 and {MAX_EMBEDDING_DIMENSIONS}, got {dimensions}.",
            param="dimensions",
        )
    return encoding, dimensions


def _text_inputs(value: Any) -> list[tuple[str, int]]:
    """``(material, tokens)`` per input: a string, strings, or token arrays (OpenAI's forms)."""
    if isinstance(value, str):
        value = [value]
    elif isinstance(value, list) and value and all(isinstance(t, int) for t in value):
        value = [value]  # one token array
    if not isinstance(value, list) or not value:
        raise Rejected("input must be a non-empty string or list of strings.", param="input")
    out: list[tuple[str, int]] = []
    for item in value:
        if isinstance(item, str) and item:
            out.append((item, max(1, count_tokens(item))))
        elif isinstance(item, list) and item and all(type(t) is int for t in item):
            out.append((" ".join(map(str, item)), len(item)))
        else:
            raise Rejected(f"input items must be non-empty strings, got {item!r}.", param="input")
    return out


def _image_inputs(value: Any) -> list[tuple[str, int]]:
    if not isinstance(value, list) or not value:
        raise Rejected("input must be a non-empty list of image objects.", param="input")
    out: list[tuple[str, int]] = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("text", ""), str):
            # Not echoing the item: it may hold a whole data URL.
            message = "each input must be an object {'image': str, 'text'?: str}."
            raise Rejected(message, param="input")
        try:
            check_image_url(item.get("image"))
        except ValueError as exc:
            raise Rejected(f"input image: {exc}", param="input") from None
        text = item.get("text", "")
        out.append((f"{item['image']}\x00{text}", IMAGE_TOKENS + count_tokens(text)))
    return out


def embeddings_body(
    body: dict[str, Any], *, images: bool, model: str, seed: int, default_dimensions: int
) -> dict[str, Any]:
    """The answer to a validated ``/embeddings`` (or ``/images/embeddings``) request body.

    Raises:
        Rejected: a missing or malformed ``input``, ``encoding_format``, ``input_type`` or
            ``dimensions``.
    """
    if "input" not in body:
        raise Rejected("'input' is a required property of an embeddings request.", param="input")
    inputs = _image_inputs(body["input"]) if images else _text_inputs(body["input"])
    encoding, dimensions = _options(body, default_dimensions)
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": encode(
                embed(material, seed=seed, dimensions=dimensions, words=not images), encoding
            ),
        }
        for index, (material, _) in enumerate(inputs)
    ]
    tokens = sum(t for _, t in inputs)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": model, "usage": usage}
