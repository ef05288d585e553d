"""``EndpointClient``: the one async driver (calls, streams, bulk runs, results).

Data flows one way: call -> formatter (pure) -> httpx -> formatter (pure) -> typed result.
Sending, retrying and mapping httpx's errors to ours live in :mod:`._sender`.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping, Sequence, Sized
from typing import Any

import anyio
import httpx
from pydantic import SecretStr

from ._auth import Auth, KeyAuth, NoAuth, TokenAuth
from ._batch import BatchResults, BatchRun, Concurrency, collect
from ._config import ClientSettings, Routes, resolve_routes
from ._constants import (
    AZUREML_TOKEN_SCOPE,
    ENV_API_KEY,
    HEADER_DEPLOYMENT,
    HEADER_EXTRA_PARAMETERS,
    ApiType,
    ExtraParameters,
)
from ._exceptions import (
    APIStatusError,
    ClientClosedError,
    ConfigurationError,
    ResponseFormatError,
    excerpt,
)
from ._retry import RetryPolicy
from ._sender import CallOptions, HTTPSender
from ._streaming import AsyncStream
from ._transport import default_transport
from ._types import ChatCompletion, ChatMessage, Completion, Usage
from .formatters._base import (
    ContentFormatterBase,
    FormatRequest,
    ParsedOutput,
    check_formatter,
    decode_response,
    dump_json,
    encode_request,
)
from .formatters._registry import formatter_from_config, formatter_to_config

__all__ = ["EndpointClient", "load_client"]


Message = Mapping[str, Any]
_DEFAULT_FORMATTER = {ApiType.DEDICATED: "llama", ApiType.SERVERLESS: "openai"}


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


class EndpointClient(HTTPSender):
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
        opts = CallOptions(timeout, deadline, max_retries, extra_parameters, deployment_name)
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
        opts = CallOptions(timeout, deadline, max_retries, extra_parameters, deployment_name)
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
            body = dump_json(body)

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

        opts = CallOptions(timeout, deadline, max_retries, extra_parameters, deployment_name)
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
        opts = CallOptions(timeout, deadline, max_retries, extra_parameters, deployment_name)
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
        self, request: FormatRequest, url: str, opts: CallOptions
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


def load_client(path: str | os.PathLike[str], **overrides: Any) -> EndpointClient:
    """Build an :class:`EndpointClient` from a file written by :meth:`EndpointClient.save`.

    The key is read from the environment variable the file names (``api_key_env``, by default
    ``AZUREML_ENDPOINT_API_KEY``); keyword arguments override any saved setting.
    """
    return EndpointClient.from_config(path, **overrides)
