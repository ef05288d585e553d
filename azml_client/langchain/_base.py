"""What the LangChain classes share: the seed's arguments and ours, the client behind them.

Every class accepts both spellings: LangChain's ``endpoint_url``, ``endpoint_api_type``,
``endpoint_api_key``, ``deployment_name``, ``content_formatter``, ``model_kwargs``,
``timeout``, ``max_retries`` and this SDK's ``api_key``, ``api_type``, ``formatter``, ``model``,
``client=`` (an :class:`EndpointClient` whose pool the model shares) and ``client_kwargs``
(any other :class:`EndpointClient` argument: ``credential``, ``proxy``, ``extra_parameters``,
...). What is not given comes from the ``AZUREML_*`` environment variables, as in LangChain;
after construction the fields hold what the client resolved (URL, api type, key, deployment).
An unknown argument is an error that names the right one, not something silently ignored.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
from langchain_core.language_models.base import LangSmithParams
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from typing_extensions import Self

from .._client import EndpointClient
from .._constants import ENV_API_KEY, ENV_ENDPOINT_URL, NOT_GIVEN, ApiType
from .._redact import shown_url, url_secrets
from .._version import __version__
from ..formatters._base import ContentFormatterBase
from ._api_type import AzureMLEndpointApiType
from ._clients import ClientSet
from ._formatters import formatter_ref, resolve_formatter

__all__ = ["AzureMLEndpointBase", "AzureMLGenerationBase"]

#: Per-call keyword arguments that are client options, not model parameters.
CALL_OPTIONS = frozenset(
    {"timeout", "deadline", "max_retries", "extra_parameters", "deployment_name", "extra_headers"}
)
#: Settings that describe the connection, which ``client=`` already has.
_CONNECTION = ("endpoint_url", "endpoint_api_key", "endpoint_api_type", "api_key_env")
#: LangChain arguments of the seed that have another name here.
_RENAMED = {
    "http_client": "client= (an azml_client.EndpointClient)",
    "endpoint_api_version": "client_kwargs={'api_version': ...}",
    "top_p": "model_kwargs={'top_p': ...}",
    "max_new_tokens": "model_kwargs={'max_new_tokens': ...} or max_tokens=...",
    "credential": "client_kwargs={'credential': ...}",
}


def _host_label(url: str | None) -> str | None:
    """The endpoint's name as its URL shows it (the first label of the host)."""
    try:
        host = httpx.URL(url or "").host
    except (httpx.InvalidURL, TypeError):
        return None
    return host.split(".")[0] or None


