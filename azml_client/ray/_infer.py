"""``infer()``: a dataset in, the same dataset with the result columns out, in one call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._client import EndpointClient
from .._exceptions import ConfigurationError
from ._columns import check_columns
from ._config import ClientConfig, check_limits, client_arguments, settings_of
from ._coordinator import pace_coordinator
from ._udf import EndpointUDF

if TYPE_CHECKING:
    from ray.data import Dataset

__all__ = ["infer"]

#: Stands in for the key while the driver checks the settings (nothing is sent with it).
_CHECK_ONLY_KEY = "driver-check-only"


def infer(
    ds: Dataset,
    config: ClientConfig,
    *,
    prompt_column: str | None = "prompt",
    messages_column: str | None = None,
    params_column: str | None = None,
    actors: int = 4,
    num_cpus: float = 0.25,
    batch_size: int = 64,
    max_rps: float | None = None,
    max_tpm: float | None = None,
    coordinate: bool = True,
    ray_remote_args: Mapping[str, Any] | None = None,
    **params: Any,
) -> Dataset:
    """Call the endpoint for every row of ``ds``: the input columns, plus ``text``,
    ``finish_reason``, ``prompt_tokens``, ``completion_tokens``, ``error_type``, ``status``,
    ``error_message``, ``attempts`` and ``latency_ms``.

    ``config`` is a file written by ``client.save()`` (read here, on the driver) or a dict of
    client settings; the key is read from each worker's environment, never shipped.
    ``actors`` actors (a fixed ``ActorPoolStrategy``) of ``num_cpus`` CPUs each call it, each
    with one client whose batches share one rate budget, and a coordinator actor shares one
    pace between them (``coordinate=False``: each actor learns the endpoint alone).
    ``max_rps`` caps the requests per second of the whole job; ``max_tpm`` its tokens per minute,
    split evenly between the actors (each is busy for the whole run; a row reserves its
    estimated tokens before it goes, corrected by the usage its answer reports, so the job
    never goes above the budget). Keyword arguments are model
    parameters for every row (a row's ``params_column`` wins) or options of
    :meth:`EndpointClient.map` (``max_retries=``). ``ray_remote_args`` go to
    ``map_batches`` (e.g. ``{"runtime_env": ...}``)::

        out = infer(ray.data.read_json("prompts.jsonl"), "azureml.json", max_tokens=64)
        out.write_parquet("results/")

    Lazy, like every Ray Data transform: nothing is sent until the dataset is consumed.
    """
    from ray.data import ActorPoolStrategy

    if isinstance(actors, bool) or not isinstance(actors, int) or actors < 1:
        raise ConfigurationError(f"actors must be a positive integer, got {actors!r}")
    check_limits(max_rps=max_rps, max_tpm=max_tpm)
    check_columns(prompt_column, messages_column, params_column)
    settings = settings_of(config)
    # Settings a worker would refuse fail here, on the driver, before any actor starts. The
    # key is the workers' (read from their environment): the driver may not hold it.
    EndpointClient(**client_arguments(settings), api_key=_CHECK_ONLY_KEY)
    coordinator = pace_coordinator(settings, max_rps=max_rps) if coordinate else None
    return ds.map_batches(
        EndpointUDF,
        fn_constructor_kwargs={
            "config": settings,
            "prompt_column": prompt_column,
            "messages_column": messages_column,
            "params_column": params_column,
            "coordinator": coordinator,
            "max_rps": max_rps,
            "max_tpm": None if max_tpm is None else max_tpm / actors,
            **params,
        },
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ActorPoolStrategy(size=actors),
        num_cpus=num_cpus,
        **dict(ray_remote_args or {}),
    )
