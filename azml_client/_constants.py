"""Every default of azml-client in one place.

Each value here is a client default that a constructor argument or a per-call keyword overrides.
"""

from __future__ import annotations

import enum
from typing import Final

import httpx

#: Seconds allowed for one attempt (connect, send, wait for the answer, read it).
DEFAULT_TIMEOUT: Final = 60.0
#: Seconds allowed to open a TCP/TLS connection.
DEFAULT_CONNECT_TIMEOUT: Final = 10.0
#: Retries after the first attempt (0 disables retrying).
DEFAULT_MAX_RETRIES: Final = 2
#: First backoff step and the cap of the exponential backoff, in seconds.
DEFAULT_BACKOFF_BASE: Final = 0.5
DEFAULT_BACKOFF_MAX: Final = 8.0
#: A server-requested wait longer than this fails at once instead of sleeping.
DEFAULT_MAX_RETRY_AFTER: Final = 60.0
#: A bulk item's own budget of 429 retries (apart from ``max_retries``): a rate-limited run
#: waits its turn rather than fail items.
DEFAULT_BULK_RATE_LIMIT_RETRIES: Final = 50

#: Connection pool.
DEFAULT_MAX_CONNECTIONS: Final = 100
DEFAULT_MAX_KEEPALIVE_CONNECTIONS: Final = 100
DEFAULT_KEEPALIVE_EXPIRY: Final = 30.0
DEFAULT_LIMITS: Final = httpx.Limits(
    max_connections=DEFAULT_MAX_CONNECTIONS,
    max_keepalive_connections=DEFAULT_MAX_KEEPALIVE_CONNECTIONS,
    keepalive_expiry=DEFAULT_KEEPALIVE_EXPIRY,
)

#: Bulk runs with ``concurrency="auto"``: where the concurrency starts, and its ceiling when the
#: client's pool does not set a lower one.
DEFAULT_INITIAL_CONCURRENCY: Final = 8
DEFAULT_MAX_CONCURRENCY: Final = 256

#: How many bytes of a response body an exception or a log line keeps.
BODY_EXCERPT_LIMIT: Final = 2048
#: The largest answer read into memory (after decoding): a larger one is an error, not an OOM.
MAX_RESPONSE_BYTES: Final = 256 << 20

#: Tokens from a credential are refreshed when they expire within this many seconds.
TOKEN_REFRESH_MARGIN: Final = 300.0
#: The Entra ID scope of Azure ML data-plane calls (dedicated and serverless endpoints).
AZUREML_TOKEN_SCOPE: Final = "https://ml.azure.com/.default"
#: The Entra ID scope of Foundry / Azure OpenAI / Azure AI Services resources
#: (reference/integrations.md "Entra ID audiences"; a wrong one is 401 "audience is incorrect").
COGNITIVE_SERVICES_TOKEN_SCOPE: Final = "https://cognitiveservices.azure.com/.default"
#: Hosts whose tokens are for Cognitive Services, and hosts whose tokens are for Azure ML.
COGNITIVE_SERVICES_HOSTS: Final = (
    ".openai.azure.com",
    ".services.ai.azure.com",
    ".cognitiveservices.azure.com",
)
AZUREML_HOSTS: Final = (
    ".inference.ml.azure.com",
    ".models.ai.azure.com",
    ".inference.ai.azure.com",
)
#: ``api-version`` sent to the model inference API (``/models`` routes) unless one is given:
#: the default of azure-ai-inference and of its JS client (wire-formats.md 3.3).
DEFAULT_MODELS_API_VERSION: Final = "2024-05-01-preview"

#: Environment variables, as the LangChain integration reads them.
ENV_ENDPOINT_URL: Final = "AZUREML_ENDPOINT_URL"
ENV_API_KEY: Final = "AZUREML_ENDPOINT_API_KEY"
ENV_DEPLOYMENT_NAME: Final = "AZUREML_DEPLOYMENT_NAME"
ENV_API_TYPE: Final = "AZUREML_ENDPOINT_API_TYPE"
ENV_TIMEOUT: Final = "AZUREML_TIMEOUT"

#: Headers.
HEADER_DEPLOYMENT: Final = "azureml-model-deployment"
HEADER_CLIENT_REQUEST_ID: Final = "x-ms-client-request-id"
HEADER_EXTRA_PARAMETERS: Final = "extra-parameters"
#: The key header of Azure OpenAI and the unified model inference endpoints (wire-formats.md 3.2).
HEADER_API_KEY: Final = "api-key"
HEADER_MODEL_ERROR_STATUS: Final = "ms-azureml-model-error-statuscode"
HEADER_MODEL_ERROR_REASON: Final = "ms-azureml-model-error-reason"
#: Response headers that carry the server's request id, most specific first.
SERVER_REQUEST_ID_HEADERS: Final = ("x-request-id", "x-ms-request-id", "apim-request-id")


class ApiType(str, enum.Enum):
    """The kind of endpoint a client talks to."""

    DEDICATED = "dedicated"
    """A managed online endpoint: ``POST .../score``, body in the model family's own schema."""
    SERVERLESS = "serverless"
    """A serverless (pay-as-you-go) endpoint: OpenAI-compatible completions and chat routes."""
    MODELS = "models"
    """The Azure AI model inference API (``.../models/chat/completions?api-version=...``)."""
    OPENAI_V1 = "openai_v1"
    """The Foundry / Azure OpenAI v1 API (``.../openai/v1/chat/completions``; needs ``model``)."""

    # LangChain's lower-case spelling (``AzureMLEndpointApiType.dedicated``), as aliases.
    dedicated = "dedicated"
    serverless = "serverless"
    models = "models"
    openai_v1 = "openai_v1"

    def __str__(self) -> str:
        return self.value

    @property
    def openai_wire(self) -> bool:
        """Whether chat and completions use the OpenAI wire format, whatever the model family."""
        return self is not ApiType.DEDICATED

    @property
    def api_key_header(self) -> str:
        """The header a key goes in: ``api-key`` on Azure OpenAI and the unified model inference
        endpoints, ``Authorization: Bearer`` on Azure ML hosts (wire-formats.md 1.2, 3.2)."""
        return HEADER_API_KEY if self in (ApiType.MODELS, ApiType.OPENAI_V1) else "Authorization"


class ExtraParameters(str, enum.Enum):
    """What a serverless endpoint does with body fields it does not know (``extra-parameters``)."""

    PASS_THROUGH = "pass-through"
    DROP = "drop"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


#: Deprecated spelling of :attr:`ApiType.DEDICATED` accepted for compatibility.
DEPRECATED_API_TYPE_ALIASES: Final = {"realtime": ApiType.DEDICATED}


class NotGiven:
    """The type of :data:`NOT_GIVEN`: "not given here", as opposed to an explicit ``None``.

    ``deadline=None`` on a call means "no deadline for this call"; ``deadline`` left out means
    "the client's deadline".
    """

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __reduce__(self) -> str:
        return "NOT_GIVEN"


#: The default of every argument that falls back to the client's (or the environment's) value.
NOT_GIVEN: Final = NotGiven()
