"""Commands that caller threads post to the supervisor's inbox.

Callers never touch task state; they post one of these and, where an answer is needed, wait
on the ``reply`` future, which the supervisor resolves on its own thread.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable
from typing import Any

from .._slots import frozen_class
from ._policy import ReadAhead
from ._task import Task

__all__ = ["Call", "Cancel", "Command", "MapRead", "OpenMaps", "Shutdown", "Submit"]


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
    """Run ``fn`` on the supervisor thread (a consistent read of its state) and reply."""

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


Command = Submit | Cancel | Call | Shutdown | MapRead | OpenMaps
