"""Traces and metrics with OpenTelemetry's in-memory exporter and reader, passed explicitly
(never the global providers): attributes per call kind and endpoint kind, one span across
retries, streams ended however they end, content capture, and no key anywhere."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from azml_client import (
    ApiType,
    BadRequestError,
    EndpointClient,
    RateLimitError,
)
from azml_client._telemetry import Telemetry, capture_from_env

from .conftest import CANARY_KEY, DEDICATED_URL, SERVERLESS_URL, no_sleep

V1_BASE = "https://res.openai.azure.com/openai/v1"


class Otel:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def metrics(self) -> dict[str, list[Any]]:
        data = self.reader.get_metrics_data()
        out: dict[str, list[Any]] = {}
        if data is None:
            return out
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    out.setdefault(metric.name, []).extend(metric.data.data_points)
        return out

    def client(self, url: str = SERVERLESS_URL, **kwargs: Any) -> EndpointClient:
        kwargs.setdefault("api_key", CANARY_KEY)
        kwargs.setdefault("sleep", no_sleep)
        return EndpointClient(
            endpoint_url=url,
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            **kwargs,
        )


@pytest.fixture
def otel() -> Iterator[Otel]:
    state = Otel()
    yield state
    state.tracer_provider.shutdown()
    state.meter_provider.shutdown()


CHAT = {
    "id": "chatcmpl-9",
    "model": "llama-3-70b",
    "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hi!"}}
    ],
    "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
}


def everything_recorded(otel: Otel) -> str:
    """Every span attribute, event and metric point as text (to look for a secret)."""
    parts = []
    for span in otel.spans():
        parts.append(span.to_json())
    for points in otel.metrics().values():
        parts.extend(repr(p) for p in points)
    return "\n".join(parts)


@respx.mock
async def test_a_chat_span_has_the_genai_attributes(otel: Otel) -> None:
    respx.post(SERVERLESS_URL).mock(
        return_value=httpx.Response(200, json=CHAT, headers={"x-request-id": "srv-1"})
    )
    async with otel.client(model_kwargs={"temperature": 0.2}) as client:
        await client.chat([{"role": "user", "content": "Hi"}], max_tokens=7, stop=["\n"], seed=3)
    (span,) = otel.spans()
    attributes = dict(span.attributes or {})
    assert span.kind is SpanKind.CLIENT
    assert span.name == "chat"  # no model named: the operation alone
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "azure.ai.inference"
    assert attributes["gen_ai.request.max_tokens"] == 7
    assert attributes["gen_ai.request.temperature"] == 0.2
    assert attributes["gen_ai.request.seed"] == 3
    assert attributes["gen_ai.request.stop_sequences"] == ("\n",)
    assert attributes["gen_ai.response.id"] == "chatcmpl-9"
    assert attributes["gen_ai.response.model"] == "llama-3-70b"
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["gen_ai.usage.input_tokens"] == 11
    assert attributes["gen_ai.usage.output_tokens"] == 3
    assert attributes["server.address"] == "llama-serverless.eastus2.inference.ai.azure.com"
    assert attributes["server.port"] == 443
    assert attributes["azml.request_id"] == "srv-1"
    assert attributes["azml.attempts"] == 1
    assert "gen_ai.input.messages" not in attributes  # content is off by default
    assert "gen_ai.output.messages" not in attributes
    metrics = otel.metrics()
    (duration,) = metrics["gen_ai.client.operation.duration"]
    assert duration.count == 1
    assert duration.attributes["gen_ai.operation.name"] == "chat"
    assert duration.attributes["gen_ai.response.model"] == "llama-3-70b"
    assert duration.explicit_bounds[:3] == (0.01, 0.02, 0.04)
    tokens = {
        p.attributes["gen_ai.token.type"]: p.sum for p in metrics["gen_ai.client.token.usage"]
    }
    assert tokens == {"input": 11, "output": 3}


@respx.mock
async def test_each_kind_names_its_operation_model_and_provider(otel: Otel) -> None:
    respx.post(f"{V1_BASE}/completions").mock(
        return_value=httpx.Response(200, json={"choices": [{"index": 0, "text": "x"}]})
    )
    respx.post(f"{V1_BASE}/embeddings").mock(
        return_value=httpx.Response(200, json={"data": [{"index": 0, "embedding": [1.0]}]})
    )
    respx.post(DEDICATED_URL).mock(return_value=httpx.Response(200, json={"output": "y"}))
    async with otel.client(V1_BASE, model="gpt-4o") as client:
        await client.complete("go")
        await client.embed("text", model="te-3", dimensions=1)
    async with otel.client(DEDICATED_URL, deployment_name="blue") as client:
        await client.invoke({"input_data": ["x"]})
    names = [(s.name, dict(s.attributes or {})) for s in otel.spans()]
    assert [n for n, _ in names] == [
        "text_completion gpt-4o",
        "embeddings te-3",
        "generate_content blue",
    ]
    assert names[1][1]["gen_ai.embeddings.dimension.count"] == 1
    assert names[2][1]["gen_ai.provider.name"] == "azure.ai.ml"
    assert names[0][1]["gen_ai.provider.name"] == "azure.ai.inference"


@respx.mock
async def test_one_span_covers_the_retries(otel: Otel) -> None:
    route = respx.post(SERVERLESS_URL).mock(
        side_effect=[
            httpx.Response(429, json={"error": "slow down"}, headers={"retry-after-ms": "5"}),
            httpx.Response(503, json={"error": "busy"}),
            httpx.Response(200, json=CHAT),
        ]
    )
    async with otel.client(max_retries=3) as client:
        await client.chat([{"role": "user", "content": "Hi"}])
    assert route.call_count == 3
    (span,) = otel.spans()
    assert span.attributes is not None and span.attributes["azml.attempts"] == 3
    assert [e.attributes["azml.retry.reason"] for e in span.events if e.attributes] == [
        "429",
        "503",
    ]
    metrics = otel.metrics()
    reasons = {p.attributes["azml.retry.reason"]: p.value for p in metrics["azml.client.retries"]}
    assert reasons == {"429": 1, "503": 1}
    assert [p.value for p in metrics["azml.client.rate_limited"]] == [1]


@respx.mock
async def test_a_failed_call_sets_error_type_and_never_the_key(otel: Otel) -> None:
    # a gateway that echoes the request's key back in its error body
    respx.post(SERVERLESS_URL).mock(
        return_value=httpx.Response(400, json={"error": f"bad request, key {CANARY_KEY}"})
    )
    respx.post(SERVERLESS_URL.replace("chat/completions", "completions")).mock(
        return_value=httpx.Response(429, json={"error": "limit"}, headers={"retry-after": "1"})
    )
    async with otel.client(max_retries=0, capture_content=True) as client:
        with pytest.raises(BadRequestError):
            await client.chat([{"role": "user", "content": "Hi"}])
        with pytest.raises(RateLimitError):
            await client.complete("x")
    first, second = otel.spans()
    assert first.status.status_code is StatusCode.ERROR
    assert first.attributes is not None and first.attributes["error.type"] == "400"
    assert second.attributes is not None and second.attributes["error.type"] == "429"
    durations = otel.metrics()["gen_ai.client.operation.duration"]
    assert sorted(p.attributes["error.type"] for p in durations) == ["400", "429"]
    assert CANARY_KEY not in everything_recorded(otel)


@respx.mock
async def test_content_is_captured_only_when_asked(
    otel: Otel, monkeypatch: pytest.MonkeyPatch
) -> None:
    respx.post(SERVERLESS_URL).mock(return_value=httpx.Response(200, json=CHAT))
    messages = [{"role": "user", "content": "secret plans"}]
    async with otel.client(capture_content=True) as client:
        await client.chat(messages)
    attributes = dict(otel.spans()[0].attributes or {})
    assert json.loads(str(attributes["gen_ai.input.messages"])) == messages
    assert json.loads(str(attributes["gen_ai.output.messages"])) == {
        "role": "assistant",
        "content": "Hi!",
    }
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    assert capture_from_env()
    async with otel.client() as client:  # the variable switches it on
        await client.chat(messages)
    assert "gen_ai.input.messages" in dict(otel.spans()[1].attributes or {})
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "NO_CONTENT")
    assert not capture_from_env()


@respx.mock
async def test_a_bulk_run_is_the_parent_of_its_items(otel: Otel) -> None:
    respx.post(SERVERLESS_URL).mock(return_value=httpx.Response(200, json=CHAT))
    async with otel.client() as client:
        results = await client.batch([[{"role": "user", "content": str(i)}] for i in range(3)])
    assert results.stats.succeeded == 3
    spans = otel.spans()
    (run,) = [s for s in spans if s.name == "batch"]
    items = [s for s in spans if s.name == "chat"]
    assert len(items) == 3
    assert all(s.parent is not None and s.parent.span_id == run.context.span_id for s in items)
    assert run.attributes is not None
    assert run.attributes["azml.batch.succeeded"] == 3
    assert run.attributes["azml.batch.tokens_in"] == 33
    gauges = otel.metrics()
    assert [p.value for p in gauges["azml.limiter.concurrency"]] == [client.budget.concurrency]
    assert "azml.limiter.rate" not in gauges  # no rate learnt yet (no 429): nothing to report


async def test_nothing_records_without_an_sdk(caplog: pytest.LogCaptureFixture) -> None:
    """opentelemetry-api is installed here, but no provider was configured: no span objects."""
    from opentelemetry import trace

    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=CHAT))
    client = EndpointClient(endpoint_url=SERVERLESS_URL, api_key=CANARY_KEY, transport=transport)
    async with client:
        telemetry = client._telemetry
        assert telemetry is not None
        assert telemetry.start("chat", None) is None
        await client.chat([{"role": "user", "content": "Hi"}])


def on_a_clock(
    monkeypatch: pytest.MonkeyPatch, clock: list[float], tracer_provider: Any = None
) -> Telemetry:
    """A serverless client's Telemetry whose monotonic clock reads ``clock[0]``."""
    monkeypatch.setattr("azml_client._telemetry.time.monotonic", lambda: clock[0])
    return Telemetry(
        api_type=ApiType.SERVERLESS,
        endpoint_url=SERVERLESS_URL,
        tracer_provider=tracer_provider,
        meter_provider=None,
        capture_content=False,
    )


