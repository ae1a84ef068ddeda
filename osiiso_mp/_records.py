"""Compatibility only: what ``_records`` held now lives in :mod:`._results` (``TaskResult``,
``Attempt``, deferred and released values, the fast constructors), :mod:`._summary`
(``RunSummary``), :mod:`._run_telemetry` (``RunTelemetry``, ``WorkerStats``) and
:mod:`._snapshots` (``TaskInfo``, ``WorkerSnapshot``, ``PoolStats``).

This module is here for the facades being rewritten on another branch (``_executor.py``,
``_async.py``, ``_map.py``, ``_group.py``, ``_future.py``), which still import these names
from it; it re-exports exactly those. Import from the modules above instead; remove this
one once those facades do.
"""

from ._results import TaskResult
from ._snapshots import PoolStats, TaskInfo, WorkerSnapshot
from ._summary import RunSummary

__all__ = ["PoolStats", "RunSummary", "TaskInfo", "TaskResult", "WorkerSnapshot"]
