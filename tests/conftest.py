"""Shared fixtures of the unit tests (respx / in-process transports; no network)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

#: A key that must never show up anywhere but the Authorization header.
CANARY_KEY = "canary-9f3b2a7e-SECRET-do-not-print"

DEDICATED_URL = "https://my-endpoint.eastus.inference.ml.azure.com/score"
SERVERLESS_URL = "https://llama-serverless.eastus2.inference.ai.azure.com/v1/chat/completions"

#: ../shared/wire-samples beside the checkout (absent on a fresh clone).
WIRE_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "wire-samples"


_LOOPBACK = {"localhost", "127.0.0.1", "::1", None, ""}
_real_getaddrinfo = socket.getaddrinfo


def _loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
    name = host.decode() if isinstance(host, bytes) else host
    if name not in _LOOPBACK and not str(name).startswith("127."):
        raise OSError(f"tests may only reach loopback; refused to resolve {name!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mock that fails to intercept must fail the test, never reach a real host."""
    monkeypatch.setattr(socket, "getaddrinfo", _loopback_only)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests never see the developer's own AZUREML_* or proxy variables."""
    for name in (
        "AZUREML_ENDPOINT_URL",
        "AZUREML_ENDPOINT_API_KEY",
        "AZUREML_DEPLOYMENT_NAME",
        "AZUREML_ENDPOINT_API_TYPE",
        "AZUREML_TIMEOUT",
        # A developer's proxy must not change results; proxy tests set their own.
        *(
            v
            for n in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
            for v in (n, n.lower())
        ),
    ):
        monkeypatch.delenv(name, raising=False)
    yield


async def no_sleep(_seconds: float) -> None:
    """Injected instead of anyio.sleep so retry tests do not wait."""


class SleepRecorder:
    """Records the waits a client asked for, without waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()
