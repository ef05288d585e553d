"""The clients behind one LangChain model: a blocking one, and one async client per event loop.

A connection pool belongs to the event loop it was opened in, and LangChain code moves between
loops freely: ``invoke()`` from a script, ``ainvoke()`` under ``asyncio.run()`` (a new loop per
call), pytest-asyncio (a new loop per test). So:

* blocking calls go through one :class:`SyncEndpointClient` (its own loop, run in the calling
  thread, or a portal thread when the caller already runs a loop), made on first use;
* async calls go through an :class:`EndpointClient` per running loop, kept in a
  ``WeakKeyDictionary`` keyed by the loop. The first loop gets the model's own client (or the
  caller's ``client=``); every other loop a copy with a pool of its own (``_fork()``).

Each per-loop client is closed *inside its loop* before the loop goes away: a small async
generator (a "guard") is started on the loop when the client is made. asyncio finalizes the
async generators a loop has started (``loop.shutdown_asyncgens()``, which ``asyncio.run()``, the
``asyncio.Runner`` and pytest-asyncio call before closing it), and a guard dropped while its loop
runs (the model was garbage-collected) is finalized on that loop as well; the guard's
``finally`` closes the client's pool. A loop closed without ``shutdown_asyncgens()`` cannot run
anything any more: its client is then left to the garbage collector.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncGenerator, MutableMapping

from .._client import EndpointClient
from .._sync import SyncEndpointClient

__all__ = ["ClientSet"]

_Entry = tuple[EndpointClient, AsyncGenerator[None, None]]


async def _guard(
    client: EndpointClient, owned: bool, entries: MutableMapping[asyncio.AbstractEventLoop, _Entry]
) -> AsyncGenerator[None, None]:
    """Closes ``client`` when its loop finalizes this generator. It must not hold the loop:
    the entry it belongs to is keyed by the loop, weakly."""
    try:
        yield
    finally:
        entries.pop(asyncio.get_running_loop(), None)
        if owned:
            await client.aclose()


class ClientSet:
    """Hands out the right client for where a call runs (see the module docstring).

    ``owned=False`` when ``prototype`` is the caller's client: it is used, never closed.
    """

    def __init__(self, prototype: EndpointClient, *, owned: bool) -> None:
        self.prototype = prototype
        self._owned = owned
        self._prototype_taken = False
        self._lock = threading.Lock()
        self._sync: SyncEndpointClient | None = None
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Entry] = (
            weakref.WeakKeyDictionary()
        )

    def sync(self) -> SyncEndpointClient:
        """The blocking client (made on first use; closed by :meth:`close` or the collector)."""
        client = self._sync
        if client is None or client.is_closed:
            with self._lock:
                client = self._sync
                if client is None or client.is_closed:
                    client = self._sync = SyncEndpointClient.from_client(self.prototype)
        return client

    async def aget(self) -> EndpointClient:
        """The async client of the running loop."""
        loop = asyncio.get_running_loop()
        entry = self._loops.get(loop)
        if entry is not None:
            return entry[0]
        with self._lock:
            if not self._prototype_taken:
                self._prototype_taken = True
                client, owned = self.prototype, self._owned
            else:
                client, owned = self.prototype._fork(), True
            guard = _guard(client, owned, self._loops)
            self._loops[loop] = (client, guard)
        # Starting the generator registers it with this loop's async-generator hooks.
        await guard.__anext__()
        return client

    def __deepcopy__(self, memo: dict[int, object]) -> ClientSet:
        # A copied model (copy.deepcopy, model_copy(deep=True)) shares the connections.
        return self

    @property
    def loop_count(self) -> int:
        """How many event loops hold a client right now (for tests and diagnostics)."""
        return len(self._loops)

    def close(self) -> None:
        """Close the blocking client. Per-loop clients close with their loops."""
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the running loop's client now (it is made again if the model is used)."""
        entry = self._loops.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()
