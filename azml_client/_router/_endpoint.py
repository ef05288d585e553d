"""One endpoint of a router: its client, what it can serve, its health and the router's counts.

:func:`able` says, before anything is sent, whether an endpoint's client can serve a call (its
formatter's chat / completion / streaming support, its embeddings route); :class:`Endpoint`
holds what the strategies read (:meth:`Endpoint.view`) and what users read
(:meth:`Endpoint.snapshot`).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Mapping
from typing import Any

from .._client import EndpointClient, supports
from .._config import config_arguments
from .._exceptions import ConfigurationError
from ._policy import Health, View

__all__ = ["Endpoint", "EndpointArg", "able", "client_of"]

#: What a router takes as an endpoint: a client, its settings, or the path of a saved config.
EndpointArg = EndpointClient | Mapping[str, Any] | str | os.PathLike[str]
#: Sends over this many seconds make an endpoint's recent rate (the capacity strategy's load).
_RECENT = 1.0


def able(client: EndpointClient, op: str) -> bool:
    """Whether ``client`` can serve ``op`` (``complete``, ``chat``, ``stream_complete``,
    ``stream_chat``, ``embed``, ``invoke``) as configured, before anything is sent."""
    fmt = client.formatter
    if op == "complete":
        return fmt.supports_completion
    if op == "chat":
        return fmt.supports_chat
    if op.startswith("stream_"):
        return supports(fmt.stream_api_types, client.api_type) and able(client, op[7:])
    if op == "embed":
        return client.routes.embeddings is not None
    return True


def client_of(endpoint: Any) -> tuple[EndpointClient, bool]:
    """The client an endpoint argument stands for, and whether the router built it (and so
    closes it)."""
    if isinstance(endpoint, EndpointClient):
        return endpoint, False
    if isinstance(endpoint, Mapping):
        return EndpointClient(**endpoint), True
    if isinstance(endpoint, str | os.PathLike):
        return EndpointClient(**config_arguments(endpoint, {})), True
    if type(endpoint).__name__ == "SyncEndpointClient":
        raise ConfigurationError(
            "EndpointRouter takes async EndpointClients (or their settings or saved config "
            "paths); for SyncEndpointClients use SyncEndpointRouter"
        )
    raise ConfigurationError(
        "an endpoint is an EndpointClient, a dict of its settings or the path of a config "
        f"saved by client.save(); got {type(endpoint).__name__}"
    )


class Endpoint:
    """One endpoint of a router: its client, its health and what the router sent it."""

    def __init__(self, client: EndpointClient, position: int, weight: float, owned: bool) -> None:
        self.client = client
        self.url = client.endpoint_url
        self.position = position
        self.weight = weight
        self.owned = owned
        self.health = Health()
        self.in_flight = 0
        self.sends: deque[float] = deque()
        self.turn = 0
        #: Attempts the router's own calls sent, and how they ended (bulk runs count theirs).
        self.sent = 0
        self.ok = 0
        self.failed = 0
        self.rate_limited = 0

    def recent(self, now: float) -> float:
        sends = self.sends
        while sends and sends[0] < now - _RECENT:
            sends.popleft()
        return len(sends) / _RECENT

    def view(self, now: float, *, avoided: bool = False) -> View:
        budget = self.client.budget
        health = self.health
        return View(
            position=self.position,
            weight=self.weight,
            resting=health.resting(now),
            probing=health.rested and health.probing,
            avoided=avoided,
            in_flight=self.in_flight + budget.in_flight,
            limit=budget.concurrency,
            rate=budget.rate,
            recent=self.recent(now),
            turn=self.turn,
        )

    def snapshot(self, now: float) -> dict[str, Any]:
        budget = self.client.budget
        return {
            "endpoint_url": self.url,
            "weight": self.weight,
            "healthy": not self.health.rested and self.health.resting(now) <= 0,
            "resting_for": round(self.health.resting(now), 3),
            "failures_in_a_row": self.health.streak,
            "in_flight": self.in_flight + budget.in_flight,
            "sent": self.sent,
            "ok": self.ok,
            "failed": self.failed,
            "rate_limited": self.rate_limited,
            "rate": None if budget.rate is None else round(budget.rate, 3),
            "concurrency": budget.concurrency,
        }
