"""Bulk inference: items validated once, a shared rate budget per endpoint, runs, stats, jobs.

* ``_items.py``: :class:`Item`, what one bulk item is, checked once;
* ``_limiter.py``: the adaptive limiter and token buckets (decisions; time injected);
* ``_budget.py``: :class:`RateBudget`, one endpoint's limiter, pause and slots, shared by runs;
* ``_run.py``: :class:`BatchRun`, a run through the client's request driver;
* ``_stats.py``: what a run did;
* ``_jobs/``: the resumable JSONL job behind ``azml batch``.
"""

from ._budget import RateBudget
from ._items import Item
from ._run import BatchRun, Concurrency, collect
from ._stats import BatchResults, BatchStats

__all__ = ["BatchResults", "BatchRun", "BatchStats", "Concurrency", "Item", "RateBudget", "collect"]
