"""``EndpointClient``: the one async driver (send, retry loop, results).

Data flows one way: call -> formatter (pure) -> httpx -> formatter (pure) -> typed result.
Errors from httpx are mapped to ours in exactly one place (:meth:`EndpointClient._attempt`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping, Sequence, Sized
from dataclasses import replace
from typing import Any, NamedTuple, TypeVar

import anyio
import httpx
from pydantic import SecretStr
from tenacity import AsyncRetrying, RetryCallState

from ._auth import Auth, KeyAuth, NoAuth, TokenAuth
from ._batch import BatchResults, BatchRun, Concurrency, collect
from ._config import ClientSettings, Routes, resolve_routes
from ._constants import (
    AZUREML_TOKEN_SCOPE,
    ENV_API_KEY,
    HEADER_CLIENT_REQUEST_ID,
    HEADER_DEPLOYMENT,
    HEADER_EXTRA_PARAMETERS,
    HEADER_MODEL_ERROR_REASON,
    HEADER_MODEL_ERROR_STATUS,
    SERVER_REQUEST_ID_HEADERS,
    ApiType,
    ExtraParameters,
)
from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ClientClosedError,
    ConfigurationError,
    ResponseFormatError,
    excerpt,
    status_error,
)
from ._retry import RetryPolicy, backoff, is_retryable_error, parse_retry_after
from ._streaming import AsyncStream
from ._transport import default_transport, mocking_active
from ._types import ChatCompletion, ChatMessage, Completion, Usage
from .formatters._base import (
    ContentFormatterBase,
    FormatRequest,
    ParsedOutput,
    check_formatter,
    decode_response,
    encode_request,
)
from .formatters._registry import formatter_from_config, formatter_to_config

__all__ = ["EndpointClient", "load_client"]

logger = logging.getLogger("azml_client")

_T = TypeVar("_T")
Message = Mapping[str, Any]
_NO_SCOPE = contextlib.nullcontext()
_REQUEST_ID_KEYS = tuple(name.encode() for name in SERVER_REQUEST_ID_HEADERS)
_DEFAULT_FORMATTER = {ApiType.DEDICATED: "llama", ApiType.SERVERLESS: "openai"}


def _new_request_id() -> str:
    """A random id in UUID form (36 characters: within the front door's 40)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _server_request_id(headers: httpx.Headers) -> str | None:
    """The first of ``SERVER_REQUEST_ID_HEADERS`` present (one pass over the raw headers)."""
    found: dict[bytes, bytes] = {}
    for key, value in headers.raw:
        name = key.lower()
        if name in _REQUEST_ID_KEYS and value:
            found.setdefault(name, value)
    for name in _REQUEST_ID_KEYS:
        if name in found:
            return found[name].decode("latin-1")
    return None


async def _read(response: httpx.Response) -> None:
    """``await response.aread()``, without httpx's decoder chain when nothing is encoded.

    Reading the raw stream costs a fifth of ``aread()`` for a small JSON body; a
    ``Content-Encoding`` (gzip, ...) still goes through httpx's decoders.
    """
    if "content-encoding" in response.headers or not isinstance(
        response.stream, httpx.AsyncByteStream
    ):
        await response.aread()
        return
    chunks = [chunk async for chunk in response.stream]
    response._content = b"".join(chunks)  # what aread() stores; httpx reads it as .content
    await response.aclose()


def _server_message(body: bytes) -> str | None:
    """The human message inside an error body, for the shapes Azure ML endpoints send."""
    try:
        data = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return text[:300] or None
    if isinstance(data, dict):
        for key in ("message", "error", "detail"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message", value.get("code"))
            if isinstance(value, str) and value:
                return value[:300]
    return None


def _as_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _as_secret(value: str | SecretStr | None) -> SecretStr | None:
    if value is None or isinstance(value, SecretStr):
        return value
    return SecretStr(value)


def _check_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise ConfigurationError(
            "chat() takes a list of messages such as [{'role': 'user', 'content': 'Hi'}]; "
            "for a plain prompt use complete()"
        )
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or "role" not in message:
            raise ConfigurationError(
                f"message {i} must be a mapping with 'role' and 'content', got {message!r:.80}"
            )
        out.append(dict(message))
    if not out:
        raise ConfigurationError("chat() needs at least one message")
    return out


class _CallOptions(NamedTuple):
    """The per-call overrides every public call accepts (``None``: the client's setting)."""

    timeout: float | None
    deadline: float | None
    max_retries: int | RetryPolicy | None
    extra_parameters: str | ExtraParameters | None
    deployment_name: str | None


class EndpointClient:
    """Async client of one Azure ML dedicated endpoint or one serverless endpoint.

    Example::

        async with EndpointClient(
            endpoint_url="https://my-endpoint.eastus.inference.ml.azure.com/score",
            api_key="...",               # or AZUREML_ENDPOINT_API_KEY
            deployment_name="llama-2-7b-1",
            formatter="llama",
            model_kwargs={"temperature": 0.8, "max_new_tokens": 400},
        ) as client:
            out = await client.complete("Write me a song about sparkling water:", temperature=0.5)
            print(out.text, out.finish_reason, out.request_id)

    Every argument left as ``None`` falls back to its ``AZUREML_*`` environment variable (URL,
    key, deployment, api type, timeout) and then to the defaults in ``_constants.py``. Per-call
    keyword arguments override ``model_kwargs`` for that call only.

    The client owns one pooled ``httpx.AsyncClient``; pass ``http_client=`` (or ``transport=``)
    to use your own: the client never closes what it did not create.
    """

    def __init__(
        self,
        endpoint_url: str | None = None,
        api_key: str | SecretStr | None = None,
        *,
        api_type: str | ApiType | None = None,
        deployment_name: str | None = None,
        formatter: str | ContentFormatterBase | type[ContentFormatterBase] | None = None,
        formatter_options: Mapping[str, Any] | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        deadline: float | None = None,
        max_retries: int | None = None,
        backoff_base: float | None = None,
        backoff_max: float | None = None,
        max_retry_after: float | None = None,
        extra_parameters: str | ExtraParameters | None = None,
        api_version: str | None = None,
        credential: Any = None,
        token_scope: str | None = None,
        api_key_env: str | None = None,
        allow_insecure_http: bool | None = None,
        max_connections: int | None = None,
        max_keepalive_connections: int | None = None,
        keepalive_expiry: float | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if credential is not None and api_key is not None:
            raise ConfigurationError("pass either api_key or credential, not both")
        if http_client is not None and transport is not None:
            raise ConfigurationError("pass either http_client or transport, not both")
        formatter_key = formatter if isinstance(formatter, str) else None
        self._settings = ClientSettings.resolve(
            env=env,
            endpoint_url=endpoint_url,
            api_key=_as_secret(api_key) if credential is None else None,
            api_type=api_type,
            deployment_name=deployment_name,
            formatter=formatter_key,
            formatter_options=dict(formatter_options) if formatter_options else None,
            model_kwargs=dict(model_kwargs) if model_kwargs is not None else None,
            timeout=timeout,
            connect_timeout=connect_timeout,
            deadline=deadline,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            max_retry_after=max_retry_after,
            extra_parameters=extra_parameters,
            api_version=api_version,
            token_scope=token_scope,
            api_key_env=api_key_env,
            allow_insecure_http=allow_insecure_http,
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=keepalive_expiry,
        )
        s = self._settings
        self._formatter = self._resolve_formatter(formatter, s)
        self._routes: Routes = resolve_routes(s.endpoint_url, s.api_type)
        self._auth = self._resolve_auth(credential, s)
        self._policy = RetryPolicy(
            max_retries=s.max_retries,
            backoff_base=s.backoff_base,
            backoff_max=s.backoff_max,
            max_retry_after=s.max_retry_after,
        )
        self._sleep: Callable[[float], Awaitable[Any]] = sleep or anyio.sleep
        self._base_headers = self._make_base_headers()
        self._params: dict[str, str] = {"api-version": s.api_version} if s.api_version else {}
        self._owns_http = http_client is None and transport is None
        self._direct: httpx.AsyncBaseTransport | None = None
        self._parsed_urls: dict[str, httpx.URL] = {}
        self._http = http_client or self._make_http(transport)
        self._closed = False

    # -- construction helpers ----------------------------------------------------------------

    @staticmethod
    def _resolve_formatter(
        formatter: str | ContentFormatterBase | type[ContentFormatterBase] | None,
        s: ClientSettings,
    ) -> ContentFormatterBase:
        if formatter is None:
            formatter = s.formatter or _DEFAULT_FORMATTER[s.api_type]
        if isinstance(formatter, str):
            instance = formatter_from_config(formatter, s.formatter_options or None)
        elif isinstance(formatter, type) and issubclass(formatter, ContentFormatterBase):
            instance = formatter(**s.formatter_options)
        elif isinstance(formatter, ContentFormatterBase):
            instance = formatter
        else:
            raise ConfigurationError(
                f"formatter must be a family key (see list_formatters()) or a "
                f"ContentFormatterBase instance, got {type(formatter).__name__}"
            )
        check_formatter(instance)
        if s.api_type not in instance.supported_api_types:
            allowed = ", ".join(str(t) for t in instance.supported_api_types)
            hint = "openai" if s.api_type is ApiType.SERVERLESS else "llama"
            raise ConfigurationError(
                f"formatter {instance.name!r} supports {allowed} endpoints, not {s.api_type}: "
                f"use a {s.api_type} formatter such as formatter={hint!r}"
            )
        return instance

    @staticmethod
    def _resolve_auth(credential: Any, s: ClientSettings) -> Auth:
        if credential is not None:
            return TokenAuth(credential, s.token_scope or AZUREML_TOKEN_SCOPE)
        if s.api_key is not None:
            if not s.api_key.get_secret_value().strip():
                raise ConfigurationError("api_key is empty: pass the endpoint's key")
            return KeyAuth(s.api_key)
        if s.host_is_local:
            return NoAuth()
        raise ConfigurationError(
            f"no API key: pass api_key=..., set {s.api_key_env or ENV_API_KEY}, or pass "
            "credential=<azure-identity credential> for Entra ID"
        )

    def _make_base_headers(self) -> dict[str, str]:
        s = self._settings
        headers = {
            "Content-Type": self._formatter.content_type,
            "Accept": self._formatter.accepts,
        }
        if s.deployment_name:
            headers[HEADER_DEPLOYMENT] = s.deployment_name
        if s.extra_parameters is not None and s.api_type is ApiType.SERVERLESS:
            headers[HEADER_EXTRA_PARAMETERS] = str(s.extra_parameters)
        return headers

    def _make_http(self, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
        s = self._settings
        if transport is None:
            transport = self._direct = default_transport(
                max_connections=s.max_connections,
                max_keepalive_connections=s.max_keepalive_connections,
                keepalive_expiry=s.keepalive_expiry,
                connect_timeout=s.connect_timeout,
            )
        return httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(s.timeout, connect=s.connect_timeout),
            follow_redirects=False,
        )

    # -- public properties -------------------------------------------------------------------

    @property
    def settings(self) -> ClientSettings:
        """A copy of the validated settings (the key stays a ``SecretStr``)."""
        return self._settings.model_copy(deep=True)

    @property
    def formatter(self) -> ContentFormatterBase:
        return self._formatter

    @property
    def api_type(self) -> ApiType:
        return self._settings.api_type

    @property
    def model_kwargs(self) -> dict[str, Any]:
        """A copy of the client's default model parameters (calls never change them)."""
        return dict(self._settings.model_kwargs)

    @property
    def routes(self) -> Routes:
        return self._routes

    @property
    def is_closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        s = self._settings
        return (
            f"EndpointClient(endpoint_url={s.endpoint_url!r}, api_type={s.api_type.value!r}, "
            f"deployment_name={s.deployment_name!r}, formatter={self._formatter.name!r}, "
            f"auth={self._auth!r})"
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> EndpointClient:
        self._ensure_open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (only if this client created it). Idempotent."""
        if self._closed:
            return
        self._closed = True
        # A caller's http_client or transport stays open: closing it is the caller's business.
        if self._owns_http:
            await self._http.aclose()

    def _ensure_open(self) -> None:
        if self._closed:
            raise ClientClosedError()

    # -- configuration files -----------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write this client's settings as JSON; the key is never written.

        The file names the environment variable (``api_key_env``) that :func:`load_client`
        reads the key from.
        """
        s = self._settings
        data = s.to_file_dict()
        if s.formatter:
            data["formatter"], data["formatter_options"] = s.formatter, s.formatter_options
        else:
            data["formatter"], data["formatter_options"] = formatter_to_config(self._formatter)
        tmp = f"{os.fspath(path)}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str], **overrides: Any) -> EndpointClient:
        """Build a client from a file written by :meth:`save`; keyword arguments override it."""
        data = ClientSettings.from_file(path)
        data.update(overrides)
        return cls(**data)

    # -- calls -------------------------------------------------------------------------------

    async def complete(
        self,
        prompt: str,
        *,
        stop: str | Sequence[str] | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
        max_retries: int | RetryPolicy | None = None,
        extra_parameters: str | ExtraParameters | None = None,
        deployment_name: str | None = None,
        **params: Any,
    ) -> Completion:
        """Generate text for ``prompt``; keyword arguments are model parameters for this call.

        ``timeout`` (per attempt), ``deadline`` (whole call), ``max_retries``,
        ``extra_parameters`` and ``deployment_name`` override the client's settings.
        """
        if not isinstance(prompt, str):
            raise ConfigurationError(
                f"complete() takes the prompt as a str, got {type(prompt).__name__}; for a "
                "conversation use chat()"
            )
        if not self._formatter.supports_completion:
            raise ConfigurationError(
                f"formatter {self._formatter.name!r} does not support complete(); use chat()"
            )
        request = FormatRequest(
            api_type=self._settings.api_type,
            prompt=prompt,
            params=self._merge_params(params, stop),
        )
        opts = _CallOptions(timeout, deadline, max_retries, extra_parameters, deployment_name)
        parsed, data, meta = await self._call(request, self._routes.completions, opts)
        return Completion(text=parsed.text, **self._result_fields(parsed, data, meta))

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        stop: str | Sequence[str] | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
        max_retries: int | RetryPolicy | None = None,
        extra_parameters: str | ExtraParameters | None = None,
        deployment_name: str | None = None,
        **params: Any,
    ) -> ChatCompletion:
        """Answer a conversation (``[{"role": "user", "content": "Hi"}, ...]``)."""
        checked = _check_messages(messages)
        if not self._formatter.supports_chat:
            raise ConfigurationError(
                f"formatter {self._formatter.name!r} does not support chat(): use a chat "
                "family such as 'llama-chat' or 'vllm' (dedicated) or 'openai' (serverless), "
                "or call complete()"
            )
        request = FormatRequest(
            api_type=self._settings.api_type,
            messages=checked,
            params=self._merge_params(params, stop),
        )
        opts = _CallOptions(timeout, deadline, max_retries, extra_parameters, deployment_name)
        parsed, data, meta = await self._call(request, self._routes.chat, opts)
        message = dict(parsed.message) if parsed.message else {}
        message.setdefault("role", "assistant")
        message.setdefault("content", parsed.text)
        return ChatCompletion(
            text=parsed.text,
            message=ChatMessage(**message),
            tool_calls=parsed.tool_calls,
            **self._result_fields(parsed, data, meta),
        )

    async def invoke(
        self,
        payload: Mapping[str, Any] | Sequence[Any] | bytes | str,
        *,
        url: str | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
        max_retries: int | RetryPolicy | None = None,
        extra_parameters: str | ExtraParameters | None = None,
        deployment_name: str | None = None,
    ) -> Any:
        """Send ``payload`` as it is (a JSON-able object, or ``bytes``/``str`` sent verbatim)
        to the endpoint URL (or ``url``) with the client's auth, headers and retries; return
        the decoded JSON answer. The escape hatch for any schema no formatter covers."""
        body = payload.encode("utf-8") if isinstance(payload, str) else payload
        if not isinstance(body, bytes):
            body = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

        def parse(response: httpx.Response, meta: dict[str, Any]) -> Any:
            raw = response.content
            try:
                return json.loads(raw)
            except ValueError:
                raise ResponseFormatError(
                    "the answer is not JSON",
                    formatter="invoke",
                    api_type=str(self._settings.api_type),
                    body=excerpt(raw, 300),
                    request_id=meta["request_id"],
                ) from None

        opts = _CallOptions(timeout, deadline, max_retries, extra_parameters, deployment_name)
        data, _ = await self._send(url or self._settings.endpoint_url, body, parse, opts)
        return data

    def stream(
        self,
        prompt_or_messages: str | Sequence[Message],
        *,
        stop: str | Sequence[str] | None = None,
        timeout: float | None = None,
        idle_timeout: float | None = None,
        deadline: float | None = None,
        max_retries: int | RetryPolicy | None = None,
        extra_parameters: str | ExtraParameters | None = None,
        deployment_name: str | None = None,
        **params: Any,
    ) -> AsyncStream:
        """Stream the answer to a prompt (completion) or a message list (chat).

        Returns an :class:`AsyncStream` at once; the request is sent on ``async with`` or on
        the first iteration, and retried only until the response headers arrive.
        ``idle_timeout`` bounds the wait between two chunks (default: ``timeout``)::

            async with client.stream([{"role": "user", "content": "Hi"}]) as stream:
                async for chunk in stream:
                    print(chunk.text, end="", flush=True)
        """
        self._ensure_open()
        fmt = self._formatter
        if self.api_type not in fmt.stream_api_types:
            raise ConfigurationError(
                f"formatter {fmt.name!r} does not stream on {self.api_type} endpoints: use "
                "complete()/chat(), or a streaming family ('openai' on serverless, 'tgi')"
            )
        merged = self._merge_params(params, stop)
        if isinstance(prompt_or_messages, str):
            request = FormatRequest(
                api_type=self.api_type, prompt=prompt_or_messages, params=merged, stream=True
            )
            url = self._routes.completions
        else:
            if not fmt.supports_chat:
                raise ConfigurationError(f"formatter {fmt.name!r} does not support chat")
            request = FormatRequest(
                api_type=self.api_type,
                messages=_check_messages(prompt_or_messages),
                params=merged,
                stream=True,
            )
            url = self._routes.chat
        body = encode_request(fmt, request)
        opts = _CallOptions(timeout, deadline, max_retries, extra_parameters, deployment_name)
        idle = float(idle_timeout or timeout or self._settings.timeout)

        async def opener() -> tuple[httpx.Response, dict[str, Any]]:
            return await self._send(
                url,
                body,
                lambda response, meta: response,
                opts,
                stream=True,
                read_timeout=idle,
            )

        return AsyncStream(opener, fmt, request, idle_timeout=idle, url=url)

    # -- bulk --------------------------------------------------------------------------------

    def map(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: Concurrency = "auto",
        max_rps: float | None = None,
        max_tpm: float | None = None,
        max_retries: int | None = None,
        max_rate_limit_retries: int = 50,
        return_exceptions: bool = True,
        **params: Any,
    ) -> BatchRun:
        """Run many prompts or chats; iterate ``(index, result)`` as they complete.

        ``items`` may be any sync or async iterable, far larger than memory: items are pulled
        only as capacity frees. Each item is a prompt string, a list of messages, or a dict with
        ``"prompt"`` or ``"messages"`` and optional ``"params"``. ``concurrency="auto"`` adapts
        to the endpoint (see :mod:`azml_client._limiter`); ``max_rps`` / ``max_tpm`` are hard
        budgets. A failed item's result is its typed exception (or, with
        ``return_exceptions=False``, the run raises it and cancels the rest). Keyword arguments
        are model parameters for every item (an item's own ``params`` win)::

            async with client.map(prompts, max_rps=20) as run:
                async for index, result in run:
                    ...
            print(run.stats)
        """
        self._ensure_open()
        s = self._settings
        common = dict(params)

        async def call(kind: str, payload: Any, item_params: dict[str, Any]) -> Completion:
            merged = {**common, **item_params}
            if kind == "chat":
                return await self.chat(payload, max_retries=0, **merged)
            return await self.complete(payload, max_retries=0, **merged)

        return BatchRun(
            call,
            items,
            concurrency=concurrency,
            max_concurrency=max(1, s.max_connections),
            max_rps=max_rps,
            max_tpm=max_tpm,
            max_retries=s.max_retries if max_retries is None else max_retries,
            max_rate_limit_retries=max_rate_limit_retries,
            backoff_base=s.backoff_base,
            backoff_max=s.backoff_max,
            return_exceptions=return_exceptions,
        )

    async def batch(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: Concurrency = "auto",
        max_rps: float | None = None,
        max_tpm: float | None = None,
        max_retries: int | None = None,
        return_exceptions: bool = True,
        progress: bool = False,
        **params: Any,
    ) -> BatchResults:
        """Run many prompts or chats and return the results in input order (see :meth:`map`).

        ``results.stats`` tells what happened: sent, succeeded, failed, retried, 429s, req/s
        and the concurrency over time. ``progress=True`` prints a progress line on stderr.
        """
        total = len(items) if isinstance(items, Sized) else None
        run = self.map(
            items,
            concurrency=concurrency,
            max_rps=max_rps,
            max_tpm=max_tpm,
            max_retries=max_retries,
            return_exceptions=return_exceptions,
            **params,
        )
        return await collect(run, progress=progress, total=total)

    # -- internals ---------------------------------------------------------------------------

    def _merge_params(
        self, params: Mapping[str, Any], stop: str | Sequence[str] | None
    ) -> dict[str, Any]:
        merged = {**self._settings.model_kwargs, **params}
        if stop is not None:
            merged["stop"] = [stop] if isinstance(stop, str) else list(stop)
        return merged

    @staticmethod
    def _result_fields(parsed: ParsedOutput, data: Any, meta: dict[str, Any]) -> dict[str, Any]:
        usage = Usage(**parsed.usage) if parsed.usage else None
        return {
            "finish_reason": parsed.finish_reason,
            "usage": usage,
            "model": parsed.model,
            "id": parsed.id,
            "raw": data,
            **meta,
        }

    async def _call(
        self, request: FormatRequest, url: str, opts: _CallOptions
    ) -> tuple[ParsedOutput, Any, dict[str, Any]]:
        body = encode_request(self._formatter, request)

        def parse(response: httpx.Response, meta: dict[str, Any]) -> tuple[ParsedOutput, Any]:
            try:
                return decode_response(self._formatter, response.content, request)
            except (APIStatusError, ResponseFormatError) as exc:
                exc.request_id = meta["request_id"]
                raise

        (parsed, data), meta = await self._send(url, body, parse, opts)
        return parsed, data, meta

    async def _send(
        self,
        url: str,
        body: bytes,
        parse: Callable[[httpx.Response, dict[str, Any]], _T],
        opts: _CallOptions,
        *,
        stream: bool = False,
        read_timeout: float | None = None,
    ) -> tuple[_T, dict[str, Any]]:
        """POST with retries; return ``(parse(response, meta), meta)``.

        ``parse`` runs inside the retry loop, so an error reported inside a 200 answer is
        retried like the same HTTP status would be. With ``stream=True`` the response is
        returned open, its body unread: retries happen only until the headers arrive.
        """
        self._ensure_open()
        s = self._settings
        timeout, deadline, max_retries = opts.timeout, opts.deadline, opts.max_retries
        attempt_timeout = s.timeout if timeout is None else float(timeout)
        total = s.deadline if deadline is None else float(deadline)
        if attempt_timeout <= 0 or (total is not None and total <= 0):
            raise ConfigurationError("timeout and deadline must be positive numbers of seconds")
        if isinstance(max_retries, RetryPolicy):
            policy = max_retries
        elif max_retries is not None:
            policy = replace(self._policy, max_retries=int(max_retries))
        else:
            policy = self._policy
        retries = policy.max_retries
        if retries < 0:
            raise ConfigurationError("max_retries must be >= 0 (0 disables retrying)")
        headers = self._call_headers(opts.extra_parameters, opts.deployment_name)
        if stream:
            headers["Accept"] = "text/event-stream, application/json"
        client_request_id = headers[HEADER_CLIENT_REQUEST_ID]
        deadline_at = None if total is None else time.monotonic() + total
        attempts = 0

        async def attempt() -> tuple[_T, dict[str, Any]]:
            nonlocal attempts
            attempts += 1
            response = await self._attempt(
                url,
                body,
                headers,
                attempt_timeout,
                deadline_at,
                client_request_id,
                stream,
                read_timeout,
            )
            meta: dict[str, Any] = {
                "request_id": _server_request_id(response.headers) or client_request_id,
                "client_request_id": client_request_id,
                "attempts": attempts,
            }
            return parse(response, meta), meta

        try:
            # The first attempt runs outside tenacity: most calls succeed at once, and setting
            # up the retry loop costs more than a fast request. A failure is then replayed as
            # tenacity's first attempt, so its decisions, waits and logs apply unchanged.
            try:
                return await attempt()
            except (APIConnectionError, APIStatusError) as exc:
                if retries == 0 or not is_retryable_error(exc):
                    raise
                first: BaseException | None = exc

            async def replay_then_attempt() -> tuple[_T, dict[str, Any]]:
                nonlocal first
                if first is not None:
                    failed, first = first, None
                    raise failed
                return await attempt()

            retrying = AsyncRetrying(
                stop=lambda state: state.attempt_number > retries,
                retry=lambda state: self._should_retry(state, deadline_at, policy),
                wait=lambda state: self._wait(state, policy),
                sleep=self._sleep,
                before_sleep=lambda state: self._log_retry(state, url, client_request_id),
                reraise=True,
            )
            return await retrying(replay_then_attempt)
        except (APIConnectionError, APIStatusError) as exc:
            exc.attempts = attempts
            exc.client_request_id = client_request_id
            exc.url = url
            raise

    def _call_headers(
        self, extra_parameters: str | ExtraParameters | None, deployment_name: str | None
    ) -> dict[str, str]:
        headers = dict(self._base_headers)
        headers[HEADER_CLIENT_REQUEST_ID] = _new_request_id()
        if deployment_name is not None:
            headers[HEADER_DEPLOYMENT] = deployment_name
        if extra_parameters is not None:
            if self._settings.api_type is not ApiType.SERVERLESS:
                raise ConfigurationError("extra_parameters applies to serverless endpoints only")
            try:
                headers[HEADER_EXTRA_PARAMETERS] = str(ExtraParameters(str(extra_parameters)))
            except ValueError:
                raise ConfigurationError(
                    f"unknown extra_parameters {extra_parameters!r}: use 'pass-through', "
                    "'drop' or 'error'"
                ) from None
        return headers

    @staticmethod
    def _retry_after(exc: BaseException | None) -> float | None:
        return exc.retry_after if isinstance(exc, APIStatusError) else None

    def _wait(self, state: RetryCallState, policy: RetryPolicy) -> float:
        exc = state.outcome.exception() if state.outcome else None
        server = self._retry_after(exc)
        if server is not None:
            return server
        return backoff(state.attempt_number, base=policy.backoff_base, cap=policy.backoff_max)

    def _should_retry(
        self, state: RetryCallState, deadline_at: float | None, policy: RetryPolicy
    ) -> bool:
        if state.outcome is None or not state.outcome.failed:
            return False
        exc = state.outcome.exception()
        if exc is None or not is_retryable_error(exc):
            return False
        server = self._retry_after(exc)
        if server is not None and server > policy.max_retry_after:
            return False  # the server wants longer than we may wait: fail now with retry_after
        if deadline_at is not None:
            wait = server if server is not None else policy.backoff_base
            if time.monotonic() + wait >= deadline_at:
                return False
        return True

    def _log_retry(self, state: RetryCallState, url: str, client_request_id: str) -> None:
        exc = state.outcome.exception() if state.outcome else None
        what = f"HTTP {exc.status_code}" if isinstance(exc, APIStatusError) else type(exc).__name__
        wait = state.next_action.sleep if state.next_action else 0.0
        logger.info(
            "retrying %s after %s (attempt %d failed), waiting %.3fs, client request id %s",
            url,
            what,
            state.attempt_number,
            wait,
            client_request_id,
        )

    async def _attempt(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        timeout: float,
        deadline_at: float | None,
        client_request_id: str,
        stream: bool,
        read_timeout: float | None = None,
    ) -> httpx.Response:
        """One HTTP attempt; maps every lower-layer failure to our exceptions.

        Returns the response read and closed, or, with ``stream=True``, open and unread (its
        reads then wait at most ``read_timeout`` each: a stream's idle timeout).
        """
        self._ensure_open()
        budget = timeout
        if deadline_at is not None:
            budget = min(budget, deadline_at - time.monotonic())
            if budget <= 0:
                raise APITimeoutError(
                    "the call's deadline ran out before this attempt could start", url=url
                )
        authorization = await self._auth.authorization()
        if authorization is not None:
            headers = {**headers, "Authorization": authorization}
        connect = min(budget, self._settings.connect_timeout)
        response: httpx.Response | None = None
        handed_over = False
        try:
            # Inside the call's deadline the whole attempt is bounded; otherwise httpx's
            # connect / read / write / pool timeouts bound each phase (as other SDKs do).
            with anyio.fail_after(budget) if deadline_at is not None else _NO_SCOPE:
                response = await self._send_request(
                    url,
                    body,
                    headers,
                    httpx.Timeout(budget, connect=connect, read=read_timeout or budget),
                )
                if not stream or response.status_code >= 400:
                    await _read(response)
                else:
                    handed_over = True
        except TimeoutError:
            raise APITimeoutError(f"no answer within {budget:.3g}s", url=url) from None
        except httpx.TimeoutException as exc:
            raise APITimeoutError(
                f"{type(exc).__name__}: no answer within {budget:.3g}s", url=url
            ) from None
        except httpx.TransportError as exc:
            raise APIConnectionError(
                f"could not reach the endpoint ({type(exc).__name__}: {exc})", url=url
            ) from None
        finally:
            # Whatever happened, only a stream handed to the caller stays open.
            if response is not None and not handed_over:
                await response.aclose()
        if response.status_code >= 400:
            if response.status_code == 401:
                self._auth.invalidate()
            raise self._status_error(
                response, _server_request_id(response.headers), url, client_request_id
            )
        return response

    async def _send_request(
        self, url: str, body: bytes, headers: dict[str, str], timeout: httpx.Timeout
    ) -> httpx.Response:
        """Send one request; the response comes back open (``stream=True`` semantics).

        With the transport this client built and no mock active, the request goes straight to
        the transport: ``httpx.AsyncClient.send`` costs about as much CPU as the transport
        itself (cookies, auth flow, redirects, hooks), none of which applies here. A client or
        transport of the caller's is always used through ``httpx.AsyncClient``.
        """
        direct = self._direct
        if direct is not None and not mocking_active():
            target = self._url(url)
            raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
            raw_headers.append((b"host", target.netloc))
            raw_headers.append((b"content-length", str(len(body)).encode()))
            request = httpx.Request(
                "POST",
                target,
                headers=raw_headers,
                stream=httpx.ByteStream(body),  # the headers above are complete: no _prepare()
                extensions={"timeout": timeout.as_dict()},
            )
            request.read()  # the body is in memory: let the transport see it as such
            response = await direct.handle_async_request(request)
            response.request = request
            return response
        request = self._http.build_request(
            "POST", url, content=body, headers=headers, params=self._params or None, timeout=timeout
        )
        return await self._http.send(request, stream=True)

    def _url(self, url: str) -> httpx.URL:
        """The parsed URL of a route, with the client's query parameters (cached)."""
        parsed = self._parsed_urls.get(url)
        if parsed is None:
            parsed = httpx.URL(url)
            if self._params:
                parsed = parsed.copy_merge_params(self._params)
            self._parsed_urls[url] = parsed
        return parsed

    @staticmethod
    def _status_error(
        response: httpx.Response, request_id: str | None, url: str, client_request_id: str
    ) -> APIStatusError:
        body = response.content
        server_message = _server_message(body)
        h = response.headers
        return status_error(
            response.status_code,
            body=excerpt(body),
            message=server_message,
            request_id=request_id or client_request_id,
            retry_after=parse_retry_after(h),
            headers=dict(h),
            url=url,
            client_request_id=client_request_id,
            model_status_code=_as_int(h.get(HEADER_MODEL_ERROR_STATUS)),
            model_reason=h.get(HEADER_MODEL_ERROR_REASON),
        )


def load_client(path: str | os.PathLike[str], **overrides: Any) -> EndpointClient:
    """Build an :class:`EndpointClient` from a file written by :meth:`EndpointClient.save`.

    The key is read from the environment variable the file names (``api_key_env``, by default
    ``AZUREML_ENDPOINT_API_KEY``); keyword arguments override any saved setting.
    """
    return EndpointClient.from_config(path, **overrides)