def test_a_global_sdk_set_up_later_is_picked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """The "no SDK" verdict is cached (a few microseconds a call), then asked again."""
    from opentelemetry import metrics, trace

    from azml_client import _telemetry

    clock = [100.0]
    telemetry = on_a_clock(monkeypatch, clock)
    asked: list[str] = []
    real_get = trace.get_tracer_provider

    def get_tracer_provider() -> Any:
        asked.append("trace")
        return real_get()

    monkeypatch.setattr(trace, "get_tracer_provider", get_tracer_provider)
    assert telemetry.start("chat", "m") is None
    assert telemetry.start("chat", "m") is None
    assert asked == ["trace"]  # the second call trusted the verdict

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    monkeypatch.setattr(metrics, "get_meter_provider", lambda: MeterProvider())
    clock[0] += _telemetry.NO_SDK_RECHECK_S
    call = telemetry.start("chat", "m")
    assert call is not None
    call.succeeded()
    assert [span.name for span in exporter.get_finished_spans()] == ["chat m"]


def test_a_global_meter_set_up_later_joins_an_explicit_tracer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry import metrics

    from azml_client import _telemetry

    clock = [100.0]
    telemetry = on_a_clock(monkeypatch, clock, tracer_provider=TracerProvider())
    first = telemetry.start("chat", "m")
    assert first is not None and first._instruments is None  # no meter provider yet
    reader = InMemoryMetricReader()
    monkeypatch.setattr(metrics, "get_meter_provider", lambda: MeterProvider([reader]))
    assert telemetry.start("chat", "m")._instruments is None  # type: ignore[union-attr]
    clock[0] += _telemetry.NO_SDK_RECHECK_S
    later = telemetry.start("chat", "m")
    assert later is not None and later._instruments is not None
    later.succeeded()
    data = reader.get_metrics_data()
    assert data is not None
    names = [m.name for r in data.resource_metrics for sc in r.scope_metrics for m in sc.metrics]
    assert names == ["gen_ai.client.operation.duration"]


