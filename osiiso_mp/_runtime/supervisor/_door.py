"""The door: an idle worker that a caller's thread may send one plain task to itself.

One task at a time pays for a hop through the supervisor's thread on its way out: the caller
posts it, the supervisor's loop wakes, takes it in, and writes it to a worker. When the
supervisor finds a worker idle and nothing queued, it *opens the door* to that worker: the
next plain task submitted (see :func:`plain`) skips the hop. The caller's thread writes its
frame to the worker's socket itself, and leaves the task in the door as *taken*; then it
wakes the supervisor (``Supervisor.wake``). The worker runs the task at once, while the
supervisor takes it in (adopts it, as if it had sent it itself): at the start of the drain
that wake-up causes, or of anything it does before that (a message or the exit of any
worker, a dispatch, a kill, a stop), whichever comes first.

The supervisor remains the one owner of task state. The door holds no state of a task's
but, for the moment between its write and its adoption, the task itself:

- *Open*: :attr:`Door.worker` names the worker, which holds nothing; the supervisor sends
  it nothing and decides nothing for it while the door is open. One caller at most takes
  the door, under :attr:`Door.lock`: it writes the frame under the lock (and the link's
  own write lock), so a supervisor that takes the lock after it finds the frame written.
- *Taken*: :attr:`Door.taken` holds ``(task, worker)``. The door stays shut until the
  supervisor adopts the task (:meth:`DoorKeeper.adopt`). Anything posted after the take
  (a cancel of that task, a query of its id) finds it adopted: every drain of the inbox
  adopts first.
- *Closed*: the supervisor closes the door (:meth:`DoorKeeper.close`) before it sends the
  worker anything, dispatches queued work, kills, retires or stops it, or handles its exit
  or a message of its: closing a taken door adopts its task first, so that what follows
  sees the task where it is (sent to that worker). It opens it again, to a worker that
  holds nothing, once it has nothing queued (:meth:`DoorKeeper.open`: at the end of each
  drain and after each message from a worker, and as soon as a worker's last task has
  ended, before its future is settled, so that the caller it wakes finds the door open).

Only tasks whose whole path the supervisor would decide alike at any moment go through:
a sync callable, no timeout, no start delay, no task id of the caller's, not part of a
``map``, with a payload of at most :data:`DIRECT_MAX` bytes and no buffers beside it; and
only in executors with no hook, no ``rate``, no ``max_tasks_per_worker`` and no
``max_pending``, whose transport can take a write from another thread (the local one).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..._config import HOOKS
from .._policy import must_announce
from ..protocol._framing import run_frame

if TYPE_CHECKING:
    from ..._task_options import TaskOptions
    from .._task import Task
    from ._actor import Supervisor
    from ._view import WorkerView

__all__ = ["DIRECT_MAX", "Door", "DoorKeeper", "plain"]

# The largest payload that goes through the door: a frame this small is written whole by one
# send to a socket that holds nothing (the kernel's buffer is larger), so the caller's write
# never waits for the worker, and the door's lock is held for one system call.
DIRECT_MAX = 16 << 10


def plain(opts: TaskOptions) -> bool:
    """Whether a task with these options may go through the door: nothing about its start
    needs the supervisor (no timeout to arm, no delay to wait, no id of the caller's to
    check against those in flight)."""
    return (
        opts.timeout is None and opts.task_id is None and opts.delay is None and opts.run_at is None
    )


class Door:
    """What the callers' threads and the supervisor share: the worker the door is open to,
    and the task taken through it (see the module's docstring). Changed under
    :attr:`lock`, except where noted.

    Locks are taken in one order: :attr:`lock`, then the link's write lock (a caller's
    write). The supervisor takes either alone (closing the door; its own writes), and
    holds neither while it takes the other."""

    __slots__ = ("link_lock", "lock", "taken", "worker")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # the worker the door is open to (None: closed), and its link's write lock: set by
        # the supervisor (lock first), cleared under the lock by whoever closes it
        self.worker: WorkerView | None = None
        self.link_lock: threading.Lock | None = None
        # the task taken through it, and the worker it was written to, until adopted:
        # set by a caller under the lock; cleared by the supervisor, which alone reads it
        # once set (the door is shut until then)
        self.taken: tuple[Task, WorkerView] | None = None

    def through(self, task: Task, announce: bool) -> bool:
        """Any thread: write ``task`` (a plain one, see :func:`plain`) straight to the
        worker the door is open to, and leave it taken. False, with nothing written, when
        the door is not open or the worker's link cannot take the write now: the caller
        then posts the task as usual."""
        w = self.worker
        if w is None:
            return False
        try:
            frame = run_frame(
                task.seq, 1, task.opts.priority, task.payload, False, None, announce, False
            )
        except ValueError:  # beyond what a frame holds: the supervisor fails it (dispatch)
            return False
        with self.lock:
            link_lock = self.link_lock
            if self.worker is not w or link_lock is None:  # closed, or taken, meanwhile
                return False
            with link_lock:
                if not w.link.direct_ready():
                    return False
                self.worker = None
                self.taken = (task, w)
                # a failed write leaves the task with a worker whose link has failed: the
                # supervisor adopts it, finds the link failed, and settles it as lost
                w.link.write_direct(frame)
        return True


class DoorKeeper:
    """The supervisor's side of the :class:`Door` (supervisor thread only)."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.door = Door()
        config = sup.config
        # what makes a task's path depend on more than its options: then no door
        self.enabled = (
            config.rate is None
            and config.max_tasks_per_worker is None
            and config.max_pending is None
            and not any(getattr(config, hook) is not None for hook in HOOKS)
        )
        self.opened: WorkerView | None = None  # the worker it opened the door to, if any
        self.adopted = 0  # tasks taken in through the door so far (tests, benchmarks)

    def wire(self) -> None:
        """Take the other parts (once all exist)."""
        sup = self.sup
        self.pool = sup.pool
        self.dispatch = sup.dispatch

    def announce(self, key: str) -> bool:
        """Any thread: must a plain task of callable ``key`` be announced (see
        :func:`.._policy.must_announce`)? Reads the dispatcher's estimate from the
        caller's thread: one dict lookup under the GIL, a heuristic as it is for the
        dispatcher (an estimate changes with every task)."""
        return must_announce(
            is_async=False,
            timeout=None,
            suspect=False,
            chunk=False,
            start_hook=False,
            estimate=self.dispatch.estimates.estimate(key),
        )

    def open(self) -> None:
        """Open the door to a worker that holds nothing, if the supervisor has nothing
        queued and takes new work (a no-op while it is open or taken)."""
        if self.opened is not None or not self.enabled:
            return
        sup = self.sup
        if sup.closing or sup.broken is not None or self.dispatch.queue:
            return
        door = self.door
        if door.taken is not None:  # (adopted first, wherever the door is shut)
            return
        for w in self.pool.workers:
            if (
                w is None
                or w.sent
                or not w.ready
                or w.killed
                or w.exited
                or w.retiring
                or w.over_cap
            ):
                continue
            lock = w.link.direct_lock()
            if lock is None:  # this transport's links take no direct writes
                self.enabled = False
                return
            self.opened = w
            door.link_lock = lock
            door.worker = w  # (last: a caller reads it first)
            return

    def close(self) -> None:
        """Shut the door, if it is open; a task taken through it is adopted first."""
        w = self.opened
        if w is None:
            return
        door = self.door
        with door.lock:  # (a caller's write through it is whole once this is taken)
            if door.worker is w:
                door.worker = None
        self.opened = None
        self.adopt()

    def close_for(self, w: WorkerView) -> None:
        """Shut the door if it is open (or was taken) to ``w``, before deciding for it."""
        if self.opened is w:
            self.close()

    def adopt(self) -> None:
        """Take in the task taken through the door, as sent to its worker."""
        taken = self.door.taken
        if taken is None:
            return
        self.door.taken = None
        self.opened = None
        task, w = taken
        self.adopted += 1
        self.dispatch.on_submit(task, sent_to=w)

    def shut(self) -> Task | None:
        """For good (the supervisor stops): no caller may take the door any more; the task
        taken through it and never adopted, if any, is returned (to be settled)."""
        door = self.door
        with door.lock:
            door.worker = None
            door.link_lock = None
            taken, door.taken = door.taken, None
        self.opened = None
        return None if taken is None else taken[0]
