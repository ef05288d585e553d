"""Import time: azml-client against the openai SDK, each import in a fresh interpreter.

``python -m benchmarks.run --suite import`` (or ``python -m benchmarks.imports``) runs every
statement below in a new ``python -c`` process, ``--repeats`` times in turn, and reports the
median wall time of the import itself (measured inside the process with ``perf_counter``, so
interpreter start-up is left out). Both libraries import httpx and pydantic; the ratio shows
what each loads on top of them. ``import azml_client`` loads names on first use; ``from
azml_client import EndpointClient`` is what a program that makes a call pays.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: (row label, statement, the baseline row it is compared with)
ROWS: tuple[tuple[str, str, str], ...] = (
    ("import openai", "import openai", "import openai"),
    ("from openai import AsyncOpenAI", "from openai import AsyncOpenAI", "import openai"),
    ("import azml_client", "import azml_client", "import openai"),
    (
        "from azml_client import EndpointClient",
        "from azml_client import EndpointClient",
        "import openai",
    ),
    (
        "... and build a client",
        "from azml_client import EndpointClient; "
        "EndpointClient('http://127.0.0.1:1/score', formatter='llama')",
        "import openai",
    ),
)

_PROBE = "import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"


def measure(statement: str) -> float:
    """Seconds the statement takes in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(stmt=statement)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def run(repeats: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {label: [] for label, _, _ in ROWS}
    for _ in range(repeats):  # interleaved, so a slow moment of the machine hits every row
        for label, statement, _ in ROWS:
            samples[label].append(measure(statement))
    return {label: statistics.median(values) for label, values in samples.items()}


def table(medians: dict[str, float], repeats: int) -> str:
    out = [
        "| import | ms (lower is better) | vs import openai |",
        "|---|---|---|",
    ]
    for label, _, baseline in ROWS:
        ms = medians[label] * 1000
        out.append(f"| `{label}` | {ms:.0f} | {medians[label] / medians[baseline]:.2f}x |")
    out.append("")
    out.append(f"Median of {repeats} fresh interpreters per row, rows interleaved.")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    text = "### import: time to import, fresh interpreter\n\n" + table(
        run(args.repeats), args.repeats
    )
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
