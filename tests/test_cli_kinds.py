"""``azml`` on every endpoint kind: ``--api-type``/``--model``, ``embed``, ``info``, tools and
``response_format`` on ``chat``, stream usage, ``batch --task embeddings``, the emulate banner.

In-process ``main()`` against the embedded emulator (``--emulator``) or one started by the test;
errors that need no endpoint use Azure-looking URLs (nothing is sent: the checks come first).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from azml_client.cli import main
from azml_client.cli._commands import emulator_plan, endpoint
from azml_client.cli._parser import build_parser
from azml_client.emulator import EmulatorConfig, EmulatorServer, run_emulator

OPENAI_V1_URL = "https://res.openai.azure.com/openai/v1"
DEDICATED_URL = "https://my-endpoint.eastus.inference.ml.azure.com/score"

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
ANSWER_SCHEMA = {
    "title": "Forecast",
    "type": "object",
    "properties": {"city": {"type": "string"}, "temp": {"type": "number"}},
    "required": ["city", "temp"],
    "additionalProperties": False,
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, list[str]]:
    """``main(argv)``: the exit code, stdout, and stderr's lines."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err.splitlines()


def one_error(err: list[str], *parts: str) -> str:
    assert len(err) == 1, err
    assert err[0].startswith("azml: error: "), err
    for part in parts:
        assert part in err[0], (part, err[0])
    return err[0]


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def read_records(path: Path) -> list[dict[str, Any]]:
    raw = path.read_bytes()
    assert raw == b"" or raw.endswith(b"\n"), "torn last line"
    return [json.loads(line) for line in raw.splitlines()]


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    """One emulator for the tests that count its requests or point at it by URL."""
    with run_emulator(EmulatorConfig(api_key="test-key")) as server:
        yield server


# -- connection flags and the emulator's plan --------------------------------------------------


def test_api_type_takes_the_four_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    for given, kind in [
        ("dedicated", "dedicated"),
        ("serverless", "serverless"),
        ("models", "models"),
        ("openai_v1", "openai_v1"),
        ("OpenAI-V1", "openai_v1"),
    ]:
        args = parser.parse_args(["chat", "x", "--api-type", given, "--model", "m"])
        assert (args.api_type, args.model) == (kind, "m")
    assert main(["chat", "x", "--api-type", "realtime2"]) == 2
    assert "argument --api-type: invalid choice: 'realtime2'" in capsys.readouterr().err


def _plan(*argv: str) -> tuple[str, str | None, str]:
    return emulator_plan(build_parser().parse_args([*argv, "--emulator"]))


def test_emulator_plan_per_kind_and_command(tmp_path: Path) -> None:
    # No kind given: today's choices for complete/chat/batch...
    assert _plan("chat", "x") == ("dedicated", "vllm", "vllm")
    assert _plan("batch", "in.jsonl", "-o", "out.jsonl") == ("dedicated", "vllm", "vllm")
    # ... the model inference API where embeddings or /info are needed ...
    assert _plan("embed", "x") == ("models", None, "llama")
    assert _plan("info") == ("models", None, "llama")
    assert _plan("batch", "i", "-o", "o", "--task", "embeddings") == ("models", None, "llama")
    # ... an OpenAI-style route for tools and response_format (the emulated /score ignores them)
    assert _plan("chat", "x", "--tools", "t.json") == ("serverless", None, "llama")
    assert _plan("chat", "x", "--response-format", "json_object") == ("serverless", None, "llama")
    # --api-type always wins; off /score the formatter is the client's choice.
    for kind in ("serverless", "models", "openai_v1"):
        assert _plan("chat", "x", "--api-type", kind) == (kind, None, "llama")
        assert _plan("embed", "x", "--api-type", kind)[0] == kind
    assert _plan("chat", "x", "--api-type", "dedicated", "--stream") == (
        "dedicated",
        "vllm",
        "vllm",
    )


def _endpoint_kwargs(*argv: str) -> dict[str, Any]:
    with endpoint(build_parser().parse_args([*argv, "--emulator"])) as kwargs:
        return dict(kwargs)


