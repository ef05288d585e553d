"""Routes files: a router's endpoints, their weights and the strategy, in one JSON file.

::

    {
      "azml_routes": 1,
      "strategy": "capacity",
      "max_retries": 3,
      "endpoints": [
        {"config": "eastus.json", "weight": 3},
        {"config": "westus.json", "weight": 1},
        {"endpoint_url": "https://.../v1", "api_key_env": "SERVERLESS_KEY", "weight": 0}
      ]
    }

An endpoint is the path of a config saved by ``client.save()`` (a string, or ``"config"``
with settings that override the saved ones), or the client's settings themselves
(``EndpointClient``'s arguments). ``weight`` is its weight for ``"weighted"`` (1 when left
out). Paths are read relative to the routes file. A bare list of endpoints is a routes file
too. Router options: ``strategy``, ``max_retries``, ``deadline``, ``timeout``,
``allowed_fails`` and ``retry`` (``RetryPolicy``'s fields). Like a saved config, a routes file
never holds a key: each endpoint's key is read from the variable its ``api_key_env`` names.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._config import config_arguments
from .._exceptions import ConfigurationError
from .._retry import RetryPolicy
from ._router import EndpointRouter

__all__ = ["ROUTES_VERSION", "load_router", "read_routes"]

ROUTES_VERSION = 1
_OPTIONS = frozenset({"strategy", "max_retries", "deadline", "timeout", "allowed_fails", "retry"})


def _endpoint(entry: Any, base: Path, where: str) -> tuple[dict[str, Any], float]:
    """One endpoint of a routes file: ``EndpointClient`` arguments, and its weight."""
    if isinstance(entry, str):
        return config_arguments(base / entry, {}), 1.0
    if not isinstance(entry, Mapping):
        raise ConfigurationError(
            f"{where}: an endpoint is a config path or an object of settings, got "
            f"{type(entry).__name__}"
        )
    settings = dict(entry)
    if "api_key" in settings:
        raise ConfigurationError(
            f"{where} holds an API key: remove it and name the environment variable that holds "
            "it with api_key_env"
        )
    weight = settings.pop("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
        raise ConfigurationError(f"{where}: weight must be a number >= 0, got {weight!r}")
    config = settings.pop("config", None)
    if config is not None:
        if not isinstance(config, str):
            raise ConfigurationError(f"{where}: config must be a path, got {config!r}")
        return config_arguments(base / config, settings), float(weight)
    return settings, float(weight)


def read_routes(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The endpoints of a routes file (``EndpointClient`` arguments) and the router options
    (``weights`` among them)."""
    name = os.fspath(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"no routes file at {name!r}") from None
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the routes file {name!r} ({exc})") from None
    if isinstance(data, list):
        data = {"azml_routes": ROUTES_VERSION, "endpoints": data}
    if not isinstance(data, dict) or data.pop("azml_routes", ROUTES_VERSION) != ROUTES_VERSION:
        raise ConfigurationError(
            f"{name!r} is not an azml routes file (a list of endpoints, or an object with "
            f'"endpoints": [...])'
        )
    entries = data.pop("endpoints", None)
    if not isinstance(entries, list) or not entries:
        raise ConfigurationError(f"{name!r}: 'endpoints' must be a non-empty list")
    unknown = sorted(set(data) - _OPTIONS)
    if unknown:
        raise ConfigurationError(
            f"{name!r}: unknown routes settings {', '.join(unknown)} (known: "
            f"{', '.join(sorted(_OPTIONS))}, endpoints)"
        )
    options = dict(data)
    retry = options.pop("retry", None)
    if retry is not None:
        if not isinstance(retry, Mapping):
            raise ConfigurationError(f"{name!r}: retry must be an object of RetryPolicy fields")
        try:
            options["retry"] = RetryPolicy(**retry)
        except TypeError as exc:
            raise ConfigurationError(f"{name!r}: retry: {exc}") from None
    base = Path(path).resolve().parent
    endpoints: list[dict[str, Any]] = []
    weights: list[float] = []
    for i, entry in enumerate(entries):
        settings, weight = _endpoint(entry, base, f"{name!r} endpoint {i}")
        endpoints.append(settings)
        weights.append(weight)
    options["weights"] = weights
    return endpoints, options


def load_router(path: str | os.PathLike[str], **overrides: Any) -> EndpointRouter:
    """Build an :class:`EndpointRouter` from a routes file (see the module docstring);
    keyword arguments override the file's router options (``strategy="priority"``, ...)."""
    endpoints, options = read_routes(path)
    return EndpointRouter(endpoints, **{**options, **overrides})