class AzureMLEndpointBase(BaseModel):
    """The connection settings and the clients of every class of this package."""

    model_config = ConfigDict(protected_namespaces=(), arbitrary_types_allowed=True)

    endpoint_url: str | None = None
    """Endpoint URL (``.../score``, ``.../v1``, ``.../models``, ``.../openai/v1``); default
    ``AZUREML_ENDPOINT_URL``."""
    endpoint_api_type: AzureMLEndpointApiType | None = Field(
        default=None, validation_alias=AliasChoices("endpoint_api_type", "api_type")
    )
    """Endpoint kind (also ``api_type=``); default ``AZUREML_ENDPOINT_API_TYPE``, else read
    from the URL."""
    endpoint_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("endpoint_api_key", "api_key")
    )
    """The key (also ``api_key=``); default: the variable ``api_key_env`` names."""
    api_key_env: str | None = None
    """Environment variable holding the key (``AZUREML_ENDPOINT_API_KEY``); what a saved
    model or ``dumpd()`` records instead of the key."""
    deployment_name: str | None = None
    """Deployment to pin (``azureml-model-deployment``); default ``AZUREML_DEPLOYMENT_NAME``."""
    model: str | None = None
    """Model name sent on OpenAI-style routes (required by ``openai_v1``); on ``dedicated``
    endpoints only a name for traces."""
    timeout: float | None = None
    """Seconds each attempt may take; default ``AZUREML_TIMEOUT``, else the client's."""
    max_retries: int | None = None
    """Retries of a failed request (429, 5xx, timeouts); default the client's."""
    client: EndpointClient | None = Field(default=None, exclude=True, repr=False)
    """An :class:`EndpointClient` to share: its connection pool serves the model's async calls
    in the loop it is used in first, and its settings replace the connection fields."""
    client_kwargs: dict[str, Any] | None = Field(default=None, exclude=True, repr=False)
    """More :class:`EndpointClient` arguments (``credential``, ``proxy``, ``verify``,
    ``extra_parameters``, ``api_version``, ``default_headers``, ...). Never saved."""

    _clients: ClientSet = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _check_azml_arguments(cls, values: Any) -> Any:
        if not isinstance(values, Mapping):
            return values
        known = set()
        for name, field in cls.model_fields.items():
            known.add(name)
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                known.update(c for c in alias.choices if isinstance(c, str))
            if isinstance(field.alias, str):
                known.add(field.alias)
        unknown = sorted(set(values) - known)
        if unknown:
            hints = []
            for name in unknown:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = _RENAMED.get(name) or (f"did you mean {close[0]}?" if close else None)
                hints.append(f"{name} ({hint})" if hint else name)
            raise ValueError(
                f"{cls.__name__} got unknown arguments: {'; '.join(hints)}. Model parameters "
                "go in model_kwargs={...}; other EndpointClient arguments in client_kwargs={...}"
            )
        return values

    @field_validator("endpoint_api_type", mode="before")
    @classmethod
    def _api_type(cls, value: Any) -> Any:
        if value is None or isinstance(value, AzureMLEndpointApiType):
            return value
        try:
            return AzureMLEndpointApiType(value)
        except ValueError:
            known = ", ".join(repr(m.value) for m in AzureMLEndpointApiType)
            raise ValueError(f"unknown endpoint_api_type {value!r}: use one of {known}") from None

    @model_validator(mode="after")
    def _connect_azml_client(self) -> Self:
        client, owned = self._make_client()
        self._clients = ClientSet(client, owned=owned)
        s = client.settings
        self.endpoint_url = s.endpoint_url
        if self.endpoint_api_type is None:
            self.endpoint_api_type = AzureMLEndpointApiType(s.api_type.value)
        self.endpoint_api_key = s.api_key
        self.api_key_env = s.api_key_env
        self.deployment_name = s.deployment_name
        self.model = s.model
        self.timeout = s.timeout
        self.max_retries = s.max_retries
        add_version = getattr(self, "_add_version", None)
        if add_version is not None:  # LangChain's trace metadata (BaseLanguageModel)
            add_version("azml-client", __version__)
        return self

    # -- building the client -------------------------------------------------------------------

    def _formatter_argument(self) -> ContentFormatterBase | None:
        """The ``formatter=`` for the client (classes with a formatter override this)."""
        return None

    #: The formatter of a model built from connection settings without one (None: the
    #: client's default for the endpoint kind).
    _fallback_formatter: ClassVar[str | None] = None

    def _default_formatter(self, client: EndpointClient) -> str | None:
        """A formatter to use when none was given and ``client``'s will not do."""
        return None

    def _make_client(self) -> tuple[EndpointClient, bool]:
        """The model's client and whether the model owns (and so closes) its pool."""
        declared = self.endpoint_api_type
        if declared is AzureMLEndpointApiType.realtime:
            warnings.warn(
                "endpoint_api_type='realtime' is deprecated; use 'dedicated'",
                DeprecationWarning,
                stacklevel=2,
            )
        formatter = self._formatter_argument()
        if self.client is not None:
            given = [name for name in _CONNECTION if getattr(self, name) is not None]
            if given or self.client_kwargs:
                named = ", ".join(given) or "client_kwargs"
                raise ValueError(
                    f"pass either client= or connection settings ({named}): the client already "
                    "has its URL, key and options"
                )
            overrides: dict[str, Any] = {
                name: value
                for name, value in (
                    ("formatter", formatter),
                    ("deployment_name", self.deployment_name),
                    ("model", self.model),
                    ("timeout", self.timeout),
                    ("max_retries", self.max_retries),
                )
                if value is not None
            }
            if formatter is None and (default := self._default_formatter(self.client)):
                overrides["formatter"] = default
            client = self.client.with_options(**overrides) if overrides else self.client
            return client, False
        api_type = None if declared is None else declared.value
        if declared is AzureMLEndpointApiType.realtime:
            api_type = "dedicated"
        arguments: dict[str, Any] = {
            "endpoint_url": self.endpoint_url or None,
            "api_key": self.endpoint_api_key,
            "api_type": api_type,
            "deployment_name": self.deployment_name or None,
            "model": self.model,
            "formatter": formatter if formatter is not None else self._fallback_formatter,
            "timeout": NOT_GIVEN if self.timeout is None else self.timeout,
            "max_retries": NOT_GIVEN if self.max_retries is None else self.max_retries,
            "api_key_env": self.api_key_env,
            **(self.client_kwargs or {}),
        }
        return EndpointClient(**arguments), True

    # -- shared helpers ------------------------------------------------------------------------

    @property
    def formatter(self) -> ContentFormatterBase:
        """The formatter requests go through (the wrapper, for a LangChain formatter)."""
        return self._clients.prototype.formatter

    @property
    def api_type(self) -> ApiType:
        """The endpoint kind, as the client reads it (``realtime`` is ``dedicated``)."""
        return self._clients.prototype.api_type

    def _model_name(self) -> str:
        """A name for traces and ``response_metadata``: the model, else the deployment, else
        the endpoint's name."""
        return self.model or self.deployment_name or _host_label(self.endpoint_url) or "azureml"

    @property
    def lc_secrets(self) -> dict[str, str]:
        secrets = {"endpoint_api_key": self.api_key_env or ENV_API_KEY}
        if self.endpoint_url and url_secrets(self.endpoint_url):
            # A URL that carries a credential is a secret too: dumpd() records the variable
            # (read back from the environment by load()), never the URL.
            secrets["endpoint_url"] = ENV_ENDPOINT_URL
        return secrets

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["azml_client", "langchain"]

    def close(self) -> None:
        """Close the blocking client's pool and loop (async clients close with their loops)."""
        self._clients.close()

    async def aclose(self) -> None:
        """Close the running event loop's client now."""
        await self._clients.aclose()


