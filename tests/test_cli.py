"""The ``azml`` command line: subprocesses for the real thing, ``main()`` in-process for flags,
error lines and rendering."""

from __future__ import annotations

import argparse
import builtins
import dataclasses
import errno
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from azml_client import (
    APIConnectionError,
    AuthenticationError,
    ConfigurationError,
    Pricing,
    ResponseFormatError,
)
from azml_client._bulk import BatchStats
from azml_client._bulk._jobs import ErrorTally, JobError, JobSummary, OutputLock, ResultWriter
from azml_client.cli import main
from azml_client.cli._commands import emulator_plan
from azml_client.cli._errors import describe_error, root_error
from azml_client.cli._parser import build_parser, faults_kwargs, parse_deployment, parse_params
from azml_client.cli._render import ProgressSnapshot, progress_renderer, summary_text
from azml_client.emulator import EmulatorConfig, Faults, run_emulator
from azml_client.emulator._faults import fault_flags

ROOT = Path(__file__).resolve().parents[1]
WRONG_KEY = "wrong-key-7c1d-SECRET"


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("AZUREML_")}
    out["PYTHONPATH"] = str(ROOT)
    out.update(extra)
    return out


def azml(*args: str, timeout: float = 60, **env_extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "azml_client", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(**env_extra),
        cwd=ROOT,
    )


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def read_records(path: Path) -> list[dict[str, Any]]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n"), "torn last line"
    return [json.loads(line) for line in raw.splitlines()]


# -- subprocesses ------------------------------------------------------------------------------


def test_formatters_table() -> None:
    result = azml("formatters")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["FAMILY", "ALIASES", "API", "TYPES", "CHAT", "COMPLETION"]
    openai = next(line for line in lines if line.startswith("openai "))
    assert "serverless" in openai and "maas" in openai
    assert any(line.startswith("vllm ") and " yes " in line for line in lines)


def test_complete_with_embedded_emulator() -> None:
    result = azml("complete", "Write a haiku about rain", "--emulator")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and result.stderr == ""


