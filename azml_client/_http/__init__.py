"""The request pipeline: one driver, the connections it sends through, and the transports.

* ``_driver.py``: :class:`Driver`, the one loop every HTTP exchange goes through;
* ``_body.py``: reading an answer (raw or decoded, bounded), its request id and message;
* ``_errors.py``: the one place lower-layer failures and error statuses become azml errors;
* ``_pool.py``: :class:`Connections`, which way a request goes out (ours, the caller's, httpx);
* ``_aiohttp.py``: the aiohttp-backed httpx transport and its exception table;
* ``_factory.py``: TLS contexts, proxy resolution, building transports and httpx clients.
"""

from ._driver import AttemptHook, Call, Driver, Exchange, new_request_id
from ._pool import Connections

__all__ = ["AttemptHook", "Call", "Connections", "Driver", "Exchange", "new_request_id"]
