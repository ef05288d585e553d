"""JSON from the network: one decoder that fails only with ``ValueError``.

``json.loads`` raises ``RecursionError`` on deeply nested input (a 1000-deep array is enough),
which is not a ``ValueError``; bytes from a server must never raise anything a caller does not
expect, so every body and stream event is decoded here.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["loads"]


def loads(raw: bytes | str) -> Any:
    """``json.loads`` that raises ``ValueError`` for anything it cannot decode."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
