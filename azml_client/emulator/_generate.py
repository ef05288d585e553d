"""Deterministic stand-in for a language model.

``generate`` hashes ``(seed, prompt)`` into a private ``random.Random`` and draws words from a
fixed vocabulary, so the same seed and prompt always give the same text, whatever the request
order, and a different seed gives a different text. The natural answer is 8 to 40 words ending
with a full stop; ``max_tokens`` and ``stop`` can cut it shorter.

Tokens: one word is one token. The first piece is the bare word, every later piece is a space
followed by the word, so ``"".join(pieces)`` is the text and a stream can send one piece per
chunk. Prompt tokens are counted as whitespace-separated words (``count_tokens``), plus a fixed
number per image part on the chat routes. Ready-made output (tool-call arguments, JSON content)
goes through ``fixed_output``, one token per ``CHARS_PER_TOKEN`` characters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "CHARS_PER_TOKEN",
    "IMAGE_TOKENS",
    "Generation",
    "check_image_url",
    "count_tokens",
    "fixed_output",
    "flatten_messages",
    "generate",
    "max_tokens_from",
    "stop_from",
]

VOCAB: Final = (
    "the", "a", "model", "answers", "quickly", "and", "clearly", "with", "some", "words",
    "about", "azure", "endpoints", "that", "stream", "tokens", "over", "loopback", "for",
    "tests", "every", "request", "gets", "its", "own", "seeded", "reply", "while", "retries",
    "wait", "politely", "between", "calls", "so", "nothing", "breaks", "under", "load", "when",
    "deployments", "share", "traffic", "by", "weight", "green", "blue", "rollout", "safely",
    "scoring", "latency", "budget", "is", "kept", "small", "in", "emulated", "worlds", "of",
    "json", "bodies", "headers", "status", "codes", "arrive",
)  # fmt: skip

#: Keys naming the token budget, in priority order: HF-style containers, OpenAI-style routes,
#: and the early Llama-2 cards (wire-formats.md 2.2).
MAX_TOKEN_KEYS: Final = ("max_new_tokens", "max_tokens", "max_gen_len")

#: Characters per token of ready-made output (tool arguments, JSON content); the emulator's
#: choice, about what BPE tokenizers give for English and JSON.
CHARS_PER_TOKEN: Final = 4

#: Prompt tokens counted per image (chat image parts on the OpenAI-style routes, image
#: embeddings); the emulator's choice, the size OpenAI gives a low-detail image.
IMAGE_TOKENS: Final = 85


@dataclass(frozen=True)
class Generation:
    """The outcome of one generation: the streamed pieces, why it ended, and the token counts."""

    pieces: tuple[str, ...]
    finish_reason: str
    prompt_tokens: int

    @property
    def text(self) -> str:
        """The whole generated text."""
        return "".join(self.pieces)

    @property
    def completion_tokens(self) -> int:
        """Tokens generated (one per piece)."""
        return len(self.pieces)

    def usage(self) -> dict[str, int]:
        """OpenAI-style ``usage`` object."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def count_tokens(text: str) -> int:
    """Tokens in ``text`` as the emulator counts them: whitespace-separated words."""
    return len(text.split())


def _cut(pieces: Sequence[str], at: int) -> tuple[str, ...]:
    kept: list[str] = []
    pos = 0
    for piece in pieces:
        if pos + len(piece) > at:
            if at > pos:
                kept.append(piece[: at - pos])
            break
        kept.append(piece)
        pos += len(piece)
    return tuple(kept)


def generate(
    prompt: str,
    *,
    seed: int,
    max_tokens: int,
    stop: Sequence[str] = (),
    prompt_tokens: int | None = None,
) -> Generation:
    """Generate the deterministic answer to ``prompt``.

    Args:
        prompt: Text the answer depends on (for chat: the flattened conversation).
        seed: Emulator seed; mixed with the prompt.
        max_tokens: Token budget; reaching it ends with ``finish_reason="length"``.
        stop: Stop sequences; the text is cut before the first occurrence of any of them
            (``finish_reason="stop"``), the stop sequence itself is not returned.
        prompt_tokens: Prompt size to report; defaults to ``count_tokens(prompt)``.
    """
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    rng = random.Random(digest)
    natural = rng.randint(8, 40)
    count = min(natural, max_tokens)
    words = [rng.choice(VOCAB) for _ in range(count)]
    if count == natural:
        words[-1] += "."
    pieces = tuple(w if i == 0 else f" {w}" for i, w in enumerate(words))
    finish = "stop" if count == natural else "length"
    text = "".join(pieces)
    hits = [i for s in stop if s and (i := text.find(s)) >= 0]
    if hits:
        pieces, finish = _cut(pieces, min(hits)), "stop"
    used = count_tokens(prompt) if prompt_tokens is None else prompt_tokens
    return Generation(pieces, finish, used)


