"""Embeddings requests and answers (model inference ``/embeddings`` and ``/images/embeddings``,
OpenAI v1 ``/embeddings``; wire-formats.md 3.5, [MI-EMB]). Pure functions, no I/O."""

from __future__ import annotations

import base64
import binascii
import mimetypes
import os
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from ._exceptions import ConfigurationError, ResponseFormatError
from ._types import Embeddings, Usage

__all__ = [
    "ENCODING_FORMATS",
    "INPUT_TYPES",
    "embeddings_body",
    "image_inputs",
    "joined_embeddings",
    "read_vectors",
    "text_inputs",
]

INPUT_TYPES = ("text", "query", "document")
ENCODING_FORMATS = ("float", "base64", "int8", "uint8", "binary", "ubinary")


def text_inputs(input: Any) -> list[str]:
    """One string or a list of strings, as a list; anything else is a clear error."""
    if isinstance(input, str):
        return [input]
    if isinstance(input, Sequence) and not isinstance(input, bytes | bytearray):
        texts = list(input)
        if not texts:
            raise ConfigurationError("embed() needs at least one input string")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ConfigurationError(
                    f"embed() input {i} is a {type(text).__name__}: give strings (for images "
                    "use embed_images())"
                )
        return texts
    raise ConfigurationError(
        f"embed() takes a string or a list of strings, got {type(input).__name__}"
    )


def _data_url(data: bytes, mime: str | None) -> str:
    return f"data:{mime or 'image/png'};base64,{base64.b64encode(data).decode('ascii')}"


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    return None


def _image(value: Any, i: int) -> str:
    if isinstance(value, bytes | bytearray):
        return _data_url(bytes(value), _sniff(bytes(value)))
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise ConfigurationError(f"image {i}: cannot read {path!r} ({exc})") from None
        return _data_url(data, mimetypes.guess_type(path)[0] or _sniff(data))
    if isinstance(value, str) and value.startswith(("data:", "https://", "http://")):
        return value
    raise ConfigurationError(
        f"image {i} must be bytes, a path (pathlib.Path), a data: URL or an http(s) URL; got "
        f"{type(value).__name__}"
    )


def image_inputs(images: Any) -> list[dict[str, str]]:
    """``[{"image": <data URL or URL>, "text"?: ...}]`` from bytes, paths, URLs or such dicts."""
    if isinstance(images, str | bytes | bytearray | Mapping | os.PathLike):
        images = [images]
    if not isinstance(images, Sequence) or not images:
        raise ConfigurationError("embed_images() needs a non-empty list of images")
    out = []
    for i, item in enumerate(images):
        if isinstance(item, Mapping):
            entry = {"image": _image(item.get("image"), i)}
            text = item.get("text")
            if text is not None:
                if not isinstance(text, str):
                    raise ConfigurationError(f"image {i}: 'text' must be a string")
                entry["text"] = text
            out.append(entry)
        else:
            out.append({"image": _image(item, i)})
    return out


def embeddings_body(
    inputs: list[Any],
    *,
    input_type: str | None,
    encoding_format: str | None,
    dimensions: int | None,
    model: str | None,
) -> dict[str, Any]:
    """The request body; unknown ``input_type`` / ``encoding_format`` values fail here."""
    body: dict[str, Any] = {"input": inputs}
    if input_type is not None:
        if input_type not in INPUT_TYPES:
            raise ConfigurationError(
                f"unknown input_type {input_type!r}: use one of {', '.join(INPUT_TYPES)}"
            )
        body["input_type"] = input_type
    if encoding_format is not None:
        if encoding_format not in ENCODING_FORMATS:
            raise ConfigurationError(
                f"unknown encoding_format {encoding_format!r}: use one of "
                f"{', '.join(ENCODING_FORMATS)}"
            )
        body["encoding_format"] = encoding_format
    if dimensions is not None:
        if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1:
            raise ConfigurationError(f"dimensions must be a positive integer, got {dimensions!r}")
        body["dimensions"] = dimensions
    if model is not None:
        body["model"] = model
    return body


def _bad(message: str, data: Any) -> ResponseFormatError:
    return ResponseFormatError(message, formatter="embeddings", body=repr(data)[:300])


def _vector(raw: Any, i: int, data: Any) -> list[float]:
    if isinstance(raw, str):  # base64: little-endian float32, as the OpenAI API sends it
        try:
            packed = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise _bad(f"embedding {i} is a string but not base64", data) from None
        if len(packed) % 4:
            raise _bad(f"embedding {i}: {len(packed)} bytes is not a whole float32 vector", data)
        return list(struct.unpack(f"<{len(packed) // 4}f", packed))
    if isinstance(raw, list) and all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in raw
    ):
        return raw
    raise _bad(f"embedding {i} is neither a list of numbers nor base64", data)


def read_vectors(data: Any, count: int) -> list[list[float]]:
    """The vectors of an answer in input order (by ``index``), exactly ``count`` of them."""
    items = data.get("data") if isinstance(data, Mapping) else None
    if not isinstance(items, list):
        raise _bad("expected a JSON object with a 'data' list of embeddings", data)
    vectors: list[list[float] | None] = [None] * count
    for position, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise _bad(f"data[{position}] is not an object", data)
        index = item.get("index", position)
        if type(index) is not int or not 0 <= index < count or vectors[index] is not None:
            raise _bad(f"data[{position}] has a bad or repeated index {index!r}", data)
        vectors[index] = _vector(item.get("embedding"), index, data)
    missing = [i for i, v in enumerate(vectors) if v is None]
    if missing:
        raise _bad(f"no embedding for input(s) {missing[:10]} of {count}", data)
    return [v for v in vectors if v is not None]


def joined_embeddings(parts: Sequence[Embeddings]) -> Embeddings:
    """The answers to consecutive parts of one input as one answer: the vectors in order, the
    usage and attempts summed, the model of the first part."""
    vectors: list[list[float]] = []
    prompt = total = attempts = 0
    for part in parts:
        vectors.extend(part.vectors)
        attempts += part.attempts
        if part.usage is not None:
            prompt += part.usage.prompt_tokens or 0
            total += part.usage.total_tokens or 0
    return Embeddings(
        vectors=vectors,
        usage=Usage(prompt_tokens=prompt, total_tokens=total),
        model=parts[0].model if parts else None,
        attempts=attempts,
    )