def test_emulator_urls_and_model_per_kind() -> None:
    kwargs = _endpoint_kwargs("chat", "x")
    assert kwargs["endpoint_url"].endswith("/score") and kwargs["model"] is None
    kwargs = _endpoint_kwargs("chat", "x", "--api-type", "serverless")
    assert kwargs["endpoint_url"].endswith("/v1")
    kwargs = _endpoint_kwargs("chat", "x", "--api-type", "models")
    assert kwargs["endpoint_url"].endswith("/models") and kwargs["model"] is None
    kwargs = _endpoint_kwargs("chat", "x", "--api-type", "openai_v1")
    assert kwargs["endpoint_url"].endswith("/openai/v1")
    assert kwargs["model"] == "azml-emulator"  # the v1 API needs one: the emulator's name
    kwargs = _endpoint_kwargs("chat", "x", "--api-type", "openai_v1", "--model", "gpt-x")
    assert (kwargs["api_type"], kwargs["model"]) == ("openai_v1", "gpt-x")


@pytest.mark.parametrize("kind", ["dedicated", "serverless", "models", "openai_v1"])
def test_chat_on_every_emulated_kind(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("chat", "Hi", "--emulator", "--api-type", kind, "--json", "--param", "max_tokens=3")
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    data = json.loads(out)
    assert data["usage"]["completion_tokens"] == 3 and data["finish_reason"] == "length"
    assert "tool_calls" not in data and "parsed" not in data


def test_model_reaches_the_openai_v1_api(
    emu: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # The emulated v1 API answers 400 without a model, like Azure OpenAI.
    url = ("--endpoint-url", emu.openai_v1_url, "--api-key", emu.api_key)
    code, out, err = run(capsys, "embed", "a text", *url, "--model", "my-deployment", "--json")
    assert code == 0, err
    assert json.loads(out)["model"] == "my-deployment"
    code, out, err = run(capsys, "complete", "Hi", *url, "--model", "my-deployment")
    assert code == 0 and out.strip(), err


def test_openai_v1_without_a_model_names_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = ("--endpoint-url", OPENAI_V1_URL, "--api-key", "k")
    code, out, err = run(capsys, "chat", "Hi", *conn)
    assert (code, out) == (2, "")
    one_error(err, "the openai_v1 API names the model in every request: pass --model NAME")
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "input": "x"}])
    out_path = tmp_path / "out.jsonl"
    argv = ("batch", str(src), "-o", str(out_path), "--task", "embeddings", "--no-progress")
    code, _, err = run(capsys, *argv, *conn)
    assert code == 2
    one_error(err, "pass --model NAME")
    assert out_path.read_bytes() == b""


# -- chat: stream usage, tools, response_format ------------------------------------------------


