"""Streams as objects: ``AsyncStream`` is an async iterator and an async context manager.

The connection is opened (with retries, through the client's one driver) on ``__aenter__`` or
on the first iteration, and is released however the consumer stops: the end of the stream,
``break``, cancellation or an exception in the consumer's loop (the iterator is an async
generator whose ``finally`` closes the response; ``async with`` makes the release immediate
rather than left to the garbage collector, so prefer it).

Time: each wait for a chunk is bounded by ``idle_timeout`` (the transport's read timeout) and,
when the call has a deadline, by what is left of it. Whatever the server sends, the consumer
gets chunks or an :class:`~azml_client.AzmlError`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import httpx

from . import _json
from ._exceptions import (
    APIConnectionError,
    APITimeoutError,
    AzmlError,
    ResponseFormatError,
    StreamInterruptedError,
    reported_error,
)
from ._http import Exchange
from ._http._body import body_chunks, close_at_once, read_body
from ._http._errors import TRANSPORT_ERRORS, transport_error
from ._redact import Redactor, scrub
from ._sse import ServerSentEvent, SSEDecoder
from ._telemetry import CallTrace
from ._tools import Structured
from ._types import StreamChunk, ToolCall, Usage, tool_calls_from, usage_from
from .formatters._base import ContentFormatterBase, FormatRequest, ParsedOutput, decode_response

__all__ = ["AsyncStream"]

_raw_decode = json.JSONDecoder().raw_decode


def _chunk_builder() -> Callable[[dict[str, Any]], StreamChunk]:
    """How :meth:`AsyncStream._chunk` builds a :class:`StreamChunk` from values it checked.

    ``StreamChunk.model_validate`` would validate them again (about half of the client's work
    per token); ``model_construct`` skips that but costs more still. So the instance is made
    as ``model_construct`` makes it (its ``__dict__``, the fields set, no extras, no private
    attributes), after checking once, here, that this gives exactly what ``model_validate``
    gives: the same fields, no validators or ``model_post_init``, equal instances. If any of
    that does not hold (another pydantic, a changed model), chunks are validated.
    """
    validate = StreamChunk.model_validate
    new = object.__new__
    set_attribute = object.__setattr__

    def construct(values: dict[str, Any]) -> StreamChunk:
        chunk = new(StreamChunk)
        set_attribute(chunk, "__dict__", values)
        set_attribute(chunk, "__pydantic_fields_set__", set(values))
        set_attribute(chunk, "__pydantic_extra__", {})
        set_attribute(chunk, "__pydantic_private__", None)
        return chunk

    def sample() -> dict[str, Any]:
        return {
            "text": "x",
            "finish_reason": "stop",
            "usage": Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3),
            "index": 1,
            "delta": {"content": "x"},
            "raw": {"choices": []},
        }

    try:
        decorators = StreamChunk.__pydantic_decorators__
        hooks = (
            decorators.validators,
            decorators.field_validators,
            decorators.root_validators,
            decorators.model_validators,
            StreamChunk.__private_attributes__,
        )
        if (
            set(StreamChunk.model_fields) != set(sample())
            or any(hooks)
            or StreamChunk.__pydantic_post_init__ is not None
            or StreamChunk.model_config.get("extra") != "allow"
        ):
            return validate
        made, validated = construct(sample()), validate(sample())
        same = (
            made == validated
            and made.__dict__ == validated.__dict__
            and made.model_fields_set == validated.model_fields_set
            and made.__pydantic_extra__ == validated.__pydantic_extra__
            and made.model_dump() == validated.model_dump()
            and repr(made) == repr(validated)
        )
    except Exception:  # a pydantic without these attributes: validate
        return validate
    return construct if same else validate


_checked_chunk = _chunk_builder()


def _event_json(text: str) -> Any:
    """:func:`._json.loads` of one event's data, a third cheaper where the data is exactly one
    JSON value (what servers send): ``raw_decode`` skips ``loads``' whitespace passes. Anything
    else (spaces around it, a BOM, bad JSON) goes through ``_json.loads`` for its answer."""
    try:
        data, end = _raw_decode(text)
    except (ValueError, RecursionError):
        return _json.loads(text)
    return data if end == len(text) else _json.loads(text)


Opener = Callable[[], Awaitable[Exchange]]


class AsyncStream:
    """A streamed answer. Iterate it for :class:`StreamChunk` objects::

    async with client.stream("Tell me a story") as stream:
        async for chunk in stream:
            print(chunk.text, end="")
    print(stream.text, stream.finish_reason, stream.request_id)
    """

    def __init__(
        self,
        opener: Opener,
        formatter: ContentFormatterBase,
        request: FormatRequest,
        *,
        idle_timeout: float,
        url: str,
        deadline_at: float | None = None,
        redactor: Redactor | None = None,
        structured: Structured | None = None,
        trace: CallTrace | None = None,
    ) -> None:
        self._opener = opener
        #: The call's span (``None``: nothing records); ended however the stream ends.
        self._trace = trace
        #: Whether the traced iterator is inside a step (between the consumer's ``__anext__``
        #: and the next ``yield``); an ``aclose()`` then comes from the stream's own ending.
        self._stepping = False
        self._formatter = formatter
        self._request = request
        self._idle_timeout = idle_timeout
        self._url = url
        self._deadline_at = deadline_at
        # The client's own redactor even while it knows no secret yet (a token is added on
        # the first attempt): ``redactor or ...`` would swap an empty one for a fresh copy.
        self._redactor = Redactor() if redactor is None else redactor
        self._response: httpx.Response | None = None
        self._exchange: Exchange | None = None
        self._parts: list[str] = []
        self._structured = structured
        #: Tool-call deltas by their index: [id, type, name, argument pieces].
        self._calls: dict[int, list[Any]] = {}
        self._started = False
        self._closed = False
        #: Set when the stream ended: the finish reason of its last chunk.
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        #: The answer's id and the model that wrote it, as the first chunk that names them
        #: says (OpenAI-style streams; ``None`` where the chunks carry none).
        self.id: str | None = None
        self.model: str | None = None

    # -- what the caller reads ------------------------------------------------------------

    @property
    def text(self) -> str:
        """Everything received so far, joined."""
        return "".join(self._parts)

    @property
    def tool_calls(self) -> list[ToolCall] | None:
        """The tool calls assembled from the deltas received so far (complete after the last
        chunk); ``None`` when the model called none."""
        if not self._calls:
            return None
        calls = [
            {"id": ident, "type": kind, "function": {"name": name, "arguments": "".join(args)}}
            for _, (ident, kind, name, args) in sorted(self._calls.items())
        ]
        return tool_calls_from(calls)

    @property
    def parsed(self) -> Any:
        """The decoded answer of a ``response_format`` stream (after the last chunk): a dict or
        the pydantic model's instance; a :class:`StructuredOutputError` when it does not fit."""
        if self._structured is None or self._calls:
            return None
        return self._structured.parse(
            self.text, self.finish_reason, self.request_id, usage=self.usage
        )

    @property
    def request_id(self) -> str | None:
        return self._exchange.request_id if self._exchange else None

    @property
    def client_request_id(self) -> str | None:
        return self._exchange.client_request_id if self._exchange else None

    @property
    def attempts(self) -> int:
        return self._exchange.attempts if self._exchange else 0

    @property
    def response(self) -> httpx.Response | None:
        return self._response

    # -- lifecycle ------------------------------------------------------------------------

    async def _open(self) -> None:
        if self._closed:
            raise APIConnectionError("this stream is closed", url=self._url)
        if self._response is None:
            if self._trace is None:
                self._exchange = await self._opener()
            else:
                try:
                    self._exchange = await self._opener()
                except Exception as exc:
                    self._trace.failed(exc)
                    raise
                except BaseException:
                    self._trace.cancelled()
                    raise
            self._response = self._exchange.response

    async def __aenter__(self) -> AsyncStream:
        await self._open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release the connection. Idempotent; safe in ``finally`` and under cancellation."""
        if self._trace is not None and not self._stepping:
            self._trace_end(complete=False)  # the consumer closed it before its end
        self._closed = True
        response, self._response = self._response, None
        if response is not None and not close_at_once(response):
            with anyio.CancelScope(shield=True):
                await response.aclose()

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        if self._started:
            raise RuntimeError("a stream can be iterated once")
        self._started = True
        if self._trace is None:
            return self._iterate()
        return self._traced(self._iterate())

    async def _traced(self, chunks: AsyncIterator[StreamChunk]) -> AsyncIterator[StreamChunk]:
        """``chunks`` inside the stream's span: its first chunk timed, its end recorded
        whatever ends it (the last chunk, ``break``, cancellation, an error)."""
        trace = self._trace
        assert trace is not None
        complete = False
        self._stepping = True
        try:
            async for chunk in chunks:
                trace.first_chunk()
                self._stepping = False
                yield chunk
                self._stepping = True
            complete = True
        except GeneratorExit:  # the consumer left the loop
            await chunks.aclose()  # type: ignore[attr-defined]
            raise
        except Exception as exc:
            trace.failed(exc)
            raise
        except BaseException:
            trace.cancelled()
            raise
        finally:
            self._trace_end(complete=complete)

    def _trace_end(self, *, complete: bool) -> None:
        """End the span with what the stream received (a no-op once it ended)."""
        trace = self._trace
        if trace is None:
            return
        trace.succeeded_with(self, output=self.text, complete=complete)

    # -- decoding -------------------------------------------------------------------------

    async def _iterate(self) -> AsyncIterator[StreamChunk]:
        try:
            await self._open()
            response = self._response
            assert response is not None
            # Whatever the server sent, an AzmlError or a chunk comes out: a parser that trips
            # on the server's data is caught once, around the loop (not a wrapper per chunk;
            # the consumer's own exceptions never reach this generator).
            try:
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    yield await self._whole_answer(response)
                    return
                # The events loop is written out here rather than in a generator of its own:
                # it runs once per token, and each generator layer costs a resumption.
                decoder = SSEDecoder()
                done_marker = self._formatter.stream_done_marker
                # The transport bounds every read by the idle timeout (the request's read
                # timeout); a deadline bounds them too. Without a Content-Encoding the raw
                # stream is read directly: httpx's decoder chain would cost more than the SSE
                # parsing itself, once per network read.
                next_bytes = body_chunks(response).__anext__
                timed = self._deadline_at is not None
                while True:
                    failure = None
                    try:
                        raw = await (self._read(next_bytes) if timed else next_bytes())
                    except StopAsyncIteration:
                        break
                    except Exception as exc:
                        failure = self._read_failure(exc, None)
                        if failure is None:
                            raise
                    if failure is not None:
                        raise failure  # outside the except block: no chain to the read's error
                    for event in decoder.feed(raw):
                        if done_marker is not None and event.data.strip() == done_marker:
                            return
                        chunk = self._event(event)
                        if chunk is None:
                            continue
                        finished = chunk.finish_reason is not None
                        yield chunk
                        if finished and done_marker is None:
                            return
                decoder.flush()
            except AzmlError:
                raise
            except Exception as exc:
                error = self._unreadable(exc)
            else:
                # A finished TGI stream returned above; anything else ending here was cut short.
                error = StreamInterruptedError(
                    "the server closed the stream before its end: the answer is incomplete "
                    f"({len(self.text)} characters received)",
                    url=self._url,
                    client_request_id=self.client_request_id,
                )
            raise error
        finally:
            await self.aclose()

    def _unreadable(self, exc: Exception) -> AzmlError:
        """The typed error for a parser that tripped on the server's data."""
        error = ResponseFormatError(
            f"a stream event could not be read ({type(exc).__name__}: "
            f"{self._redactor.text(str(exc))[:200]})",
            formatter=self._formatter.name,
            api_type=str(self._request.api_type),
            request_id=self.request_id,
        )
        return scrub(error, self._redactor)

    async def _whole_answer(self, response: httpx.Response) -> StreamChunk:
        """The server ignored ``stream``: one chunk with the whole answer."""
        raw = await self._read(lambda: read_body(response))
        parsed, data = decode_response(self._formatter, raw, self._request)
        return self._chunk(parsed, data)

    def _read_limit(self) -> float | None:
        """Seconds the next read may take beyond the transport's idle bound (the deadline)."""
        if self._deadline_at is None:
            return None
        return self._deadline_at - time.monotonic()

    async def _read(self, reader: Callable[[], Awaitable[bytes]]) -> bytes:
        """One read within the deadline, every failure typed (see :meth:`_read_failure`)."""
        limit = self._read_limit()
        try:
            if limit is None:
                return await reader()
            if limit <= 0:
                raise TimeoutError
            with anyio.fail_after(min(limit, self._idle_timeout)):
                return await reader()
        except Exception as exc:
            failure = self._read_failure(exc, limit)
            if failure is None:
                raise
        raise failure

    def _read_failure(self, exc: Exception, limit: float | None) -> AzmlError | None:
        """The typed error for a failed read: idle timeout, deadline, a broken connection;
        None for what passes through as it is (the end of the body, our own errors, bugs)."""
        error: AzmlError
        if isinstance(exc, StopAsyncIteration | AzmlError):
            return None
        if isinstance(exc, TimeoutError):
            if limit is not None and limit <= self._idle_timeout:
                error = APITimeoutError(
                    "the call's deadline ran out while streaming "
                    f"({len(self.text)} characters received)",
                    url=self._url,
                    client_request_id=self.client_request_id,
                )
            else:
                error = APITimeoutError(
                    f"no data for {self._idle_timeout:g}s while streaming", url=self._url
                )
        elif isinstance(exc, httpx.TimeoutException):
            error = APITimeoutError(
                f"no data for {self._idle_timeout:g}s while streaming", url=self._url
            )
        elif isinstance(exc, TRANSPORT_ERRORS):
            mapped = transport_error(
                exc,
                url=self._url,
                timeout=self._idle_timeout,
                redactor=self._redactor,
                streaming=True,
            )
            error = (
                StreamInterruptedError(
                    str(mapped), url=self._url, client_request_id=self.client_request_id
                )
                if type(mapped) is APIConnectionError
                else mapped
            )
        else:
            return None
        return scrub(error, self._redactor)

    def _event(self, event: ServerSentEvent) -> StreamChunk | None:
        if event.event == "error":
            raise self._in_band_error(event.data)
        try:
            data = _event_json(event.data)
        except ValueError:
            raise ResponseFormatError(
                "a stream event is not JSON",
                formatter=self._formatter.name,
                api_type=str(self._request.api_type),
                body=event.data[:300],
                request_id=self.request_id,
            ) from None
        parsed = self._formatter.parse_stream_event(data, self._request)
        return None if parsed is None else self._chunk(parsed, data)

    def _in_band_error(self, data: str) -> Exception:
        try:
            body = _json.loads(data)
        except ValueError:
            body = None
        error = body.get("error", body) if isinstance(body, dict) else data
        return reported_error(
            error,
            context="the stream reported an error",
            body=data,
            request_id=self.request_id,
            client_request_id=self.client_request_id,
            url=self._url,
        )

    def _chunk(self, parsed: ParsedOutput, data: Any) -> StreamChunk:
        text = parsed.text
        if type(text) is not str:
            raise ResponseFormatError(
                "a stream chunk's text is not a string",
                formatter=self._formatter.name,
                api_type=str(self._request.api_type),
                request_id=self.request_id,
            )
        usage = None if parsed.usage is None else usage_from(parsed.usage)
        finish = parsed.finish_reason
        delta = None
        if type(data) is dict:
            choices = data.get("choices")
            if type(choices) is list and choices and type(choices[0]) is dict:
                delta = choices[0].get("delta")
                if type(delta) is dict and "tool_calls" in delta:
                    self._add_tool_calls(delta["tool_calls"])
        reason = finish if isinstance(finish, str) else None
        if self.id is None and type(data) is dict:
            self._name_answer(data)
        values = {
            "text": text,
            "finish_reason": reason,
            "usage": usage,
            "index": len(self._parts),
            "delta": delta,
            "raw": data,
        }
        # Every value is checked above: validating them again was half of a token's cost.
        # A str subclass is left to pydantic, which turns it into a plain str.
        chunk = (
            _checked_chunk(values)
            if reason is None or type(reason) is str
            else StreamChunk.model_validate(values)
        )
        self._parts.append(text)
        if finish is not None:
            self.finish_reason = chunk.finish_reason
        if usage is not None:
            self.usage = usage
        return chunk

    def _name_answer(self, data: dict[str, Any]) -> None:
        """Take the answer's id and model from a chunk (until one names them)."""
        ident, model = data.get("id"), data.get("model")
        if type(ident) is str and ident:
            self.id = ident
        if type(model) is str and model and self.model is None:
            self.model = model

    def _add_tool_calls(self, pieces: Any) -> None:
        """Fold a delta's tool-call pieces in (OpenAI streams: the first piece of a call has
        its index, id and name; later ones add argument text)."""
        if not isinstance(pieces, list):
            return
        for position, piece in enumerate(pieces):
            if not isinstance(piece, dict):
                continue
            index = piece.get("index", position)
            if type(index) is not int:
                continue
            call = self._calls.setdefault(index, ["", "function", "", []])
            if isinstance(piece.get("id"), str) and piece["id"]:
                call[0] = piece["id"]
            if isinstance(piece.get("type"), str) and piece["type"]:
                call[1] = piece["type"]
            function = piece.get("function")
            if isinstance(function, dict):
                name = function.get("name")
                if isinstance(name, str) and name and not call[2]:
                    call[2] = name
                arguments = function.get("arguments")
                if isinstance(arguments, str):
                    call[3].append(arguments)