def test_complete_json_with_params() -> None:
    result = azml("complete", "Hi", "--emulator", "--json", "--param", "max_tokens=3")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"text", "finish_reason", "usage", "request_id", "attempts"}
    assert data["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 3
    assert data["attempts"] == 1 and data["request_id"]


def test_chat_stream_with_system_messages() -> None:
    result = azml("chat", "Hi", "--system", "Be brief", "--emulator", "--stream", "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    deltas = [line["delta"] for line in lines[:-1]]
    assert len(deltas) > 2
    assert lines[-1]["text"] == "".join(deltas)
    assert lines[-1]["finish_reason"] == "stop"


def test_wrong_key_is_one_line_and_exit_1() -> None:
    with run_emulator(EmulatorConfig(api_key="the-right-key")) as emu:
        result = azml(
            "complete", "Hi", "--endpoint-url", emu.score_url, AZUREML_ENDPOINT_API_KEY=WRONG_KEY
        )
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("azml: error: HTTP 401 AuthenticationError: ")
    assert "request id" in lines[0] and "AZUREML_ENDPOINT_API_KEY" in lines[0]
    assert "Traceback" not in result.stderr
    assert WRONG_KEY not in result.stderr


def test_batch_with_embedded_emulator(tmp_path: Path) -> None:
    rows: list[Any] = [{"id": f"p{i}", "prompt": f"prompt {i}"} for i in range(6)]
    rows += [{"messages": [{"role": "user", "content": "hello"}], "params": {"max_tokens": 4}}]
    rows += ["{broken"]
    src, out = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    result = azml("batch", str(src), "-o", str(out), "--emulator", "--emulator-rate-limit", "50")
    assert result.returncode == 1, result.stderr  # the bad line counts as a failure
    assert f"azml: {src}:8: invalid JSON" in result.stderr
    assert "Traceback" not in result.stderr
    labels = ("sent", "ok", "failed", "rejected", "bad input", "skipped", "retried", "429s")
    for label in (*labels, "tokens", "req/s"):
        assert re.search(rf"^  {label} ", result.stderr, re.M), label
    records = {r["id"]: r for r in read_records(out)}
    assert sorted(records, key=str) == [7, "p0", "p1", "p2", "p3", "p4", "p5"]
    assert all(r["ok"] and r["text"] and r["attempts"] >= 1 for r in records.values())
    assert records[7]["finish_reason"] == "length" and records[7]["usage"]["completion_tokens"] == 4

    # Fix the bad line and run again: only that line is sent.
    rows[-1] = {"id": "fixed", "prompt": "now valid"}
    write_jsonl(src, rows)
    prices = ("--price-in", "0.5", "--price-out", "2")
    again = azml("batch", str(src), "-o", str(out), "--emulator", "--json", *prices)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["sent"], summary["ok"], summary["skipped"]) == (1, 1, 7)
    assert summary["tokens_in"] > 0 and summary["tokens_out"] > 0
    expected = summary["tokens_in"] / 1000 * 0.5 + summary["tokens_out"] / 1000 * 2
    assert summary["cost"] == pytest.approx(expected, abs=1e-6)
    assert len(read_records(out)) == 8


def test_kill_9_mid_batch_then_resume(tmp_path: Path) -> None:
    n = 200
    rows = [{"id": f"k{i:03d}", "prompt": f"prompt number {i}"} for i in range(n)]
    src, out = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    slow = [
        *("batch", str(src), "-o", str(out), "--emulator", "--emulator-latency", "0.1"),
        *("--concurrency", "4"),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "azml_client", *slow],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env(),
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if out.exists() and out.read_bytes().count(b"\n") >= 20:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the batch wrote nothing")
        # A second batch on the same output while the first runs: refused at once.
        second = azml("batch", str(src), "-o", str(out), "--emulator")
        assert proc.poll() is None, "the first batch ended too early for this check"
        assert second.returncode == 2
        pid = f" (pid {proc.pid})" if sys.platform == "linux" else ""  # from /proc/locks
        assert second.stderr.splitlines() == [
            f"azml: error: another azml batch is writing {str(out)!r}{pid}: wait for it to "
            "finish or choose another --output"
        ]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    before = out.read_bytes()
    complete = before[: before.rfind(b"\n") + 1].splitlines()
    assert 20 <= len(complete) < n
    assert all(json.loads(line)["ok"] for line in complete)

    result = azml("batch", str(src), "-o", str(out), "--emulator", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["skipped"] == len(complete)
    assert summary["sent"] == n - len(complete)
    records = read_records(out)
    assert sorted(r["id"] for r in records) == [r["id"] for r in rows]  # each id exactly once
    assert all(r["ok"] for r in records)


def test_batch_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "x"}])
    result = azml("batch", str(src), "-o", str(tmp_path / "no-dir" / "out.jsonl"), "--emulator")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"azml: error: the directory of --output, {str(tmp_path / 'no-dir')!r}, does not exist: "
        "create it or choose another --output"
    ]


def test_progress_on_a_pipe_is_plain_lines_and_counts_resumed_lines(tmp_path: Path) -> None:
    rows = [{"id": i, "prompt": f"prompt {i}"} for i in range(20)]
    src, out = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    fast = ("--emulator", "--progress-interval", "0.1", "--json")
    result = azml("batch", str(src), "-o", str(out), *fast, "--emulator-latency", "0.05")
    assert result.returncode == 0, result.stderr
    frames = result.stderr.splitlines()
    assert len(frames) >= 3, frames  # the first, at least one every 0.1 s, the last
    assert all(
        re.match(r"\[\d+:\d\d:\d\d\] \d+/20 done \(\d+%\)  [\d.]+ req/s  ETA ", f) for f in frames
    )
    assert frames[0].startswith("[0:00:00] 0/20 done (0%)")
    assert " 20/20 done (100%)" in frames[-1] and "errors 0" in frames[-1]
    assert "\x1b" not in result.stderr  # no terminal codes in a log

    out.write_bytes(b"".join(out.read_bytes().splitlines(keepends=True)[:10]))
    again = azml("batch", str(src), "-o", str(out), *fast)
    assert again.returncode == 0, again.stderr
    assert again.stderr.splitlines()[0].startswith("[0:00:00] 10/20 done (50%), 10 resumed  ")
    assert json.loads(again.stdout)["skipped"] == 10


