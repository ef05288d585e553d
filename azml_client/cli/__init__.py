"""The ``azml`` command: ``complete``, ``chat``, ``embed``, ``info``, ``batch``, ``formatters``
and ``emulate``.

``main(argv)`` returns the exit code: 0 success, 1 an endpoint error or failed batch items, 2 a
usage, configuration or local problem, 130 interrupted. Errors are printed as one line on
stderr, never as a traceback (``--debug`` adds it).

Layout: :mod:`._parser` (the flags), :mod:`._commands` (dispatch, ``formatters``,
``emulate``), :mod:`._connection` (the endpoint or embedded emulator a command talks to, and what
its kind cannot do), :mod:`._calls` (``complete``, ``chat``, ``embed``, ``info``),
:mod:`._batch` (``batch``), :mod:`._render` (progress and summaries, from plain data;
``client.batch(progress=True)`` uses it too), :mod:`._errors` (one line per error).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``azml`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    # Imported here, not above, so that importing ``azml_client.cli._render`` (as the library's
    # ``client.batch(progress=True)`` does) loads neither the commands nor the emulator.
    from ._commands import main as run_main

    return run_main(argv)
