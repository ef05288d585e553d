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
from ._http._body import body_chunks, read_body
from ._http._errors import TRANSPORT_ERRORS, transport_error
from ._redact import Redactor, scrub
from ._sse import ServerSentEvent, SSEDecoder
from ._telemetry import CallTrace
from ._tools import Structured
from ._types import StreamChunk, ToolCall, Usage, tool_calls_from, usage_from
from .formatters._base import ContentFormatterBase, FormatRequest, ParsedOutput, decode_response

__all__ = ["AsyncStream"]


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
        self._redactor = redactor or Redactor()
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
        return self._structured.parse(self.text, self.finish_reason, self.request_id)

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
        if response is not None:
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
        usage = self.usage
        trace.succeeded(
            finish_reasons=[self.finish_reason] if self.finish_reason else (),
            input_tokens=usage.prompt_tokens if usage else None,
            output_tokens=usage.completion_tokens if usage else None,
            attempts=self.attempts,
            request_id=self.request_id,
            client_request_id=self.client_request_id,
            output=self.text,
            complete=complete,
        )

    # -- decoding -------------------------------------------------------------------------

    async def _iterate(self) -> AsyncIterator[StreamChunk]:
        try:
            await self._open()
            assert self._response is not None
            content_type = self._response.headers.get("content-type", "")
            # Whatever the server sent, an AzmlError or a chunk comes out: a parser that trips
            # on the server's data is caught once, around the loop (not a wrapper per chunk;
            # the consumer's own exceptions never reach this generator).
            try:
                if "text/event-stream" not in content_type:
                    yield await self._whole_answer(self._response)
                    return
                async for chunk in self._events(self._response):
                    yield chunk
            except AzmlError:
                raise
            except Exception as exc:
                error = self._unreadable(exc)
            else:
                return
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
        """One read, every failure typed: idle timeout, deadline, a broken connection."""
        limit = self._read_limit()
        error: AzmlError
        try:
            if limit is None:
                return await reader()
            if limit <= 0:
                raise TimeoutError
            with anyio.fail_after(min(limit, self._idle_timeout)):
                return await reader()
        except (StopAsyncIteration, AzmlError):
            raise
        except TimeoutError:
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
        except httpx.TimeoutException:
            error = APITimeoutError(
                f"no data for {self._idle_timeout:g}s while streaming", url=self._url
            )
        except TRANSPORT_ERRORS as exc:
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
        raise scrub(error, self._redactor)

    async def _events(self, response: httpx.Response) -> AsyncIterator[StreamChunk]:
        decoder = SSEDecoder()
        done_marker = self._formatter.stream_done_marker
        finished = False
        # The transport bounds every read by the idle timeout (the request's read timeout).
        # Without a Content-Encoding the raw stream is read directly: httpx's decoder chain
        # would cost more than the SSE parsing itself, once per network read.
        byte_iter = body_chunks(response)
        while True:
            try:
                raw = await self._read(byte_iter.__anext__)
            except StopAsyncIteration:
                break
            for event in decoder.feed(raw):
                if done_marker is not None and event.data.strip() == done_marker:
                    return
                chunk = self._event(event)
                if chunk is None:
                    continue
                if chunk.finish_reason is not None:
                    finished = True
                yield chunk
                if finished and done_marker is None:
                    return
        decoder.flush()
        # A finished TGI stream returned above; anything else ending here was cut short.
        raise StreamInterruptedError(
            "the server closed the stream before its end: the answer is incomplete "
            f"({len(self.text)} characters received)",
            url=self._url,
            client_request_id=self.client_request_id,
        )

    def _event(self, event: ServerSentEvent) -> StreamChunk | None:
        if event.event == "error":
            raise self._in_band_error(event.data)
        try:
            data = _json.loads(event.data)
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
        usage = usage_from(parsed.usage)
        finish = parsed.finish_reason
        delta = None
        if type(data) is dict:
            choices = data.get("choices")
            if type(choices) is list and choices and type(choices[0]) is dict:
                delta = choices[0].get("delta")
                if type(delta) is dict and "tool_calls" in delta:
                    self._add_tool_calls(delta["tool_calls"])
        chunk = StreamChunk(
            text=text,
            finish_reason=finish if isinstance(finish, str) else None,
            usage=usage,
            index=len(self._parts),
            delta=delta,
            raw=data,
        )
        self._parts.append(text)
        if finish is not None:
            self.finish_reason = chunk.finish_reason
        if usage is not None:
            self.usage = usage
        return chunk

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