def test_emulate_serves_until_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "azml_client", "emulate", "--port", "0", "--rate-limit", "100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        banner = []
        for line in proc.stdout:
            banner.append(line)
            if line.startswith("Ctrl-C"):
                break
        text = "".join(banner)
        score_url = re.search(r"^  dedicated\s+(\S+)", text, re.M)
        key = re.search(r"AZUREML_ENDPOINT_API_KEY=(\S+)", text)
        assert score_url and key, text
        base = score_url[1].removesuffix("/score")
        assert re.search(rf"^  serverless\s+{base}/v1\s", text, re.M), text
        assert re.search(rf"^  models\s+{base}/models\s.*api-version", text, re.M), text
        openai_url = re.search(rf"^  openai_v1\s+({base}/openai/v1)\s", text, re.M)
        assert openai_url, text
        assert "rate_limit_rps=100" in text
        body = {"input_data": {"input_string": ["Hello"], "parameters": {"max_new_tokens": 4}}}
        headers = {"Authorization": f"Bearer {key[1]}"}
        answer = httpx.post(score_url[1], json=body, headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text
        # The same endpoint through the environment, as a user would set it up.
        result = azml(
            "complete", "Hi", AZUREML_ENDPOINT_URL=score_url[1], AZUREML_ENDPOINT_API_KEY=key[1]
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip()
        # The v1 URL as printed, with a model, as a Foundry user would call it.
        v1 = azml(
            "chat",
            "Hi",
            "--endpoint-url",
            openai_url[1],
            "--model",
            "my-gpt",
            "--json",
            AZUREML_ENDPOINT_API_KEY=key[1],
        )
        assert v1.returncode == 0, v1.stderr
        assert json.loads(v1.stdout)["text"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped after 3 requests (200: 3)" in err


# -- in-process: flags, messages, plans -------------------------------------------------------


@pytest.mark.parametrize(
    "command", [[], ["complete"], ["chat"], ["embed"], ["info"], ["batch"], ["emulate"]]
)
def test_help_of_every_command(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: azml")
    assert "AZUREML_ENDPOINT_API_KEY" in out or command == ["emulate"]
    if command not in ([], ["emulate"]):
        assert "--api-type KIND" in out and "--model NAME" in out
        assert "openai_v1" in out
    if command == ["batch"]:
        assert "--task {generate,embeddings}" in out and '"vector": [...]' in out


def test_usage_and_configuration_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["complete"]) == 2  # argparse: missing PROMPT
    assert "required: PROMPT" in capsys.readouterr().err
    assert main(["complete", "Hi"]) == 2  # no endpoint URL anywhere
    err = capsys.readouterr().err  # in command-line terms, not the client's argument names
    assert err.startswith("azml: error: no endpoint URL: pass --endpoint-url ")
    assert "AZUREML_ENDPOINT_URL" in err and "endpoint_url" not in err
    assert len(err.splitlines()) == 1
    assert main(["complete", "Hi", "--emulator-rate-limit", "5"]) == 2
    assert "--emulator-rate-limit only applies with --emulator" in capsys.readouterr().err
    assert main(["complete", "Hi", "--param", "novalue", "--emulator"]) == 2
    assert "--param expects key=value" in capsys.readouterr().err
    assert main(["batch", "/nonexistent.jsonl", "-o", "x.jsonl"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["emulate", "--error-503", "1.5"]) == 2
    assert "fraction between 0 and 1" in capsys.readouterr().err


def test_formatters_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["formatters", "--json"]) == 0
    data = {f["key"]: f for f in json.loads(capsys.readouterr().out)}
    assert data["openai"]["api_types"] == ["serverless", "models", "openai_v1"]
    assert data["vllm"]["chat"] is True and data["vllm"]["completion"] is True


def test_param_values_are_json_when_possible() -> None:
    params = parse_params(["temperature=0.2", "max_tokens=8", 'stop=["\\n"]', "user=bob", "x=a=b"])
    assert params == {
        "temperature": 0.2,
        "max_tokens": 8,
        "stop": ["\n"],
        "user": "bob",
        "x": "a=b",
    }
    assert parse_deployment("blue=llama:90") == ("blue", "llama", 90.0)
    assert parse_deployment("green=vllm") == ("green", "vllm", 100.0)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_deployment("blue")


def _plan(*argv: str) -> tuple[str, str | None, str]:
    return emulator_plan(build_parser().parse_args(["chat", "x", "--emulator", *argv]))


def test_emulator_plan() -> None:
    assert _plan() == ("dedicated", "vllm", "vllm")
    assert _plan("--formatter", "llama-chat") == ("dedicated", "llama-chat", "llama-chat")
    assert _plan("--emulator-family", "gpt2") == ("dedicated", "gpt2", "gpt2")
    assert _plan("--formatter", "openai") == ("serverless", "openai", "llama")
    assert _plan("--api-type", "serverless") == ("serverless", None, "llama")
    assert _plan("--stream") == ("serverless", None, "llama")
    assert _plan("--stream", "--api-type", "dedicated") == ("dedicated", "vllm", "vllm")


def test_describe_error_is_one_line_without_secrets() -> None:
    exc = AuthenticationError(
        "Missing or invalid\nauthorization key.", status_code=401, request_id="rid-1", attempts=1
    )
    assert describe_error(exc) == (
        "HTTP 401 AuthenticationError: Missing or invalid authorization key. (request id rid-1)"
        " — check AZUREML_ENDPOINT_API_KEY"
    )
    conn = APIConnectionError("could not reach the endpoint", url="http://127.0.0.1:9/score")
    assert describe_error(conn).startswith("APIConnectionError: could not reach the endpoint")
    assert "AZUREML_ENDPOINT_URL" in describe_error(conn)
    assert "azml formatters" in describe_error(ResponseFormatError("bad shape", formatter="gpt2"))
    assert describe_error(ConfigurationError("bad")) == "bad"


# -- azml batch: every local problem is one line and exit 2 ----------------------------------


def rows(n: int) -> list[Any]:
    return [{"id": f"p{i}", "prompt": f"prompt {i}"} for i in range(n)]


def error_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """stderr's lines without progress frames."""
    err = capsys.readouterr().err
    return [line for line in err.splitlines() if not re.match(r"\[\d+:\d\d:\d\d\] ", line)]


def test_batch_path_problems_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, out = write_jsonl(tmp_path / "in.jsonl", rows(3)), str(tmp_path / "out.jsonl")
    cases = [
        ([str(src), "-o", str(tmp_path / "no-dir" / "o.jsonl")], "the directory of --output, "),
        ([str(src), "-o", str(src)], "--output is the input file "),
        ([str(src), "-o", str(tmp_path)], f"--output {str(tmp_path)!r} is a directory: give a "),
        ([str(tmp_path / "missing.jsonl"), "-o", out], "not found: check the IN.jsonl argument"),
        ([str(tmp_path), "-o", out], "cannot read the input "),
    ]
    for argv, text in cases:
        assert main(["batch", *argv, "--emulator"]) == 2, text
        lines = error_lines(capsys)
        assert len(lines) == 1 and lines[0].startswith("azml: error: ") and text in lines[0], lines


def test_batch_unwritable_output_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    src, out = write_jsonl(tmp_path / "in.jsonl", rows(3)), tmp_path / "out.jsonl"
    real_open = os.open

    def read_only(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if os.fspath(path) == str(out) and flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    assert main(["batch", str(src), "-o", str(out), "--emulator"]) == 2
    assert error_lines(capsys) == [
        f"azml: error: cannot write --output {str(out)!r} (Permission denied): fix its "
        "permissions or choose another --output"
    ]


def test_batch_full_disk_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self: ResultWriter, data: bytes, count: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ResultWriter, "write_lines", full)
    src, out = write_jsonl(tmp_path / "in.jsonl", rows(5)), tmp_path / "out.jsonl"
    # With progress on, the error leaves an anyio task group: an ExceptionGroup, unwrapped.
    assert main(["batch", str(src), "-o", str(out), "--emulator"]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"azml: error: no space left on the device of --output {str(out)!r}")
    assert lines[0].endswith("free some space and rerun the same command to resume")


def test_batch_refuses_an_output_another_batch_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, out = write_jsonl(tmp_path / "in.jsonl", rows(3)), tmp_path / "out.jsonl"
    held = OutputLock(out).acquire()
    try:
        assert main(["batch", str(src), "-o", str(out), "--emulator"]) == 2
    finally:
        held.release()
    lines = error_lines(capsys)
    assert len(lines) == 1 and "another azml batch is writing" in lines[0]
    assert f"(pid {os.getpid()})" in lines[0] or sys.platform != "linux"
    assert out.read_bytes() == b""


def test_debug_adds_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", rows(1))
    assert main(["batch", str(src), "-o", str(tmp_path / "x" / "o.jsonl"), "--debug"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "JobError" in err
    assert err.splitlines()[-1].startswith("azml: error: the directory of --output")


def test_root_error_unwraps_exception_groups() -> None:
    group: Any = builtins.__dict__.get("BaseExceptionGroup")
    if group is None:  # Python 3.10: the backport anyio depends on
        group = __import__("exceptiongroup").BaseExceptionGroup
    inner = JobError("locked", "held", path="out.jsonl")
    nested = group("outer", [group("inner", [__import__("asyncio").CancelledError(), inner])])
    assert root_error(nested) is inner
    assert root_error(inner) is inner


# -- the summary: failures by type, local rejections ---------------------------------------


def test_batch_summary_counts_failures_by_type_and_local_rejections(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chat = {"id": "chat", "messages": [{"role": "user", "content": "hi"}]}
    src, out = write_jsonl(tmp_path / "in.jsonl", [*rows(12), chat]), tmp_path / "out.jsonl"
    faults = ("--emulator-error-500", "0.5", "--emulator-seed", "3", "--max-retries", "0")
    argv = ["batch", str(src), "-o", str(out), "--emulator", "--formatter", "llama", *faults]
    assert main([*argv, "--json", "--no-progress"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["sent"] == 12 == summary["ok"] + summary["failed"]  # the chat item was not sent
    assert 0 < summary["failed"] < 12
    [failure] = summary["failed_by_type"]
    assert (failure["type"], failure["count"]) == ("ServerError", summary["failed"])
    assert summary["rejected"] == 1
    [rejection] = summary["rejected_by_type"]
    assert (rejection["type"], rejection["count"], rejection["example_id"]) == (
        "ConfigurationError",
        1,
        "chat",
    )
    assert "does not support chat" in rejection["example"]
    records = {r["id"]: r for r in read_records(out)}
    assert records[failure["example_id"]]["error"]["status"] == 500
    assert records["chat"]["error"]["type"] == "ConfigurationError"


def test_summary_text_shows_the_cost_only_with_prices() -> None:
    s = JobSummary(ok=2, tokens_in=3000, tokens_out=1000)
    assert "cost" not in summary_text(s, "out.jsonl")
    s.pricing = Pricing(input_per_1k=0.01, output_per_1k=0.03, currency="EUR")
    assert re.search(r"^  cost +~0\.0600 EUR", summary_text(s, "out.jsonl"), re.M)


def test_instances_without_an_hourly_price_is_refused(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "prompt": "x"}])
    result = azml(
        "batch", str(src), "-o", str(tmp_path / "o.jsonl"), "--emulator", "--instances", "2"
    )
    assert result.returncode == 2
    assert "--instances only applies with --price-hour" in result.stderr


def test_summary_text_shows_top_reasons() -> None:
    s = JobSummary(sent=5, ok=3, failed=2, rejected=1, tokens_in=10, tokens_out=20)
    s.failures["ServerError"] = ErrorTally("ServerError", 2, "r\udfff", "HTTP 500 boom")
    s.rejections["ConfigurationError"] = ErrorTally("ConfigurationError", 1, 7, "no chat")
    text = summary_text(s, "out.jsonl")
    text.encode("utf-8")  # printable, even with a lone surrogate in an id
    lines = text.splitlines()
    assert lines[0] == "azml batch -> out.jsonl"
    assert "  tokens       10 in, 20 out" in lines
    assert re.search(r"^    ServerError +2  e\.g\. id 'r\\udfff': HTTP 500 boom$", text, re.M)
    assert re.search(r"^    ConfigurationError +1  e\.g\. id 7: no chat$", text, re.M)
    assert "rerun the same command" in lines[-1]


# -- progress rendering ------------------------------------------------------------------------


def test_plain_progress_first_frame_throttle_notes_and_last_frame() -> None:
    stream = io.StringIO()
    renderer = progress_renderer(20, stream=stream, initial_done=5, interval=3600)
    renderer.update(ProgressSnapshot(done=7, total=20))  # within the interval: not shown
    renderer.note("azml: in.jsonl:3: invalid JSON")
    final = ProgressSnapshot(20, 20, 1, 2, 4, rps=10.0, elapsed=2.0, resumed=5)
    renderer.close(final)
    renderer.close(final)
    assert stream.getvalue().splitlines() == [
        "[0:00:00] 5/20 done (25%), 5 resumed  0.0 req/s  ETA ?  errors 0  429s 0  concurrency 0",
        "azml: in.jsonl:3: invalid JSON",
        "[0:00:02] 20/20 done (100%), 5 resumed  10.0 req/s  ETA 0:00:00  errors 1  429s 2  "
        "concurrency 4",
    ]


def test_rich_progress_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    renderer = progress_renderer(10, stream=stream, initial_done=3)
    renderer.update(ProgressSnapshot(done=6, total=10, rate_limited=1))
    renderer.close(ProgressSnapshot(done=10, total=10, rate_limited=1))
    text = stream.getvalue()
    assert "\x1b[" in text and "3/10" in text and "10/10" in text and "429s 1" in text


def test_snapshot_from_batch_stats() -> None:
    stats = BatchStats()
    stats.succeeded, stats.failed, stats.rate_limited = 3, 1, 2
    snap = ProgressSnapshot.from_stats(stats, total=10)
    assert (snap.done, snap.total, snap.failed, snap.rate_limited) == (4, 10, 1, 2)
    assert snap.elapsed >= 0 and snap.resumed == 0


# -- emulator fault flags ----------------------------------------------------------------------


def test_fault_flags_are_generated_from_the_faults_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    flags = fault_flags()
    assert [f.field for f in flags] == [f.name for f in dataclasses.fields(Faults)]
    assert all(f.help and f.metavar for f in flags)
    assert {f.name for f in flags} >= {"rate-limit", "max-concurrent", "instances", "error-503"}
    parser = build_parser()
    for command, prefix in ((["emulate"], ""), (["chat", "x"], "emulator-")):
        for flag in flags:
            args = parser.parse_args([*command, f"--{prefix}{flag.name}", "1"])
            assert faults_kwargs(args) == {flag.field: flag.kind(1)}
            Faults(**faults_kwargs(args))
    assert main(["emulate", "--help"]) == 0
    assert "--rate-limit RPS" in capsys.readouterr().out
    assert main(["chat", "x", "--emulator", "--emulator-burst", "0"]) == 2
    assert "argument --emulator-burst: must be at least 1" in capsys.readouterr().err
