"""On a real, local Ray cluster: ``infer()``, the callable class in ``map_batches`` and
``azml batch --ray`` (one cluster for the module: 2 CPUs, loopback only, a quarter CPU an actor).

Every row comes back once, failed rows come back as rows, numpy batches work, and a rerun after
a crash sends only the rows whose results were not written.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from azml_client.emulator import EmulatorConfig, EmulatorServer, Faults
from azml_client.emulator.pytest_plugin import EmulatorFactory

from .conftest import KEY

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

pytestmark = [
    pytest.mark.ray,
    pytest.mark.integration,
    # Ray's own deprecation notes and resource warnings are not ours to fix.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A local cluster of 2 CPUs on 127.0.0.1; its workers read the test key from their
    environment."""
    from ray._private import ray_constants

    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")
        env.setenv("RAY_DEDUP_LOGS", "0")
        # Ray's single-node mode: every process binds and talks on 127.0.0.1 (else Ray uses
        # the machine's address). The driver reads the constant, the processes it starts the
        # variable.
        env.setenv(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR, "0")
        env.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            runtime_env={"env_vars": {"AZUREML_ENDPOINT_API_KEY": KEY}},
            logging_level=logging.WARNING,
        )
        from ray.data import DataContext

        context = DataContext.get_current()
        context.enable_progress_bars = False
        try:
            yield
        finally:
            ray.shutdown()


@pytest.fixture
def emulator(azml_emulator_factory: EmulatorFactory) -> EmulatorServer:
    return azml_emulator_factory(
        EmulatorConfig(api_key=KEY, faults=Faults(error_500=0.2, latency=0.005))
    )


