"""``EndpointUDF`` without Ray: called under asyncio, as an actor calls it, against the emulator."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from azml_client import ConfigurationError, EndpointClient
from azml_client.emulator import EmulatorConfig, EmulatorServer, Faults
from azml_client.emulator.pytest_plugin import EmulatorFactory
from azml_client.ray import OUTPUT_COLUMNS, EndpointUDF
from azml_client.ray._coordinator import PaceCoordinator

from .conftest import KEY, LocalHandle

np = pytest.importorskip("numpy")
pa = pytest.importorskip("pyarrow")

pytestmark = pytest.mark.integration


@pytest.fixture
def emulator(azml_emulator_factory: EmulatorFactory) -> EmulatorServer:
    return azml_emulator_factory(EmulatorConfig(api_key=KEY))


def settings(emu: EmulatorServer) -> dict[str, Any]:
    return {"endpoint_url": emu.serverless_url, "max_retries": 0}


async def test_a_numpy_batch_gets_the_output_columns(
    emulator: EmulatorServer, worker_key: str
) -> None:
    udf = EndpointUDF(
        settings(emulator), messages_column="messages", params_column="params", max_tokens=6
    )
    batch = {
        "id": np.arange(4),
        "prompt": np.array(["Once upon a time", None, None, "x"], dtype=object),
        "messages": np.array(
            [
                None,
                np.array([{"role": "user", "content": "hi", "name": None}], dtype=object),
                None,
                None,
            ],
            dtype=object,
        ),
        "params": np.array(
            [{"max_tokens": np.int64(3), "temperature": None}, None, None, {"max_tokens": 2}],
            dtype=object,
        ),
    }
    try:
        out = await udf(batch)
    finally:
        await udf.aclose()
    assert list(out) == ["id", "prompt", "messages", "params", *OUTPUT_COLUMNS]
    assert out["id"] is batch["id"]  # the input columns pass through as they are
    assert out["error_type"] == [None, None, "ConfigurationError", None]
    assert out["completion_tokens"] == [3, 6, None, 2]  # a row's params win over the UDF's
    assert all(isinstance(text, str) and text for text in np.array(out["text"])[[0, 1, 3]])
    assert out["attempts"] == [1, 1, 0, 1]
    assert out["latency_ms"][2] is None and all(ms >= 0 for ms in out["latency_ms"][:2])
    assert emulator.stats.total_requests == 3


async def test_failed_rows_are_rows_with_their_error_columns(
    azml_emulator_factory: EmulatorFactory, worker_key: str
) -> None:
    emu = azml_emulator_factory(EmulatorConfig(api_key=KEY, faults=Faults(error_500=1.0)))
    udf = EndpointUDF(settings(emu))
    table = pa.table({"id": ["a", "b"], "prompt": ["one", "two"]})
    try:
        out = await udf(table)
    finally:
        await udf.aclose()
    assert out.column("id").to_pylist() == ["a", "b"]
    assert out.column("error_type").to_pylist() == ["ServerError", "ServerError"]
    assert out.column("status").to_pylist() == [500, 500]
    assert out.column("text").to_pylist() == [None, None]
    # The server's message with the error's advice (the old check, "500" in m or m, held for
    # any non-empty message).
    assert all(
        "(the endpoint failed; retry later)" in m for m in out.column("error_message").to_pylist()
    )


async def test_the_batches_of_an_actor_share_one_client_and_budget(
    emulator: EmulatorServer, worker_key: str
) -> None:
    udf = EndpointUDF(settings(emulator), max_tokens=2)
    tables = [pa.table({"prompt": [f"p{i}-{j}" for j in range(5)]}) for i in range(3)]
    try:
        outs = await asyncio.gather(*(udf(t) for t in tables))
        client = udf._client
        assert client is not None and client.budget is udf._budget
        assert client.budget.sent == 15 and udf._budget.backlog == 0
    finally:
        await udf.aclose()
    assert all(o.column("error_type").null_count == 5 for o in outs)


async def test_the_config_is_a_saved_file_or_its_content(
    emulator: EmulatorServer, worker_key: str, tmp_path: Path
) -> None:
    path = tmp_path / "azureml.json"
    async with EndpointClient(emulator.serverless_url, KEY, max_retries=1, timeout=7) as client:
        client.save(path)
    for config in (path, str(path), json.loads(path.read_text())):
        udf = EndpointUDF(config)
        try:
            out = await udf(pa.table({"prompt": ["hi"]}))
            assert udf._client is not None
            assert udf._client.retry_policy.max_retries == 1
        finally:
            await udf.aclose()
        assert out.column("error_type").to_pylist() == [None]


def test_a_key_is_never_part_of_the_config() -> None:
    with pytest.raises(
        ConfigurationError, match=r"cannot hold 'api_key'.*AZUREML_ENDPOINT_API_KEY"
    ):
        EndpointUDF({"endpoint_url": "https://x.inference.ml.azure.com/score", "api_key": "k"})


async def test_a_worker_without_the_key_says_which_variable_to_set(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZUREML_ENDPOINT_API_KEY", raising=False)
    udf = EndpointUDF({**settings(emulator), "api_key_env": "MY_KEY"})
    with pytest.raises(ConfigurationError, match=r"set MY_KEY.*runtime_env"):
        await udf(pa.table({"prompt": ["hi"]}))


async def test_a_wrong_column_stops_the_dataset(emulator: EmulatorServer, worker_key: str) -> None:
    udf = EndpointUDF(settings(emulator), prompt_column="question")
    try:
        with pytest.raises(ConfigurationError, match="no column 'question'"):
            await udf(pa.table({"prompt": ["hi"]}))
    finally:
        await udf.aclose()


def test_options_that_do_not_apply_are_refused() -> None:
    config = {"endpoint_url": "https://x.inference.ml.azure.com/score"}
    with pytest.raises(ConfigurationError, match="concurrency"):
        EndpointUDF(config, concurrency=8)
    with pytest.raises(ConfigurationError, match="overwritten"):
        EndpointUDF(config, prompt_column="text")


async def test_max_tpm_is_this_actors_token_budget(
    emulator: EmulatorServer, worker_key: str
) -> None:
    udf = EndpointUDF(settings(emulator), max_tpm=60_000, max_tokens=2)
    try:
        out = await udf(pa.table({"prompt": [f"p{j}" for j in range(8)]}))
        assert out.column("error_type").to_pylist() == [None] * 8
        budget = udf._budget
        assert budget is not None and budget.tpm is not None
        assert budget.tpm.rate == pytest.approx(60_000 / 60)  # tokens a second
    finally:
        await udf.aclose()
    with pytest.raises(ConfigurationError, match="max_tpm"):
        EndpointUDF(settings(emulator), max_tpm=0)


def test_infer_splits_max_tpm_between_the_actors(emulator: EmulatorServer) -> None:
    from azml_client.ray import infer

    class Dataset:
        """What infer() hands to map_batches (no cluster needed: coordinate=False)."""

        def map_batches(self, fn: Any, **kwargs: Any) -> dict[str, Any]:
            return {"fn": fn, **kwargs}

    planned: Any = infer(Dataset(), settings(emulator), actors=4, max_tpm=40_000, coordinate=False)
    assert planned["fn"] is EndpointUDF
    assert planned["fn_constructor_kwargs"]["max_tpm"] == 10_000
    # The driver checks the settings without the key: only the workers hold it.
    remote = {"endpoint_url": "https://x.eastus.inference.ml.azure.com/score"}
    assert infer(Dataset(), remote, coordinate=False)["fn_constructor_kwargs"]["config"] == remote
    for bad in (0, -1, "fast", True):
        with pytest.raises(ConfigurationError, match="max_tpm must be a positive number"):
            infer(Dataset(), settings(emulator), max_tpm=bad, coordinate=False)  # type: ignore[arg-type]


async def test_with_a_coordinator_the_actor_paces_at_its_share(
    emulator: EmulatorServer, worker_key: str
) -> None:
    coordinator = PaceCoordinator(max_rps=40.0)
    udfs = [
        EndpointUDF(settings(emulator), coordinator=LocalHandle(coordinator), max_tokens=2)
        for _ in range(2)
    ]
    tables = [pa.table({"prompt": [f"p{j}" for j in range(8)]}) for _ in udfs]
    try:
        await asyncio.gather(*(udf(t) for udf, t in zip(udfs, tables, strict=True)))
        snapshot = coordinator.board.snapshot()
        assert snapshot["actors"] == 2
        for udf in udfs:
            assert udf._budget is not None and udf._budget.follow
            assert udf._budget.limiter.rate is not None and udf._budget.limiter.rate <= 40.0
    finally:
        for udf in udfs:
            await udf.aclose()
    assert coordinator.board.snapshot()["actors"] == 0  # each left on close
    assert emulator.stats.total_requests == 16
