"""One bulk item, validated once.

Whatever the item came from (a prompt string, a list of messages, a dict with ``prompt`` or
``messages`` and ``params``, a line of an ``azml batch`` input file), :meth:`Item.of` checks it
and the rest of the pipeline trusts it: the run does not normalise it again and the client does
not re-check its messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .._exceptions import ConfigurationError
from .._options import check_messages

__all__ = ["Item", "check_messages"]


@dataclass(frozen=True, slots=True)
class Item:
    """A completion (``prompt``), a chat (``messages``) or texts to embed (``input``), with
    its own parameters (for an embedding: ``input_type``, ``dimensions``, ...)."""

    kind: Literal["completion", "chat", "embed"]
    #: The prompt string, the validated list of messages, or a tuple of texts.
    payload: Any
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, value: Any) -> Item:
        """The item ``value`` stands for, or a :class:`ConfigurationError` saying why not."""
        if isinstance(value, Item):
            return value
        if isinstance(value, str):
            return cls("completion", value)
        if isinstance(value, list | tuple):
            return cls("chat", check_messages(value, "a batch item"))
        if isinstance(value, Mapping):
            params = value.get("params")
            params = {} if params is None else params
            if not isinstance(params, Mapping):
                raise ConfigurationError("an item's 'params' must be an object of model parameters")
            if "messages" in value:
                return cls("chat", check_messages(value["messages"], "a batch item"), dict(params))
            if "input" in value:
                return cls("embed", _texts(value["input"]), dict(params))
            if "prompt" in value:
                prompt = value["prompt"]
                if not isinstance(prompt, str):
                    raise ConfigurationError(
                        f"an item's 'prompt' must be a string, got {type(prompt).__name__}"
                    )
                return cls("completion", prompt, dict(params))
        raise ConfigurationError(
            "a batch item is a prompt string, a list of messages, or a dict with 'prompt', "
            "'messages' or 'input' (texts to embed), and optional 'params'; got "
            f"{type(value).__name__}: {value!r:.80}"
        )


def _texts(value: Any) -> tuple[str, ...]:
    """The texts of an embeddings item: one string or a non-empty list of strings."""
    texts = (value,) if isinstance(value, str) else value
    if (
        not isinstance(texts, list | tuple)
        or not texts
        or not all(isinstance(t, str) for t in texts)
    ):
        raise ConfigurationError(
            "an item's 'input' must be a string or a non-empty list of strings to embed"
        )
    return tuple(texts)
