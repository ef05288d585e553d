"""The canary key never leaves the Authorization header: not in repr, logs, errors or files."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import httpx
import pytest
import respx

from azml_client import (
    APIConnectionError,
    AuthenticationError,
    AzmlError,
    EndpointClient,
    ResponseFormatError,
)

from .conftest import CANARY_KEY, DEDICATED_URL


def everything_about(exc: BaseException) -> str:
    parts = [str(exc), repr(exc), repr(exc.args), repr(vars(exc))]
    return "\n".join(parts)


@respx.mock
async def test_canary_key_never_leaks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    # The server echoes the request headers in its error body, as a proxy might.
    route = respx.post(DEDICATED_URL)
    route.side_effect = [
        httpx.Response(503, headers={"retry-after-ms": "1"}),
        httpx.Response(401, json={"message": "bad key"}),
        httpx.Response(200, json={"weird": 1}),
        httpx.ConnectError("refused"),
    ]

    async def no_sleep(_: float) -> None:
        return None

    client = EndpointClient(
        endpoint_url=DEDICATED_URL, api_key=CANARY_KEY, max_retries=1, sleep=no_sleep
    )
    seen: list[str] = [repr(client), str(client), repr(client.settings), str(client.settings)]
    seen.append(client.settings.model_dump_json())
    seen.append(repr(client.settings.model_dump()))
    errors: list[BaseException] = []
    for _ in range(3):
        try:
            await client.complete("x", max_retries=1 if not errors else 0)
        except AzmlError as exc:
            errors.append(exc)
    assert [type(e) for e in errors] == [
        AuthenticationError,
        ResponseFormatError,
        APIConnectionError,
    ]
    for error in errors:
        seen.append(everything_about(error))
        seen.append(repr(pickle.dumps(error)) if _picklable(error) else "")
    client.save(tmp_path / "azureml.json")
    seen.append((tmp_path / "azureml.json").read_text())
    await client.aclose()
    seen.extend(record.getMessage() for record in caplog.records)
    seen.extend(repr(record.args) for record in caplog.records)
    blob = "\n".join(seen)
    assert CANARY_KEY not in blob
    # ...while the key really was sent where it belongs.
    assert route.calls[0].request.headers["Authorization"] == f"Bearer {CANARY_KEY}"


def _picklable(exc: BaseException) -> bool:
    try:
        pickle.dumps(exc)
    except Exception:
        return False
    return True


def test_key_is_a_secret_str() -> None:
    client = EndpointClient(endpoint_url=DEDICATED_URL, api_key=CANARY_KEY)
    key = client.settings.api_key
    assert key is not None and CANARY_KEY not in repr(key) and CANARY_KEY not in str(key)
