"""EndpointClient through respx: bodies, headers, routes, results, errors, lifecycle."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from azml_client import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    EndpointClient,
    ModelError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ResponseFormatError,
    ServerError,
    UnprocessableEntityError,
)

from .conftest import CANARY_KEY, DEDICATED_URL, SERVERLESS_URL

SERVERLESS_BASE = SERVERLESS_URL.removesuffix("/chat/completions")
OPENAI_CHAT = {
    "id": "c1",
    "model": "llama",
    "object": "chat.completion",
    "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hi!"}}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}
OPENAI_COMPLETION = {
    "id": "c2",
    "model": "llama",
    "object": "text_completion",
    "choices": [{"index": 0, "finish_reason": "length", "text": " done"}],
}


def dedicated(**kwargs: Any) -> EndpointClient:
    kwargs.setdefault("endpoint_url", DEDICATED_URL)
    kwargs.setdefault("api_key", CANARY_KEY)
    kwargs.setdefault("max_retries", 0)
    return EndpointClient(**kwargs)


def serverless(**kwargs: Any) -> EndpointClient:
    kwargs.setdefault("endpoint_url", SERVERLESS_URL)
    kwargs.setdefault("api_key", CANARY_KEY)
    kwargs.setdefault("max_retries", 0)
    return EndpointClient(**kwargs)


def sent_json(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content)


@respx.mock
async def test_dedicated_completion_body_headers_and_result() -> None:
    route = respx.post(DEDICATED_URL).mock(
        return_value=httpx.Response(200, json=[{"0": "A song"}], headers={"x-request-id": "srv-1"})
    )
    async with dedicated(
        deployment_name="llama-2-7b-1",
        formatter="llama",
        model_kwargs={"temperature": 0.8, "max_new_tokens": 400},
    ) as client:
        out = await client.complete("Write me a song:", temperature=0.5)
    assert out.text == "A song"
    assert out.request_id == "srv-1"
    assert out.attempts == 1
    assert out.raw == [{"0": "A song"}]
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {CANARY_KEY}"
    assert request.headers["azureml-model-deployment"] == "llama-2-7b-1"
    assert request.headers["Content-Type"] == "application/json"
    assert len(request.headers["x-ms-client-request-id"]) == 36
    assert out.client_request_id == request.headers["x-ms-client-request-id"]
    assert sent_json(route) == {
        "input_data": {
            "input_string": ["Write me a song:"],
            "parameters": {"temperature": 0.5, "max_new_tokens": 400},
        }
    }


@respx.mock
async def test_per_call_params_never_mutate_client_defaults() -> None:
    route = respx.post(DEDICATED_URL).mock(return_value=httpx.Response(200, json=["x"]))
    defaults = {"temperature": 0.1}
    async with dedicated(model_kwargs=defaults) as client:
        await client.complete("a", max_new_tokens=5, stop=["x"])
        await client.complete("b")
    assert defaults == {"temperature": 0.1}
    assert client.model_kwargs == {"temperature": 0.1}
    first = sent_json(route, 0)["input_data"]["parameters"]
    second = sent_json(route, 1)["input_data"]["parameters"]
    assert first == {"temperature": 0.1, "max_new_tokens": 5, "stop": ["x"]}
    assert second == {"temperature": 0.1}


@respx.mock
async def test_stop_as_a_string_becomes_a_list() -> None:
    route = respx.post(DEDICATED_URL).mock(return_value=httpx.Response(200, json=["x"]))
    async with dedicated() as client:
        await client.complete("a", stop="\n")
    assert sent_json(route)["input_data"]["parameters"] == {"stop": ["\n"]}


@respx.mock
async def test_serverless_routes_follow_the_call_not_the_url() -> None:
    chat = respx.post(SERVERLESS_URL).mock(return_value=httpx.Response(200, json=OPENAI_CHAT))
    completions = respx.post(f"{SERVERLESS_BASE}/completions").mock(
        return_value=httpx.Response(200, json=OPENAI_COMPLETION)
    )
    async with serverless() as client:
        reply = await client.chat([{"role": "user", "content": "Hi"}], max_tokens=8)
        out = await client.complete("Hello", max_new_tokens=8)
    assert reply.text == "Hi!"
    assert reply.message.role == "assistant"
    assert reply.usage is not None and reply.usage.total_tokens == 5
    assert reply.finish_reason == "stop"
    assert out.text == " done" and out.finish_reason == "length"
    assert sent_json(chat) == {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}
    assert sent_json(completions) == {"prompt": "Hello", "max_tokens": 8}


@pytest.mark.parametrize(
    ("url", "chat_url"),
    [
        (
            "https://x.eastus2.inference.ai.azure.com",
            "https://x.eastus2.inference.ai.azure.com/v1/chat/completions",
        ),
        (
            "https://x.eastus2.inference.ai.azure.com/v1",
            "https://x.eastus2.inference.ai.azure.com/v1/chat/completions",
        ),
        (
            "https://x.eastus2.inference.ai.azure.com/v1/completions",
            "https://x.eastus2.inference.ai.azure.com/v1/chat/completions",
        ),
        (
            "https://x.eastus2.inference.ai.azure.com/chat/completions",
            "https://x.eastus2.inference.ai.azure.com/chat/completions",
        ),
        (
            "https://r.services.ai.azure.com/models/chat/completions",
            "https://r.services.ai.azure.com/models/chat/completions",
        ),
        (
            "https://r.services.ai.azure.com/models",
            "https://r.services.ai.azure.com/models/chat/completions",
        ),
    ],
)
def test_serverless_url_forms(url: str, chat_url: str) -> None:
    client = serverless(endpoint_url=url)
    assert client.routes.chat == chat_url
    assert client.routes.completions == chat_url.replace("/chat/completions", "/completions")


@respx.mock
async def test_extra_parameters_and_api_version() -> None:
    route = respx.post(url__startswith=SERVERLESS_URL).mock(
        return_value=httpx.Response(200, json=OPENAI_CHAT)
    )
    async with serverless(extra_parameters="drop", api_version="2024-05-01-preview") as client:
        await client.chat([{"role": "user", "content": "x"}])
        await client.chat([{"role": "user", "content": "x"}], extra_parameters="pass-through")
    first, second = route.calls[0].request, route.calls[1].request
    assert first.headers["extra-parameters"] == "drop"
    assert second.headers["extra-parameters"] == "pass-through"
    assert first.url.params["api-version"] == "2024-05-01-preview"
    with pytest.raises(ConfigurationError, match="pass-through"):
        await serverless().chat([{"role": "user", "content": "x"}], extra_parameters="ignore")


@respx.mock
async def test_per_call_deployment_override() -> None:
    route = respx.post(DEDICATED_URL).mock(return_value=httpx.Response(200, json=["x"]))
    async with dedicated(deployment_name="blue") as client:
        await client.complete("a", deployment_name="green")
        await client.complete("b")
    assert [c.request.headers["azureml-model-deployment"] for c in route.calls] == [
        "green",
        "blue",
    ]


@respx.mock
async def test_invoke_sends_any_payload_verbatim() -> None:
    route = respx.post(DEDICATED_URL).mock(
        return_value=httpx.Response(200, json=[{"label": "POSITIVE", "score": 0.99}])
    )
    async with dedicated() as client:
        data = await client.invoke({"input_data": ["Today was an amazing day!"]})
        raw = await client.invoke(b'{"inputs": {"input_string": ["x"]}}')
    assert data == [{"label": "POSITIVE", "score": 0.99}]
    assert raw == data
    assert sent_json(route, 0) == {"input_data": ["Today was an amazing day!"]}
    assert route.calls[1].request.content == b'{"inputs": {"input_string": ["x"]}}'


@respx.mock
async def test_invoke_non_json_answer_is_a_format_error() -> None:
    respx.post(DEDICATED_URL).mock(return_value=httpx.Response(200, text="<html>"))
    async with dedicated() as client:
        with pytest.raises(ResponseFormatError, match="not JSON"):
            await client.invoke({"a": 1})


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (408, RequestTimeoutError),
        (422, UnprocessableEntityError),
        (424, ModelError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (409, APIStatusError),
    ],
)
@respx.mock
async def test_status_errors_are_typed(status: int, cls: type[APIStatusError]) -> None:
    body = {"message": "something broke " + "x" * 5000}
    respx.post(DEDICATED_URL).mock(
        return_value=httpx.Response(
            status,
            json=body,
            headers={
                "x-request-id": "srv-9",
                "ms-azureml-model-error-statuscode": "500",
                "ms-azureml-model-error-reason": "model_error",
            },
        )
    )
    async with dedicated() as client:
        with pytest.raises(cls) as info:
            await client.complete("x")
    err = info.value
    assert type(err) is cls
    assert err.status_code == status
    assert err.request_id == "srv-9"
    assert "something broke" in err.body
    assert len(err.body) < 2200  # capped excerpt
    assert "something broke" in str(err) and f"HTTP {status}" in str(err)
    assert err.client_request_id is not None
    if cls is ModelError:
        assert isinstance(err, ModelError)
        assert (err.model_status_code, err.model_reason) == (500, "model_error")
        assert "model status 500" in str(err)


@respx.mock
async def test_retry_after_is_exposed_on_rate_limit_errors() -> None:
    respx.post(DEDICATED_URL).mock(
        return_value=httpx.Response(
            429, json={"message": "slow"}, headers={"retry-after-ms": "1500"}
        )
    )
    async with dedicated() as client:
        with pytest.raises(RateLimitError) as info:
            await client.complete("x")
    assert info.value.retry_after == 1.5


@respx.mock
async def test_connection_errors_and_timeouts_are_mapped() -> None:
    respx.post(DEDICATED_URL).mock(side_effect=httpx.ConnectError("refused"))
    async with dedicated() as client:
        with pytest.raises(APIConnectionError, match="could not reach") as info:
            await client.complete("x")
        assert not isinstance(info.value, APITimeoutError)
    respx.post(DEDICATED_URL).mock(side_effect=httpx.ReadTimeout("slow"))
    async with dedicated() as client:
        with pytest.raises(APITimeoutError):
            await client.complete("x")


@respx.mock
async def test_mismatched_answer_raises_format_error_with_request_id() -> None:
    respx.post(DEDICATED_URL).mock(
        return_value=httpx.Response(200, json={"weird": True}, headers={"x-request-id": "r-7"})
    )
    async with dedicated(formatter="gpt2") as client:
        with pytest.raises(ResponseFormatError) as info:
            await client.complete("x")
    assert info.value.request_id == "r-7"
    assert info.value.formatter == "gpt2"
    assert '"weird"' in info.value.body


@respx.mock
async def test_vllm_error_in_200_is_a_status_error_with_request_id() -> None:
    respx.post(DEDICATED_URL).mock(
        return_value=httpx.Response(
            200,
            json={"output": None, "error": {"status_code": 400, "body": "bad prompt"}},
            headers={"x-request-id": "r-8"},
        )
    )
    async with dedicated(formatter="vllm") as client:
        with pytest.raises(BadRequestError) as info:
            await client.complete("x")
    assert info.value.request_id == "r-8"


async def test_chat_and_complete_input_checks() -> None:
    async with dedicated(formatter="gpt2") as client:
        with pytest.raises(ConfigurationError, match="does not support chat"):
            await client.chat([{"role": "user", "content": "x"}])
        with pytest.raises(ConfigurationError, match="prompt as a str"):
            await client.complete(["x"])  # type: ignore[arg-type]
    async with dedicated(formatter="llama-chat") as client:
        with pytest.raises(ConfigurationError, match="list of messages"):
            await client.chat("hello")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="'role'"):
            await client.chat([{"content": "x"}])
        with pytest.raises(ConfigurationError, match="at least one"):
            await client.chat([])


@respx.mock
async def test_complete_on_a_chat_family_sends_one_user_message() -> None:
    route = respx.post(DEDICATED_URL).mock(return_value=httpx.Response(200, json={"output": "y"}))
    async with dedicated(formatter="llama-chat") as client:
        out = await client.complete("x")
    assert out.text == "y"
    assert sent_json(route)["input_data"]["input_string"] == [{"role": "user", "content": "x"}]


async def test_closed_client_gives_a_clear_error() -> None:
    client = dedicated()
    await client.aclose()
    await client.aclose()  # idempotent
    with pytest.raises(ClientClosedError, match="closed"):
        await client.complete("x")
    with pytest.raises(ClientClosedError):
        async with client:
            pass


@respx.mock
async def test_injected_http_client_is_used_and_not_closed() -> None:
    route = respx.post(DEDICATED_URL).mock(return_value=httpx.Response(200, json=["x"]))
    http = httpx.AsyncClient(headers={"x-mine": "1"})
    async with dedicated(http_client=http) as client:
        await client.complete("a")
    assert not http.is_closed
    assert route.calls.last.request.headers["x-mine"] == "1"
    await http.aclose()


async def test_injected_transport_is_used_and_not_closed() -> None:
    seen: list[httpx.Request] = []
    closed: list[bool] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[{"0": "mock"}])

    class Transport(httpx.MockTransport):
        async def aclose(self) -> None:
            closed.append(True)

    async with dedicated(transport=Transport(handler)) as client:
        out = await client.complete("a")
    assert out.text == "mock"
    assert len(seen) == 1
    assert closed == []


def test_conflicting_arguments() -> None:
    with pytest.raises(ConfigurationError, match="api_key or credential"):
        dedicated(credential=object())
    with pytest.raises(ConfigurationError, match="http_client or transport"):
        dedicated(http_client=httpx.AsyncClient(), transport=httpx.MockTransport(lambda r: None))  # type: ignore[arg-type]


FAMILY_ANSWERS: dict[str, Any] = {
    "gpt2": ["out"],
    "dolly": ["out"],
    "hf": [{"generated_text": "out"}],
    "tgi": {"generated_text": "out", "details": {"finish_reason": "length"}},
    "llama": [{"0": "out"}],
    "llama-chat": {"output": "out"},
    "vllm": {
        "output": ["out"],
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    },
    "bart": ["out"],
}


@pytest.mark.parametrize("family", sorted(FAMILY_ANSWERS))
@respx.mock
async def test_every_dedicated_family_end_to_end_through_respx(family: str) -> None:
    route = respx.post(DEDICATED_URL).mock(
        return_value=httpx.Response(200, json=FAMILY_ANSWERS[family], headers={"x-request-id": "r"})
    )
    async with dedicated(formatter=family, model_kwargs={"max_tokens": 7}) as client:
        out = await client.complete('a "quoted"\nprompt')
    assert out.text == "out" and out.request_id == "r"
    sent = route.calls.last.request.content.decode()
    assert 'a \\"quoted\\"\\nprompt' in sent  # encoded once by JSON, nothing more
    assert '"max_new_tokens":7' in sent  # the Hugging Face name on dedicated endpoints


@respx.mock
async def test_openai_family_end_to_end_through_respx() -> None:
    respx.post(f"{SERVERLESS_BASE}/completions").mock(
        return_value=httpx.Response(200, json=OPENAI_COMPLETION)
    )
    async with serverless(formatter="openai", model_kwargs={"max_new_tokens": 7}) as client:
        out = await client.complete("p")
    assert out.text == " done"
