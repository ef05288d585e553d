"""Run the emulator on uvicorn: in a background thread for tests, or in the foreground for a CLI.

uvicorn is imported only when a server starts, so the package (and its pytest plugin) imports
without the ``cli`` extra installed.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from azml_client.emulator._app import EmulatorApp, create_app
from azml_client.emulator._config import EmulatorConfig
from azml_client.emulator._http import StreamCut
from azml_client.emulator._stats import EmulatorStats

if TYPE_CHECKING:
    import uvicorn

__all__ = ["EmulatorServer", "arun_emulator", "run_emulator", "serve", "stop_all"]


def _import_uvicorn() -> Any:
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the azml emulator server needs uvicorn: pip install 'azml-client[cli]'"
        ) from exc
    return uvicorn


class _HideStreamCuts(logging.Filter):
    """Drop uvicorn's "Exception in ASGI application" record for deliberate stream cuts."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamCut))


_FILTER = _HideStreamCuts()


def _uvicorn_config(app: EmulatorApp, *, quiet: bool, **options: Any) -> uvicorn.Config:
    uvicorn_module = _import_uvicorn()
    logging.getLogger("uvicorn.error").addFilter(_FILTER)  # idempotent: same filter object
    settings: dict[str, Any] = {"lifespan": "off", "timeout_graceful_shutdown": 2, **options}
    if quiet:  # leave the host application's logging configuration alone
        settings.update(log_level="warning", log_config=None, access_log=False)
    config: uvicorn.Config = uvicorn_module.Config(app, **settings)
    return config


class EmulatorServer:
    """A running emulator on a loopback port, served by uvicorn in a daemon thread.

    Use it as a context manager (or call ``start()`` / ``stop()``)::

        with EmulatorServer(EmulatorConfig(api_key="k")) as emu:
            httpx.post(emu.score_url, headers={"Authorization": "Bearer k"}, json=...)

    Args:
        config: Endpoint settings; ``None`` for the defaults (random key, ``llama`` family).
        host: Interface to bind; loopback by default.
        port: Port to bind; 0 picks a free one.
    """

    def __init__(
        self, config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.app = create_app(config)
        self.config = self.app.config
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def api_key(self) -> str:
        """The key clients must send."""
        return self.app.api_key

    @property
    def stats(self) -> EmulatorStats:
        """Live counters of the app."""
        return self.app.stats

    @property
    def port(self) -> int:
        """The bound port (after ``start()``)."""
        if self._port is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def score_url(self) -> str:
        """The dedicated scoring URL, ``base_url + "/score"``."""
        return f"{self.base_url}/score"

    @property
    def serverless_url(self) -> str:
        """The serverless base URL, ``base_url + "/v1"`` (append ``/chat/completions``...)."""
        return f"{self.base_url}/v1"

    @property
    def models_url(self) -> str:
        """The model-inference base URL, ``base_url + "/models"`` (send ``?api-version=``)."""
        return f"{self.base_url}/models"

    @property
    def openai_v1_url(self) -> str:
        """The OpenAI v1 base URL, ``base_url + "/openai/v1"`` (``openai.OpenAI(base_url=...)``)."""
        return f"{self.base_url}/openai/v1"

    @property
    def running(self) -> bool:
        """Whether the server thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> EmulatorServer:
        """Bind the port, start uvicorn in a thread and wait until it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already started")
        config = _uvicorn_config(self.app, quiet=True)
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the
        # listening socket says TCP, and without it every answer waits ~40 ms for a delayed ACK.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._requested_port))
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self._port = sock.getsockname()[1]
        server = self._server = _import_uvicorn().Server(config)
        # uvicorn closes the sockets it is given when it shuts down.
        self._thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"azml-emulator-{self._port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the emulator server did not start")
            time.sleep(0.005)
        return self

    def _ask_to_exit(self) -> None:
        if self._server is not None:
            self._server.should_exit = True

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit, wait for the thread, and forget the port. Safe to call twice."""
        server, thread = self._server, self._thread
        self._ask_to_exit()
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():  # pragma: no cover - only when a client hangs on to a stream
                assert server is not None
                server.force_exit = True
                thread.join(timeout)
        if self._socket is not None:
            self._socket.close()  # normally closed by uvicorn already; this covers failed starts
        self._server = self._thread = self._socket = None
        self._port = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def stop_all(servers: list[EmulatorServer]) -> None:
    """Stop several servers, letting their shutdowns overlap (each takes ~0.2 s in uvicorn)."""
    for server in servers:
        server._ask_to_exit()
    for server in servers:
        server.stop()


@contextmanager
def run_emulator(
    config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[EmulatorServer]:
    """Run an emulator for the duration of a ``with`` block and yield its handle."""
    with EmulatorServer(config, host=host, port=port) as server:
        yield server


@asynccontextmanager
async def arun_emulator(
    config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[EmulatorServer]:
    """``run_emulator`` for async code: start and stop happen in a worker thread."""
    server = EmulatorServer(config, host=host, port=port)
    await anyio.to_thread.run_sync(server.start)
    try:
        yield server
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(server.stop)


def serve(config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the emulator in the foreground until Ctrl-C or SIGTERM (for ``azml emulate``).

    When ``config.api_key`` is ``None`` the generated key is logged once at startup (it is a
    throw-away local key; pass one explicitly to keep it out of logs).
    """
    app = create_app(config)
    settings = _uvicorn_config(app, quiet=False, host=host, port=port, log_level="info")
    if app.config.api_key is None:
        logging.getLogger("uvicorn.error").info("azml emulator api key: %s", app.api_key)
    _import_uvicorn().Server(settings).run()
