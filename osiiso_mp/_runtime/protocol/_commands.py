"""Commands that caller threads post to the supervisor's inbox: the whole set.

Callers never touch task state; they post one of these and, where an answer is needed, wait
on the ``reply`` future, which the supervisor resolves on its own thread. Questions about
its state, and changes that answer, travel as an :class:`Ask` holding one of the queries
below (``Supervisor.ask`` posts it and waits; once the supervisor has stopped it answers on
the caller's thread, since nothing else touches the state any more). :class:`Call`, which
runs any function on the supervisor thread, is for tests and debugging only: the facades
never send closures.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable
from typing import Any

from ..._slots import frozen_class
from .._read_ahead import ReadAhead
from .._task import Task

__all__ = [
    "Ask",
    "Call",
    "Cancel",
    "CancelAll",
    "CheckId",
    "Command",
    "Estimate",
    "Find",
    "Info",
    "LetGo",
    "MapRead",
    "OpenMaps",
    "Query",
    "QueueSize",
    "SetFailPolicy",
    "Shutdown",
    "Snapshot",
    "Status",
    "Submit",
]


@frozen_class
class Submit:
    """Take ownership of a new task and queue it."""

    task: Task


@frozen_class
class Cancel:
    """Cancel a task (running ones included); replies True unless it had already finished."""

    task: Task
    reason: str
    reply: cf.Future[bool]


@frozen_class
class Call:
    """Run ``fn`` on the supervisor thread and reply (tests and debugging only)."""

    fn: Callable[[], Any]
    reply: cf.Future[Any]


@frozen_class
class Shutdown:
    """Stop taking work; optionally cancel what has not started, or kill everything now.

    The reply resolves once every worker has exited and the supervisor loop has stopped.
    """

    cancel_pending: bool
    kill: bool
    reply: cf.Future[None] | None


@frozen_class
class MapRead:
    """The reader of a ``map`` without ``buffersize`` has taken ``nbytes`` of its values;
    it waits for the map's tasks up to ``waiting_for`` (a seq; None: it does not wait);
    ``gone``: it will read no more (closed, dropped), so nothing of it is held back."""

    flow: ReadAhead[Task]
    nbytes: int
    waiting_for: int | None
    gone: bool


@frozen_class
class OpenMaps:
    """Something waits for every task of this map (``flow``), or with None of every map
    (``run()``): from now on their tasks start without waiting for their readers."""

    flow: ReadAhead[Task] | None


@frozen_class
class LetGo:
    """The batch no longer holds these entries' values (``run()`` summarised them, or they
    were pruned): they count in the value budget only while lookups keep them."""

    holders: tuple[Any, ...]
    reply: cf.Future[None] | None


# -- queries (inside an Ask) ---------------------------------------------------------------


@frozen_class
class CheckId:
    """Is ``task_id`` free? Raises ``ValueError`` when a task with it is in flight."""

    task_id: str


@frozen_class
class Estimate:
    """Seconds one call of the callable known as ``key`` usually takes (None: unknown)."""

    key: str


@frozen_class
class Status:
    """The state of the task ``task_id`` (or of ``task``): ``"queued"``, ``"scheduled"``,
    ``"running"``, ``"complete"`` or ``"not_found"``."""

    task_id: str | None
    task: Task | None = None


@frozen_class
class Info:
    """A ``TaskInfo`` of the unfinished task ``task_id`` (or ``task``), else None."""

    task_id: str | None
    task: Task | None = None


@frozen_class
class Find:
    """What answers for ``task_id``: its future while it is under way, a ``ChunkItem`` for
    an item of a map chunk under way, its record once finished, or None."""

    task_id: str


@frozen_class
class QueueSize:
    """How many tasks wait to start (scheduled ones included)."""


@frozen_class
class Snapshot:
    """Per worker rows and task counts, for ``stats()``."""


@frozen_class
class SetFailPolicy:
    """Use ``policy`` from now on (for a ``run()``); answers the policy replaced, or None
    when unchanged. Switching to ``fail_first`` trips at once on a failure in ``batch``."""

    policy: str
    batch: tuple[Any, ...]


@frozen_class
class CancelAll:
    """Cancel every one of ``tasks`` in one step (no queued one can start on a worker freed
    by cancelling another); answers how many were cancelled."""

    tasks: tuple[Task, ...]
    reason: str


Query = CheckId | Estimate | Status | Info | Find | QueueSize | Snapshot | SetFailPolicy | CancelAll


@frozen_class
class Ask:
    """Answer ``query`` through ``reply`` (its exception, if answering raised)."""

    query: Query
    reply: cf.Future[Any]


Command = Submit | Cancel | Call | Shutdown | MapRead | OpenMaps | LetGo | Ask