@pytest.mark.parametrize("kind", ["serverless", "openai_v1"])
def test_chat_stream_json_ends_with_usage(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("chat", "Hi", "--emulator", "--api-type", kind, "--stream", "--json")
    code, out, err = run(capsys, *argv, "--param", "max_tokens=4")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    final = lines[-1]
    assert final["usage"] == {"prompt_tokens": 1, "completion_tokens": 4, "total_tokens": 5}
    assert final["text"] == "".join(line["delta"] for line in lines[:-1])
    assert [line["usage"] for line in lines[:-1] if "usage" in line] == [final["usage"]]


def test_chat_tools_print_the_calls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tools = write_json(tmp_path / "tools.json", [WEATHER_TOOL])  # a bare function is wrapped
    argv = ("chat", "Weather in Paris?", "--emulator", "--api-type", "openai_v1")
    forced = ("--tools", str(tools), "--param", "tool_choice=required")
    code, out, err = run(capsys, *argv, *forced, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["finish_reason"] == "tool_calls"
    [call] = data["tool_calls"]
    assert call["type"] == "function" and call["id"]
    assert call["function"]["name"] == "get_weather"
    assert isinstance(json.loads(call["function"]["arguments"])["city"], str)
    # Without --json: one line per call; a stream assembles the same calls.
    code, out, err = run(capsys, *argv, *forced)
    assert code == 0, err
    assert re.fullmatch(r"tool call get_weather\(\{\"city\": ?\".*\"\}\)\n", out), out
    code, out, err = run(capsys, *argv, *forced, "--stream", "--json")
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["tool_calls"][0]["function"]["name"] == "get_weather"


def test_chat_response_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    schema = write_json(tmp_path / "forecast.json", ANSWER_SCHEMA)
    argv = ("chat", "Forecast?", "--emulator", "--api-type", "models", "--json")
    code, out, err = run(capsys, *argv, "--response-format", str(schema))
    assert code == 0, err
    data = json.loads(out)
    assert set(data["parsed"]) == {"city", "temp"} and json.loads(data["text"]) == data["parsed"]
    code, out, err = run(capsys, *argv, "--response-format", "json_object", "--stream")
    assert code == 0, err
    assert isinstance(json.loads(out.splitlines()[-1])["parsed"], dict)


def test_tools_and_response_format_file_errors_name_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ("chat", "x", "--emulator")
    missing = str(tmp_path / "missing.json")
    code, _, err = run(capsys, *base, "--tools", missing)
    assert code == 2
    one_error(err, f"cannot read --tools {missing!r}")
    bad = write_json(tmp_path / "bad.json", [{"type": "function"}])
    code, _, err = run(capsys, *base, "--tools", str(bad))
    assert code == 2
    one_error(err, "--tools", "tool 0 is not")
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    code, _, err = run(capsys, *base, "--response-format", str(broken))
    assert code == 2
    one_error(err, f"--response-format {str(broken)!r} is not JSON")
    code, _, err = run(capsys, *base, "--response-format", "json")
    assert code == 2
    one_error(err, "cannot read --response-format 'json'", "give json_object or a JSON schema")


# -- embed and info ----------------------------------------------------------------------------


def test_embed_prints_one_vector_a_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(capsys, "embed", "first", "second", "--emulator", "--dimensions", "4")
    assert code == 0, err
    vectors = [json.loads(line) for line in out.splitlines()]
    assert len(vectors) == 2 and all(len(v) == 4 for v in vectors)
    # stdin lines (blank ones skipped), in several requests: the same vectors, in order.
    monkeypatch.setattr("sys.stdin", io.StringIO("first\n\nsecond\n"))
    argv = ("embed", "-", "--emulator", "--dimensions", "4", "--batch-size", "1", "--json")
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    data = json.loads(out)
    assert data["vectors"] == vectors
    assert data["usage"]["prompt_tokens"] > 0 and data["model"] == "azml-emulator"
    assert set(data) == {"vectors", "usage", "model", "request_id", "attempts"}


def test_embed_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, "embed", "x", "--endpoint-url", DEDICATED_URL, "--api-key", "k")
    assert code == 2
    one_error(err, "is a dedicated endpoint, which has no embeddings route", "--endpoint-url")
    monkeypatch.setattr("sys.stdin", io.StringIO("\n\n"))
    code, _, err = run(capsys, "embed", "-", "--emulator")
    assert code == 2
    one_error(err, "nothing to embed")
    code, _, err = run(capsys, "embed", "x", "--emulator", "--dimensions", "0")
    assert code == 2 and "argument --dimensions: expected an integer >= 1" in err[-1]
    code, _, err = run(capsys, "embed", "x", "--emulator", "--input-type", "poem")
    assert code == 2 and "argument --input-type: invalid choice: 'poem'" in err[-1]


def test_info(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "info", "--emulator")
    assert code == 0, err
    assert re.search(r"^model_name +azml-emulator$", out, re.M)
    assert re.search(r"^model_type +chat-completions$", out, re.M)
    code, out, err = run(capsys, "info", "--emulator", "--api-type", "serverless", "--json")
    assert code == 0, err
    assert json.loads(out)["model_provider_name"] == "azml-emulator"


def test_info_on_the_v1_api_says_it_has_no_info(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "info", "--endpoint-url", OPENAI_V1_URL, "--api-key", "k")
    assert (code, out) == (2, "")
    one_error(err, "is a openai_v1 endpoint, which has no /info", "--api-type models")
    code, _, err = run(capsys, "info", "--emulator", "--api-type", "dedicated")
    assert code == 2
    one_error(err, "is a dedicated endpoint, which has no /info", "--endpoint-url")


# -- batch --task embeddings ---------------------------------------------------------------------


def test_batch_embeddings_with_the_emulator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows: list[Any] = [
        {"id": "one", "input": "a text"},
        {"id": "many", "input": ["x", "y", "z"], "params": {"dimensions": 2}},
        {"id": "no-input", "prompt": "a prompt"},
        {"id": "bad", "input": 3},
    ]
    src, out = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    argv = ("batch", str(src), "-o", str(out), "--task", "embeddings", "--emulator")
    code, stdout, err = run(capsys, *argv, "--dimensions", "5", "--json", "--no-progress")
    assert code == 1  # two bad lines
    assert err == [
        f"azml: {src}:3: no 'input' (the text or list of texts to embed; 'prompt' and "
        "'messages' lines need the default --task generate)",
        f"azml: {src}:4: an item's 'input' must be a string or a non-empty list of strings to "
        "embed",
    ]
    records = {r["id"]: r for r in read_records(out)}
    assert set(records) == {"one", "many"}
    one, many = records["one"], records["many"]
    assert set(one) == {"id", "ok", "vector", "usage", "attempts", "latency_ms"}
    assert len(one["vector"]) == 5  # --dimensions
    assert [len(v) for v in many["vectors"]] == [2, 2, 2]  # the line's own params win
    summary = json.loads(stdout)
    assert (summary["ok"], summary["bad_input"]) == (2, 2)
    assert summary["tokens_in"] == one["usage"]["prompt_tokens"] + many["usage"]["prompt_tokens"]
    assert summary["tokens_in"] > 0


def test_batch_default_task_reports_input_lines_and_ignores_an_input_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{"id": "e", "input": "embed me?"}, {"id": "p", "prompt": "hello", "input": "metadata"}]
    src, out = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    code, _, err = run(capsys, "batch", str(src), "-o", str(out), "--emulator", "--no-progress")
    assert code == 1
    assert err[0] == (
        f"azml: {src}:1: no 'prompt' or 'messages' (an 'input' line is embedded with "
        "--task embeddings)"
    )
    [record] = read_records(out)
    assert record["id"] == "p" and record["text"] and "vector" not in record


