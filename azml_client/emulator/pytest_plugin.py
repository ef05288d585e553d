"""pytest fixtures for the azml endpoint emulator (registered as the ``azml_emulator`` plugin).

- ``azml_emulator``: a running emulator with the default config, stopped after the test.
- ``azml_emulator_factory``: call it with an ``EmulatorConfig`` to get more started emulators;
  all of them are stopped at teardown.

Nothing here is autouse, and uvicorn is imported only when a fixture starts a server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from azml_client.emulator._config import EmulatorConfig
from azml_client.emulator._runner import EmulatorServer, stop_all

__all__ = ["azml_emulator", "azml_emulator_factory"]

EmulatorFactory = Callable[..., EmulatorServer]


@pytest.fixture
def azml_emulator() -> Iterator[EmulatorServer]:
    """A started emulator with ``EmulatorConfig()`` defaults (random key, ``llama`` family)."""
    with EmulatorServer(EmulatorConfig()) as server:
        yield server


@pytest.fixture
def azml_emulator_factory() -> Iterator[EmulatorFactory]:
    """A factory ``(config=None, *, host=..., port=0) -> EmulatorServer`` of started emulators."""
    servers: list[EmulatorServer] = []

    def factory(
        config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> EmulatorServer:
        server = EmulatorServer(config, host=host, port=port)
        servers.append(server)
        return server.start()

    yield factory
    stop_all(servers)
