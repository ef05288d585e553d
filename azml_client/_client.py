"""``EndpointClient``: calls, streams and bulk runs of one endpoint.

Data flows one way: call -> formatter (pure) -> :class:`~._http.Driver` (the one request
pipeline: attempts, retries, timeouts, typed errors) -> formatter (pure) -> typed result.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
    Sized,
)
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio
import httpx
from pydantic import SecretStr

from . import _json
from ._auth import Auth, KeyAuth, NoAuth, TokenAuth
from ._config import (
    ClientSettings,
    Routes,
    config_arguments,
    resolve_routes,
    token_scope_for,
)
from ._constants import (
    DEFAULT_BULK_RATE_LIMIT_RETRIES,
    ENV_API_KEY,
    HEADER_CLIENT_REQUEST_ID,
    HEADER_DEPLOYMENT,
    HEADER_EXTRA_PARAMETERS,
    NOT_GIVEN,
    ApiType,
    ExtraParameters,
    NotGiven,
)
from ._exceptions import (
    APIStatusError,
    AzmlError,
    ClientClosedError,
    ConfigurationError,
    ResponseFormatError,
    excerpt,
)
from ._http import AttemptHook, Call, Connections, Driver, Exchange, new_request_id
from ._options import (
    SENSITIVE_HEADERS,
    CallOptions,
    check_headers,
    check_messages,
    settings_arguments,
    split_timeout,
)
from ._pricing import Pricing
from ._redact import Redactor, url_secrets
from ._retry import RetryPolicy
from ._telemetry import CallTrace, Telemetry, end_run_span, make_telemetry
from ._tools import Structured, fit_messages, prepare_chat_params
from ._types import (
    ChatCompletion,
    Completion,
    Embeddings,
    ModelInfo,
    message_from,
    tool_calls_from,
    usage_from,
)
from ._version import __version__
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

if TYPE_CHECKING:  # imported where used: a program that never streams or batches skips them
    import ssl

    from ._bulk import BatchResults, BatchRun, Concurrency, Item, RateBudget
    from ._bulk._run import ItemCaller
    from ._streaming import AsyncStream

__all__ = ["EndpointClient", "load_client"]


Message = Mapping[str, Any]
FormatterArg = str | ContentFormatterBase | type[ContentFormatterBase]
_DEFAULT_FORMATTER = {
    ApiType.DEDICATED: "llama",
    ApiType.SERVERLESS: "openai",
    ApiType.MODELS: "openai",
    ApiType.OPENAI_V1: "openai",
}
_USER_AGENT = f"azml-client/{__version__}"
#: What ``with_options()`` may change: everything that does not belong to the connection pool.
_OPTION_NAMES = frozenset(
    {
        "timeout",
        "deadline",
        "max_retries",
        "retry",
        "model_kwargs",
        "deployment_name",
        "model",
        "extra_parameters",
        "default_headers",
        "formatter",
        "formatter_options",
        "sleep",
        "pricing",
    }
)


#: Endpoint kinds that read the ``extra-parameters`` header (wire-formats.md 3.4).
_EXTRA_PARAMETER_TYPES = (ApiType.SERVERLESS, ApiType.MODELS)


_R = TypeVar("_R")


def _given(value: Any) -> bool:
    return value is not None and not isinstance(value, NotGiven)


def supports(api_types: Sequence[ApiType], api_type: ApiType) -> bool:
    """Whether a formatter listing ``api_types`` talks to ``api_type`` (serverless support
    covers every OpenAI-wire kind)."""
    return api_type in api_types or (api_type.openai_wire and ApiType.SERVERLESS in api_types)


def _builtin(formatter: ContentFormatterBase) -> bool:
    return type(formatter).__module__.startswith("azml_client.formatters")


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

    Every argument left out falls back to its ``AZUREML_*`` environment variable (URL, key,
    deployment, api type, timeout) and then to the defaults in ``_constants.py``. Per-call
    keyword arguments override ``model_kwargs`` for that call only.

    Connections: one pool per client (aiohttp inside, httpx outside). ``proxy=`` and the
    ``HTTP(S)_PROXY`` / ``NO_PROXY`` variables (unless ``trust_env=False``) and ``verify=``
    (``True``, ``False``, a CA bundle path or an ``ssl.SSLContext``) apply to it. Pass
    ``http_client=`` (or ``transport=``) to use your own: the client never closes what it did
    not create. ``with_options(...)`` returns a client that shares the pool.

    Bulk runs (``batch()`` / ``map()``) share the client's :attr:`budget`: one adaptive limiter
    and Retry-After pause for the endpoint; pass ``budget=RateBudget()`` to several clients of
    one endpoint to share it between them.
    """

    def __init__(
        self,
        endpoint_url: str | None = None,
        api_key: str | SecretStr | None = None,
        *,
        api_type: str | ApiType | None = None,
        deployment_name: str | None = None,
        model: str | None = None,
        formatter: FormatterArg | None = None,
        formatter_options: Mapping[str, Any] | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | NotGiven | None = NOT_GIVEN,
        retry: RetryPolicy | NotGiven = NOT_GIVEN,
        limits: httpx.Limits | NotGiven = NOT_GIVEN,
        extra_parameters: str | ExtraParameters | None = None,
        api_version: str | None = None,
        credential: Any = None,
        token_scope: str | None = None,
        api_key_env: str | None = None,
        allow_insecure_http: bool | None = None,
        proxy: str | httpx.URL | httpx.Proxy | NotGiven | None = NOT_GIVEN,
        verify: bool | str | os.PathLike[str] | ssl.SSLContext = True,
        trust_env: bool | NotGiven = NOT_GIVEN,
        default_headers: Mapping[str, str] | None = None,
        budget: RateBudget | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        env: Mapping[str, str] | None = None,
        connect_timeout: float | NotGiven = NOT_GIVEN,
        backoff_base: float | NotGiven = NOT_GIVEN,
        backoff_max: float | NotGiven = NOT_GIVEN,
        max_retry_after: float | NotGiven = NOT_GIVEN,
        max_connections: int | NotGiven = NOT_GIVEN,
        max_keepalive_connections: int | NotGiven = NOT_GIVEN,
        keepalive_expiry: float | NotGiven = NOT_GIVEN,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        capture_content: bool | None = None,
        pricing: Pricing | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise ConfigurationError(unknown_arguments(unknown, "EndpointClient"))
        if credential is not None and api_key is not None:
            raise ConfigurationError("pass either api_key or credential, not both")
        if http_client is not None and transport is not None:
            raise ConfigurationError("pass either http_client or transport, not both")
        if http_client is not None and not isinstance(http_client, httpx.AsyncClient):
            raise ConfigurationError(
                f"http_client must be an httpx.AsyncClient, got {type(http_client).__name__}"
            )
        flat = settings_arguments(
            timeout=timeout,
            retry=retry,
            limits=limits,
            max_retries=max_retries,
            deprecated={
                "connect_timeout": connect_timeout,
                "backoff_base": backoff_base,
                "backoff_max": backoff_max,
                "max_retry_after": max_retry_after,
                "max_connections": max_connections,
                "max_keepalive_connections": max_keepalive_connections,
                "keepalive_expiry": keepalive_expiry,
            },
        )
        if not isinstance(deadline, NotGiven):
            flat["deadline"] = deadline
        if not isinstance(trust_env, NotGiven):
            flat["trust_env"] = trust_env
        settings = ClientSettings.resolve(
            env=env,
            endpoint_url=endpoint_url,
            api_key=_as_secret(api_key) if credential is None else None,
            api_type=api_type,
            deployment_name=deployment_name,
            model=model,
            formatter=formatter if isinstance(formatter, str) else None,
            formatter_options=dict(formatter_options) if formatter_options else None,
            model_kwargs=dict(model_kwargs) if model_kwargs is not None else None,
            extra_parameters=extra_parameters,
            api_version=api_version,
            token_scope=token_scope,
            api_key_env=api_key_env,
            allow_insecure_http=allow_insecure_http,
            **flat,
        )
        s = settings
        redactor = Redactor()
        if s.api_key is not None:
            redactor.add(s.api_key.get_secret_value())
        for secret in url_secrets(s.endpoint_url):  # ?code=..., ?sig=...: not for logs
            redactor.add(secret)
        headers = check_headers(default_headers, "default_headers")
        for name, value in headers.items():
            if name.lower() in SENSITIVE_HEADERS:
                redactor.add(value)
        connections = Connections(
            limits=httpx.Limits(
                max_connections=s.max_connections,
                max_keepalive_connections=s.max_keepalive_connections,
                keepalive_expiry=s.keepalive_expiry,
            ),
            timeout=httpx.Timeout(s.timeout, connect=s.connect_timeout, pool=s.pool_timeout),
            proxy=None if isinstance(proxy, NotGiven) else proxy,
            verify=verify,
            trust_env=s.trust_env,
            http_client=http_client,
            transport=transport,
        )
        auth = self._resolve_auth(credential, s)
        policy = retry if isinstance(retry, RetryPolicy) else RetryPolicy()
        self._init(
            settings=s,
            formatter=self._resolve_formatter(formatter, s),
            default_headers=headers,
            policy=_policy(policy, s),
            driver=Driver(connections, auth, sleep=sleep or anyio.sleep, redactor=redactor),
            owner=True,
            budget=[_check_budget(budget)],
            pricing=_check_pricing(pricing),
            telemetry=make_telemetry(
                api_type=s.api_type,
                endpoint_url=s.endpoint_url,
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
                capture_content=capture_content,
            ),
        )

    def _init(
        self,
        *,
        settings: ClientSettings,
        formatter: ContentFormatterBase,
        default_headers: dict[str, str],
        policy: RetryPolicy,
        driver: Driver,
        owner: bool,
        budget: list[RateBudget | None],
        telemetry: Telemetry | None,
        pricing: Pricing | None,
    ) -> None:
        """Everything a client is made of; shared by ``__init__`` and ``with_options``.

        ``budget`` is a box shared with the client's copies, filled on first bulk use.
        """
        self._settings = settings
        self._formatter = formatter
        self._default_headers = default_headers
        self._policy = policy
        self._driver = driver
        self._owner = owner
        self._budget = budget
        self._telemetry = telemetry
        self._pricing = pricing
        self._routes: Routes = resolve_routes(settings.endpoint_url, settings.api_type)
        #: The endpoint URL as results, reprs and logs show it: without its credentials.
        self._shown_url = driver.redactor.text(settings.endpoint_url)
        self._base_headers = self._make_base_headers()
        self._params = {"api-version": settings.api_version} if settings.api_version else {}
        self._urls: dict[str, httpx.URL] = {}
        self._closed = False

    # -- construction helpers ----------------------------------------------------------------

    @staticmethod
    def _resolve_formatter(
        formatter: FormatterArg | None, s: ClientSettings
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
        if s.api_type.openai_wire and (
            _builtin(instance) or not supports(instance.supported_api_types, s.api_type)
        ):
            # Serverless, models and v1 routes speak the OpenAI wire format whatever the model
            # family: a family formatter (the seed's too) is for /score bodies.
            return formatter_from_config("openai", None)
        if not supports(instance.supported_api_types, s.api_type):
            allowed = ", ".join(str(t) for t in instance.supported_api_types)
            raise ConfigurationError(
                f"formatter {instance.name!r} supports {allowed} endpoints, not {s.api_type}: "
                "use a dedicated formatter such as formatter='llama'"
            )
        return instance

    @staticmethod
    def _resolve_auth(credential: Any, s: ClientSettings) -> Auth:
        if credential is not None:
            scope = s.token_scope or token_scope_for(s.endpoint_url, s.api_type)
            return TokenAuth(credential, scope)
        if s.api_key is not None:
            if not s.api_key.get_secret_value().strip():
                raise ConfigurationError("api_key is empty: pass the endpoint's key")
            return KeyAuth(s.api_key, header=s.api_type.api_key_header)
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
            "User-Agent": _USER_AGENT,
        }
        if s.deployment_name and s.api_type is not ApiType.OPENAI_V1:
            headers[HEADER_DEPLOYMENT] = s.deployment_name
        if s.extra_parameters is not None and s.api_type in _EXTRA_PARAMETER_TYPES:
            headers[HEADER_EXTRA_PARAMETERS] = str(s.extra_parameters)
        headers.update(self._default_headers)
        return headers

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
    def endpoint_url(self) -> str:
        """The endpoint URL as results, errors and logs show it: a credential it carries (a
        password, ``?code=``, ``?sig=``, ``?api-key=``) is ``[REDACTED]``."""
        return self._shown_url

    @property
    def model_kwargs(self) -> dict[str, Any]:
        """A copy of the client's default model parameters (calls never change them)."""
        return dict(self._settings.model_kwargs)

    @property
    def retry_policy(self) -> RetryPolicy:
        return self._policy

    @property
    def budget(self) -> RateBudget:
        """The endpoint's shared rate budget: every ``batch()`` / ``map()`` of this client (and
        of its ``with_options()`` copies) learns from and obeys it (see :class:`RateBudget`)."""
        shared = self._budget
        budget = shared[0]
        if budget is None:
            from ._bulk import RateBudget

            budget = shared[0] = RateBudget(max_concurrency=self._settings.max_connections)
        return budget

    @property
    def routes(self) -> Routes:
        return self._routes

    @property
    def is_closed(self) -> bool:
        return self._closed or self._driver.connections.closed

    def __repr__(self) -> str:
        s = self._settings
        return (
            f"EndpointClient(endpoint_url={self._shown_url!r}, api_type={s.api_type.value!r}, "
            f"deployment_name={s.deployment_name!r}, formatter={self._formatter.name!r}, "
            f"auth={self._driver.auth!r})"
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> EndpointClient:
        self._ensure_open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (only if this client created it). Idempotent.

        A client made by :meth:`with_options` closes nothing: the pool belongs to the client it
        came from.
        """
        self._closed = True
        if self._owner:
            await self._driver.connections.aclose()

    def _ensure_open(self) -> None:
        if self.is_closed:
            raise ClientClosedError()

    def with_options(self, **overrides: Any) -> EndpointClient:
        """A client with some settings changed that shares this one's connection pool.

        Accepts ``timeout``, ``deadline``, ``max_retries``, ``retry``, ``model_kwargs``,
        ``deployment_name``, ``extra_parameters``, ``default_headers`` (replacing the client's),
        ``formatter``, ``formatter_options`` and ``sleep``::

            patient = client.with_options(timeout=300, retry=RetryPolicy(max_retries=6))
        """
        unknown = sorted(set(overrides) - _OPTION_NAMES)
        if unknown:
            raise ConfigurationError(
                f"with_options() cannot change {', '.join(unknown)}: it shares the connection "
                "pool and the credential; build a new EndpointClient for that"
            )
        self._ensure_open()
        retry = overrides.pop("retry", NOT_GIVEN)
        flat = settings_arguments(
            timeout=overrides.pop("timeout", NOT_GIVEN),
            retry=retry,
            limits=NOT_GIVEN,
            max_retries=overrides.pop("max_retries", NOT_GIVEN),
            deprecated={},
        )
        if "deadline" in overrides:
            flat["deadline"] = overrides.pop("deadline")
        formatter = overrides.pop("formatter", None)
        sleep = overrides.pop("sleep", None)
        pricing = overrides.pop("pricing", NOT_GIVEN)
        headers = overrides.pop("default_headers", NOT_GIVEN)
        for name in ("model_kwargs", "formatter_options"):
            if name in overrides:
                overrides[name] = dict(overrides[name] or {})
        if "extra_parameters" in overrides and overrides["extra_parameters"] is not None:
            overrides["extra_parameters"] = ExtraParameters(str(overrides["extra_parameters"]))
        settings = self._settings.model_copy(deep=True)
        try:
            for name, value in {**flat, **overrides}.items():
                setattr(settings, name, value)
        except ValueError as exc:
            raise ConfigurationError(f"with_options(): {exc}") from None
        if isinstance(formatter, str):
            settings.formatter = formatter
        if _given(formatter) or "formatter_options" in overrides:
            new_formatter = self._resolve_formatter(formatter, settings)
        else:
            new_formatter = self._formatter
        driver = self._driver
        if sleep is not None:
            driver = Driver(driver.connections, driver.auth, sleep=sleep, redactor=driver.redactor)
        base = retry if isinstance(retry, RetryPolicy) else self._policy
        clone = object.__new__(type(self))
        clone._init(
            settings=settings,
            formatter=new_formatter,
            default_headers=(
                self._default_headers
                if isinstance(headers, NotGiven)
                else check_headers(headers, "default_headers")
            ),
            policy=_policy(base, settings),
            driver=driver,
            owner=False,
            budget=self._budget,
            telemetry=self._telemetry,
            pricing=self._pricing if isinstance(pricing, NotGiven) else _check_pricing(pricing),
        )
        for name, value in clone._default_headers.items():
            if name.lower() in SENSITIVE_HEADERS:
                driver.redactor.add(value)
        return clone

    def _fork(self) -> EndpointClient:
        """The same client with a connection pool of its own (pools belong to one loop)."""
        d = self._driver
        clone = object.__new__(type(self))
        clone._init(
            settings=self._settings,
            formatter=self._formatter,
            default_headers=self._default_headers,
            policy=self._policy,
            driver=Driver(d.connections.fresh(), d.auth, sleep=d.sleep, redactor=d.redactor),
            owner=True,
            budget=self._budget,
            telemetry=self._telemetry,
            pricing=self._pricing,
        )
        return clone

    # -- configuration files -----------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write this client's settings as JSON; the key is never written.

        The file names the environment variable (``api_key_env``) that :func:`load_client`
        reads the key from. Connection options that belong to one machine (``proxy``,
        ``verify``, ``default_headers``, ``http_client``) are not written.
        """
        s = self._settings
        if url_secrets(s.endpoint_url):
            raise ConfigurationError(
                "the endpoint URL carries a credential (a password, or a query parameter such "
                "as code=, sig= or api-key=), and a saved config never holds one: remove it "
                "from the URL and pass it as api_key= (read from api_key_env when loading) or "
                "in default_headers"
            )
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
        return cls(**config_arguments(path, overrides))

    # -- calls -------------------------------------------------------------------------------

    async def complete(
        self,
        prompt: str,
        *,
        stop: str | Sequence[str] | None = None,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | RetryPolicy | NotGiven | None = NOT_GIVEN,
        extra_parameters: str | ExtraParameters | NotGiven | None = NOT_GIVEN,
        deployment_name: str | NotGiven | None = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> Completion:
        """Generate text for ``prompt``; keyword arguments are model parameters for this call.

        ``timeout`` (per attempt), ``deadline`` (whole call; ``None``: none for this call),
        ``max_retries`` (or a :class:`RetryPolicy`), ``extra_parameters``, ``deployment_name``
        and ``extra_headers`` override the client's settings for this call.
        """
        opts = CallOptions(
            timeout, deadline, max_retries, extra_parameters, deployment_name, extra_headers
        )
        return await self._complete(prompt, self._merge_params(params, stop), opts)

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        stop: str | Sequence[str] | None = None,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | RetryPolicy | NotGiven | None = NOT_GIVEN,
        extra_parameters: str | ExtraParameters | NotGiven | None = NOT_GIVEN,
        deployment_name: str | NotGiven | None = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> ChatCompletion:
        """Answer a conversation (``[{"role": "user", "content": "Hi"}, ...]``)."""
        opts = CallOptions(
            timeout, deadline, max_retries, extra_parameters, deployment_name, extra_headers
        )
        return await self._chat(messages, self._merge_params(params, stop), opts)

    async def invoke(
        self,
        payload: Mapping[str, Any] | Sequence[Any] | bytes | str,
        *,
        url: str | None = None,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | RetryPolicy | NotGiven | None = NOT_GIVEN,
        extra_parameters: str | ExtraParameters | NotGiven | None = NOT_GIVEN,
        deployment_name: str | NotGiven | None = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> Any:
        """Send ``payload`` as it is (a JSON-able object, or ``bytes``/``str`` sent verbatim)
        to the endpoint URL (or ``url``) with the client's auth, headers and retries; return
        the decoded JSON answer. The escape hatch for any schema no formatter covers.

        A prompt is not a payload: ``invoke("Write me a song")`` (text that is not JSON) and
        model parameters (``invoke(..., temperature=0.5)``) are refused, naming ``complete()``.
        """
        if params:
            raise ConfigurationError(
                f"invoke() sends the payload as it is and takes no model parameters (got "
                f"{', '.join(sorted(params))}): use complete(prompt, {next(iter(params))}=...) "
                "or chat(messages, ...), or put them in the payload"
            )
        if isinstance(payload, str):
            try:
                _json.loads(payload)
            except ValueError:
                raise ConfigurationError(
                    f"invoke() sends its payload verbatim and {payload[:40]!r} is not JSON: for "
                    "a prompt use complete(prompt) (or chat(messages)); send bytes to post "
                    "non-JSON data as it is"
                ) from None
        body = payload.encode("utf-8") if isinstance(payload, str) else payload
        if not isinstance(body, bytes):
            body = dump_json(body)

        def parse(exchange: Exchange) -> Any:
            try:
                return _json.loads(exchange.body)
            except ValueError:
                raise ResponseFormatError(
                    "the answer is not JSON",
                    formatter="invoke",
                    api_type=str(self._settings.api_type),
                    body=excerpt(exchange.body, 300),
                    request_id=exchange.request_id,
                ) from None

        opts = CallOptions(
            timeout, deadline, max_retries, extra_parameters, deployment_name, extra_headers
        )
        call = self._plan(url or self._settings.endpoint_url, body, opts)
        return await self._traced(call, parse, "generate_content", self._span_model(None))

    def stream(
        self,
        prompt_or_messages: str | Sequence[Message],
        *,
        stop: str | Sequence[str] | None = None,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        idle_timeout: float | None = None,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | RetryPolicy | NotGiven | None = NOT_GIVEN,
        extra_parameters: str | ExtraParameters | NotGiven | None = NOT_GIVEN,
        deployment_name: str | NotGiven | None = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> AsyncStream:
        """Stream the answer to a prompt (completion) or a message list (chat).

        Returns an :class:`AsyncStream` at once; the request is sent on ``async with`` or on
        the first iteration, and retried only until the response headers arrive.
        ``timeout`` bounds each attempt until the headers, ``idle_timeout`` the wait between
        two chunks (default: ``timeout``), ``deadline`` the whole stream, body included::

            async with client.stream([{"role": "user", "content": "Hi"}]) as stream:
                async for chunk in stream:
                    print(chunk.text, end="", flush=True)
        """
        self._ensure_open()
        fmt = self._formatter
        if not supports(fmt.stream_api_types, self.api_type):
            raise ConfigurationError(
                f"formatter {fmt.name!r} does not stream on {self.api_type} endpoints: use "
                "complete()/chat(), or a streaming family ('openai' on serverless, 'tgi')"
            )
        merged = self._merge_params(params, stop)
        if self.api_type.openai_wire:
            # Token usage arrives on a last chunk only when asked for; ask unless the caller
            # set stream_options (None: send none).
            options = merged.get("stream_options", NOT_GIVEN)
            if isinstance(options, NotGiven):
                merged["stream_options"] = {"include_usage": True}
            elif options is None:
                del merged["stream_options"]
        structured = None
        if isinstance(prompt_or_messages, str):
            request = FormatRequest(
                api_type=self.api_type, prompt=prompt_or_messages, params=merged, stream=True
            )
            url = self._routes.completions
        else:
            request, structured = self._chat_request(
                prompt_or_messages, merged, checked=False, stream=True
            )
            url = self._routes.chat
        opts = CallOptions(
            timeout, deadline, max_retries, extra_parameters, deployment_name, extra_headers
        )
        call = self._plan(url, encode_request(fmt, request), opts, stream=True)
        if idle_timeout is not None:
            if isinstance(idle_timeout, bool) or not idle_timeout > 0:
                raise ConfigurationError(
                    f"idle_timeout must be a positive number of seconds, got {idle_timeout!r}"
                )
            call.idle_timeout = float(idle_timeout)
        else:
            call.idle_timeout = call.timeout
        driver = self._driver
        from ._streaming import AsyncStream

        telemetry = self._telemetry
        trace = None
        if telemetry is not None:
            operation = "text_completion" if isinstance(prompt_or_messages, str) else "chat"
            trace = telemetry.start(
                operation,
                self._span_model(merged),
                merged,
                stream=True,
                messages=request.messages if request.messages is not None else request.prompt,
            )
            call.trace = trace

        async def opener() -> Exchange:
            return await driver.run(call, _as_exchange)

        return AsyncStream(
            opener,
            fmt,
            request,
            idle_timeout=call.idle_timeout,
            url=url,
            deadline_at=call.deadline_at,
            redactor=driver.redactor,
            structured=structured,
            trace=trace,
        )

    # -- embeddings and model info ----------------------------------------------------------

    async def embed(
        self,
        input: str | Sequence[str],
        *,
        input_type: str | None = None,
        encoding_format: str | None = None,
        dimensions: int | None = None,
        model: str | None = None,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | RetryPolicy | NotGiven | None = NOT_GIVEN,
        extra_parameters: str | ExtraParameters | NotGiven | None = NOT_GIVEN,
        deployment_name: str | NotGiven | None = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Embeddings:
        """Embed one text or a list of texts: one vector per input, in input order.

        ``input_type`` (``text``, ``query``, ``document``), ``encoding_format`` (``float``,
        ``base64``: decoded to floats here, ``int8``, ...) and ``dimensions`` are sent when
        given. Serverless, models and openai_v1 endpoints (``POST .../embeddings``)::

            vectors = (await client.embed(["first text", "second text"])).vectors
        """
        from ._embeddings import embeddings_body, text_inputs

        texts = text_inputs(input)
        body = embeddings_body(
            list(texts),
            input_type=input_type,
            encoding_format=encoding_format,
            dimensions=dimensions,
            model=self._model(model) if self.api_type.openai_wire else model,
        )
        opts = CallOptions(
            timeout, deadline, max_retries, extra_parameters, deployment_name, extra_headers
        )
        return await self._embed(self._route("embeddings", "embed()"), body, len(texts), opts)

    async def embed_images(
        self,
        images: Any,
        *,
        input_type: str | None = None,
        encoding_format: str | None = None,
        dimensions: int | None = None,
        model: str | None = None,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | RetryPolicy | NotGiven | None = NOT_GIVEN,
        extra_parameters: str | ExtraParameters | NotGiven | None = NOT_GIVEN,
        deployment_name: str | NotGiven | None = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Embeddings:
        """Embed images (``POST .../images/embeddings``, model inference API): each one
        ``bytes``, a ``pathlib.Path``, a ``data:`` or http(s) URL, or ``{"image": ..., "text":
        ...}``."""
        from ._embeddings import embeddings_body, image_inputs

        inputs = image_inputs(images)
        body = embeddings_body(
            list(inputs),
            input_type=input_type,
            encoding_format=encoding_format,
            dimensions=dimensions,
            model=model or self._settings.model,
        )
        opts = CallOptions(
            timeout, deadline, max_retries, extra_parameters, deployment_name, extra_headers
        )
        url = self._route("image_embeddings", "embed_images()")
        return await self._embed(url, body, len(inputs), opts)

    async def embed_many(
        self,
        texts: Iterable[str] | AsyncIterable[str],
        *,
        batch_size: int = 64,
        concurrency: Concurrency = "auto",
        max_rps: float | None = None,
        max_tpm: float | None = None,
        input_type: str | None = None,
        encoding_format: str | None = None,
        dimensions: int | None = None,
        model: str | None = None,
        max_rate_limit_retries: int = DEFAULT_BULK_RATE_LIMIT_RETRIES,
    ) -> Embeddings:
        """Embed many texts through the bulk engine: ``batch_size`` texts per request, the
        client's shared rate budget, retries (429s with their own budget,
        ``max_rate_limit_retries``, as in :meth:`batch`); the vectors come back in input order.

        Raises the first failed request's error (after its retries) rather than return a
        result with holes; ``usage`` is the sum over all requests.
        """
        from ._bulk import BatchRun

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigurationError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self._ensure_open()
        self._route("embeddings", "embed_many()")
        if self.api_type.openai_wire:
            self._model(model)  # the v1 API's missing model fails here, not once per request
        policy = replace(self._policy, max_rate_limit_retries=max_rate_limit_retries)
        opts = CallOptions(max_retries=policy)

        options = {
            "input_type": input_type,
            "encoding_format": encoding_format,
            "dimensions": dimensions,
            "model": model,
        }

        async def call(item: Item, hook: AttemptHook) -> Embeddings:
            return await self._embed_item(item, options, opts, hook)

        run = BatchRun(
            cast("ItemCaller", call),
            _embedding_items(texts, batch_size),
            concurrency=concurrency,
            budget=self.budget,
            max_rps=max_rps,
            max_tpm=max_tpm,
            params={},
            return_exceptions=False,
            sleep=self._driver.sleep,
        )
        parts: dict[int, Embeddings] = {}
        async with run:
            async for index, result in run:
                if not isinstance(result, Embeddings):  # return_exceptions=False raises
                    raise result if isinstance(result, AzmlError) else TypeError(result)
                parts[index] = result
        from ._embeddings import joined_embeddings

        return joined_embeddings([parts[index] for index in range(len(parts))])

    async def info(
        self,
        *,
        timeout: float | httpx.Timeout | NotGiven = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | RetryPolicy | NotGiven | None = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> ModelInfo:
        """What the endpoint says of its model (``GET .../info``, model inference API)."""
        url = self._route("info", "info()")
        opts = CallOptions(timeout, deadline, max_retries, extra_headers=extra_headers)

        def parse(exchange: Exchange) -> ModelInfo:
            try:
                data = _json.loads(exchange.body)
                return ModelInfo.model_validate(data)
            except ValueError as exc:  # not JSON, or pydantic's ValidationError
                raise ResponseFormatError(
                    f"the /info answer is not a model info object ({type(exc).__name__})",
                    formatter="info",
                    api_type=str(self.api_type),
                    body=excerpt(exchange.body, 300),
                    request_id=exchange.request_id,
                ) from None

        call = self._plan(url, b"", opts)
        call.method = "GET"
        return await self._driver.run(call, parse)

    def _route(self, name: str, what: str) -> str:
        url: str | None = getattr(self._routes, name)
        if url is None:
            kinds = (
                "models or serverless"
                if name != "embeddings"
                else "serverless, models or openai_v1"
            )
            raise ConfigurationError(
                f"{what} needs a {kinds} endpoint; this client talks to a {self.api_type} "
                f"endpoint ({self._settings.endpoint_url}), which has no such route"
                + (
                    ": use invoke() for a /score embedding model"
                    if self.api_type is ApiType.DEDICATED
                    else ""
                )
            )
        return url

    async def _embed_item(
        self,
        item: Item,
        params: Mapping[str, Any],
        opts: CallOptions,
        hook: AttemptHook,
        parent: Any = None,
    ) -> Embeddings:
        """A bulk embeddings item: its texts, with the run's options under the item's own."""
        from ._embeddings import embeddings_body

        merged = {**{k: v for k, v in params.items() if v is not None}, **item.params}
        unknown = sorted(set(merged) - {"input_type", "encoding_format", "dimensions", "model"})
        if unknown:
            raise ConfigurationError(
                f"embeddings take input_type, encoding_format, dimensions and model, not "
                f"{', '.join(unknown)}"
            )
        model = merged.get("model")
        body = embeddings_body(
            list(item.payload),
            input_type=merged.get("input_type"),
            encoding_format=merged.get("encoding_format"),
            dimensions=merged.get("dimensions"),
            model=self._model(model) if self.api_type.openai_wire else model,
        )
        url = self._route("embeddings", "embeddings")
        return await self._embed(url, body, len(item.payload), opts, hook=hook, parent=parent)

    async def _embed(
        self,
        url: str,
        body: dict[str, Any],
        count: int,
        opts: CallOptions,
        hook: AttemptHook | None = None,
        parent: Any = None,
    ) -> Embeddings:
        from ._embeddings import read_vectors

        def parse(exchange: Exchange) -> Embeddings:
            try:
                data = _json.loads(exchange.body)
                vectors = read_vectors(data, count)
            except ResponseFormatError as exc:
                exc.request_id = exchange.request_id
                raise
            except ValueError:
                raise ResponseFormatError(
                    "the embeddings answer is not JSON",
                    formatter="embeddings",
                    api_type=str(self.api_type),
                    body=excerpt(exchange.body, 300),
                    request_id=exchange.request_id,
                ) from None
            model = data.get("model")
            return Embeddings(
                vectors=vectors,
                usage=usage_from(data.get("usage")),
                model=model if isinstance(model, str) and model else None,
                request_id=exchange.request_id,
                client_request_id=exchange.client_request_id,
                attempts=exchange.attempts,
                raw=data,
                **self._origin(exchange),
            )

        call = self._plan(url, dump_json(body), opts)
        call.hook = hook
        return await self._traced(
            call, parse, "embeddings", self._span_model(body), body, None, parent
        )

    # -- bulk --------------------------------------------------------------------------------

    def map(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: Concurrency = "auto",
        max_rps: float | None = None,
        max_tpm: float | None = None,
        max_retries: int | None = None,
        max_rate_limit_retries: int = DEFAULT_BULK_RATE_LIMIT_RETRIES,
        return_exceptions: bool = True,
        **params: Any,
    ) -> BatchRun:
        """Run many prompts or chats; iterate ``(index, result)`` as they complete.

        ``items`` may be any sync or async iterable, far larger than memory: items are pulled
        only as capacity frees. Each item is a prompt string, a list of messages, or a dict with
        ``"prompt"`` or ``"messages"`` and optional ``"params"``. ``concurrency="auto"`` adapts
        to the endpoint (see :mod:`azml_client._limiter`); ``max_rps`` / ``max_tpm`` are hard
        budgets. Every item goes through the same request pipeline as :meth:`complete`: the
        client's timeouts and ``max_retry_after`` apply, and 429s have their own retry budget
        (``max_rate_limit_retries``). A failed item's result is its typed exception (or, with
        ``return_exceptions=False``, the run raises it and cancels the rest). Keyword arguments
        are model parameters for every item (an item's own ``params`` win)::

            async with client.map(prompts, max_rps=20) as run:
                async for index, result in run:
                    ...
            print(run.stats)
        """
        from ._bulk import BatchRun

        self._ensure_open()
        s = self._settings
        common = self._merge_params(params, None)
        policy = replace(
            self._policy,
            max_retries=s.max_retries if max_retries is None else max_retries,
            max_rate_limit_retries=max_rate_limit_retries,
        )
        opts = CallOptions(max_retries=policy)
        telemetry = self._telemetry
        run_span = None
        if telemetry is not None:
            run_span = telemetry.start_run("batch", self._span_model(common))
            telemetry.watch_budget(self.budget.snapshot)

        async def call(item: Item, hook: AttemptHook) -> Completion:
            if item.kind == "embed":
                embedded = await self._embed_item(item, params, opts, hook, parent=run_span)
                return cast(Completion, embedded)
            merged = {**common, **item.params}
            if item.kind == "chat":
                return await self._chat(
                    item.payload, merged, opts, hook=hook, checked=True, parent=run_span
                )
            return await self._complete(item.payload, merged, opts, hook=hook, parent=run_span)

        return BatchRun(
            call,
            items,
            concurrency=concurrency,
            budget=self.budget,
            max_rps=max_rps,
            max_tpm=max_tpm,
            params=common,
            return_exceptions=return_exceptions,
            sleep=self._driver.sleep,
            on_finish=None if run_span is None else end_run_span(run_span),
            pricing=self._pricing,
        )

    async def batch(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: Concurrency = "auto",
        max_rps: float | None = None,
        max_tpm: float | None = None,
        max_retries: int | None = None,
        max_rate_limit_retries: int = DEFAULT_BULK_RATE_LIMIT_RETRIES,
        return_exceptions: bool = True,
        progress: bool = False,
        **params: Any,
    ) -> BatchResults:
        """Run many prompts or chats and return the results in input order (see :meth:`map`).

        ``results.stats`` tells what happened: sent, succeeded, failed, retried, 429s, req/s
        and the concurrency over time. ``progress=True`` shows progress on stderr.
        """
        from ._bulk import collect

        total = len(items) if isinstance(items, Sized) else None
        observer = None
        if progress:  # the command line's renderer: the engine knows no terminal
            from .cli._render import RunProgress

            observer = RunProgress(total)
        run = self.map(
            items,
            concurrency=concurrency,
            max_rps=max_rps,
            max_tpm=max_tpm,
            max_retries=max_retries,
            max_rate_limit_retries=max_rate_limit_retries,
            return_exceptions=return_exceptions,
            **params,
        )
        return await collect(run, observer=observer)

    # -- internals ---------------------------------------------------------------------------

    async def _complete(
        self,
        prompt: str,
        params: dict[str, Any],
        opts: CallOptions,
        hook: AttemptHook | None = None,
        parent: Any = None,
    ) -> Completion:
        if not isinstance(prompt, str):
            raise ConfigurationError(
                f"complete() takes the prompt as a str, got {type(prompt).__name__}; for a "
                "conversation use chat()"
            )
        if not self._formatter.supports_completion:
            raise ConfigurationError(
                f"formatter {self._formatter.name!r} does not support complete(); use chat()"
            )
        request = FormatRequest(api_type=self._settings.api_type, prompt=prompt, params=params)

        def parse(exchange: Exchange) -> Completion:
            parsed, data = self._decode(exchange, request)
            return Completion(
                text=parsed.text, **_result_fields(parsed, data, exchange, self._origin(exchange))
            )

        call = self._plan(self._routes.completions, encode_request(self._formatter, request), opts)
        call.hook = hook
        return await self._traced(
            call, parse, "text_completion", self._span_model(params), params, prompt, parent
        )

    async def _chat(
        self,
        messages: Sequence[Message],
        params: dict[str, Any],
        opts: CallOptions,
        hook: AttemptHook | None = None,
        checked: bool = False,
        parent: Any = None,
    ) -> ChatCompletion:
        """``checked``: the messages come from a validated bulk :class:`Item`."""
        request, structured = self._chat_request(messages, params, checked=checked)

        def parse(exchange: Exchange) -> ChatCompletion:
            parsed, data = self._decode(exchange, request)
            try:
                tool_calls = tool_calls_from(parsed.tool_calls)
            except ResponseFormatError as exc:
                exc.request_id = exchange.request_id
                raise
            fields = _result_fields(parsed, data, exchange, self._origin(exchange))
            value = None
            if structured is not None and tool_calls is None:
                value = structured.parse(
                    parsed.text, fields["finish_reason"], exchange.request_id, usage=fields["usage"]
                )
            return ChatCompletion(
                text=parsed.text,
                message=message_from(parsed.message, parsed.text),
                tool_calls=tool_calls,
                parsed=value,
                **fields,
            )

        call = self._plan(self._routes.chat, encode_request(self._formatter, request), opts)
        call.hook = hook
        return await self._traced(
            call, parse, "chat", self._span_model(params), params, request.messages, parent
        )

    def _chat_request(
        self,
        messages: Sequence[Message],
        params: dict[str, Any],
        *,
        checked: bool,
        stream: bool = False,
    ) -> tuple[FormatRequest, Structured | None]:
        """The checked request of a chat: messages fit for the formatter, tools and
        ``response_format`` in wire form. ``checked``: the messages come from a bulk item."""
        fmt = self._formatter
        if not fmt.supports_chat:
            raise ConfigurationError(
                f"formatter {fmt.name!r} does not support chat(): use a chat family such as "
                "'llama-chat' or 'vllm' (dedicated) or 'openai' (serverless), or call complete()"
            )
        checked_messages = (
            cast("list[dict[str, Any]]", messages) if checked else check_messages(messages)
        )
        params, structured = prepare_chat_params(params)
        if "tools" in params and not getattr(fmt, "supports_tools", False):
            raise ConfigurationError(
                f"formatter {fmt.name!r} cannot send tools: use an OpenAI-style endpoint "
                "(serverless, models, openai_v1) or the 'vllm' formatter on /score"
            )
        checked_messages = fit_messages(
            checked_messages, images=getattr(fmt, "supports_images", False), formatter=fmt.name
        )
        request = FormatRequest(
            api_type=self._settings.api_type,
            messages=checked_messages,
            params=params,
            stream=stream,
        )
        return request, structured

    def _decode(self, exchange: Exchange, request: FormatRequest) -> tuple[ParsedOutput, Any]:
        try:
            return decode_response(self._formatter, exchange.body, request)
        except (APIStatusError, ResponseFormatError) as exc:  # an error inside a 2xx answer
            exc.request_id = exc.request_id or exchange.request_id
            raise

    def _origin(self, exchange: Exchange) -> dict[str, Any]:
        """Which endpoint (its URL without credentials) and deployment answered."""
        deployment = exchange.deployment or self._settings.deployment_name
        return {"endpoint_url": self._shown_url, "deployment": deployment}

    def _span_model(self, params: Mapping[str, Any] | None) -> str | None:
        """The model a span names: the call's, the client's, else the deployment."""
        model = params.get("model") if params else None
        s = self._settings
        return model if isinstance(model, str) else (s.model or s.deployment_name)

    async def _traced(
        self,
        call: Call,
        parse: Callable[[Exchange], _R],
        operation: str,
        model: str | None,
        params: Mapping[str, Any] | None = None,
        messages: Any = None,
        parent: Any = None,
    ) -> _R:
        """Run ``call`` in the driver inside its span (see :mod:`._telemetry`)."""
        telemetry = self._telemetry
        trace = None
        if telemetry is not None:
            trace = telemetry.start(operation, model, params, messages=messages, parent=parent)
        if trace is None:
            return await self._driver.run(call, parse)
        call.trace = trace
        try:
            result = await self._driver.run(call, parse)
        except Exception as exc:
            trace.failed(exc)
            raise
        except BaseException:
            trace.cancelled()
            raise
        _trace_result(trace, result)
        return result

    def _merge_params(
        self, params: Mapping[str, Any], stop: str | Sequence[str] | None
    ) -> dict[str, Any]:
        """The model parameters of a call: the client's, the call's, the client's ``model``
        on OpenAI-style routes (the v1 API requires one)."""
        s = self._settings
        merged = {**s.model_kwargs, **params}
        if stop is not None:
            merged["stop"] = [stop] if isinstance(stop, str) else list(stop)
        if s.api_type.openai_wire and merged.get("model") is None:
            model = self._model()
            if model is not None:
                merged["model"] = model
            else:
                merged.pop("model", None)
        return merged

    def _model(self, given: str | None = None) -> str | None:
        """The model a call names: its own, the client's, else (v1 API) the deployment name;
        a :class:`ConfigurationError` on the v1 API when there is none."""
        s = self._settings
        model = given or s.model
        if model is None and s.api_type is ApiType.OPENAI_V1:
            model = s.deployment_name
            if model is None:
                raise ConfigurationError(
                    "the OpenAI v1 API needs the model (your deployment's name, case-sensitive): "
                    "pass model=... to EndpointClient or to the call"
                )
        return model

    def _url(self, url: str) -> httpx.URL:
        """The parsed URL of a route, with the client's query parameters (cached)."""
        parsed = self._urls.get(url)
        if parsed is None:
            redactor = self._driver.redactor
            if isinstance(url, str):
                for secret in url_secrets(url):
                    redactor.add(secret)
            try:
                parsed = httpx.URL(url)
            except (httpx.InvalidURL, TypeError) as exc:
                shown = redactor.text(url) if isinstance(url, str) else url
                raise ConfigurationError(f"malformed URL {shown!r} ({exc})") from None
            if self._params:
                parsed = parsed.copy_merge_params(self._params)
            if len(self._urls) > 64:
                self._urls.clear()
            self._urls[url] = parsed
        return parsed

    def _plan(self, url: str, body: bytes, opts: CallOptions, *, stream: bool = False) -> Call:
        """The :class:`Call` of one request: headers, time limits, retry policy."""
        self._ensure_open()
        s = self._settings
        attempt, connect, pool = s.timeout, s.connect_timeout, s.pool_timeout
        if not isinstance(opts.timeout, NotGiven):
            attempt, call_connect, call_pool = split_timeout(opts.timeout)
            connect = call_connect or min(connect, attempt)
            pool = call_pool or pool
        deadline = s.deadline if isinstance(opts.deadline, NotGiven) else opts.deadline
        deadline_at = None
        if deadline is not None:
            if isinstance(deadline, bool) or not isinstance(deadline, int | float) or deadline <= 0:
                raise ConfigurationError(
                    f"deadline must be a positive number of seconds (or None), got {deadline!r}"
                )
            deadline_at = time.monotonic() + deadline
        policy = self._policy
        retries = opts.max_retries
        if isinstance(retries, RetryPolicy):
            policy = retries
        elif retries is not None and not isinstance(retries, NotGiven):
            if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
                raise ConfigurationError(
                    f"max_retries must be an integer >= 0 (0 disables retrying), got {retries!r}"
                )
            policy = replace(policy, max_retries=retries)
        headers = dict(self._base_headers)
        headers[HEADER_CLIENT_REQUEST_ID] = new_request_id()
        if _given(opts.deployment_name):
            headers[HEADER_DEPLOYMENT] = str(opts.deployment_name)
        if _given(opts.extra_parameters):
            if s.api_type not in _EXTRA_PARAMETER_TYPES:
                raise ConfigurationError(
                    "extra_parameters applies to serverless and models endpoints only"
                )
            try:
                headers[HEADER_EXTRA_PARAMETERS] = str(ExtraParameters(str(opts.extra_parameters)))
            except ValueError:
                raise ConfigurationError(
                    f"unknown extra_parameters {opts.extra_parameters!r}: use 'pass-through', "
                    "'drop' or 'error'"
                ) from None
        if opts.extra_headers:
            headers.update(check_headers(opts.extra_headers, "extra_headers"))
        if stream:
            headers["Accept"] = "text/event-stream, application/json"
        return Call(
            url=self._url(url),
            body=body,
            headers=headers,
            timeout=attempt,
            connect_timeout=connect,
            pool_timeout=pool,
            deadline_at=deadline_at,
            policy=policy,
            stream=stream,
        )


def _policy(base: RetryPolicy, s: ClientSettings) -> RetryPolicy:
    """``base`` with the retry settings ``s`` holds (what ``save()`` writes)."""
    return replace(
        base,
        max_retries=s.max_retries,
        backoff_base=s.backoff_base,
        backoff_max=s.backoff_max,
        max_retry_after=s.max_retry_after,
    )


async def _embedding_items(
    texts: Iterable[str] | AsyncIterable[str], size: int
) -> AsyncIterator[Item]:
    """Bulk items of ``size`` texts each, pulled from ``texts`` as the run asks for more."""
    from ._bulk import Item

    chunk: list[str] = []
    count = 0

    def take(text: Any) -> Item | None:
        nonlocal chunk, count
        if not isinstance(text, str):
            raise ConfigurationError(
                f"embed_many() input {count} is a {type(text).__name__}: give strings"
            )
        count += 1
        chunk.append(text)
        if len(chunk) < size:
            return None
        item, chunk = Item("embed", tuple(chunk)), []
        return item

    if isinstance(texts, AsyncIterable):
        async for text in texts:
            if (item := take(text)) is not None:
                yield item
    else:
        for text in texts:
            if (item := take(text)) is not None:
                yield item
    if chunk:
        yield Item("embed", tuple(chunk))


#: LangChain's ``AzureMLOnlineEndpoint`` arguments and what they are called here.
_LANGCHAIN_NAMES = {
    "endpoint_api_key": "api_key",
    "endpoint_api_type": "api_type",
    "content_formatter": "formatter",
    "azureml_endpoint": "endpoint_url",
    "base_url": "endpoint_url",
    "azure_endpoint": "endpoint_url",
    "deployment": "deployment_name",
    "azure_deployment": "deployment_name (or model= on the OpenAI v1 API)",
    "request_timeout": "timeout",
    "temperature": "model_kwargs={'temperature': ...}",
    "max_tokens": "model_kwargs={'max_tokens': ...}",
    "max_new_tokens": "model_kwargs={'max_new_tokens': ...}",
}


def unknown_arguments(unknown: Mapping[str, Any], where: str) -> str:
    """The message for arguments ``where`` does not take: each with the name it has here."""
    import difflib
    import inspect

    known = [
        name
        for name in inspect.signature(EndpointClient.__init__).parameters
        if name not in ("self", "unknown")
    ]
    hints = []
    for name in sorted(unknown):
        if name in _LANGCHAIN_NAMES:
            hints.append(f"{name} (LangChain's name): use {_LANGCHAIN_NAMES[name]}")
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hints.append(f"{name}: did you mean {close[0]}?" if close else f"{name}: not a setting")
    return (
        f"{where}() got unknown arguments: {'; '.join(hints)}. For LangChain's classes as they "
        "are, use azml_client.langchain"
    )


def _trace_result(trace: CallTrace, result: Any) -> None:
    """End a call's span with what its result says."""
    if isinstance(result, ChatCompletion):
        trace.succeeded_with(result, output=result.message.model_dump(exclude_none=True))
    elif isinstance(result, Completion):
        trace.succeeded_with(result, output=result.text)
    elif isinstance(result, Embeddings):
        trace.succeeded_with(result)
    else:
        trace.succeeded()


def _check_pricing(pricing: Any) -> Pricing | None:
    if pricing is not None and not isinstance(pricing, Pricing):
        raise ConfigurationError(
            "pricing must be a Pricing(input_per_1k=..., output_per_1k=...) or "
            f"Pricing(hourly=..., instances=...), got {type(pricing).__name__}"
        )
    return pricing


def _check_budget(budget: Any) -> RateBudget | None:
    from ._bulk import RateBudget

    if budget is not None and not isinstance(budget, RateBudget):
        raise ConfigurationError(
            f"budget must be a RateBudget shared by clients of one endpoint, got "
            f"{type(budget).__name__}"
        )
    return budget


def _as_exchange(exchange: Exchange) -> Exchange:
    return exchange


def _as_secret(value: str | SecretStr | None) -> SecretStr | None:
    if value is None or isinstance(value, SecretStr):
        return value
    return SecretStr(value)


def _result_fields(
    parsed: ParsedOutput, data: Any, exchange: Exchange, origin: dict[str, Any]
) -> dict[str, Any]:
    """The fields every result carries (``origin``: which endpoint and deployment answered);
    a malformed optional field is dropped, not raised."""
    finish = parsed.finish_reason
    return {
        **origin,
        "finish_reason": finish if isinstance(finish, str) else None,
        "usage": usage_from(parsed.usage),
        "model": parsed.model if isinstance(parsed.model, str) else None,
        "id": parsed.id if isinstance(parsed.id, str) else None,
        "raw": data,
        "request_id": exchange.request_id,
        "client_request_id": exchange.client_request_id,
        "attempts": exchange.attempts,
    }


def load_client(path: str | os.PathLike[str], **overrides: Any) -> EndpointClient:
    """Build an :class:`EndpointClient` from a file written by :meth:`EndpointClient.save`.

    The key is read from the environment variable the file names (``api_key_env``, by default
    ``AZUREML_ENDPOINT_API_KEY``); keyword arguments override any saved setting.
    """
    return EndpointClient.from_config(path, **overrides)