class AzureMLGenerationBase(AzureMLEndpointBase):
    """Settings of the text and chat models: the formatter and the model parameters."""

    content_formatter: Any = Field(
        default=None,
        validation_alias=AliasChoices("content_formatter", "formatter"),
        exclude=True,
    )
    """How requests and answers look (also ``formatter=``): one of this package's formatter
    classes or instances, a family key (``"llama"``, ``"dolly"``, ...), or a formatter written
    for LangChain. Default: the endpoint kind's (``llama`` on ``/score``, OpenAI elsewhere)."""
    formatter_options: dict[str, Any] | None = None
    """Arguments of a formatter named by key or class (``{"schema": "v1"}`` for an older
    catalog container)."""
    model_kwargs: dict[str, Any] | None = None
    """Model parameters sent with every request (per-call keyword arguments go on top and are
    never written back here)."""
    temperature: float | None = None
    max_tokens: int | None = None
    """Token budget (sent as ``max_new_tokens`` to the families that name it so)."""
    stop: list[str] | None = None
    """Default stop sequences."""
    streaming: bool = False
    """Answer ``invoke()`` by streaming (callbacks then see each token)."""

    def _formatter_argument(self) -> ContentFormatterBase | None:
        declared = self.endpoint_api_type
        return resolve_formatter(
            self.content_formatter,
            api_type=None if declared is None else declared.value,
            options=self.formatter_options,
        )

    def formatter_reference(self) -> tuple[str, dict[str, Any]] | None:
        """``(family key or "module:Class", options)`` naming the formatter, as ``save()`` and
        ``dumpd()`` record it; ``None`` for a class defined inside a function."""
        given = self.content_formatter
        ref = formatter_ref(given if given is not None else self.formatter)
        if ref is not None and isinstance(given, str):
            return ref[0], dict(self.formatter_options or {})
        return ref

    @property
    def lc_attributes(self) -> dict[str, Any]:
        if self.content_formatter is None:
            return {}
        ref = self.formatter_reference()
        if ref is None:
            return {}
        key, options = ref
        return {"content_formatter": key, **({"formatter_options": options} if options else {})}

    def _default_params(self) -> dict[str, Any]:
        params = dict(self.model_kwargs or {})
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.max_tokens is not None:
            params["max_tokens"] = self.max_tokens
        return params

    def _split(
        self, stop: list[str] | None, kwargs: Mapping[str, Any]
    ) -> tuple[list[str] | None, dict[str, Any], dict[str, Any]]:
        """``(stop, model parameters, client options)`` of one call: the model's defaults
        under the call's own arguments, in fresh dicts (nothing leaks into ``model_kwargs``)."""
        params = self._default_params()
        options: dict[str, Any] = {}
        for key, value in kwargs.items():
            if value is None:
                continue
            (options if key in CALL_OPTIONS else params)[key] = value
        if not self.api_type.openai_wire:
            params.pop("model", None)  # /score bodies have no model; it only names traces
        chosen = stop if stop is not None else self.stop
        return (list(chosen) if chosen else None), params, options

    def _ls(
        self, model_type: str, stop: list[str] | None, kwargs: Mapping[str, Any]
    ) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="azureml",
            ls_model_name=str(kwargs.get("model") or self._model_name()),
            ls_model_type="chat" if model_type == "chat" else "llm",
        )
        defaults = self._default_params()
        temperature = kwargs.get("temperature", defaults.get("temperature"))
        if isinstance(temperature, int | float):
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", defaults.get("max_tokens"))
        if isinstance(max_tokens, int):
            params["ls_max_tokens"] = max_tokens
        chosen = stop if stop is not None else self.stop
        if chosen:
            params["ls_stop"] = list(chosen)
        return params

    def __repr_args__(self) -> Any:
        """The fields as ``repr()`` shows them: a credential in the URL ``[REDACTED]``."""
        for name, value in super().__repr_args__():
            if name == "endpoint_url" and isinstance(value, str):
                value = shown_url(value)
            yield name, value

    def _identifying(self) -> dict[str, Any]:
        # LangChain hands these to callbacks and tracers (LangSmith): no credential in them.
        return {
            "endpoint_url": shown_url(self.endpoint_url) if self.endpoint_url else None,
            "endpoint_api_type": str(self.endpoint_api_type),
            "deployment_name": self.deployment_name,
            "model": self.model,
            "formatter": self.formatter.name,
            "model_kwargs": dict(self.model_kwargs or {}),
            **{k: v for k in ("temperature", "max_tokens") if (v := getattr(self, k)) is not None},
        }
