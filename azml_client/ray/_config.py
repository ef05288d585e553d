"""What a worker needs to build its client: the settings, shipped as plain data, never the key.

The driver reads a saved config file (``client.save()``) or takes a settings dict and ships that
to the actors; each actor reads the key from its own environment (the variable ``api_key_env``
names, ``AZUREML_ENDPOINT_API_KEY`` by default), so a key never travels with the dataset's
plan. Set it on the workers (``ray.init(runtime_env={"env_vars": {...}})``, the cluster's own
secrets, or the environment a local cluster inherits from the driver).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Any

from .._config import CONFIG_VERSION, ClientSettings, config_arguments
from .._constants import DEFAULT_MAX_CONNECTIONS, ENV_API_KEY, ENV_ENDPOINT_URL
from .._exceptions import ConfigurationError

__all__ = ["ClientConfig", "client_arguments", "endpoint_key", "max_connections", "settings_of"]

#: A client config: the path of a file written by ``client.save()``, or a settings dict (the
#: content of such a file, or ``EndpointClient`` keyword arguments without the key).
ClientConfig = str | os.PathLike[str] | Mapping[str, Any]

#: What a settings dict may not hold: secrets (read on the workers) and objects of one process.
_REFUSED = {
    "api_key": "the key is read on each worker",
    "credential": "a credential object cannot be shipped",
    "http_client": "connections belong to one process",
    "transport": "connections belong to one process",
    "budget": "each actor has its own, steered by the coordinator",
}


def settings_of(config: ClientConfig) -> dict[str, Any]:
    """The settings to ship to the workers, checked: a saved file's content, or a copy of the
    given dict. Never a key."""
    if isinstance(config, str | os.PathLike):
        data = ClientSettings.from_file(config)  # refuses a file that holds a key
        return {"azml_client_config": CONFIG_VERSION, **data}
    if not isinstance(config, Mapping):
        raise ConfigurationError(
            "config must be the path of a file written by client.save() or a dict of client "
            f"settings, got {type(config).__name__}"
        )
    data = dict(config)
    for name, why in _REFUSED.items():
        if name in data:
            key_env = data.get("api_key_env", ENV_API_KEY)
            raise ConfigurationError(
                f"a Ray client config cannot hold {name!r} ({why}): set {key_env} on the "
                "workers instead, e.g. ray.init(runtime_env={'env_vars': {...}})"
            )
    return data


def _is_file_content(settings: Mapping[str, Any]) -> bool:
    return "azml_client_config" in settings


def client_arguments(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``EndpointClient`` keyword arguments of shipped settings.

    A saved file's content goes through the same loader as the file (``config_arguments``,
    which regroups its flat timeout, pool and retry settings), in memory: nothing is written.
    """
    if not _is_file_content(settings):
        return dict(settings)
    return config_arguments(settings, {})


def check_limits(**limits: float | None) -> None:
    """``max_rps=`` / ``max_tpm=``: positive numbers or ``None``, else a ConfigurationError."""
    for name, value in limits.items():
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not value > 0
        ):
            raise ConfigurationError(f"{name} must be a positive number, got {value!r}")


def max_connections(arguments: Mapping[str, Any]) -> int:
    """The pool size the arguments give the client (its budget's concurrency cap)."""
    limits = arguments.get("limits")
    value = getattr(limits, "max_connections", None) or arguments.get("max_connections")
    return value if isinstance(value, int) and value > 0 else DEFAULT_MAX_CONNECTIONS


def key_variable(settings: Mapping[str, Any]) -> str:
    """The environment variable the workers read the key from."""
    return str(settings.get("api_key_env") or ENV_API_KEY)


def endpoint_key(settings: Mapping[str, Any]) -> str:
    """A short name for the endpoint the settings call (its URL, deployment and model): the
    coordinator of its pace is named after it."""
    url = settings.get("endpoint_url") or os.environ.get(ENV_ENDPOINT_URL, "")
    parts = (str(url), str(settings.get("deployment_name") or ""), str(settings.get("model") or ""))
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=6).hexdigest()