async def test_logs_say_nothing_by_default_and_never_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers = iter([httpx.Response(503, json={"error": "busy"}), httpx.Response(200, json=CHAT)])
    transport = httpx.MockTransport(lambda request: next(answers))
    client = EndpointClient(
        endpoint_url=SERVERLESS_URL, api_key=CANARY_KEY, transport=transport, sleep=no_sleep
    )
    with caplog.at_level(logging.DEBUG, logger="azml_client"):
        async with client:
            await client.chat([{"role": "user", "content": "Hi"}])
    messages = [r.getMessage() for r in caplog.records]
    assert any("-> 503" in m and "attempt 1" in m for m in messages)
    assert any(m.startswith("retrying") and "HTTP 503" in m for m in messages)
    assert all(CANARY_KEY not in m for m in messages)
    assert logging.getLogger("azml_client").handlers  # a NullHandler: silent unless configured


@pytest.mark.parametrize("ending", ["done", "break", "error"])
@respx.mock
async def test_a_stream_span_ends_however_the_stream_ends(otel: Otel, ending: str) -> None:
    events: list[dict[str, Any]] = [
        {"choices": [{"index": 0, "delta": {"content": "a"}}]},
        {"choices": [{"index": 0, "delta": {"content": "b"}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}},
    ]
    named = {"id": "chatcmpl-7", "model": "phi-4"}
    body = "".join(f"data: {json.dumps({**named, **e})}\n\n" for e in events)
    if ending != "error":
        body += "data: [DONE]\n\n"
    respx.post(SERVERLESS_URL).mock(
        return_value=httpx.Response(
            200, content=body.encode(), headers={"content-type": "text/event-stream"}
        )
    )
    async with otel.client(max_retries=0) as client:
        stream = client.stream([{"role": "user", "content": "Hi"}])
        try:
            async with stream:
                async for _chunk in stream:
                    if ending == "break":
                        break
        except Exception as exc:
            assert ending == "error", exc
    (span,) = otel.spans()
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.request.stream"] is True
    assert isinstance(attributes["gen_ai.response.time_to_first_chunk"], float)
    if ending != "error":  # the first chunk named the answer
        assert attributes["gen_ai.response.id"] == "chatcmpl-7"
        assert attributes["gen_ai.response.model"] == "phi-4"
    if ending == "done":
        assert attributes["gen_ai.usage.output_tokens"] == 2
        assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
        assert span.status.status_code is not StatusCode.ERROR
    elif ending == "break":
        assert attributes["azml.stream.complete"] is False
        assert span.status.status_code is not StatusCode.ERROR
    else:
        assert attributes["error.type"] == "StreamInterruptedError"
        assert span.status.status_code is StatusCode.ERROR
    assert len(otel.metrics()["gen_ai.client.operation.time_to_first_chunk"]) == 1


@respx.mock
async def test_a_cancelled_stream_ends_its_span(otel: Otel) -> None:
    started = asyncio.Event()

    async def slow_body() -> Any:
        yield b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
        started.set()
        await asyncio.sleep(30)

    respx.post(SERVERLESS_URL).mock(
        return_value=httpx.Response(
            200, content=slow_body(), headers={"content-type": "text/event-stream"}
        )
    )
    async with otel.client(max_retries=0) as client:

        async def consume() -> None:
            async with client.stream([{"role": "user", "content": "Hi"}]) as stream:
                async for _chunk in stream:
                    pass

        task = asyncio.create_task(consume())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    (span,) = otel.spans()
    assert dict(span.attributes or {})["error.type"] == "cancelled"
