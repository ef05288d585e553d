"""Several endpoints of one model behind one client: routing, failover, one budget each.

* ``_policy.py``: the decisions, pure: which failures fail over, cooldowns, the strategies;
* ``_endpoint.py``: one endpoint: its client, what it can serve, its health, its counts;
* ``_router.py``: :class:`EndpointRouter`, the one loop of single calls across endpoints;
* ``_stream.py``: :class:`RouterStream`, failing over until the first chunk;
* ``_bulk.py``: :class:`RouterRun`, bulk runs across endpoints from one shared queue;
* ``_sync.py``: :class:`SyncEndpointRouter`, the blocking twin;
* ``_config.py``: routes files and :func:`load_router`.
"""

from ._bulk import EndpointRunStats, RouterResults, RouterRun, RouterStats
from ._config import load_router, read_routes
from ._policy import STRATEGIES, Strategy
from ._router import EndpointRouter
from ._stream import RouterStream
from ._sync import SyncEndpointRouter, SyncRouterStream

__all__ = [
    "STRATEGIES",
    "EndpointRouter",
    "EndpointRunStats",
    "RouterResults",
    "RouterRun",
    "RouterStats",
    "RouterStream",
    "Strategy",
    "SyncEndpointRouter",
    "SyncRouterStream",
    "load_router",
    "read_routes",
]