def rows(n: int) -> list[dict[str, Any]]:
    """Prompts, chats and (every 25th) a row with neither; a column to carry along."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        row: dict[str, Any] = {"id": i, "source": f"doc-{i}", "prompt": None, "messages": None}
        if i % 25 == 24:
            pass
        elif i % 2:
            row["prompt"] = f"Summarise document {i}"
        else:
            row["messages"] = [{"role": "user", "content": f"Hello {i}"}]
        out.append(row)
    return out


def test_infer_returns_every_row_once_with_errors_as_columns(
    cluster: None, emulator: EmulatorServer
) -> None:
    from azml_client.ray import OUTPUT_COLUMNS, infer

    ds = ray.data.from_items(rows(150), override_num_blocks=6)
    out = infer(
        ds,
        {"endpoint_url": emulator.serverless_url},
        messages_column="messages",
        actors=2,
        batch_size=16,
        max_retries=0,  # so that the emulator's 500s stay failed rows
        max_tokens=4,
    )
    got = out.take_all()
    assert sorted(r["id"] for r in got) == list(range(150))
    assert set(out.schema().names) >= {"id", "source", "prompt", "messages", *OUTPUT_COLUMNS}
    by_id = {r["id"]: r for r in got}
    assert all(by_id[i]["source"] == f"doc-{i}" for i in range(150))
    refused = [r for r in got if r["error_type"] == "ConfigurationError"]
    assert sorted(r["id"] for r in refused) == [24, 49, 74, 99, 124, 149]
    assert all(r["attempts"] == 0 for r in refused)
    failed = [r for r in got if r["error_type"] == "ServerError"]
    assert len(failed) == emulator.stats.by_status[500] > 0
    assert all(r["status"] == 500 and r["text"] is None for r in failed)
    ok = [r for r in got if r["error_type"] is None]
    assert len(ok) == emulator.stats.by_status[200] == 150 - len(refused) - len(failed)
    assert all(r["text"] and r["completion_tokens"] == 4 for r in ok)
    # One coordinator for the endpoint, which both actors reported to.
    [name] = [n for n in ray.util.list_named_actors() if n.startswith("azml-pace-")]
    snapshot = ray.get(ray.get_actor(name).snapshot.remote())
    assert snapshot["actors"] >= 1 and snapshot["succeeded"] == len(ok)


def test_the_callable_class_takes_numpy_batches(cluster: None, emulator: EmulatorServer) -> None:
    from ray.data import ActorPoolStrategy

    from azml_client.ray import EndpointUDF

    items = [
        {
            "id": i,
            "messages": [{"role": "user", "content": f"Hi {i}"}]
            + ([{"role": "user", "content": "again", "name": "ann"}] if i % 3 == 0 else []),
            "params": {"max_tokens": 1 + i % 4} if i % 2 else {"temperature": 0.5},
        }
        for i in range(40)
    ]
    out = ray.data.from_items(items).map_batches(
        EndpointUDF,
        fn_constructor_kwargs={
            "config": {"endpoint_url": emulator.serverless_url, "max_retries": 3},
            "prompt_column": None,
            "messages_column": "messages",
            "params_column": "params",
            "max_tokens": 7,
        },
        batch_size=10,
        batch_format="numpy",
        compute=ActorPoolStrategy(size=1),
        num_cpus=0.25,
    )
    got = {r["id"]: r for r in out.take_all()}
    assert sorted(got) == list(range(40))
    for i, row in got.items():
        assert row["error_type"] is None, row
        assert row["completion_tokens"] == (1 + i % 4 if i % 2 else 7)


def test_azml_batch_ray_resumes_from_the_ids_in_its_output(
    cluster: None, azml_emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    from azml_client.cli import main

    emu = azml_emulator_factory(EmulatorConfig(api_key=KEY))
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    with source.open("w") as fh:
        for i in range(120):
            fh.write(json.dumps({"id": f"q{i}", "prompt": f"Question {i}"}) + "\n")
    # The first run crashed: 50 results written, 5 failed ones, a torn last line.
    with output.open("w") as fh:
        for i in range(50):
            fh.write(json.dumps({"id": f"q{i}", "ok": True, "text": "earlier"}) + "\n")
        for i in range(50, 55):
            fh.write(json.dumps({"id": f"q{i}", "ok": False, "error": {}}) + "\n")
        fh.write('{"id": "q55", "ok": tr')
    code = main(
        [
            "batch",
            os.fspath(source),
            "-o",
            os.fspath(output),
            "--ray",
            "--actors",
            "2",
            "--max-tpm",  # shared by the actors: generous, to show the flag reaches them
            "6000000",
            "--endpoint-url",
            emu.serverless_url,
            "--no-progress",
            "--json",
        ]
    )
    assert code == 0
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(f"q{i}" for i in range(120))
    assert all(line["ok"] for line in lines)
    assert emu.stats.total_requests == 70  # the 50 written were not sent again
    assert [line["text"] for line in lines[:50]] == ["earlier"] * 50


def test_rays_checkpointing_resumes_without_sending_written_rows_again(
    cluster: None, azml_emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """The README's resume on Ray: with a checkpoint config (id column), a job that crashed
    part way is run again as it was, and only the rows whose results were not written go to
    the endpoint."""
    from ray.data import DataContext
    from ray.data.checkpoint import CheckpointConfig

    from azml_client.ray import infer

    emu = azml_emulator_factory(EmulatorConfig(api_key=KEY))
    source, results = tmp_path / "in.jsonl", tmp_path / "out"
    source.write_text("".join(json.dumps({"id": i, "prompt": f"p{i}"}) + "\n" for i in range(60)))
    config = {"endpoint_url": emu.serverless_url}
    # Ray's checkpoint filter is an actor of 1 CPU: on 2 CPUs, reading and writing take a
    # quarter each, or the job waits for a CPU forever.
    small = {"ray_remote_args": {"num_cpus": 0.25}}

    def read() -> Any:
        return ray.data.read_json(os.fspath(source), **small)

    def crash_at_45(batch: dict[str, Any]) -> dict[str, Any]:
        if 45 in batch["id"]:
            raise RuntimeError("the job crashed")
        return batch

    context = DataContext.get_current()
    saved = context.checkpoint_config
    context.checkpoint_config = CheckpointConfig(
        id_column="id", checkpoint_path=os.fspath(tmp_path / "checkpoint")
    )
    try:
        first = infer(read(), config, actors=1, batch_size=5)
        with pytest.raises(Exception, match="the job crashed"):
            crashing = first.map_batches(crash_at_45, batch_size=5, num_cpus=0.25)
            crashing.write_json(os.fspath(results), **small)
        sent_first = emu.stats.total_requests
        written_first = _ids_in(results)
        assert 0 < len(written_first) < 60 and 45 not in written_first
        again = infer(read(), config, actors=1, batch_size=5)
        again.write_json(os.fspath(results), **small)
    finally:
        context.checkpoint_config = saved
    ids = [row_id for path in sorted(results.iterdir()) for row_id in _ids_of(path)]
    assert sorted(ids) == list(range(60))  # every row once
    assert emu.stats.total_requests - sent_first == 60 - len(written_first)


def _ids_of(path: Path) -> list[int]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


def _ids_in(folder: Path) -> set[int]:
    if not folder.exists():
        return set()
    return {row_id for path in folder.iterdir() for row_id in _ids_of(path)}
