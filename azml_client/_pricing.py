"""What a run cost: token prices (serverless, models, OpenAI v1) or an hourly price (a dedicated
deployment, billed per instance-hour whatever it serves)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._exceptions import ConfigurationError

__all__ = ["Pricing"]


@dataclass(frozen=True)
class Pricing:
    """Prices of one endpoint, for a cost estimate in bulk stats and ``azml batch``.

    ``input_per_1k`` / ``output_per_1k``: price of 1,000 prompt / completion tokens.
    ``hourly``: price of one instance-hour of a dedicated deployment, times ``instances``; a
    run is charged its wall time (what the deployment cost while the run used it). Both kinds
    may be given; they add up. Amounts are in ``currency`` (a label only)::

        EndpointClient(..., pricing=Pricing(input_per_1k=0.0003, output_per_1k=0.0006))
        EndpointClient(..., pricing=Pricing(hourly=3.67, instances=2))   # e.g. 2 x NC24ads
    """

    input_per_1k: float = 0.0
    output_per_1k: float = 0.0
    hourly: float = 0.0
    instances: int = 1
    currency: str = "USD"

    def __post_init__(self) -> None:
        for name in ("input_per_1k", "output_per_1k", "hourly"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ConfigurationError(f"Pricing {name} must be a number >= 0, got {value!r}")
        if isinstance(self.instances, bool) or not isinstance(self.instances, int):
            raise ConfigurationError(
                f"Pricing instances must be an integer, got {self.instances!r}"
            )
        if self.instances < 1:
            raise ConfigurationError(f"Pricing instances must be >= 1, got {self.instances}")

    def cost(self, tokens_in: int, tokens_out: int, seconds: float = 0.0) -> float:
        """The estimated cost of ``tokens_in`` / ``tokens_out`` tokens over ``seconds``."""
        tokens = tokens_in / 1000 * self.input_per_1k + tokens_out / 1000 * self.output_per_1k
        return tokens + self.hourly * self.instances * max(0.0, seconds) / 3600
