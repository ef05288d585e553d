"""Fixtures of the Ray Data integration's tests.

The unit tests (``test_columns``, ``test_pace``, ``test_udf``) need no Ray cluster: the callable
class runs under asyncio against the emulator, and the coordinator's code is called in-process
through :class:`LocalHandle`, which mimics a Ray actor handle (``handle.method.remote(...)``).
``test_cluster`` starts one local Ray cluster for its module (marked ``ray``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

#: The key the emulators of these tests expect (set in the environment the workers read).
KEY = "ray-tests-key"


class _Method:
    def __init__(self, method: Callable[..., Any]) -> None:
        self._method = method

    def remote(self, *args: Any) -> Awaitable[Any]:
        return self._call(*args)

    async def _call(self, *args: Any) -> Any:
        await asyncio.sleep(0)  # a hop, as a real actor call has
        result = self._method(*args)
        return await result if asyncio.iscoroutine(result) else result


class LocalHandle:
    """An object called the way a Ray actor handle is: ``handle.report.remote(...)``."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def __getattr__(self, name: str) -> _Method:
        return _Method(getattr(self.actor, name))


@pytest.fixture
def worker_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The key in the environment, where a worker reads it."""
    monkeypatch.setenv("AZUREML_ENDPOINT_API_KEY", KEY)
    return KEY
