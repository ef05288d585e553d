"""The coordinator actor: one per endpoint and Ray job, holding the cluster's pace (a
:class:`~._pace.PaceBoard`). It needs no CPU of its own and answers a report in microseconds.

``pace_coordinator(config)`` creates it, or finds the one this job already runs for the same
endpoint (URL, deployment and model), so two datasets calling one endpoint at the same time
share its budget too. It lives as long as the driver that created it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ._config import ClientConfig, endpoint_key, settings_of
from ._pace import PaceBoard, Reply, Report

__all__ = ["PaceCoordinator", "pace_coordinator"]


class PaceCoordinator:
    """The actor's class (plain Python; :func:`pace_coordinator` makes it a Ray actor).

    Async, so that the actors' :meth:`watch` calls wait side by side on its event loop while
    reports come in; the board itself is only ever touched from that loop.
    """

    def __init__(self, max_rps: float | None = None) -> None:
        self.board = PaceBoard(max_rps=max_rps)
        self._changed: asyncio.Event | None = None

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    async def report(self, actor: str, report: Report) -> Reply:
        """An actor's report; its answer is the actor's share (see :meth:`PaceBoard.report`)."""
        epoch = self.board.epoch
        reply = self.board.report(actor, report)
        if self.board.epoch != epoch:  # slower, or paused: wake every watcher now
            self._event().set()
            self._changed = None
        return reply

    async def watch(self, actor: str, epoch: int, timeout: float = 1.0) -> Reply:
        """Wait (at most ``timeout`` seconds) for the pace to drop or a pause to start after
        ``epoch``; then the actor's share as of now."""
        if self.board.epoch == epoch:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._event().wait(), timeout)
        return self.board.answer(actor)

    async def leave(self, actor: str) -> None:
        self.board.leave(actor)

    async def configure(self, max_rps: float | None) -> None:
        """Set the cap on the cluster's pace (the latest ``infer()`` call's ``max_rps``)."""
        self.board.max_rps = max_rps

    async def snapshot(self) -> dict[str, Any]:
        return self.board.snapshot()


_remote_class: Any = None


def pace_coordinator(config: ClientConfig, *, max_rps: float | None = None) -> Any:
    """The coordinator of the endpoint ``config`` calls, in this Ray job: a Ray actor handle.

    Pass it to :class:`~azml_client.ray.EndpointUDF` (``coordinator=``) when you call
    ``map_batches`` yourself; :func:`~azml_client.ray.infer` does it for you. ``max_rps`` caps
    the whole cluster's requests per second.
    """
    import ray

    global _remote_class
    if _remote_class is None:
        _remote_class = ray.remote(num_cpus=0)(PaceCoordinator)
    name = f"azml-pace-{endpoint_key(settings_of(config))}"
    handle = _remote_class.options(name=name, get_if_exists=True).remote(max_rps=max_rps)
    handle.configure.remote(max_rps)  # it may have existed, with another cap
    return handle
