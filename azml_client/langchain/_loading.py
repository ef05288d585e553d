"""``load_llm``: read a model saved by :meth:`AzureMLOnlineEndpoint.save`, or by LangChain.

LangChain's ``langchain_community.llms.loading.load_llm`` finds classes in a fixed table, so it
cannot build ours; this reads both files:

* ours (``"azml_client": 1``): URL, api type, deployment, formatter, model parameters and the
  name of the variable that holds the key, which is read from the environment;
* LangChain's (``"_type": "azureml_endpoint"``, only ``deployment_name`` and
  ``model_kwargs``): the URL, key and api type come from the ``AZUREML_*`` variables or from
  keyword arguments, and the formatter, which the file does not keep, from
  ``content_formatter=`` (else the endpoint kind's default).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .._exceptions import ConfigurationError
from .llms import SAVE_FORMAT, AzureMLOnlineEndpoint

__all__ = ["load_llm"]

_LANGCHAIN_TYPE = "azureml_endpoint"


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"no saved model at {os.fspath(path)!r}") from None
    if path.suffix == ".json":
        return json.loads(text)
    if path.suffix in (".yaml", ".yml"):
        import yaml  # type: ignore[import-untyped]  # PyYAML ships no type hints

        return yaml.safe_load(text)
    raise ConfigurationError(f"{os.fspath(path)!r} must be a .json or .yaml file")


def load_llm(
    file: str | os.PathLike[str], *, content_formatter: Any = None, **overrides: Any
) -> AzureMLOnlineEndpoint:
    """Build an :class:`AzureMLOnlineEndpoint` from a saved file (see the module docstring).

    Keyword arguments override what the file says (``content_formatter=`` too, for example a
    formatter class that could not be saved by reference)::

        llm.save("azureml.json")
        llm = load_llm("azureml.json")          # the key from AZUREML_ENDPOINT_API_KEY
    """
    path = Path(file)
    data = _read(path)
    if not isinstance(data, dict):
        raise ConfigurationError(f"{os.fspath(path)!r} does not describe a model")
    kind = data.pop("_type", None)
    if kind != _LANGCHAIN_TYPE:
        raise ConfigurationError(
            f"{os.fspath(path)!r} describes a {kind!r} model, not an Azure ML endpoint "
            f"({_LANGCHAIN_TYPE!r}): load it with langchain_community.llms.loading.load_llm"
        )
    if "endpoint_api_key" in data or "api_key" in data:
        raise ConfigurationError(
            f"{os.fspath(path)!r} holds an API key: remove it and set the environment variable "
            "the model reads the key from (api_key_env, by default AZUREML_ENDPOINT_API_KEY)"
        )
    version = data.pop("azml_client", None)
    if version is not None and version != SAVE_FORMAT:
        raise ConfigurationError(
            f"{os.fspath(path)!r} was written by another azml-client (format {version!r})"
        )
    if content_formatter is not None:  # the caller's formatter replaces the file's
        data.pop("formatter_options", None)
        data["content_formatter"] = content_formatter
    return AzureMLOnlineEndpoint(**{**data, **overrides})