def test_batch_embedding_flags_and_kinds_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "input": "x"}])
    out = str(tmp_path / "out.jsonl")
    code, _, err = run(capsys, "batch", str(src), "-o", out, "--emulator", "--dimensions", "8")
    assert code == 2
    one_error(err, "--dimensions only applies with --task embeddings")
    argv = ("batch", str(src), "-o", out, "--task", "embeddings", "--no-progress")
    code, _, err = run(capsys, *argv, "--emulator", "--api-type", "dedicated")
    assert code == 2
    one_error(err, "no embeddings route", "azml batch --task embeddings needs a serverless")


def test_batch_embeddings_resume_sends_each_id_once(
    tmp_path: Path, emu: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 24
    rows = [{"id": f"d{i:02d}", "input": f"document {i}"} for i in range(n)]
    src, out = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    argv = ("batch", str(src), "-o", str(out), "--task", "embeddings", "--json", "--no-progress")
    conn = ("--endpoint-url", emu.openai_v1_url, "--api-key", emu.api_key, "--model", "emb")
    route = "POST /openai/v1/embeddings"
    before = emu.stats.by_route[route]
    code, stdout, err = run(capsys, *argv, *conn)
    assert code == 0, err
    assert emu.stats.by_route[route] - before == n
    first = out.read_bytes().splitlines(keepends=True)
    assert len(first) == n
    # A crash: 9 whole lines and half of the 10th survive.
    out.write_bytes(b"".join(first[:9]) + first[9][:20])
    before = emu.stats.by_route[route]
    code, stdout, err = run(capsys, *argv, *conn)
    assert code == 0, err
    summary = json.loads(stdout)
    assert (summary["skipped"], summary["sent"], summary["ok"]) == (9, n - 9, n - 9)
    assert emu.stats.by_route[route] - before == n - 9  # no id sent twice
    records = read_records(out)
    assert sorted(r["id"] for r in records) == [r["id"] for r in rows]  # each id exactly once
    assert all(r["ok"] and len(r["vector"]) > 0 for r in records)
