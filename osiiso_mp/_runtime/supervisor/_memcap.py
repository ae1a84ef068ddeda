"""The memory cap (``max_rss``): workers above it are replaced, their running attempts end
``memory_exceeded``.

A timer reads every ready worker's resident size (through its link) every 100 ms, and
again as each task finishes there. A worker above the cap is killed and replaced: its
running attempts end with a :class:`MemoryLimitError` (then retried or failed), and what it
only held goes back to the queue. A worker found above the cap between tasks gets no new
task and is recycled before it runs another (the worker also refuses to start a task while
above it, and says so: :class:`.._messages.MemoryExceeded`). Supervisor thread only.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..._errors import MemoryLimitError, format_bytes
from . import _common
from ._common import INIT_FAILURES, log

if TYPE_CHECKING:
    import asyncio

    from ._actor import Supervisor
    from ._view import WorkerView

__all__ = ["MemoryCap"]


class MemoryCap:
    """Enforces ``max_rss`` (a no-op without it)."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.limit = sup.config.max_rss
        self.timer: asyncio.TimerHandle | None = None
        self._fresh_over = 0  # workers in a row found above the cap before any task
        self._reads = True  # workers' memory is read here (else: they report it)

    def wire(self) -> None:
        """Take the other parts (once all exist)."""
        self.loop = self.sup.loop
        self.pool = self.sup.pool
        self.dispatch = self.sup.dispatch
        self.attempts = self.sup.attempts

    def start(self) -> None:
        """Begin sampling (when there is a cap, and the transport lets us read workers:
        else they watch themselves and report, see ``worker._watch``)."""
        self._reads = self.sup.caps.local_pids
        if self.limit is not None and self._reads:
            self.timer = self.loop.call_later(_common.RSS_INTERVAL, self._sample)

    def stop(self) -> None:
        """Stop sampling."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _sample(self) -> None:
        """Every 100 ms: replace the workers found above ``max_rss``."""
        self.timer = self.loop.call_later(_common.RSS_INTERVAL, self._sample)
        limit = self.limit
        assert limit is not None
        for w in tuple(self.pool.workers):
            if w is None or not w.ready or w.killed or w.exited or w.over_cap:
                continue
            rss = w.link.rss()
            if rss > limit:
                w.over_cap = True
                self._over_memory(w, rss)

    def after_task(self, w: WorkerView) -> None:
        """Right after a task finished on ``w``: a worker it left above ``max_rss`` gets no
        new task, and is replaced before it could start one."""
        limit = self.limit
        if limit is None or not self._reads or not w.ready or w.killed or w.over_cap:
            return
        rss = w.link.rss()
        if rss > limit:
            self.mark_over_cap(w, rss)

    def mark_over_cap(self, w: WorkerView, rss: int) -> None:
        """``w`` is above ``max_rss`` (found while reading its messages): dispatch skips it
        from now on, and it is replaced once the messages read with this one are handled."""
        if w.over_cap or w.killed:
            return
        w.over_cap = True
        self.loop.call_soon(self._over_memory, w, rss)

    def _over_memory(self, w: WorkerView, rss: int) -> None:
        """Kill and replace ``w``, found at ``rss`` bytes, above ``max_rss``.

        Its messages already sent are read first, so that what finished counts and what
        started is known. The attempts running there end ``memory_exceeded`` (retried or
        failed with :class:`MemoryLimitError`); tasks it only held go back to the queue; an
        idle worker is simply recycled. Workers found above the cap before running any task
        (a heavy initializer, a cap below a bare worker) break the executor after a few in
        a row, rather than being replaced forever.
        """
        if not (w.killed or w.exited):
            w.link.drain()  # may finish tasks, start tasks, or see the worker's exit
        if w.killed or w.exited:
            return
        limit = self.limit
        assert limit is not None
        now = time.perf_counter()
        running = [t for t in w.sent.values() if t.seq not in w.unstarted and not t.abandoned]
        if running or w.done:
            self._fresh_over = 0
        else:
            self._fresh_over += 1
        reason = f"worker memory {format_bytes(rss)} exceeded max_rss {format_bytes(limit)}"
        if running:
            log.warning(
                "osiiso_mp: %s; killing worker %d (pid %s) and its running tasks %s",
                reason,
                w.id,
                w.pid,
                ", ".join(repr(t.name) for t in running),
            )
        else:
            log.info("osiiso_mp: %s; replacing idle worker %d (pid %s)", reason, w.id, w.pid)
        for task in running:
            self.dispatch.detach(w, task)
        self.pool.kill_settling(w, now, reason)
        for task in running:
            err = MemoryLimitError(limit, rss, name=task.name, task_id=task.task_id)
            self.attempts.attempt_over(
                task, w, "memory_exceeded", err, now, exit_code=-9, peak_rss=rss
            )
        if self._fresh_over >= INIT_FAILURES:
            self.sup.break_(
                f"{self._fresh_over} workers in a row were above max_rss "
                f"({format_bytes(limit)}) before running any task ({format_bytes(rss)} "
                "measured last): raise max_rss, or make the initializer use less memory"
            )
