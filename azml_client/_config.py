"""Client settings: explicit arguments, then ``AZUREML_*`` environment variables, then defaults.

:class:`ClientSettings` validates everything at construction, so a bad URL, an unknown api type
or a negative timeout fails before the first request with a message that names the fix. It is
also what ``save()`` writes and ``load_client()`` reads; the key is never written: the file
names the environment variable that holds it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from ._constants import (
    AZUREML_HOSTS,
    AZUREML_TOKEN_SCOPE,
    COGNITIVE_SERVICES_HOSTS,
    COGNITIVE_SERVICES_TOKEN_SCOPE,
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_KEEPALIVE_EXPIRY,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_KEEPALIVE_CONNECTIONS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_AFTER,
    DEFAULT_MODELS_API_VERSION,
    DEFAULT_TIMEOUT,
    DEPRECATED_API_TYPE_ALIASES,
    ENV_API_KEY,
    ENV_API_TYPE,
    ENV_DEPLOYMENT_NAME,
    ENV_ENDPOINT_URL,
    ENV_TIMEOUT,
    ApiType,
    ExtraParameters,
)
from ._exceptions import ConfigurationError
from ._retry import RetryPolicy

__all__ = [
    "ClientSettings",
    "Routes",
    "parse_api_type",
    "resolve_routes",
    "token_scope_for",
]

CONFIG_VERSION = 1
#: A saved client config: the path of a file written by ``save()``, or that file's content.
ConfigSource = str | os.PathLike[str] | Mapping[str, Any]
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
_SERVERLESS_HOST_SUFFIXES = (
    ".inference.ai.azure.com",
    ".models.ai.azure.com",
)
_CHAT_ROUTE = "/chat/completions"
_COMPLETIONS_ROUTE = "/completions"


def parse_api_type(value: str | ApiType) -> ApiType:
    """``"dedicated"``, ``"serverless"``, ``"models"`` or ``"openai_v1"``; ``"realtime"`` is
    accepted with a warning."""
    if isinstance(value, ApiType):
        return value
    text = str(value).strip().lower().replace("-", "_")
    if text in DEPRECATED_API_TYPE_ALIASES:
        import warnings

        warnings.warn(
            f"api_type={text!r} is deprecated; use api_type='dedicated'",
            DeprecationWarning,
            stacklevel=4,
        )
        return DEPRECATED_API_TYPE_ALIASES[text]
    try:
        return ApiType(text)
    except ValueError:
        raise ConfigurationError(
            f"unknown api_type {value!r}: use 'dedicated' (a managed online endpoint, URL ending "
            "in /score), 'serverless' (an OpenAI-compatible pay-as-you-go endpoint), 'models' "
            "(the model inference API, URL ending in /models) or 'openai_v1' (Foundry / Azure "
            "OpenAI, URL ending in /openai/v1)"
        ) from None


def parse_url(value: str) -> httpx.URL:
    """Parse an endpoint URL or raise :class:`ConfigurationError` saying what is expected."""
    try:
        url = httpx.URL(value.strip())
    except Exception as exc:  # httpx raises InvalidURL, and TypeError for odd input
        raise ConfigurationError(f"malformed endpoint URL {value!r} ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(
            f"malformed endpoint URL {value!r}: expected https://<host>/<route>, e.g. "
            "https://<endpoint>.<region>.inference.ml.azure.com/score"
        )
    return url


#: Routes under an OpenAI-style base, as the URL a user copies may end with one of them.
_ROUTE_SUFFIXES = (
    "/chat/completions",
    "/images/embeddings",
    "/completions",
    "/embeddings",
    "/info",
)


def _split_route(path: str) -> tuple[str, str]:
    """``(base, route)`` of a URL path: ``/openai/v1/chat/completions`` -> ``/openai/v1``."""
    path = path.rstrip("/")
    for route in _ROUTE_SUFFIXES:
        if path.endswith(route):
            return path[: -len(route)], route
    return path, ""


def infer_api_type(url: httpx.URL) -> ApiType:
    """Tell the api type from the URL path (then the host), or say what to pass.

    ``.../score`` -> dedicated; ``.../openai/v1[/route]`` -> openai_v1; ``.../models[/route]``
    -> models; ``.../v1[/route]`` or a route -> serverless. So a loopback test server is read
    the same way as Azure. A bare Foundry / Azure OpenAI host is the v1 API.
    """
    path = url.path.rstrip("/")
    if path.endswith("/score"):
        return ApiType.DEDICATED
    base, route = _split_route(path)
    if base.endswith("/openai/v1"):
        return ApiType.OPENAI_V1
    if base.endswith("/models"):
        return ApiType.MODELS
    if base.endswith("/v1") or route:
        return ApiType.SERVERLESS
    if not base and url.host.endswith(COGNITIVE_SERVICES_HOSTS):
        return ApiType.OPENAI_V1
    if url.host.endswith(_SERVERLESS_HOST_SUFFIXES):
        return ApiType.SERVERLESS
    if url.host.endswith(".inference.ml.azure.com"):
        raise ConfigurationError(
            f"endpoint URL {url} does not end with /score: a dedicated endpoint is scored at "
            f"/score, e.g. {url.copy_with(path='/score')}"
        )
    raise ConfigurationError(
        f"cannot tell the api type of {url}: pass api_type='dedicated' (URL ending in /score), "
        "'serverless' (URL ending in /v1 or /v1/chat/completions), 'models' (URL ending in "
        "/models) or 'openai_v1' (URL ending in /openai/v1), or set AZUREML_ENDPOINT_API_TYPE"
    )


def token_scope_for(url: str, api_type: ApiType) -> str:
    """The Entra ID scope a host expects: Cognitive Services for Foundry / Azure OpenAI / AI
    Services hosts, Azure ML for ``*.inference.ml.azure.com`` and ``*.models.ai.azure.com``;
    elsewhere (a proxy, a test server) by the api type."""
    host = httpx.URL(url).host
    if host.endswith(COGNITIVE_SERVICES_HOSTS):
        return COGNITIVE_SERVICES_TOKEN_SCOPE
    if host.endswith(AZUREML_HOSTS):
        return AZUREML_TOKEN_SCOPE
    if api_type in (ApiType.MODELS, ApiType.OPENAI_V1):
        return COGNITIVE_SERVICES_TOKEN_SCOPE
    return AZUREML_TOKEN_SCOPE


class Routes(BaseModel):
    """Where each kind of call goes (``None``: the endpoint kind has no such route)."""

    model_config = ConfigDict(frozen=True)

    completions: str
    chat: str
    embeddings: str | None = None
    image_embeddings: str | None = None
    info: str | None = None


def resolve_routes(url: str, api_type: ApiType) -> Routes:
    """The URLs of each kind of call for an endpoint URL.

    Dedicated: completions and chat go to the ``/score`` URL. Other kinds: a URL ending in a
    route (``/chat/completions``, ``/completions``, ``/embeddings``, ...) gives its base, and
    each call kind is posted to its own route under it, so ``chat()`` never sends a prompt body
    to a completions route or the reverse. A base URL without a route gets its kind's prefix
    unless it ends so already: ``/v1`` (serverless), ``/models``, ``/openai/v1``. The v1 API
    has no ``/info`` nor image embeddings.
    """
    parsed = httpx.URL(url)
    path = parsed.path.rstrip("/")
    if api_type is ApiType.DEDICATED:
        if not path.endswith("/score"):
            raise ConfigurationError(
                f"a dedicated endpoint URL ends with /score, e.g. "
                f"https://<endpoint>.<region>.inference.ml.azure.com/score; got {url}. "
                "For an OpenAI-style route use api_type='serverless'."
            )
        return Routes(completions=url, chat=url)
    if path.endswith("/score"):
        raise ConfigurationError(
            f"{url} is a dedicated /score URL: use api_type='dedicated' with it, or give the "
            f"{api_type} endpoint's base URL"
        )
    base, route = _split_route(path)
    if route:  # the URL named a route: its base is the endpoint's, whatever it looks like
        pass
    elif api_type is ApiType.OPENAI_V1:
        if not base.endswith("/openai/v1"):
            base = f"{base.removesuffix('/openai')}/openai/v1"
    elif api_type is ApiType.MODELS:
        if not base.endswith("/models"):
            base = f"{base}/models"
    elif not base.endswith(("/v1", "/models")):
        base = f"{base}/v1"

    def at(route: str) -> str:
        return str(parsed.copy_with(path=f"{base}{route}"))

    rich = api_type is not ApiType.OPENAI_V1
    return Routes(
        completions=at(_COMPLETIONS_ROUTE),
        chat=at(_CHAT_ROUTE),
        embeddings=at("/embeddings"),
        image_embeddings=at("/images/embeddings") if rich else None,
        info=at("/info") if rich else None,
    )


class ClientSettings(BaseModel):
    """Every setting of a client, validated. Build it with :meth:`resolve`."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    endpoint_url: str
    api_type: ApiType
    api_key: SecretStr | None = Field(default=None, exclude=True)
    #: The environment variable a saved config reads the key from.
    api_key_env: str = ENV_API_KEY
    deployment_name: str | None = None
    #: The model (deployment name on Azure OpenAI) sent in the body of OpenAI-style routes.
    model: str | None = None
    formatter: str = ""
    formatter_options: dict[str, Any] = Field(default_factory=dict)
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0)
    connect_timeout: float = Field(default=DEFAULT_CONNECT_TIMEOUT, gt=0)
    deadline: float | None = Field(default=None, gt=0)
    max_retries: int = Field(default=DEFAULT_MAX_RETRIES, ge=0)
    backoff_base: float = Field(default=DEFAULT_BACKOFF_BASE, ge=0)
    backoff_max: float = Field(default=DEFAULT_BACKOFF_MAX, ge=0)
    max_retry_after: float = Field(default=DEFAULT_MAX_RETRY_AFTER, ge=0)
    extra_parameters: ExtraParameters | None = None
    api_version: str | None = None
    token_scope: str | None = None
    allow_insecure_http: bool = False
    max_connections: int = Field(default=DEFAULT_MAX_CONNECTIONS, gt=0)
    max_keepalive_connections: int = Field(default=DEFAULT_MAX_KEEPALIVE_CONNECTIONS, ge=0)
    keepalive_expiry: float = Field(default=DEFAULT_KEEPALIVE_EXPIRY, ge=0)
    #: Seconds to wait for a free pooled connection (None: the attempt's ``timeout``).
    pool_timeout: float | None = Field(default=None, gt=0)
    #: Read ``HTTP(S)_PROXY`` / ``NO_PROXY`` / ``SSL_CERT_FILE`` from the environment.
    trust_env: bool = True

    @field_validator("endpoint_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return str(parse_url(value))

    @property
    def host_is_local(self) -> bool:
        return httpx.URL(self.endpoint_url).host in _LOCAL_HOSTS

    @classmethod
    def resolve(cls, env: Mapping[str, str] | None = None, **given: Any) -> ClientSettings:
        """Build settings from explicit arguments (``None`` = not given) and the environment."""
        env = os.environ if env is None else env
        values = {k: v for k, v in given.items() if v is not None}
        if "endpoint_url" not in values:
            url = env.get(ENV_ENDPOINT_URL)
            if not url:
                raise ConfigurationError(
                    f"no endpoint URL: pass endpoint_url=... or set {ENV_ENDPOINT_URL}"
                )
            values["endpoint_url"] = url
        key_env = values.get("api_key_env", ENV_API_KEY)
        if "api_key" not in values and env.get(key_env):
            values["api_key"] = env[key_env]
        if "deployment_name" not in values and env.get(ENV_DEPLOYMENT_NAME):
            values["deployment_name"] = env[ENV_DEPLOYMENT_NAME]
        if "api_type" not in values and env.get(ENV_API_TYPE):
            values["api_type"] = env[ENV_API_TYPE]
        if "timeout" not in values and env.get(ENV_TIMEOUT):
            try:
                values["timeout"] = float(env[ENV_TIMEOUT])
            except ValueError:
                raise ConfigurationError(
                    f"{ENV_TIMEOUT}={env[ENV_TIMEOUT]!r} is not a number of seconds"
                ) from None
        if "extra_parameters" in values:
            values["extra_parameters"] = _extra_parameters(values["extra_parameters"])
        if "api_type" in values:
            values["api_type"] = parse_api_type(values["api_type"])
        else:
            values["api_type"] = infer_api_type(parse_url(str(values["endpoint_url"])))
        if values["api_type"] is ApiType.MODELS and "api_version" not in values:
            values["api_version"] = DEFAULT_MODELS_API_VERSION
        try:
            settings = cls(**values)
        except ValidationError as exc:
            raise ConfigurationError(_explain(exc)) from None
        settings.check()
        return settings

    def check(self) -> None:
        """Cross-field rules: routes, plain-HTTP keys."""
        resolve_routes(self.endpoint_url, self.api_type)
        if (
            self.api_key is not None
            and httpx.URL(self.endpoint_url).scheme == "http"
            and not self.host_is_local
            and not self.allow_insecure_http
        ):
            host = httpx.URL(self.endpoint_url).host
            raise ConfigurationError(
                f"refusing to send the API key over plain http:// to {host}: "
                "use https://, or pass allow_insecure_http=True if this network is trusted"
            )

    def to_file_dict(self) -> dict[str, Any]:
        """What ``save()`` writes: everything but the key."""
        data = self.model_dump(mode="json", exclude={"api_key"})
        return {"azml_client_config": CONFIG_VERSION, **data}

    @classmethod
    def from_file(cls, source: ConfigSource) -> dict[str, Any]:
        """Read a file written by ``save()``, or take such a file's content already read (a
        mapping); returns constructor arguments (no key)."""
        data: Any
        if isinstance(source, Mapping):
            data, where = dict(source), "the mapping given"
        else:
            where = repr(os.fspath(source))
            try:
                data = json.loads(Path(source).read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise ConfigurationError(f"no client config at {where}") from None
            except ValueError as exc:
                raise ConfigurationError(f"{where} is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.pop("azml_client_config", None) != CONFIG_VERSION:
            raise ConfigurationError(
                f"{where} is not an azml-client config (written by client.save())"
            )
        if "api_key" in data:
            raise ConfigurationError(
                f"{where} holds an API key: remove it and set the environment variable named "
                "by api_key_env instead"
            )
        return data


def config_arguments(source: ConfigSource, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor arguments from a saved config (its path, or its content as a mapping), with
    ``overrides`` on top.

    The file holds flat settings; the pool and retry ones are regrouped here into ``limits`` /
    ``retry`` / ``timeout`` so that loading a file never warns about deprecated arguments.
    """
    data = ClientSettings.from_file(source)
    timeout = data.pop("timeout", None)
    connect = data.pop("connect_timeout", None)
    pool = data.pop("pool_timeout", None)
    if timeout is not None:
        data["timeout"] = httpx.Timeout(timeout, connect=connect, pool=pool)
    limit_fields = ("max_connections", "max_keepalive_connections", "keepalive_expiry")
    if any(name in data for name in limit_fields):
        defaults = ClientSettings.model_fields
        data["limits"] = httpx.Limits(
            **{name: data.pop(name, defaults[name].default) for name in limit_fields}
        )
    retry_fields = ("max_retries", "backoff_base", "backoff_max", "max_retry_after")
    if any(name in data for name in retry_fields):
        data["retry"] = RetryPolicy(
            **{name: data.pop(name) for name in retry_fields if name in data}
        )
    data.update(overrides)
    return data


def _extra_parameters(value: Any) -> ExtraParameters:
    try:
        return ExtraParameters(str(value).strip().lower())
    except ValueError:
        raise ConfigurationError(
            f"unknown extra_parameters {value!r}: use 'pass-through', 'drop' or 'error'"
        ) from None


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "settings"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting (check the spelling)"
        parts.append(f"{where}: {msg}")
    return "invalid client settings: " + "; ".join(parts)
