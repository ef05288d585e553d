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
    ConfigurationError,
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


#: A credential in the URL, as Azure Functions (``?code=``) and SAS URLs (``?sig=``) carry one.
URL_CODE = "fUnCtIoNkEy-0123456789"
URL_PASSWORD = "pr0xy-pa55word"


@respx.mock
async def test_a_credential_in_the_endpoint_url_is_used_but_never_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="azml_client")
    url = f"https://user:{URL_PASSWORD}@gw.example.com/score?api-version=1&code={URL_CODE}"
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if len(sent) == 1:
            return httpx.Response(503, headers={"retry-after-ms": "1"})
        if len(sent) == 2:
            return httpx.Response(200, json={"output": "ok"})
        return httpx.Response(400, json={"message": f"bad request to {request.url}"})

    respx.post(url__startswith="https://gw.example.com/score").mock(side_effect=answer)
    client = EndpointClient(endpoint_url=url, api_key=CANARY_KEY, formatter="llama", max_retries=1)
    async with client:
        result = await client.complete("x")
        with pytest.raises(AzmlError) as caught:
            await client.complete("y", max_retries=0)
        with pytest.raises(ConfigurationError, match="carries a credential") as refused:
            client.save(tmp_path / "client.json")
    assert sent[0].url.params["code"] == URL_CODE  # the endpoint still gets it
    shown = [
        repr(client),
        client.endpoint_url,
        repr(result),
        str(result.endpoint_url),
        everything_about(caught.value),
        repr(pickle.loads(pickle.dumps(caught.value)).__dict__),
        str(refused.value),
        *(record.getMessage() for record in caplog.records),
    ]
    assert any("retrying" in line for line in shown)  # the log lines were checked
    assert "[REDACTED]" in client.endpoint_url and "api-version=1" in client.endpoint_url
    for text in shown:
        assert URL_CODE not in text and URL_PASSWORD not in text
    assert not (tmp_path / "client.json").exists()


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        ("https://x.inference.ml.azure.com/score", []),
        ("https://h/score?api-version=2024-05-01-preview&deployment=blue", []),
        (
            "https://h/score?Code=abc12345&sig=s%2Bi%2Fg%3D12&API-KEY=k3y-value",
            ["abc12345", "s+i/g=12", "k3y-value"],
        ),
        ("https://me:se%40cret@h/v1", ["se@cret"]),
        ("not a url at all", []),
    ],
)
def test_url_secrets_finds_passwords_and_credential_parameters(
    url: str, secrets: list[str]
) -> None:
    from azml_client._redact import url_secrets

    assert url_secrets(url) == secrets
