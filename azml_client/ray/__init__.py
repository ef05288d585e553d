"""Bulk inference on Ray Data: ``infer()``, the ``EndpointUDF`` callable class and the
coordinator that gives a whole cluster one rate budget per endpoint."""

from ._columns import OUTPUT_COLUMNS as OUTPUT_COLUMNS
from ._coordinator import pace_coordinator as pace_coordinator
from ._infer import infer as infer
from ._udf import EndpointUDF as EndpointUDF

__all__ = ["OUTPUT_COLUMNS", "EndpointUDF", "infer", "pace_coordinator"]
