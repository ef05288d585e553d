"""The ``azml`` command line: subprocesses for the real thing, ``main()`` in-process for flags."""

from __future__ import annotations

import argparse
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
    ResponseFormatError,
)
from azml_client._cli_args import build_parser, parse_deployment, parse_params
from azml_client.cli import describe_error, emulator_plan, main
from azml_client.emulator import EmulatorConfig, run_emulator

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
    for label in ("sent", "ok", "failed", "bad input", "skipped", "retried", "429s", "req/s"):
        assert re.search(rf"^  {label} ", result.stderr, re.M), label
    records = {r["id"]: r for r in read_records(out)}
    assert sorted(records, key=str) == [7, "p0", "p1", "p2", "p3", "p4", "p5"]
    assert all(r["ok"] and r["text"] and r["attempts"] >= 1 for r in records.values())
    assert records[7]["finish_reason"] == "length" and records[7]["usage"]["completion_tokens"] == 4

    # Fix the bad line and run again: only that line is sent.
    rows[-1] = {"id": "fixed", "prompt": "now valid"}
    write_jsonl(src, rows)
    again = azml("batch", str(src), "-o", str(out), "--emulator", "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["sent"], summary["ok"], summary["skipped"]) == (1, 1, 7)
    assert len(read_records(out)) == 8


def test_kill_9_mid_batch_then_resume(tmp_path: Path) -> None:
    n = 200
    rows = [{"id": f"k{i:03d}", "prompt": f"prompt number {i}"} for i in range(n)]
    src, out = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    slow = [
        *("batch", str(src), "-o", str(out), "--emulator", "--emulator-latency", "0.05"),
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
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped after 2 requests (200: 2)" in err


# -- in-process: flags, messages, plans -------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["complete"], ["chat"], ["batch"], ["emulate"]])
def test_help_of_every_command(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: azml")
    assert "AZUREML_ENDPOINT_API_KEY" in out or command == ["emulate"]


def test_usage_and_configuration_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["complete"]) == 2  # argparse: missing PROMPT
    assert "required: PROMPT" in capsys.readouterr().err
    assert main(["complete", "Hi"]) == 2  # no endpoint URL anywhere
    err = capsys.readouterr().err
    assert (
        err == "azml: error: no endpoint URL: pass endpoint_url=... or set AZUREML_ENDPOINT_URL\n"
    )
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
    assert data["openai"]["api_types"] == ["serverless"]
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
