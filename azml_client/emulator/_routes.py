"""The route table: which path speaks which API, and the per-API front-door checks.

| API | routes | auth | api-version |
| --- | --- | --- | --- |
| dedicated | ``POST /score`` (wire-formats.md 1.1) | ``Authorization: Bearer`` ([AUTH]) | ignored |
| serverless | ``/v1/...`` and root routes (3.1) | ``Bearer`` or the raw key (3.2) | ignored (3.3: the ``/v1`` samples send none) |
| models | ``/models/...`` (3.1, integrations.md "The platform") | ``api-key``, ``Bearer`` (3.2, [AZINF]) or the raw key | required, one of ``MODEL_INFERENCE_API_VERSIONS`` (3.3) |
| openai | ``/openai/v1/...`` (integrations.md: the OpenAI/v1 migration) | ``api-key`` or ``Bearer`` | optional, ignored ("no api-version") |
"""  # noqa: E501

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Final, Literal

from azml_client.emulator._errors import Api
from azml_client.emulator._http import Request

__all__ = [
    "MODEL_INFERENCE_API_VERSIONS",
    "ROUTES",
    "Kind",
    "Route",
    "api_of_path",
    "api_version_problem",
    "authorized",
]

Kind = Literal["score", "chat", "completions", "embeddings", "image_embeddings", "info", "models"]

#: Known ``api-version`` values of the model-inference API: ``2024-04-01-preview`` (the examples
#: of [MI-CHAT]/[MI-EMB]/[MI-INFO]) and ``2024-05-01-preview`` (wire-formats.md 3.3),
#: ``2025-04-01`` (integrations.md; azure-rest-api-specs ``ModelClient/main.tsp`` Versions), and
#: ``2024-08-01-preview``, which the azml client may send.
MODEL_INFERENCE_API_VERSIONS: Final = (
    "2024-04-01-preview",
    "2024-05-01-preview",
    "2024-08-01-preview",
    "2025-04-01",
)


@dataclass(frozen=True)
class Route:
    """One route: its HTTP method, what it does and which API family it belongs to."""

    method: str
    kind: Kind
    api: Api


def _family(api: Api, prefixes: tuple[str, ...], kinds: dict[str, Kind]) -> dict[str, Route]:
    table: dict[str, Route] = {}
    for prefix in prefixes:
        for suffix, kind in kinds.items():
            method = "GET" if kind in ("info", "models") else "POST"
            table[f"{prefix}{suffix}"] = Route(method, kind, api)
    return table


_INFERENCE: Final[dict[str, Kind]] = {
    "/chat/completions": "chat",
    "/completions": "completions",
    "/embeddings": "embeddings",
}
_IMAGES: Final[dict[str, Kind]] = {"/images/embeddings": "image_embeddings", "/info": "info"}

#: path -> route. ``/score`` (wire-formats.md 1.1); serverless routes with and without ``/v1``
#: (3.1); model inference under ``/models`` (3.1 "services.ai.azure.com/models"); OpenAI v1 with
#: ``GET /models`` (the model list the OpenAI SDK's ``models.list()`` reads) and no ``/info``
#: (``/info`` does not exist on Azure OpenAI, [AZINF]).
ROUTES: Final[dict[str, Route]] = {
    "/score": Route("POST", "score", "dedicated"),
    **_family("serverless", ("/v1", ""), {**_INFERENCE, **_IMAGES}),
    **_family("models", ("/models",), {**_INFERENCE, **_IMAGES}),
    **_family("openai", ("/openai/v1",), {**_INFERENCE, "/models": "models"}),
}


def api_of_path(path: str) -> Api:
    """The API family a path belongs to, also for unknown paths (it picks the 404's shape)."""
    if path == "/openai" or path.startswith("/openai/"):
        return "openai"
    if path == "/models" or path.startswith("/models/"):
        return "models"
    return "serverless" if path != "/score" else "dedicated"


def authorized(request: Request, api: Api, key: str) -> bool:
    """Whether ``request`` carries ``key`` the way ``api`` expects it."""
    expected = key.encode()
    value = request.headers.get("authorization", "").strip()
    scheme, _, token = value.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected):
        return True
    if api in ("serverless", "models") and hmac.compare_digest(value.encode(), expected):
        return True  # the raw key, as Microsoft's serverless notebooks send it (3.2)
    if api in ("models", "openai"):  # azure-ai-inference and Azure OpenAI send api-key (3.2)
        return hmac.compare_digest(request.headers.get("api-key", "").strip().encode(), expected)
    return False


def api_version_problem(request: Request, api: Api) -> str | None:
    """Why the ``api-version`` query parameter is unacceptable for ``api``, or ``None``."""
    if api != "models":
        return None
    version = request.query.get("api-version")
    if version is None or not version.strip():
        return "Missing required query parameter 'api-version'."
    if version not in MODEL_INFERENCE_API_VERSIONS:
        known = ", ".join(MODEL_INFERENCE_API_VERSIONS)
        return f"Unsupported api-version '{version}'. The supported versions are: {known}."
    return None
