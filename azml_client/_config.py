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
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_KEEPALIVE_EXPIRY,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_KEEPALIVE_CONNECTIONS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_AFTER,
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

__all__ = ["ClientSettings", "Routes", "parse_api_type", "resolve_routes"]

CONFIG_VERSION = 1
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
_SERVERLESS_HOST_SUFFIXES = (
    ".inference.ai.azure.com",
    ".models.ai.azure.com",
    ".services.ai.azure.com",
)
_CHAT_ROUTE = "/chat/completions"
_COMPLETIONS_ROUTE = "/completions"


def parse_api_type(value: str | ApiType) -> ApiType:
    """``"dedicated"`` / ``"serverless"``; ``"realtime"`` is accepted with a warning."""
    if isinstance(value, ApiType):
        return value
    text = str(value).strip().lower()
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
            "in /score) or 'serverless' (an OpenAI-compatible pay-as-you-go endpoint)"
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


def infer_api_type(url: httpx.URL) -> ApiType:
    """Tell the api type from the URL, or say what to pass."""
    path = url.path.rstrip("/")
    if path.endswith("/score"):
        return ApiType.DEDICATED
    if path.endswith(_COMPLETIONS_ROUTE) or url.host.endswith(_SERVERLESS_HOST_SUFFIXES):
        return ApiType.SERVERLESS
    if url.host.endswith(".inference.ml.azure.com"):
        raise ConfigurationError(
            f"endpoint URL {url} does not end with /score: a dedicated endpoint is scored at "
            f"/score, e.g. {url.copy_with(path='/score')}"
        )
    raise ConfigurationError(
        f"cannot tell the api type of {url}: pass api_type='dedicated' (URL ending in /score) "
        "or api_type='serverless' (URL ending in /v1/chat/completions, /completions, ... or a "
        "base URL), or set AZUREML_ENDPOINT_API_TYPE"
    )


class Routes(BaseModel):
    """Where each kind of call is posted."""

    model_config = ConfigDict(frozen=True)

    completions: str
    chat: str


def resolve_routes(url: str, api_type: ApiType) -> Routes:
    """The URLs of completion and chat calls for an endpoint URL.

    Dedicated: both go to the ``/score`` URL. Serverless: a URL ending in ``/chat/completions``
    or ``/completions`` (after ``/v1``, ``/models`` or nothing) gives its base, and each call kind
    is posted to its own route under it, so ``chat()`` never sends a prompt body to a completions
    route or the reverse. A base URL without a route gets ``/v1`` unless it ends in ``/v1`` or
    ``/models`` already.
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
    if path.endswith(_CHAT_ROUTE):
        base = path[: -len(_CHAT_ROUTE)]
    elif path.endswith(_COMPLETIONS_ROUTE):
        base = path[: -len(_COMPLETIONS_ROUTE)]
    elif path.endswith("/score"):
        raise ConfigurationError(
            f"{url} is a dedicated /score URL: use api_type='dedicated' with it, or give the "
            "serverless endpoint's /v1/chat/completions (or base) URL"
        )
    elif path.endswith(("/v1", "/models")):
        base = path
    else:
        base = f"{path}/v1"
    return Routes(
        completions=str(parsed.copy_with(path=f"{base}{_COMPLETIONS_ROUTE}")),
        chat=str(parsed.copy_with(path=f"{base}{_CHAT_ROUTE}")),
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
    def from_file(cls, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Read a file written by ``save()``; returns constructor arguments (no key)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigurationError(f"no client config at {os.fspath(path)!r}") from None
        except ValueError as exc:
            raise ConfigurationError(f"{os.fspath(path)!r} is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.pop("azml_client_config", None) != CONFIG_VERSION:
            raise ConfigurationError(
                f"{os.fspath(path)!r} is not an azml-client config (written by client.save())"
            )
        if "api_key" in data:
            raise ConfigurationError(
                f"{os.fspath(path)!r} holds an API key: remove it and set the environment "
                "variable named by api_key_env instead"
            )
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
