"""Compatibility only: what ``_options`` held now lives in :mod:`._task_options`
(``TaskOptions``, ``resolve_options``), :mod:`._config` (``ExecutorConfig`` and its choices),
:mod:`._build_config` (``build_config``) and :mod:`._checks` (the checks).

This module is here for the facades being rewritten on another branch (``_executor.py``,
``_async.py``, ``_group.py``), which still import these names from it; it re-exports exactly
those. Import from the modules above instead; remove this one once those facades do.
"""

from ._build_config import build_config
from ._checks import check_choice
from ._config import FAIL_POLICIES, HOOKS, ExecutorConfig
from ._task_options import TaskOptions, resolve_options

__all__ = [
    "FAIL_POLICIES",
    "HOOKS",
    "ExecutorConfig",
    "TaskOptions",
    "build_config",
    "check_choice",
    "resolve_options",
]
