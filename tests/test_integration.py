"""The client against the real emulator on a loopback port (no mocks): families, auth, routing,
serverless routes, streaming, and the fault matrix."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from azml_client import (
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ChatCompletion,
    EmptyResponseError,
    EndpointClient,
    ModelError,
    NotFoundError,
    RateLimitError,
    RequestTimeoutError,
    ResponseFormatError,
    RetryPolicy,
    ServerError,
    StreamInterruptedError,
)
from azml_client.emulator import (
    FAMILIES,
    Deployment,
    EmulatorConfig,
    EmulatorServer,
    Faults,
    arun_emulator,
)

pytestmark = pytest.mark.integration

TEXT_FAMILIES = ["gpt2", "dolly", "hf", "tgi", "llama", "vllm", "bart"]
CHAT_FAMILIES = ["llama-chat", "vllm"]
STYLE_CASES = [(family, style) for family in sorted(FAMILIES) for style in FAMILIES[family].styles]

Factory = Callable[..., Any]


@pytest.fixture
async def emulator() -> AsyncIterator[Callable[..., Any]]:
    """Start emulators on free loopback ports; all are stopped at teardown."""
    stack: list[Any] = []

    async def start(config: EmulatorConfig | None = None) -> EmulatorServer:
        cm = arun_emulator(config or EmulatorConfig(api_key="test-key"))
        server = await cm.__aenter__()
        stack.append(cm)
        return server

    yield start
    for cm in reversed(stack):
        await cm.__aexit__(None, None, None)


def dedicated(server: EmulatorServer, **kwargs: Any) -> EndpointClient:
    kwargs.setdefault("api_key", server.api_key)
    kwargs.setdefault("retry", RetryPolicy(backoff_base=0.01))
    return EndpointClient(endpoint_url=server.score_url, **kwargs)


def serverless(server: EmulatorServer, **kwargs: Any) -> EndpointClient:
    kwargs.setdefault("api_key", server.api_key)
    kwargs.setdefault("retry", RetryPolicy(backoff_base=0.01))
    return EndpointClient(
        endpoint_url=server.serverless_url, api_type="serverless", formatter="openai", **kwargs
    )


async def test_every_family_and_every_response_style_round_trips(emulator: Factory) -> None:
    deployments = [
        Deployment(f"{family}-{style}", family, traffic=0, response_style=style)
        for family, style in STYLE_CASES
    ]
    server = await emulator(
        EmulatorConfig(api_key="k", deployments=[*deployments, Deployment("d", "llama")])
    )
    for family, style in STYLE_CASES:
        name = f"{family}-{style}"
        async with dedicated(server, formatter=family, deployment_name=name) as client:
            if FAMILIES[family].task == "chat":
                out: Any = await client.chat(
                    [{"role": "user", "content": "Tell me about Paris"}], max_new_tokens=12
                )
                assert isinstance(out, ChatCompletion)
                again: Any = await client.chat(
                    [{"role": "user", "content": "Tell me about Paris"}], max_new_tokens=12
                )
            else:
                out = await client.complete("Tell me about Paris", max_new_tokens=12)
                again = await client.complete("Tell me about Paris", max_new_tokens=12)
            assert out.text.strip(), (family, style, out.raw)
            assert again.text == out.text  # deterministic for a seed and prompt
            if family in CHAT_FAMILIES and FAMILIES[family].task != "chat":
                reply = await client.chat([{"role": "user", "content": "Hi"}], max_new_tokens=5)
                assert reply.text.strip(), (family, style, reply.raw)


@pytest.mark.parametrize("family", TEXT_FAMILIES)
async def test_text_families_respect_max_tokens_and_stop(emulator: Factory, family: str) -> None:
    server = await emulator(EmulatorConfig(api_key="k", family=family))
    async with dedicated(server, formatter=family) as client:
        short = await client.complete(
            "Write a long story about the sea", max_new_tokens=3, return_full_text=False
        )
        long = await client.complete(
            "Write a long story about the sea", max_new_tokens=30, return_full_text=False
        )
    if family != "bart":  # summarization ignores max_new_tokens in the real container too
        assert len(short.text.split()) <= 3 < len(long.text.split())


async def test_serverless_chat_complete_and_usage(emulator: Factory) -> None:
    server = await emulator()
    async with serverless(server) as client:
        reply = await client.chat(
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            max_tokens=5,
        )
        out = await client.complete("Once upon a time", max_tokens=5, stop=["zzz"])
    assert reply.text and reply.message.role == "assistant"
    assert reply.usage is not None and reply.usage.completion_tokens is not None
    assert reply.usage.completion_tokens <= 5
    assert out.text and out.finish_reason in {"stop", "length"}
    assert server.stats.by_route["POST /v1/chat/completions"] == 1
    assert server.stats.by_route["POST /v1/completions"] == 1


async def test_extra_parameters_modes(emulator: Factory) -> None:
    server = await emulator()
    async with serverless(server, extra_parameters="error") as client:
        with pytest.raises(BadRequestError) as info:
            await client.chat([{"role": "user", "content": "x"}], safe_prompt=True)
        assert info.value.request_id
        dropped = await client.chat(
            [{"role": "user", "content": "x"}], safe_prompt=True, extra_parameters="drop"
        )
        assert dropped.text


async def test_auth_and_deployment_routing(emulator: Factory) -> None:
    server = await emulator(
        EmulatorConfig(
            api_key="right",
            deployments=[Deployment("blue", "llama"), Deployment("green", "dolly", traffic=0)],
        )
    )
    async with dedicated(server, api_key="wrong", formatter="llama") as client:
        with pytest.raises(AuthenticationError) as auth:
            await client.complete("x")
    assert auth.value.status_code == 401 and auth.value.request_id
    async with dedicated(
        server, api_key="right", formatter="dolly", deployment_name="green"
    ) as client:
        assert (await client.complete("x")).text
        with pytest.raises(NotFoundError):
            await client.complete("x", deployment_name="purple")
    assert server.stats.by_deployment["green"] == 1


# -- streaming ---------------------------------------------------------------------------------


async def test_streams_deliver_tokens_and_release_the_connection(emulator: Factory) -> None:
    server = await emulator(EmulatorConfig(api_key="k", faults=Faults(token_latency=0.01)))
    async with serverless(server) as client:
        async with client.stream(
            [{"role": "user", "content": "Tell me a story"}], max_tokens=20
        ) as stream:
            texts = [c.text async for c in stream]
        assert "".join(texts) == stream.text and stream.finish_reason in {"stop", "length"}
        full = await client.chat([{"role": "user", "content": "Tell me a story"}], max_tokens=20)
        assert stream.text == full.text

        # break
        async with client.stream("Once upon a time", max_tokens=50) as stream:
            async for _ in stream:
                break
        await _until_idle(server)

        # an exception in the consumer
        with pytest.raises(RuntimeError):
            async with client.stream("Once upon a time", max_tokens=50) as stream:
                async for _ in stream:
                    raise RuntimeError("consumer failed")
        await _until_idle(server)

        # cancellation
        async def consume() -> None:
            async with client.stream("Once upon a time", max_tokens=200) as s:
                async for _ in s:
                    pass

        with anyio.move_on_after(0.1):
            await consume()
        await _until_idle(server)


async def _until_idle(server: EmulatorServer) -> None:
    """The server sees every stream we left as closed: nothing is in flight."""
    with anyio.fail_after(3):
        while server.stats.in_flight:
            await asyncio.sleep(0.01)


async def test_stream_cut_midway_is_an_error(emulator: Factory) -> None:
    server = await emulator(EmulatorConfig(api_key="k", faults=Faults(stream_cut=1.0)))
    async with serverless(server) as client:
        with pytest.raises(StreamInterruptedError):
            async for _ in client.stream([{"role": "user", "content": "x"}], max_tokens=30):
                pass


# -- fault matrix ------------------------------------------------------------------------------


async def test_429_storm_with_retry_after_succeeds_after_waiting(emulator: Factory) -> None:
    server = await emulator(EmulatorConfig(api_key="k", faults=Faults(rate_limit_rps=20, burst=1)))
    async with serverless(server, max_retries=5) as client:
        results = [await client.complete(f"p{i}", max_tokens=2) for i in range(4)]
    assert all(r.text for r in results)
    assert server.stats.rate_limited >= 1
    assert sum(r.attempts for r in results) == 4 + server.stats.rate_limited


async def test_pending_request_limit(emulator: Factory) -> None:
    server = await emulator(
        EmulatorConfig(
            api_key="k",
            faults=Faults(latency=0.2, max_concurrent_requests_per_instance=1, instance_count=1),
        )
    )
    async with dedicated(server, max_retries=0) as client:
        outcomes = await asyncio.gather(
            *(client.complete(f"p{i}") for i in range(5)), return_exceptions=True
        )
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert len(errors) == 3 and all(isinstance(e, RateLimitError) for e in errors)
    assert all("pending" in e.body.lower() for e in errors)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("fault", "cls"),
    [
        ("error_503", ServerError),
        ("error_500", ServerError),
        ("error_424", ModelError),
        ("error_408", RequestTimeoutError),
    ],
)
async def test_error_statuses_are_retried_then_typed(
    emulator: Factory, fault: str, cls: type[Exception]
) -> None:
    faults = Faults(**{fault: 1.0})  # type: ignore[arg-type]
    server = await emulator(EmulatorConfig(api_key="k", faults=faults))
    async with dedicated(server, max_retries=2) as client:
        with pytest.raises(cls) as info:
            await client.complete("x")
    err: Any = info.value
    assert err.request_id
    if cls is ModelError:
        assert err.model_status_code is not None and err.attempts in {1, 3}
    else:
        assert err.attempts == 3 and server.stats.total_requests == 3


async def test_burst_of_503_then_success(emulator: Factory) -> None:
    server = await emulator(EmulatorConfig(api_key="k", seed=3, faults=Faults(error_503=0.5)))
    async with dedicated(server, max_retries=8) as client:
        results = [await client.complete(f"p{i}") for i in range(6)]
    assert all(r.text for r in results)
    assert sum(r.attempts for r in results) == server.stats.total_requests


async def test_latency_beyond_request_timeout_ms_is_408(emulator: Factory) -> None:
    server = await emulator(
        EmulatorConfig(api_key="k", faults=Faults(latency=0.3, request_timeout_ms=50))
    )
    async with dedicated(server, max_retries=0) as client:
        with pytest.raises(RequestTimeoutError):
            await client.complete("x")


async def test_a_stalled_server_hits_the_deadline(emulator: Factory) -> None:
    server = await emulator(
        EmulatorConfig(api_key="k", faults=Faults(latency=5, request_timeout_ms=60000))
    )
    async with dedicated(server, timeout=0.2, max_retries=5) as client:
        with anyio.fail_after(3):
            with pytest.raises(APITimeoutError):
                await client.complete("x", deadline=0.7)


async def test_malformed_json_and_vllm_faults(emulator: Factory) -> None:
    server = await emulator(EmulatorConfig(api_key="k", faults=Faults(malformed_json=1.0)))
    async with dedicated(server) as client:
        with pytest.raises(ResponseFormatError, match="not valid JSON"):
            await client.complete("x")
    server = await emulator(
        EmulatorConfig(api_key="k", family="vllm", faults=Faults(empty_200=1.0))
    )
    async with dedicated(server, formatter="vllm") as client:
        with pytest.raises(EmptyResponseError):
            await client.complete("x")
    server = await emulator(
        EmulatorConfig(api_key="k", family="vllm", faults=Faults(error_in_200=1.0))
    )
    async with dedicated(server, formatter="vllm", max_retries=1) as client:
        with pytest.raises(Exception) as info:
            await client.complete("x")
    assert getattr(info.value, "status_code", None) is not None


async def test_connection_refused() -> None:
    import socket

    from azml_client import APIConnectionError

    with socket.socket() as sock:  # a loopback port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with EndpointClient(
        endpoint_url=f"http://127.0.0.1:{port}/score",
        api_key="k",
        retry=RetryPolicy(max_retries=1, backoff_base=0.01),
    ) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.complete("x")
    assert info.value.attempts == 2


# -- bulk --------------------------------------------------------------------------------------


async def test_auto_concurrency_gets_far_fewer_429s_than_fixed(emulator: Factory) -> None:
    faults = Faults(rate_limit_rps=50, burst=5, latency=0.02)
    prompts = [f"p{i}" for i in range(150)]
    fixed_server = await emulator(EmulatorConfig(api_key="k", faults=faults))
    async with serverless(fixed_server, max_retries=3) as client:
        fixed = await client.batch(prompts, concurrency=64, max_tokens=2)
    auto_server = await emulator(EmulatorConfig(api_key="k", faults=faults))
    async with serverless(auto_server, max_retries=3) as client:
        auto = await client.batch(prompts, concurrency="auto", max_tokens=2)
    assert auto.stats.succeeded == 150, auto.stats
    assert auto.stats.rate_limited * 2 < fixed.stats.rate_limited, (auto.stats, fixed.stats)
    assert auto.stats.rate_limited <= 0.15 * auto.stats.sent
    assert auto_server.stats.rate_limited == auto.stats.rate_limited
    assert auto.stats.pacing_rps is not None and auto.stats.pacing_rps < 60


def _open_client_connections(port: int) -> int:
    """ESTABLISHED TCP connections from any local socket to ``port`` (Linux /proc)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as fh:
                lines = fh.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01":
                count += 1
    return count


async def test_cancelling_a_batch_closes_its_connections(emulator: Factory) -> None:
    # Answers take 10 s, so every request is still in flight when the batch is cancelled.
    server = await emulator(
        EmulatorConfig(api_key="k", faults=Faults(latency=10.0, request_timeout_ms=60000))
    )
    async with serverless(server) as client:
        with anyio.move_on_after(0.5):
            await client.batch([f"p{i}" for i in range(40)], concurrency=8, max_tokens=2)
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert all(t.done() for t in others)
        assert server.stats.max_in_flight == 8
        with anyio.fail_after(3):
            while _open_client_connections(server.port):
                await asyncio.sleep(0.01)
