"""Traces and metrics in OpenTelemetry's GenAI conventions, when ``opentelemetry-api`` is there.

One CLIENT span per logical call (complete, chat, stream, embed, invoke), covering its retries,
named ``"{gen_ai.operation.name} {gen_ai.request.model}"``; a bulk run's span is the parent of
its items' spans. Metrics: ``gen_ai.client.operation.duration``, ``gen_ai.client.token.usage``,
``gen_ai.client.operation.time_to_first_chunk`` with the conventions' bucket advice, and the
client's own retries, 429s and limiter state (reference/integrations.md "OpenTelemetry GenAI").

Cost: without ``opentelemetry-api`` installed nothing here is imported by a call. With the API
but no SDK configured (the global providers are OpenTelemetry's proxies) a call checks that
once and does nothing else; explicit ``tracer_provider=`` / ``meter_provider=`` always record.

Message content goes into spans only when asked: ``capture_content=True`` on the client, or
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` set to ``SPAN_ONLY``, ``SPAN_AND_EVENT``
or ``true``. Keys and tokens never do: nothing here reads headers, and error messages are the
client's already redacted ones.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._constants import ApiType

if TYPE_CHECKING:
    from opentelemetry.metrics import Histogram, Meter, MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = ["CallTrace", "Telemetry", "capture_from_env", "end_run_span", "make_telemetry"]

#: The instrumentation scope (the client's own name and version go in the tracer).
SCOPE = "azml_client"
#: Attribute names (the GenAI conventions moved packages: kept in one place here).
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
STREAMING = "gen_ai.request.stream"
TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
TOKEN_TYPE = "gen_ai.token.type"

#: ``gen_ai.provider.name``: the conventions' value for Azure AI inference clients on every
#: OpenAI-style route; Azure ML's own ``/score`` endpoints have none, so this one is ours.
PROVIDERS = {
    ApiType.DEDICATED: "azure.ai.ml",
    ApiType.SERVERLESS: "azure.ai.inference",
    ApiType.MODELS: "azure.ai.inference",
    ApiType.OPENAI_V1: "azure.ai.inference",
}
#: Model parameters recorded as ``gen_ai.request.*`` (first name found wins).
_REQUEST_PARAMS = {
    "gen_ai.request.max_tokens": ("max_tokens", "max_new_tokens", "max_completion_tokens"),
    "gen_ai.request.temperature": ("temperature",),
    "gen_ai.request.top_p": ("top_p",),
    "gen_ai.request.top_k": ("top_k",),
    "gen_ai.request.frequency_penalty": ("frequency_penalty",),
    "gen_ai.request.presence_penalty": ("presence_penalty",),
    "gen_ai.request.seed": ("seed",),
    "gen_ai.request.stop_sequences": ("stop",),
    "gen_ai.request.encoding_formats": ("encoding_format",),
    "gen_ai.embeddings.dimension.count": ("dimensions",),
}
#: Bucket advice of the conventions: seconds doubling from 0.01, tokens by powers of 4.
DURATION_BUCKETS = [0.01 * 2**i for i in range(14)]
TOKEN_BUCKETS = [4**i for i in range(14)]
_CAPTURE_ON = {"span_only", "span_and_event", "true", "1", "yes"}
#: Seconds a "no SDK configured" verdict stands before the global providers are asked again
#: (asking costs a few microseconds a call; an SDK set up later is picked up within this).
NO_SDK_RECHECK_S = 1.0
#: The attributes of a call's measurements (the conventions' metric attributes).
_METRIC_KEYS = frozenset({OPERATION, PROVIDER, REQUEST_MODEL, SERVER_ADDRESS, SERVER_PORT})


def capture_from_env(env: Mapping[str, str] | None = None) -> bool:
    """Whether ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` asks for content."""
    env = os.environ if env is None else env
    value = env.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "")
    return value.strip().lower() in _CAPTURE_ON


def make_telemetry(
    *,
    api_type: ApiType,
    endpoint_url: str,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    capture_content: bool | None = None,
) -> Telemetry | None:
    """The client's telemetry, or ``None`` when ``opentelemetry-api`` is not installed."""
    if tracer_provider is None and meter_provider is None and not _api_installed():
        return None
    return Telemetry(
        api_type=api_type,
        endpoint_url=endpoint_url,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        capture_content=capture_from_env() if capture_content is None else capture_content,
    )


_API_INSTALLED: bool | None = None


def _api_installed() -> bool:
    global _API_INSTALLED
    if _API_INSTALLED is None:
        _API_INSTALLED = importlib.util.find_spec("opentelemetry") is not None
    return _API_INSTALLED


class _Instruments:
    """The metric instruments of one meter."""

    def __init__(self, meter: Meter) -> None:
        self.duration: Histogram = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.tokens: Histogram = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.first_chunk: Histogram = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk of a streamed answer",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.retries = meter.create_counter(
            "azml.client.retries", unit="{retry}", description="Attempts retried, by reason"
        )
        self.rate_limited = meter.create_counter(
            "azml.client.rate_limited", unit="{response}", description="HTTP 429 answers"
        )


class Telemetry:
    """One client's tracer and instruments, found lazily (see the module docstring)."""

    def __init__(
        self,
        *,
        api_type: ApiType,
        endpoint_url: str,
        tracer_provider: TracerProvider | None,
        meter_provider: MeterProvider | None,
        capture_content: bool,
    ) -> None:
        import httpx

        url = httpx.URL(endpoint_url)
        self.capture_content = capture_content
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._tracer: Tracer | None = None
        self._instruments: _Instruments | None = None
        self._meter: Meter | None = None
        self._gauges: list[Any] = []
        self._idle_until = 0.0
        port = url.port or (443 if url.scheme == "https" else 80)
        self.base: dict[str, Any] = {
            PROVIDER: PROVIDERS[api_type],
            SERVER_ADDRESS: url.host,
            SERVER_PORT: port,
        }

    # -- providers: explicit ones always record, global ones once configured -----------------

    def tracer(self) -> Tracer | None:
        tracer = self._tracer
        if tracer is not None:
            return tracer
        from opentelemetry import trace

        provider = self._tracer_provider
        if provider is None:
            provider = trace.get_tracer_provider()
            if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
                return None  # no SDK: record nothing, cheaply; asked again next call
        from ._version import __version__

        self._tracer = provider.get_tracer(SCOPE, __version__)
        return self._tracer

    def instruments(self) -> _Instruments | None:
        instruments = self._instruments
        if instruments is not None:
            return instruments
        from opentelemetry import metrics

        provider = self._meter_provider
        if provider is None:
            provider = metrics.get_meter_provider()
            if type(provider).__name__ in ("_ProxyMeterProvider", "NoOpMeterProvider"):
                return None
        from ._version import __version__

        self._meter = provider.get_meter(SCOPE, __version__)
        self._instruments = _Instruments(self._meter)
        return self._instruments

    def watch_budget(self, snapshot: Callable[[], Mapping[str, Any]]) -> None:
        """Observable gauges of a bulk rate budget: its learned rate and concurrency."""
        if self._gauges or self.instruments() is None or self._meter is None:
            return
        from opentelemetry.metrics import CallbackOptions, Observation

        def observe(name: str) -> Callable[[CallbackOptions], list[Observation]]:
            def callback(_options: CallbackOptions) -> list[Observation]:
                value = snapshot().get(name)
                if not isinstance(value, int | float):
                    return []
                return [Observation(value, dict(self.base))]

            return callback

        self._gauges = [
            self._meter.create_observable_gauge(
                "azml.limiter.rate", [observe("rate")], unit="{request}/s",
                description="The adaptive limiter's current pacing rate",
            ),
            self._meter.create_observable_gauge(
                "azml.limiter.concurrency", [observe("concurrency")], unit="{request}",
                description="The adaptive limiter's current concurrency",
            ),
        ]  # fmt: skip

    # -- calls --------------------------------------------------------------------------------

    def start(
        self,
        operation: str,
        model: str | None,
        params: Mapping[str, Any] | None = None,
        *,
        stream: bool = False,
        messages: Any = None,
        parent: Span | None = None,
    ) -> CallTrace | None:
        """Start tracing one call; ``None`` when nothing records."""
        tracer = self._tracer
        instruments = self._instruments
        if tracer is None or instruments is None:
            # A global provider not configured (yet): asked again at most once a second.
            now = time.monotonic()
            if now >= self._idle_until:
                tracer = self.tracer()
                instruments = self.instruments()
                if tracer is None or instruments is None:
                    self._idle_until = now + NO_SDK_RECHECK_S
            if tracer is None and instruments is None:
                return None
        attributes: dict[str, Any] = {**self.base, OPERATION: operation}
        if model:
            attributes[REQUEST_MODEL] = model
        if params:
            _request_attributes(attributes, params)
        if stream:
            attributes[STREAMING] = True
        span = None
        if tracer is not None:
            from opentelemetry import trace

            context = trace.set_span_in_context(parent) if parent is not None else None
            name = f"{operation} {model}" if model else operation
            span = tracer.start_span(
                name, context=context, kind=trace.SpanKind.CLIENT, attributes=attributes
            )
            if self.capture_content and messages is not None and span.is_recording():
                span.set_attribute(INPUT_MESSAGES, _dump(messages))
        return CallTrace(self, span, instruments, attributes)

    def start_run(self, name: str, model: str | None) -> Span | None:
        """The parent span of a bulk run (its items' spans are its children)."""
        tracer = self.tracer()
        if tracer is None:
            return None
        from opentelemetry import trace

        attributes: dict[str, Any] = {**self.base, "azml.operation": name}
        if model:
            attributes[REQUEST_MODEL] = model
        return tracer.start_span(name, kind=trace.SpanKind.INTERNAL, attributes=attributes)


def end_run_span(span: Span) -> Callable[[Any, BaseException | None], None]:
    """What ends a bulk run's span: its totals as ``azml.batch.*`` attributes."""

    def end(stats: Any, error: BaseException | None) -> None:
        totals = stats.as_dict()
        attributes = {
            f"azml.batch.{name}": value
            for name, value in totals.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }
        span.set_attributes(attributes)
        if error is not None and not isinstance(error, GeneratorExit):
            from opentelemetry.trace import Status, StatusCode

            span.set_attribute(ERROR_TYPE, type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, str(error)[:500]))
        span.end()

    return end


def _request_attributes(attributes: dict[str, Any], params: Mapping[str, Any]) -> None:
    for attribute, names in _REQUEST_PARAMS.items():
        for name in names:
            value = params.get(name)
            if value is None:
                continue
            if attribute.endswith(("stop_sequences", "encoding_formats")):
                value = [value] if isinstance(value, str) else list(value)
                if all(isinstance(v, str) for v in value):
                    attributes[attribute] = value
            elif isinstance(value, int | float) and not isinstance(value, bool):
                attributes[attribute] = value
            break


def _dump(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


class CallTrace:
    """One call's span and measurements; every method is safe to call once the call ended."""

    __slots__ = (
        "_attributes",
        "_ended",
        "_first",
        "_instruments",
        "_metric",
        "_owner",
        "_started",
        "span",
    )

    def __init__(
        self,
        owner: Telemetry,
        span: Span | None,
        instruments: _Instruments | None,
        attributes: dict[str, Any],
    ) -> None:
        self._owner = owner
        self.span = span
        self._instruments = instruments
        self._attributes = attributes
        #: The attributes every measurement of this call carries.
        self._metric = {k: v for k, v in attributes.items() if k in _METRIC_KEYS}
        self._started = time.monotonic()
        self._first: float | None = None
        self._ended = False

    def retried(self, reason: str, *, rate_limited: bool) -> None:
        """An attempt failed and will be retried (``reason``: the status or the error type)."""
        instruments = self._instruments
        metric_attributes = self._metric
        if instruments is not None:
            instruments.retries.add(1, {**metric_attributes, "azml.retry.reason": reason})
            if rate_limited:
                instruments.rate_limited.add(1, metric_attributes)
        if self.span is not None:
            self.span.add_event("retry", {"azml.retry.reason": reason})

    def first_chunk(self) -> None:
        """A stream's first chunk arrived (recorded once)."""
        if self._first is not None or self._ended:
            return
        self._first = time.monotonic() - self._started
        if self.span is not None:
            self.span.set_attribute(TIME_TO_FIRST_CHUNK, self._first)
        if self._instruments is not None:
            self._instruments.first_chunk.record(self._first, self._metric_attributes())

    def _metric_attributes(self, **extra: Any) -> dict[str, Any]:
        return {**self._metric, **extra} if extra else self._metric

    def succeeded(
        self,
        *,
        response_id: str | None = None,
        response_model: str | None = None,
        finish_reasons: Sequence[str] = (),
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        attempts: int = 1,
        request_id: str | None = None,
        client_request_id: str | None = None,
        output: Any = None,
        complete: bool = True,
    ) -> None:
        """End the call with its answer (``complete=False``: a stream its consumer left, or
        closed, before the end; what arrived is recorded, not as an error)."""
        if self._ended:
            return
        self._ended = True
        span = self.span
        if span is not None and span.is_recording():
            values: dict[str, Any | None] = {
                RESPONSE_ID: response_id,
                RESPONSE_MODEL: response_model,
                FINISH_REASONS: list(finish_reasons) or None,
                INPUT_TOKENS: input_tokens,
                OUTPUT_TOKENS: output_tokens,
                "azml.attempts": attempts,
                "azml.request_id": request_id,
                "azml.client_request_id": client_request_id,
                "azml.stream.complete": None if complete else False,
            }
            if self._owner.capture_content and output is not None:
                values[OUTPUT_MESSAGES] = _dump(output)
            span.set_attributes({k: v for k, v in values.items() if v is not None})
            span.end()
        elif span is not None:
            span.end()
        instruments = self._instruments
        if instruments is not None:
            extra = {RESPONSE_MODEL: response_model} if response_model else {}
            attributes = self._metric_attributes(**extra)
            instruments.duration.record(time.monotonic() - self._started, attributes)
            if input_tokens is not None:
                instruments.tokens.record(input_tokens, {**attributes, TOKEN_TYPE: "input"})
            if output_tokens is not None:
                instruments.tokens.record(output_tokens, {**attributes, TOKEN_TYPE: "output"})

    def succeeded_with(self, result: Any, *, output: Any = None, complete: bool = True) -> None:
        """End the call with what a result (a completion, embeddings, a stream) says of it:
        whichever of ``id``, ``model``, ``finish_reason``, ``usage``, ``attempts`` and the
        request ids it has."""
        usage = getattr(result, "usage", None)
        finish_reason = getattr(result, "finish_reason", None)
        self.succeeded(
            response_id=getattr(result, "id", None),
            response_model=getattr(result, "model", None),
            finish_reasons=[finish_reason] if finish_reason else (),
            input_tokens=usage.prompt_tokens if usage else None,
            output_tokens=usage.completion_tokens if usage else None,
            attempts=getattr(result, "attempts", 1),
            request_id=getattr(result, "request_id", None),
            client_request_id=getattr(result, "client_request_id", None),
            output=output,
            complete=complete,
        )

    def failed(self, error: BaseException, *, error_type: str | None = None) -> None:
        """End the call with its error (``error.type``: the HTTP status, else the class)."""
        if self._ended:
            return
        self._ended = True
        if error_type is None:
            status = getattr(error, "status_code", None)
            error_type = str(status) if isinstance(status, int) else type(error).__name__
        span = self.span
        if span is not None:
            from opentelemetry.trace import Status, StatusCode

            if span.is_recording():
                attributes: dict[str, Any] = {ERROR_TYPE: error_type}
                for name, key in (
                    ("attempts", "azml.attempts"),
                    ("request_id", "azml.request_id"),
                    ("client_request_id", "azml.client_request_id"),
                ):
                    value = getattr(error, name, None)
                    if isinstance(value, int | str):
                        attributes[key] = value
                span.set_attributes(attributes)
                # The message is the client's, already scrubbed of keys and tokens.
                span.set_status(Status(StatusCode.ERROR, str(error)[:500]))
            span.end()
        if self._instruments is not None:
            self._instruments.duration.record(
                time.monotonic() - self._started,
                self._metric_attributes(**{ERROR_TYPE: error_type}),
            )

    def cancelled(self) -> None:
        """End a call that was cancelled or abandoned (a stream left early)."""
        self.failed(Exception("the call was cancelled"), error_type="cancelled")
