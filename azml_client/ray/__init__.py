"""Bulk inference on Ray Data, with one rate budget per endpoint for the whole cluster.

    import ray
    from azml_client.ray import infer

    ds = ray.data.read_json("prompts.jsonl")                  # a "prompt" column (or messages)
    out = infer(ds, "azureml.json", actors=4, max_tokens=64)  # a file written by client.save()
    out.write_parquet("results/")

* :func:`infer` (``_infer.py``): the one call: a fixed pool of actors (a quarter CPU each) runs
  :class:`EndpointUDF` over the dataset, and a coordinator shares the endpoint's pace.
* :class:`EndpointUDF` (``_udf.py``): the callable class for ``Dataset.map_batches``: one client
  per actor, made in the actor's event loop with the key from the worker's environment; rows
  in, the input columns plus :data:`OUTPUT_COLUMNS` out; a failed row is a row.
* :func:`pace_coordinator` (``_coordinator.py``): the actor that holds one endpoint's pace;
  the protocol and the policy are in ``_pace.py``.
* ``_columns.py`` reads batches (numpy, Arrow, pandas) as plain Python and writes the output
  columns; ``_config.py`` ships settings, never keys; ``_job.py`` is ``azml batch --ray``.

Ray itself is imported only by :func:`infer`, :func:`pace_coordinator` and the job: the callable
class runs (and is tested) without a cluster.
"""

from ._columns import OUTPUT_COLUMNS as OUTPUT_COLUMNS
from ._coordinator import pace_coordinator as pace_coordinator
from ._infer import infer as infer
from ._udf import EndpointUDF as EndpointUDF

__all__ = ["OUTPUT_COLUMNS", "EndpointUDF", "infer", "pace_coordinator"]
