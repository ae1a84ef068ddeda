"""The supervisor's view of one worker process: what it holds, and its state."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._task import Task
    from ..transports import WorkerLink

__all__ = ["WorkerView"]


class WorkerView:
    """One worker slot's current process, as the supervisor sees it (through its link)."""

    __slots__ = (
        "assigned",
        "clock_offset",
        "done",
        "exited",
        "id",
        "killed",
        "link",
        "names",
        "node",
        "over_cap",
        "pid",
        "ready",
        "reported",
        "retiring",
        "sent",
        "stats_mark",
        "stop_sent",
        "stopped_since",
        "unstarted",
        "worst",
    )

    def __init__(self, slot: int) -> None:
        self.id = slot
        self.link: WorkerLink = None  # type: ignore[assignment]  # set once connected
        self.pid = 0
        self.node = ""  # where it runs (its link's, or what it reported when ready)
        self.clock_offset = 0.0  # add to the worker's perf_counter readings to get ours
        self.ready = False
        self.killed = False
        self.exited = False
        self.retiring = False
        self.stop_sent = False
        self.stopped_since: float | None = None  # time.monotonic() when first seen stopped
        self.over_cap = False  # found above max_rss: no new work, about to be replaced
        # a worker we cannot read (elsewhere): its last report, (rss, cpu_time, when: ours),
        # and the (cpu_time, when) of the report the previous stats() read
        self.reported: tuple[int, float, float] | None = None
        self.stats_mark: tuple[float, float] | None = None
        self.assigned = 0
        self.done = 0  # attempts this process finished
        self.sent: dict[int, Task] = {}  # seq -> task, started or not
        self.unstarted: dict[int, Task] = {}  # seq -> task, sent but not started
        # Kept in step with sent/unstarted, so that dispatch costs O(1) per worker:
        self.names: dict[str, int] = {}  # task key -> how many of the sent tasks call it
        self.worst: tuple[int, int] | None = None  # max (priority, seq) among unstarted

    def reported_usage(self) -> tuple[int, float]:
        """Resident size and CPU percent since the previous call, from the worker's own
        reports (``stats()`` of a worker we cannot read)."""
        report = self.reported
        if report is None:
            return 0, 0.0
        rss, cpu_time, at = report
        mark, self.stats_mark = self.stats_mark, (cpu_time, at)
        if mark is None or at <= mark[1]:
            return rss, 0.0
        return rss, max(0.0, 100.0 * (cpu_time - mark[0]) / (at - mark[1]))

    def add(self, task: Task) -> None:
        """``task`` was sent to this worker."""
        self.sent[task.seq] = task
        self.unstarted[task.seq] = task
        self.names[task.key] = self.names.get(task.key, 0) + 1
        key = (task.opts.priority, task.seq)
        if self.worst is None or key > self.worst:
            self.worst = key

    def started(self, seq: int) -> Task | None:
        """The task ``seq`` began running; it was waiting here (else None)."""
        task = self.unstarted.pop(seq, None)
        if task is not None and (task.opts.priority, seq) == self.worst:
            self._new_worst()
        return task

    def remove(self, task: Task) -> None:
        """``task`` is no longer held by this worker."""
        if self.sent.pop(task.seq, None) is None:
            return
        count = self.names[task.key] - 1
        if count:
            self.names[task.key] = count
        else:
            del self.names[task.key]
        if (
            self.unstarted.pop(task.seq, None) is not None
            and (task.opts.priority, task.seq) == self.worst
        ):
            self._new_worst()

    def _new_worst(self) -> None:
        """The worst waiting task left: find the next (a scan, but only then)."""
        unstarted = self.unstarted
        self.worst = (
            max((t.opts.priority, t.seq) for t in unstarted.values()) if unstarted else None
        )