def max_tokens_from(
    params: Mapping[str, Any], default: int, keys: Sequence[str] = MAX_TOKEN_KEYS
) -> int:
    """The token budget named in ``params`` (the first of ``keys`` present), else ``default``.

    Raises:
        ValueError: the value is not a non-negative integer.
    """
    for key in keys:
        value = params.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
        return int(value)
    return default


def stop_from(params: Mapping[str, Any]) -> tuple[str, ...]:
    """Stop sequences from ``params["stop"]`` (a string or a list of strings).

    Raises:
        ValueError: ``stop`` is neither.
    """
    value = params.get("stop")
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return tuple(value)
    raise ValueError(f"stop must be a string or a list of strings, got {value!r}")


_DATA_URL = re.compile(r"data:image/[\w.+-]+;base64,(?P<data>[A-Za-z0-9+/=\s]+)", re.ASCII)
_PART_TYPES = ("text", "image_url")


def check_image_url(url: Any) -> None:
    """Accept an ``https://`` / ``http://`` URL or a ``data:image/<type>;base64,...`` URL.

    Raises:
        ValueError: anything else, including a data URL whose payload is not base64.
    """
    if not isinstance(url, str):
        raise ValueError(f"an image URL must be a string, got {url!r}")
    if url.startswith(("https://", "http://")) and len(url) > len("https://"):
        return
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise ValueError("an image must be an http(s) URL or a data:image/<type>;base64,... URL")
    try:
        decoded = base64.b64decode("".join(match["data"].split()), validate=True)
    except binascii.Error:
        decoded = b""
    if not decoded:
        raise ValueError("the base64 payload of the image data URL is empty or invalid")


def _short(value: Any, limit: int = 80) -> str:
    # Error messages quote the offending value, but not a whole inlined image.
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def _content_text(content: Any) -> tuple[str, int]:
    """The text of a message's ``content`` and how many image parts it has."""
    if isinstance(content, str):
        return content, 0
    if content is None:
        return "", 0
    if not isinstance(content, list):
        raise ValueError(f"message content must be a string or a list of parts, got {content!r}")
    texts: list[str] = []
    images = 0
    # OpenAI content parts. [MI-CHAT] also names an "image" part (wire-formats.md 3.5) without
    # its shape; only the two parts OpenAI defines are accepted here.
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url" and isinstance(part.get("image_url"), dict):
            check_image_url(part["image_url"].get("url"))
            images += 1
        elif kind in _PART_TYPES:
            field = "a string 'text'" if kind == "text" else "an object 'image_url' with a 'url'"
            raise ValueError(f"a {kind!r} content part needs {field}, got {_short(part)}")
        else:
            types = list(_PART_TYPES)
            raise ValueError(f"content parts must be objects of type {types}, got {_short(part)}")
    return " ".join(texts), images


def flatten_messages(messages: Any, *, image_tokens: int = 0) -> tuple[str, int]:
    """Turn a chat message list into ``(prompt, prompt_tokens)`` for ``generate``.

    The prompt is one ``role: text`` line per message; prompt tokens are the words of the
    message texts plus ``image_tokens`` per image part.

    Raises:
        ValueError: ``messages`` is not a non-empty list of ``{"role": str, "content": ...}``,
            or a content part is malformed.
    """
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list")
    lines: list[str] = []
    tokens = 0
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ValueError(f"each message needs a string 'role', got {message!r}")
        text, images = _content_text(message.get("content"))
        lines.append(f"{message['role']}: {text}")
        tokens += count_tokens(text) + images * image_tokens
    return "\n".join(lines), tokens


def fixed_output(
    text: str, *, prompt_tokens: int, finish_reason: str, budget: int | None = None
) -> Generation:
    """A ``Generation`` of ready-made ``text`` (tool arguments, JSON), cut into token pieces.

    A token is ``CHARS_PER_TOKEN`` characters here (JSON has few spaces to split words on).
    Over ``budget`` tokens the text is cut and the finish reason becomes ``"length"``.
    """
    size = CHARS_PER_TOKEN
    pieces = tuple(text[i : i + size] for i in range(0, len(text), size))
    if budget is not None and len(pieces) > budget:
        return Generation(pieces[:budget], "length", prompt_tokens)
    return Generation(pieces, finish_reason, prompt_tokens)
