"""The JSONL job runner as a library: resume, crash recovery, bad input, flat memory, the lock,
the writer off the loop, and the summary's data."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import threading
import tracemalloc
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest

from azml_client import (
    Completion,
    ConfigurationError,
    EndpointClient,
    RetryPolicy,
    ServerError,
    Usage,
)
from azml_client._bulk import Item
from azml_client._bulk._jobs import (
    BatchJob,
    InputProblem,
    JobError,
    JobItem,
    OutputLock,
    ResultWriter,
    count_lines,
    encode_line,
    prepare_output,
    read_input,
    run_job,
)
from azml_client.emulator import EmulatorConfig, Faults, arun_emulator

from .conftest import SERVERLESS_URL


def write_lines(path: Path, lines: Iterable[Any]) -> Path:
    """Each item: a dict (dumped as JSON) or a raw string line."""
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    path.write_text(text, encoding="utf-8")
    return path


def read_out(path: Path) -> list[dict[str, Any]]:
    raw = path.read_bytes()
    assert raw == b"" or raw.endswith(b"\n"), "torn last line"
    return [json.loads(line) for line in raw.splitlines()]


def ids(records: list[dict[str, Any]]) -> list[Any]:
    return [r["id"] for r in records]


#: An answer with a lone surrogate: valid JSON (as an escape), not encodable as UTF-8.
SURROGATE_TEXT = "half \ud800 of a pair"


def echo_client(
    fail: set[str] | None = None, seen: list[Any] | None = None, formatter: str | None = None
) -> EndpointClient:
    """A real client over an in-process transport: answers ``re:<prompt>``; prompts in ``fail``
    get a 400 (not retried)."""
    fail = fail or set()

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        prompt = body.get("prompt") or body["messages"][-1]["content"]
        if seen is not None:
            seen.append(body)
        if prompt in fail:
            return httpx.Response(400, json={"message": f"refused {prompt}"})
        answer = SURROGATE_TEXT if prompt == "surrogate" else f"re:{prompt}"
        if "messages" in body:
            choice: dict[str, Any] = {"message": {"role": "assistant", "content": answer}}
        else:
            choice = {"text": answer}
        choice.update(index=0, finish_reason="stop")
        usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
        content = json.dumps({"choices": [choice], "usage": usage}).encode()  # \ud800 escaped
        return httpx.Response(200, content=content, headers={"content-type": "application/json"})

    return EndpointClient(
        endpoint_url=SERVERLESS_URL,
        api_key="k",
        formatter=formatter,
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(backoff_base=0.001),
    )


async def test_mixed_input_ids_default_to_line_numbers(tmp_path: Path) -> None:
    src = write_lines(
        tmp_path / "in.jsonl",
        [
            {"id": "a", "prompt": "one"},
            {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "two"}]},
            "",  # blank lines are ignored
            {"id": 7, "prompt": "three", "params": {"max_tokens": 5, "temperature": 0.1}},
        ],
    )
    out = tmp_path / "out.jsonl"
    seen: list[Any] = []
    async with echo_client(seen=seen) as client:
        summary = await BatchJob(src, out).run(client)
    assert summary.done == count_lines(src) == 3
    records = {r["id"]: r for r in read_out(out)}
    assert set(records) == {"a", 2, 7}
    assert records["a"]["text"] == "re:one"
    assert records[2]["text"] == "re:two"
    ok = records[7]
    assert ok["ok"] is True
    assert ok["finish_reason"] == "stop"
    assert ok["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    assert ok["attempts"] == 1
    assert isinstance(ok["latency_ms"], int)
    assert set(ok) == {"id", "ok", "text", "finish_reason", "usage", "attempts", "latency_ms"}
    three = next(b for b in seen if b.get("prompt") == "three")
    assert three["max_tokens"] == 5 and three["temperature"] == 0.1
    assert (summary.sent, summary.ok, summary.failed, summary.skipped) == (3, 3, 0, 0)
    assert (summary.tokens_in, summary.tokens_out) == (3, 6)
    assert summary.success


async def test_bad_lines_are_reported_with_line_numbers_and_never_stop_the_rest(
    tmp_path: Path,
) -> None:
    src = write_lines(
        tmp_path / "in.jsonl",
        [
            {"id": "a", "prompt": "ok-1"},
            "{not json",
            {"id": "b"},
            {"id": "a", "prompt": "dup"},
            {"id": ["x"], "prompt": "bad id"},
            {"id": "c", "prompt": "p", "params": [1]},
            {"id": "d", "messages": []},
            {"id": "e", "messages": [{"content": "no role"}]},
            {"id": "f", "prompt": 3},
            "[1, 2]",
            {"id": "g", "prompt": "ok-2"},
        ],
    )
    out = tmp_path / "out.jsonl"
    problems: list[InputProblem] = []
    async with echo_client() as client:
        summary = await run_job(client, src, out, on_problem=problems.append)
    assert [p.line for p in problems] == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    text = [str(p) for p in problems]
    assert "invalid JSON" in text[0]
    assert text[0].startswith("line 2: ")
    assert "no 'prompt' or 'messages'" in text[1]
    assert "duplicate id 'a' (first on line 1)" in text[2]
    assert "message 0 must be a mapping with a 'role'" in text[6]
    assert "'prompt' must be a string" in text[7]
    assert "'id' must be a string or an integer" in text[3]
    assert "'params' must be an object" in text[4]
    assert "expected a JSON object" in text[8]
    assert sorted(ids(read_out(out))) == ["a", "g"]  # bad lines are not written
    assert (summary.ok, summary.failed, summary.bad_input) == (2, 0, 9)
    assert not summary.success


async def test_resume_skips_done_ids_and_retries_failed_ones_once(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "in.jsonl", [{"id": i, "prompt": f"p{i}"} for i in range(20)])
    out = tmp_path / "out.jsonl"
    async with echo_client(fail={"p3", "p11"}) as client:
        first = await run_job(client, src, out)
    assert (first.ok, first.failed) == (18, 2)
    assert [(t.type, t.count, t.example_id) for t in first.top_failures()] == [
        ("BadRequestError", 2, 3)
    ]
    failed = [r for r in read_out(out) if not r["ok"]]
    assert sorted(ids(failed)) == [3, 11]
    error = failed[0]["error"]
    assert error["type"] == "BadRequestError" and error["status"] == 400
    assert "refused" in error["message"]
    assert set(error) == {"type", "status", "message", "request_id"}
    assert failed[0]["attempts"] == 1

    seen: list[Any] = []
    async with echo_client(seen=seen) as client:
        second = await run_job(client, src, out)
    assert sorted(b["prompt"] for b in seen) == ["p11", "p3"]  # only the failed ones again
    assert (second.sent, second.ok, second.skipped, second.dropped_failed) == (2, 2, 18, 2)
    records = read_out(out)
    assert sorted(ids(records)) == list(range(20))  # each id exactly once
    assert all(r["ok"] for r in records)

    async with echo_client(seen=seen) as client:
        third = await run_job(client, src, out)
    assert (third.sent, third.skipped) == (0, 20)
    assert len(read_out(out)) == 20


async def test_torn_last_line_is_dropped_and_redone(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "in.jsonl", [{"id": i, "prompt": f"p{i}"} for i in range(5)])
    out = tmp_path / "out.jsonl"
    done = [{"id": i, "ok": True, "text": "old", "attempts": 1} for i in range(3)]
    write_lines(out, done)
    with out.open("ab") as fh:
        fh.write(b'{"id": 3, "ok": true, "te')  # killed in the middle of a write
    async with echo_client() as client:
        summary = await run_job(client, src, out)
    records = read_out(out)
    assert sorted(ids(records)) == [0, 1, 2, 3, 4]
    assert [r["text"] for r in records[:3]] == ["old"] * 3  # kept as they were
    assert (summary.skipped, summary.sent) == (3, 2)


def test_prepare_output_rewrites_without_failed_garbage_and_duplicates(tmp_path: Path) -> None:
    out = write_lines(
        tmp_path / "out.jsonl",
        [
            {"id": "a", "ok": True, "text": "1"},
            {"id": "b", "ok": False, "error": {}},
            "garbage",
            {"id": "a", "ok": True, "text": "again"},
            {"id": "c", "ok": True, "text": "3"},
        ],
    )
    with out.open("ab") as fh:
        fh.write(b'{"id": "d"')
    state = prepare_output(out)
    assert state.done == {"a", "c"}
    assert (state.failed_dropped, state.invalid_dropped, state.torn_dropped) == (1, 2, True)
    assert read_out(out) == [
        {"id": "a", "ok": True, "text": "1"},
        {"id": "c", "ok": True, "text": "3"},
    ]
    assert not list(tmp_path.glob("*.tmp"))
    assert prepare_output(tmp_path / "missing.jsonl").done == set()


def test_result_writer_fsyncs_every_n_lines_or_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    syncs: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        syncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    now = [0.0]
    path = tmp_path / "out.jsonl"
    with ResultWriter(path, fsync_every=3, fsync_interval=10.0, clock=lambda: now[0]) as w:
        for i in range(7):
            w.write({"id": i, "text": "line\nbreak"})
        assert len(syncs) == 2  # after lines 3 and 6
        now[0] = 11.0
        w.write({"id": 7})
        assert len(syncs) == 3  # the interval elapsed
    assert len(syncs) == 3  # nothing left unsynced at close
    assert [r["id"] for r in read_out(path)] == list(range(8))
    with pytest.raises(ValueError, match="closed"):
        w.write({"id": 9})


def test_read_input_and_count_lines(tmp_path: Path) -> None:
    src = write_lines(
        tmp_path / "in.jsonl",
        [{"prompt": "x"}, "", "  ", {"id": "q", "messages": [{"role": "user", "content": "hi"}]}],
    )
    with src.open("ab") as fh:
        fh.write(b'{"prompt": "no newline"}')
    entries = list(read_input(src))
    assert entries == [
        JobItem(1, 1, Item("completion", "x")),
        JobItem("q", 4, Item("chat", [{"role": "user", "content": "hi"}])),
        JobItem(5, 5, Item("completion", "no newline")),
    ]
    assert count_lines(src) == 3


async def test_path_problems_are_job_errors_with_a_reason(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "in.jsonl", [{"prompt": "x"}])
    cases = [
        (tmp_path / "nope.jsonl", tmp_path / "out.jsonl", "input_missing", "not found"),
        (tmp_path, tmp_path / "out.jsonl", "input_unreadable", "not a file"),
        (src, src, "output_is_input", "must not be the input"),
        (src, tmp_path / "no-dir" / "out.jsonl", "output_dir_missing", "does not exist"),
        (src, tmp_path, "output_is_directory", "is a directory"),
    ]
    async with echo_client() as client:
        for source, output, reason, text in cases:
            with pytest.raises(JobError, match=text) as caught:
                await run_job(client, source, output)
            assert caught.value.reason == reason


async def test_surrogates_in_answers_and_ids_are_written_and_resumed(tmp_path: Path) -> None:
    odd_id = "id-\udfff"
    rows = [
        {"id": odd_id, "prompt": "p"},
        {"id": "s", "prompt": "surrogate"},
        {"id": 3, "prompt": "q"},
    ]
    src = write_lines(tmp_path / "in.jsonl", rows)  # json.dumps escapes the surrogate
    out = tmp_path / "out.jsonl"
    async with echo_client() as client:
        first = await run_job(client, src, out)
    assert (first.ok, first.failed) == (3, 0)
    raw = out.read_bytes()
    raw.decode("utf-8")  # valid UTF-8 throughout
    records = {r["id"]: r for r in read_out(out)}
    assert records["s"]["text"] == SURROGATE_TEXT
    assert records[odd_id]["text"] == "re:p"
    seen: list[Any] = []
    async with echo_client(seen=seen) as client:
        second = await run_job(client, src, out)
    assert (second.skipped, second.sent, seen) == (3, 0, [])  # all three recognised as done
    assert out.read_bytes() == raw


def test_encode_line_escapes_only_lone_surrogates() -> None:
    record = {"id": "\ud83d", "text": "caf\u00e9 \U0001f600 \udc80", "n": 1}
    line = encode_line(record)
    assert line.endswith(b"\n") and b"\\ud83d" in line and b"\\udc80" in line
    assert "café 😀".encode() in line  # the rest stays readable UTF-8
    assert json.loads(line) == record
    assert encode_line({"t": "\\\ud800"}) == b'{"t":"\\\\\\ud800"}\n'
    assert json.loads(encode_line({"t": "\\\ud800"})) == {"t": "\\\ud800"}


def test_output_lock_refuses_a_second_holder_and_follows_a_rewrite(tmp_path: Path) -> None:
    out = write_lines(tmp_path / "out.jsonl", [{"id": "a", "ok": True}, {"id": "b", "ok": False}])
    held = OutputLock(out).acquire()
    try:
        with pytest.raises(JobError) as caught:
            OutputLock(out).acquire()
        assert caught.value.reason == "locked"
        assert caught.value.pid in (os.getpid(), None)  # None where /proc/locks is missing
        inode = out.stat().st_ino
        assert prepare_output(out, held).failed_dropped == 1
        assert out.stat().st_ino != inode  # rewritten into a new file...
        with pytest.raises(JobError, match="another job"):
            OutputLock(out).acquire()  # ...which is locked as well
    finally:
        held.release()
    OutputLock(out).acquire().release()  # free again


async def test_a_second_job_on_a_locked_output_refuses_at_once(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "in.jsonl", [{"id": 1, "prompt": "x"}])
    out = tmp_path / "out.jsonl"
    seen: list[Any] = []
    with BatchJob(src, out):
        async with echo_client(seen=seen) as client:
            with pytest.raises(JobError, match="another job is writing"):
                await run_job(client, src, out)
    assert seen == []


async def test_a_full_disk_stops_the_job_with_a_job_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write_lines(tmp_path / "in.jsonl", [{"id": i, "prompt": f"p{i}"} for i in range(5)])
    out = tmp_path / "out.jsonl"
    threads: set[str] = set()

    def full(self: ResultWriter, data: bytes, count: int) -> None:
        threads.add(threading.current_thread().name)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ResultWriter, "write_lines", full)
    async with echo_client() as client:
        with pytest.raises(JobError) as caught:
            await run_job(client, src, out)
    assert caught.value.reason == "disk_full"
    assert threading.current_thread().name not in threads  # written off the event loop
    OutputLock(out).acquire().release()  # the lock was released


async def test_rejected_locally_is_not_sent(tmp_path: Path) -> None:
    chat = {"role": "user", "content": "y"}
    rows = [
        {"id": "p", "prompt": "x"},
        {"id": "c", "messages": [chat], "params": {"response_format": "json"}},
    ]
    src = write_lines(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    seen: list[Any] = []
    # a response_format that is not an object is refused before anything is sent
    async with echo_client(seen=seen) as client:
        summary = await run_job(client, src, out)
    assert (summary.sent, summary.ok, summary.rejected, summary.failed) == (1, 1, 1, 0)
    assert [b["prompt"] for b in seen] == ["x"]
    assert [t.type for t in summary.top_rejections()] == ["ConfigurationError"]
    assert not summary.success


class _FakeStats:
    """Run counters that count how often they are read."""

    def __init__(self, history: list[tuple[float, int]] | None = None) -> None:
        self.reads = 0
        self.history = history or [(0.0, 1)]

    @property
    def retried(self) -> int:
        self.reads += 1
        return 5

    @property
    def rate_limited(self) -> int:
        return 2

    @property
    def concurrency(self) -> int:
        return self.history[-1][1]

    @property
    def concurrency_history(self) -> list[tuple[float, int]]:
        return self.history


class _FakeRun:
    """Pulls one item at a time, like ``client.map``, and answers at once."""

    def __init__(self, items: AsyncIterable[Item], client: _FakeClient) -> None:
        self.items = items
        self.client = client
        self.stats = client.stats

    async def _iterate(self) -> AsyncIterator[tuple[int, Any]]:
        index = -1
        async for item in self.items:
            index += 1
            self.client.pulled.append(index)
            if self.client.received is not None:  # kept only when asked: the memory test
                self.client.received.append(item)
            await asyncio.sleep(0)
            usage = Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2)
            if index % 1000 == 999:
                yield index, ServerError("boom", status_code=503, attempts=3)
            else:
                yield index, Completion(text=item.payload[:8], usage=usage)

    def __aiter__(self) -> AsyncIterator[tuple[int, Any]]:
        return self._iterate()

    async def aclose(self) -> None:
        return None


class _FakeClient:
    def __init__(self, stats: _FakeStats | None = None, keep: bool = False) -> None:
        self.stats = stats or _FakeStats()
        self.pulled: list[int] = []
        self.received: list[Item] | None = [] if keep else None

    def map(self, items: AsyncIterable[Item], **options: Any) -> _FakeRun:
        return _FakeRun(items, self)


async def test_large_input_is_streamed_in_flat_memory(tmp_path: Path) -> None:
    n, filler = 5_000, "x" * 2000
    src = tmp_path / "big.jsonl"
    with src.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"id-{i}", "prompt": f"{i} {filler}"}) + "\n")
    size = src.stat().st_size  # ~10 MB
    client = _FakeClient()
    tracemalloc.start()
    try:
        summary = await BatchJob(src, tmp_path / "out.jsonl", fsync_every=5000).run(client)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (summary.ok, summary.failed) == (n - 5, 5)
    assert peak < size / 10, f"peak {peak} bytes for a {size}-byte input"
    assert count_lines(tmp_path / "out.jsonl") == n


async def test_checked_items_reach_map_and_run_counters_are_read_when_shown(
    tmp_path: Path,
) -> None:
    rows = [{"id": i, "prompt": f"p{i}", "params": {"seed": i}} for i in range(300)]
    src = write_lines(tmp_path / "in.jsonl", rows)
    stats = _FakeStats([(0.0, 4), (0.5, 9), (1.0, 6)])
    client = _FakeClient(stats, keep=True)
    job = BatchJob(src, tmp_path / "out.jsonl")
    summary = await job.run(client)
    assert summary.ok == 300
    assert client.received is not None
    assert client.received[7] == Item("completion", "p7", {"seed": 7})  # built by the parser
    assert all(isinstance(item, Item) for item in client.received)
    assert stats.reads == 1  # once at the end, not once per result
    assert (summary.retried, summary.rate_limited) == (5, 2)
    assert (summary.concurrency, summary.peak_concurrency) == (6, 9)
    assert job.stats() is summary and stats.reads == 2  # a progress tick reads them again


async def test_against_the_emulator_failures_then_resume(tmp_path: Path) -> None:
    items: list[dict[str, Any]] = [{"id": f"r{i}", "prompt": f"hello {i}"} for i in range(12)]
    items += [
        {"id": f"c{i}", "messages": [{"role": "user", "content": f"hi {i}"}]} for i in range(8)
    ]
    src = write_lines(tmp_path / "in.jsonl", items)
    out = tmp_path / "out.jsonl"
    broken = EmulatorConfig(family="vllm", faults=Faults(error_500=0.5), seed=3)
    async with arun_emulator(broken) as emu:
        client = EndpointClient(emu.score_url, emu.api_key, formatter="vllm", max_retries=0)
        async with client:
            first = await run_job(client, src, out, concurrency=4)
    assert first.failed > 0 and first.ok > 0
    failed = [r for r in read_out(out) if not r["ok"]]
    assert {r["error"]["type"] for r in failed} == {"ServerError"}
    assert all(r["error"]["status"] == 500 for r in failed)
    async with arun_emulator(EmulatorConfig(family="vllm")) as emu:
        client = EndpointClient(emu.score_url, emu.api_key, formatter="vllm")
        async with client:
            second = await run_job(client, src, out)
    assert second.sent == first.failed and second.skipped == first.ok
    records = read_out(out)
    assert sorted(ids(records)) == sorted(i["id"] for i in items)
    assert all(r["ok"] and r["text"] for r in records)
    assert second.success


# -- task="embeddings" -------------------------------------------------------------------------

MODELS_URL = "https://res.services.ai.azure.com/models"


def embed_client(
    sent: list[dict[str, Any]] | None = None, fail: set[str] | None = None
) -> EndpointClient:
    """A real client of a model inference endpoint over an in-process transport: each text's
    vector is ``[len(text), dimensions or 0]``; a text in ``fail`` gets a 400."""
    fail = fail or set()

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/models/embeddings", request.url
        body = json.loads(request.content)
        if sent is not None:
            sent.append(body)
        if fail & set(body["input"]):
            return httpx.Response(400, json={"error": {"message": "refused"}})
        data = [
            {"index": i, "embedding": [float(len(text)), float(body.get("dimensions", 0))]}
            for i, text in enumerate(body["input"])
        ]
        usage = {"prompt_tokens": len(body["input"]), "total_tokens": len(body["input"])}
        return httpx.Response(200, json={"data": data, "usage": usage, "model": "emb"})

    return EndpointClient(
        MODELS_URL,
        "k",
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(backoff_base=0.001),
    )


def texts_sent(sent: list[dict[str, Any]]) -> list[str]:
    return sorted(text for body in sent for text in body["input"])


async def test_embeddings_task_writes_vectors_and_counts_tokens(tmp_path: Path) -> None:
    src = write_lines(
        tmp_path / "in.jsonl",
        [
            {"id": "one", "input": "abc"},
            {"id": "list", "input": ["a", "bb"], "params": {"dimensions": 2}},
            {"input": ["single in a list"]},
            {"id": "meta", "input": "x", "prompt": "ignored: the task reads 'input'"},
        ],
    )
    out = tmp_path / "out.jsonl"
    sent: list[dict[str, Any]] = []
    async with embed_client(sent) as client:
        job = BatchJob(src, out, task="embeddings", params={"dimensions": 8, "input_type": "query"})
        summary = await job.run(client)
    records = {r["id"]: r for r in read_out(out)}
    one = records["one"]
    assert set(one) == {"id", "ok", "vector", "usage", "attempts", "latency_ms"}
    assert one["vector"] == [3.0, 8.0]  # the job's dimensions
    assert records["list"]["vectors"] == [[1.0, 2.0], [2.0, 2.0]]  # the line's own params win
    assert records[3]["vectors"] == [[16.0, 8.0]]  # a list of one is still a list
    assert records["meta"]["vector"] == [1.0, 8.0]
    assert one["usage"] == {"prompt_tokens": 1, "total_tokens": 1}
    assert all(body["input_type"] == "query" for body in sent)
    assert (summary.ok, summary.tokens_in, summary.tokens_out) == (4, 5, 0)
    assert summary.success


async def test_embeddings_task_bad_lines_and_failures(tmp_path: Path) -> None:
    src = write_lines(
        tmp_path / "in.jsonl",
        [
            {"id": "ok", "input": "fine"},
            {"id": "p", "prompt": "not for this task"},
            {"id": "e", "input": []},
            {"id": "n", "input": ["a", 1]},
            {"id": "x", "input": "t", "params": {"max_tokens": 3}},
            {"id": "f", "input": "refuse me"},
        ],
    )
    out = tmp_path / "out.jsonl"
    problems: list[InputProblem] = []
    async with embed_client(fail={"refuse me"}) as client:
        summary = await run_job(client, src, out, task="embeddings", on_problem=problems.append)
    assert [p.line for p in problems] == [2, 3, 4, 5]
    assert "no 'input'" in problems[0].message and "--task generate" in problems[0].message
    assert "non-empty list of strings" in problems[1].message
    assert "non-empty list of strings" in problems[2].message
    assert "not max_tokens" in problems[3].message
    records = {r["id"]: r for r in read_out(out)}
    assert set(records) == {"ok", "f"}
    assert records["f"]["ok"] is False and records["f"]["error"]["status"] == 400
    assert (summary.ok, summary.failed, summary.bad_input) == (1, 1, 4)


async def test_generate_task_reports_input_lines_and_ignores_an_input_key(
    tmp_path: Path,
) -> None:
    src = write_lines(
        tmp_path / "in.jsonl",
        [{"id": "e", "input": "embed me?"}, {"id": "p", "prompt": "hi", "input": "metadata"}],
    )
    out = tmp_path / "out.jsonl"
    problems: list[InputProblem] = []
    async with echo_client() as client:
        summary = await run_job(client, src, out, on_problem=problems.append)
    assert [str(p) for p in problems] == [
        "line 1: no 'prompt' or 'messages' (an 'input' line is embedded with --task embeddings)"
    ]
    [record] = read_out(out)
    assert (record["id"], record["text"]) == ("p", "re:hi")
    assert (summary.ok, summary.bad_input) == (1, 1)


async def test_embeddings_resume_after_a_crash_sends_each_id_once(tmp_path: Path) -> None:
    n = 30
    rows = [{"id": i, "input": f"text {i}"} for i in range(n)]
    src, out = write_lines(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    first: list[dict[str, Any]] = []
    async with embed_client(first, fail={"text 4"}) as client:
        one = await run_job(client, src, out, task="embeddings", concurrency=4)
    assert texts_sent(first) == sorted(f"text {i}" for i in range(n))
    assert (one.ok, one.failed) == (n - 1, 1)
    # A crash after 12 whole lines and part of the 13th; the failed line may be among them.
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:12]) + lines[12][:15])
    kept = {json.loads(line)["id"] for line in lines[:12] if json.loads(line)["ok"]}
    second: list[dict[str, Any]] = []
    async with embed_client(second) as client:
        two = await run_job(client, src, out, task="embeddings", concurrency=4)
    assert texts_sent(second) == sorted(f"text {i}" for i in range(n) if i not in kept)
    assert (two.skipped, two.sent, two.ok) == (len(kept), n - len(kept), n - len(kept))
    records = read_out(out)
    assert sorted(ids(records)) == list(range(n))  # each id exactly once
    assert all(r["ok"] and r["vector"] == [float(len(f"text {r['id']}")), 0.0] for r in records)


def test_read_input_of_the_embeddings_task(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "in.jsonl", [{"input": "x"}, {"id": "l", "input": ["y"]}])
    assert list(read_input(src, "embeddings")) == [
        JobItem(1, 1, Item("embed", ("x",)), single=True),
        JobItem("l", 2, Item("embed", ("y",))),
    ]


def test_a_job_refuses_an_unknown_task_or_embeddings_options(tmp_path: Path) -> None:
    chat: Any = "chat"  # not a task
    with pytest.raises(ConfigurationError, match="unknown task 'chat'"):
        BatchJob(tmp_path / "in", tmp_path / "out", task=chat)
    with pytest.raises(ConfigurationError, match="not max_tokens"):
        BatchJob(tmp_path / "in", tmp_path / "out", task="embeddings", params={"max_tokens": 1})
