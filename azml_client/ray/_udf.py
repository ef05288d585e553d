"""``EndpointUDF``: the callable class ``Dataset.map_batches`` runs on each actor."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

from .._bulk import Item
from .._client import EndpointClient
from .._exceptions import ConfigurationError
from ._columns import Outcome, add_columns, batch_items, check_columns, output_columns
from ._config import (
    ClientConfig,
    check_limits,
    client_arguments,
    key_variable,
    max_connections,
    settings_of,
)
from ._pace import PaceLink, Reply, Report, SignalBudget

__all__ = ["EndpointUDF"]


class EndpointUDF:
    """Calls the endpoint for every row of a batch and adds the result columns.

    A callable class for ``Dataset.map_batches`` (:func:`~azml_client.ray.infer` wraps it)::

        from ray.data import ActorPoolStrategy
        from azml_client.ray import EndpointUDF, pace_coordinator

        out = ds.map_batches(
            EndpointUDF,
            fn_constructor_kwargs={
                "config": settings,                       # e.g. json.load(a saved config)
                "coordinator": pace_coordinator("azureml.json"),
                "max_tokens": 64,                         # model parameters for every row
            },
            batch_format="pyarrow",
            compute=ActorPoolStrategy(size=4),
            num_cpus=0.25,
        )

    ``config`` is a dict of client settings (``EndpointClient`` arguments, or the content of a
    file written by ``client.save()``) or the path of such a file, which each worker then reads
    (on a cluster, it must be there). Each row is a prompt (``prompt_column``) or a chat
    (``messages_column``), with optional model parameters of its own (``params_column``, a
    struct per row). The output keeps the input columns and adds ``text``, ``finish_reason``,
    ``prompt_tokens``, ``completion_tokens``, ``error_type``, ``status``, ``error_message``,
    ``attempts`` and ``latency_ms``. A row that fails (at the endpoint, or because it holds no
    prompt) is a row with ``error_type`` set (and ``status``, the HTTP status, when there was
    one), never an exception that stops the dataset; a wrong configuration (a missing column,
    no key) is.

    One :class:`~azml_client.EndpointClient` per actor, made on the first batch inside the
    actor's event loop, with the key read from the worker's environment. All the batches of an
    actor share its rate budget; with ``coordinator=`` the actors of the whole cluster share
    one pace (see :mod:`azml_client.ray._pace`). ``max_rps`` caps the requests per second: of
    the cluster with a coordinator (give it to :func:`pace_coordinator` then), else of this
    actor. ``max_tpm`` caps this actor's tokens per minute (:func:`~azml_client.ray.infer`
    gives each actor its share of the job's): a row reserves its estimated tokens before it is
    sent, and the reservation is corrected by the usage the answer reports. Other keyword
    arguments go to :meth:`EndpointClient.map`: model parameters (``max_tokens=64``) and its
    options (``max_retries=...``).
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        prompt_column: str | None = "prompt",
        messages_column: str | None = None,
        params_column: str | None = None,
        coordinator: Any = None,
        max_rps: float | None = None,
        max_tpm: float | None = None,
        report_interval: float = 0.2,
        **params: Any,
    ) -> None:
        if not prompt_column and not messages_column:
            raise ConfigurationError("give prompt_column=, messages_column= or both")
        check_columns(prompt_column, messages_column, params_column)
        check_limits(max_rps=max_rps, max_tpm=max_tpm)
        for name in ("concurrency", "return_exceptions"):
            if name in params:
                raise ConfigurationError(
                    f"EndpointUDF does not take {name}=: each actor adapts its concurrency to "
                    "the endpoint, and failed rows come back as rows with error_type set"
                )
        self._settings = settings_of(config)
        self._columns = {
            "prompt_column": prompt_column,
            "messages_column": messages_column,
            "params_column": params_column,
        }
        self._coordinator = coordinator
        self._max_rps = max_rps
        self._max_tpm = max_tpm
        self._interval = report_interval
        self._params = params
        #: This actor's name in the coordinator's reports.
        self.name = uuid.uuid4().hex[:12]
        self._client: EndpointClient | None = None
        self._budget: SignalBudget | None = None
        self._link: PaceLink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()

    # -- the actor's client --------------------------------------------------------------------

    def _make_client(self) -> EndpointClient:
        arguments = client_arguments(self._settings)
        key_env = key_variable(self._settings)
        if not os.environ.get(key_env):
            raise ConfigurationError(
                f"no API key on this Ray worker: set {key_env} in the workers' environment, "
                f"e.g. ray.init(runtime_env={{'env_vars': {{'{key_env}': ...}}}})"
            )
        self._budget = SignalBudget(
            max_concurrency=max_connections(arguments),
            max_rps=None if self._coordinator is not None else self._max_rps,
            max_tpm=self._max_tpm,
        )
        return EndpointClient(**arguments, budget=self._budget)

    async def _ready(self) -> tuple[EndpointClient, SignalBudget]:
        """The actor's client, made once, inside this loop; with a coordinator, after the
        first answer set the pace."""
        async with self._lock:
            if self._client is None:
                self._loop = asyncio.get_running_loop()
                client = self._make_client()
                assert self._budget is not None
                if self._coordinator is not None:
                    link = PaceLink(
                        self._budget, self._report, self._watch, interval=self._interval
                    )
                    await link.start()
                    self._link = link
                self._client = client
        assert self._budget is not None
        return self._client, self._budget

    async def _report(self, report: Report) -> Reply:
        reply: Reply = await self._coordinator.report.remote(self.name, report)
        return reply

    async def _watch(self, epoch: int) -> Reply:
        reply: Reply = await self._coordinator.watch.remote(self.name, epoch)
        return reply

    # -- one batch -----------------------------------------------------------------------------

    async def __call__(self, batch: Any) -> Any:
        """Call the endpoint for each row of ``batch``; return it with the output columns."""
        client, budget = await self._ready()
        items = batch_items(batch, **self._columns)
        outcomes = [Outcome(None if isinstance(item, Item) else item) for item in items]
        rows = [row for row, item in enumerate(items) if isinstance(item, Item)]
        started: list[float] = []

        def source() -> Iterator[Item]:
            for row in rows:
                started.append(time.monotonic())  # when the run takes it: its latency's start
                item = items[row]
                assert isinstance(item, Item)
                yield item

        budget.backlog += len(rows)
        if self._link is not None:
            self._link.busy()
        finished = 0
        try:
            async with client.map(source(), **self._params) as run:
                async for index, result in run:
                    latency = round((time.monotonic() - started[index]) * 1000)
                    outcomes[rows[index]] = Outcome(result, latency)
                    finished += 1
                    budget.backlog -= 1
        finally:
            budget.backlog -= len(rows) - finished
        if self._link is not None and budget.backlog == 0:
            await self._link.flush()  # before Ray may stop this actor
        return add_columns(batch, output_columns(outcomes))

    # -- the end -------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop reporting, leave the coordinator and close the client. Idempotent."""
        link, self._link = self._link, None
        if link is not None:
            await link.aclose()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._leave(), 2.0)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _leave(self) -> None:
        await self._coordinator.leave.remote(self.name)

    def __del__(self) -> None:
        # Ray deletes the UDF when the actor shuts down gracefully: close the client on its
        # loop, which still runs then. Best effort: a killed actor just exits.
        loop: asyncio.AbstractEventLoop | None = getattr(self, "_loop", None)
        if getattr(self, "_client", None) is None or loop is None:
            return  # never used (or __init__ failed)
        if loop.is_closed() or not loop.is_running():
            return
        with contextlib.suppress(Exception):
            if _running_loop() is loop:
                loop.create_task(self.aclose())
            else:
                asyncio.run_coroutine_threadsafe(self.aclose(), loop).result(timeout=2.0)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
