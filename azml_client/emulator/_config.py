"""What an emulated endpoint looks like: its deployments, its key, its seed and its faults.

Everything here is a frozen dataclass of plain scalars so the ``azml emulate`` command can map
flags onto it one to one. Validation happens at construction, so a bad setting fails where it is
written rather than on the first request.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from azml_client.emulator._families import FAMILIES

__all__ = ["MAX_EMBEDDING_DIMENSIONS", "Deployment", "EmulatorConfig", "Faults"]

#: Values of the ``extra-parameters`` header understood by the Microsoft foundation-model-serve
#: container (``request_adapter.py``); wire-formats.md section 3.4.
EXTRA_PARAMETERS_OPTIONS = ("error", "drop", "pass-through")

#: Largest embedding length the emulator makes (its own cap, for ``dimensions`` too).
MAX_EMBEDDING_DIMENSIONS = 4096


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a fraction between 0 and 1, got {value!r}")


def _check_style(family: str, style: str | None) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(FAMILIES)}")
    styles = FAMILIES[family].styles
    if style is not None and style not in styles:
        raise ValueError(f"family {family!r} has no response style {style!r}; known: {styles}")


@dataclass(frozen=True)
class Faults:
    """Seeded fault injection; every field defaults to "no fault".

    Fractions are probabilities in ``[0, 1]`` drawn from the app's single seeded RNG, so the same
    seed and the same request order give the same faults.

    Attributes:
        latency: Seconds added before answering each inference request.
        token_latency: Seconds per generated token (between stream chunks; summed otherwise).
        rate_limit_rps: Token-bucket refill rate in requests per second; ``None`` means no limit.
            Over the limit: 429 with ``Retry-After`` (whole seconds, rounded up) and
            ``retry-after-ms``.
        burst: Token-bucket capacity; ``None`` means ``max(1, ceil(rate_limit_rps))``.
        max_concurrent_requests_per_instance: With ``instance_count``, caps in-flight requests at
            ``2 * mcr * instance_count`` (the managed-online "Too many pending requests" 429).
        instance_count: Instances behind the endpoint, for the pending-request limit.
        error_503: Fraction of requests answered 503.
        error_500: Fraction answered 500.
        error_424: Fraction answered 424 with ``ms-azureml-model-error-statuscode: 500``.
        error_408: Fraction answered 408 ``upstream request timeout`` (right away).
        request_timeout_ms: The deployment's ``request_timeout_ms``; when ``latency`` exceeds it
            every request waits this long and gets a 408.
        stream_cut: Fraction of streams whose connection is dropped half-way, without ``[DONE]``.
        malformed_json: Fraction of 200 JSON answers whose body is cut in half (invalid JSON).
        error_in_200: ``vllm`` family only: fraction of 200 answers carrying
            ``{"output": null, "error": {...}}``.
        empty_200: ``vllm`` family only: fraction of 200 answers that are just ``{}``.
    """

    latency: float = 0.0
    token_latency: float = 0.0
    rate_limit_rps: float | None = None
    burst: int | None = None
    max_concurrent_requests_per_instance: int | None = None
    instance_count: int = 1
    error_503: float = 0.0
    error_500: float = 0.0
    error_424: float = 0.0
    error_408: float = 0.0
    request_timeout_ms: int = 5000
    stream_cut: float = 0.0
    malformed_json: float = 0.0
    error_in_200: float = 0.0
    empty_200: float = 0.0

    def __post_init__(self) -> None:
        for name in ("latency", "token_latency"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.rate_limit_rps is not None and self.rate_limit_rps <= 0:
            raise ValueError("rate_limit_rps must be positive (or None for no limit)")
        if self.burst is not None and self.burst < 1:
            raise ValueError("burst must be at least 1")
        mcr = self.max_concurrent_requests_per_instance
        if mcr is not None and mcr < 1:
            raise ValueError("max_concurrent_requests_per_instance must be at least 1")
        if self.instance_count < 1:
            raise ValueError("instance_count must be at least 1")
        if self.request_timeout_ms < 1:
            raise ValueError("request_timeout_ms must be positive")
        fractions = ("error_503", "error_500", "error_424", "error_408", "stream_cut")
        for name in (*fractions, "malformed_json", "error_in_200", "empty_200"):
            _check_fraction(name, getattr(self, name))
        if self.error_503 + self.error_500 + self.error_424 + self.error_408 > 1.0:
            raise ValueError("error_503 + error_500 + error_424 + error_408 must not exceed 1")
        if self.error_in_200 + self.empty_200 > 1.0:
            raise ValueError("error_in_200 + empty_200 must not exceed 1")

    @property
    def bucket_capacity(self) -> int:
        """The token-bucket size actually used (``burst`` or one second's worth of requests)."""
        if self.burst is not None:
            return self.burst
        return max(1, math.ceil(self.rate_limit_rps or 1))

    @property
    def pending_limit(self) -> int | None:
        """``2 * max_concurrent_requests_per_instance * instance_count``, or ``None`` (no limit)."""
        mcr = self.max_concurrent_requests_per_instance
        return None if mcr is None else 2 * mcr * self.instance_count


@dataclass(frozen=True)
class Deployment:
    """One deployment behind the emulated ``/score`` endpoint.

    Attributes:
        name: Value of the ``azureml-model-deployment`` header that selects it.
        family: Wire format it speaks; see ``FAMILIES``.
        traffic: Weight in the seeded traffic split used when the header is absent (0 = only
            reachable through the header, like a "green" deployment during a safe rollout).
        response_style: Which recorded response shape to emit; ``None`` = the family's default.
    """

    name: str
    family: str = "llama"
    traffic: float = 100.0
    response_style: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a deployment needs a name")
        if self.traffic < 0:
            raise ValueError("traffic must not be negative")
        _check_style(self.family, self.response_style)

    @property
    def style(self) -> str:
        """The response style in effect (the explicit one or the family's default)."""
        return self.response_style or FAMILIES[self.family].styles[0]


@dataclass(frozen=True)
class EmulatorConfig:
    """Settings of one emulated endpoint (dedicated ``/score`` and serverless routes together).

    Attributes:
        api_key: Key expected in ``Authorization``; ``None`` generates a random one per app.
        family: Family of the implicit ``default`` deployment used when ``deployments`` is empty.
        response_style: Response style of that implicit deployment.
        deployments: Deployments behind ``/score``; empty means one deployment named ``default``.
        seed: Seed of the generated text and of every random fault and traffic decision.
        faults: Fault injection settings.
        model_name: ``model`` reported by serverless, ``/info`` and FMS-style answers.
        extra_parameters_default: Behaviour of serverless routes when no ``extra-parameters``
            header is sent. Microsoft's docs say ``error``; the newest FMS container code uses
            ``pass-through`` (wire-formats.md 3.4); the docs win by default.
        wrap_model_errors: Answer container errors as the managed-online front door does: 424
            with ``ms-azureml-model-error-*`` headers. ``False`` returns the container's own status.
        default_max_tokens: Token budget when a request names none.
        embedding_dimensions: Length of an embedding when the request sends no ``dimensions``.
    """

    api_key: str | None = field(default=None, repr=False)
    family: str = "llama"
    response_style: str | None = None
    deployments: Sequence[Deployment] = ()
    seed: int = 0
    faults: Faults = field(default_factory=Faults)
    model_name: str = "azml-emulator"
    extra_parameters_default: str = "error"
    wrap_model_errors: bool = True
    default_max_tokens: int = 64
    embedding_dimensions: int = 256

    def __post_init__(self) -> None:
        object.__setattr__(self, "deployments", tuple(self.deployments))
        _check_style(self.family, self.response_style)
        names = [d.name for d in self.deployments]
        if len(set(names)) != len(names):
            raise ValueError(f"deployment names must be unique, got {names}")
        if self.extra_parameters_default not in EXTRA_PARAMETERS_OPTIONS:
            raise ValueError(f"extra_parameters_default must be one of {EXTRA_PARAMETERS_OPTIONS}")
        if self.default_max_tokens < 0:
            raise ValueError("default_max_tokens must not be negative")
        if not 1 <= self.embedding_dimensions <= MAX_EMBEDDING_DIMENSIONS:
            raise ValueError(
                f"embedding_dimensions must be between 1 and {MAX_EMBEDDING_DIMENSIONS}"
            )

    @property
    def effective_deployments(self) -> tuple[Deployment, ...]:
        """The configured deployments, or the implicit ``default`` one built from ``family``."""
        if self.deployments:
            return tuple(self.deployments)
        return (Deployment("default", self.family, 100.0, self.response_style),)
