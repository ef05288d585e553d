"""Deterministic stand-in for a language model.

``generate`` hashes ``(seed, prompt)`` into a private ``random.Random`` and draws words from a
fixed vocabulary, so the same seed and prompt always give the same text, whatever the request
order, and a different seed gives a different text. The natural answer is 8 to 40 words ending
with a full stop; ``max_tokens`` and ``stop`` can cut it shorter.

Tokens: one word is one token. The first piece is the bare word, every later piece is a space
followed by the word, so ``"".join(pieces)`` is the text and a stream can send one piece per
chunk. Prompt tokens are counted as whitespace-separated words (``count_tokens``).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "Generation",
    "count_tokens",
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


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts: only the text parts count
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return " ".join(t for t in texts if isinstance(t, str))
    if content is None:
        return ""
    raise ValueError(f"message content must be a string or a list of parts, got {content!r}")


def flatten_messages(messages: Any) -> tuple[str, int]:
    """Turn a chat message list into ``(prompt, prompt_tokens)`` for ``generate``.

    The prompt is one ``role: text`` line per message; prompt tokens are the words of the
    message texts (image parts count for nothing).

    Raises:
        ValueError: ``messages`` is not a non-empty list of ``{"role": str, "content": ...}``.
    """
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list")
    lines: list[str] = []
    tokens = 0
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ValueError(f"each message needs a string 'role', got {message!r}")
        text = _content_text(message.get("content"))
        lines.append(f"{message['role']}: {text}")
        tokens += count_tokens(text)
    return "\n".join(lines), tokens
