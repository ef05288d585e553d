"""The README's quick start holds exactly two commands, and CI runs the same test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Quick start\n(.*?)^## ", text, re.S | re.M)
    assert match, "README.md needs a '## Quick start' section"
    blocks = re.findall(r"```[a-z]*\n(.*?)```", match.group(1), re.S)
    return [line.strip() for b in blocks for line in b.splitlines() if line.strip()]


def test_quick_start_has_the_main_job_and_the_test_command() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2
    main_job, tests = commands
    assert "azml batch" in main_job and "--emulator" in main_job
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert quick_start_commands()[1] in ci.splitlines()


def test_example_input_of_the_main_job_exists() -> None:
    main_job = quick_start_commands()[0]
    path = re.search(r"azml batch (\S+)", main_job)
    assert path and (ROOT / path.group(1)).is_file()
