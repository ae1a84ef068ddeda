"""The items of one ``map`` chunk: one callable, many argument tuples, one record each.

``Executor.map`` sends its items to the workers in chunks (see :func:`._policy.chunk_size`):
one :class:`~._task.Task` carries a chunk's callable and argument tuples to a worker, which
runs the items in order and answers with one :class:`~._messages.ChunkFinished`. Every item
is still a task of its own, with its own id and :class:`~osiiso_mp.TaskResult`; what the
chunk saves is the per-task machinery (a future, a message, a record built eagerly):

- an item that succeeded is kept compactly (its value, inside the chunk's pickle of all
  its values as the worker sent it, and its slice of the chunk's clock and CPU readings)
  and its record is built only when somebody asks for it; the values themselves go to the
  ``map`` that reads them (``MapChunk``), which lets go of each as it hands it over;
- an item that failed, and may be retried, leaves the chunk: it becomes a task of its own
  (``split``), whose first attempt is the one it made in the chunk;
- when the chunk is lost with its worker, the position of the item that caused it is
  unknown, so every item becomes a task of its own, announced (see ``Task.suspect``): the
  item that crashes again is then named, and the others run once more;
- when the chunk ends as a whole (cancelled, refused, failed before any item ran), each
  unfinished item gets the same ending.

Item ids are a random 28-hex-digit prefix (a uuid4's first 28 digits) followed by the item's
index in four hex digits, so that they look like every other id and are found by prefix.

The supervisor thread writes a chunk until it is settled (``settled``), after which it is
only read, from any thread (records are built on demand, and not kept), except that the
value budget may release its values (``release``), from the supervisor thread: records
built after that read them as released.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any

from .._results import Attempt, ReleasedValue, TaskResult, make_attempt, make_result, with_value
from .._task_options import TaskOptions
from ._retention import ChunkValues, StoredValue, handout

if TYPE_CHECKING:
    from ._task import Task

__all__ = ["CHUNK_SUFFIX", "MAX_CHUNK", "PREFIX_LEN", "SEQ_STEP", "Chunk"]

PREFIX_LEN = 28
MAX_CHUNK = 0x10000  # four hex digits of index
SEQ_STEP = MAX_CHUNK + 1  # between two tasks' seqs: room for one chunk's items, in order
CHUNK_SUFFIX = " [map chunk]"  # marks a chunk's transport task among a worker's callables
# a chunk's values pickled in at most this many bytes are unpickled at once for a summary's
# records (cheaper than making each on its first read); larger ones when first read
_EAGER_BYTES = 1 << 20


class Chunk:
    """One chunk's items and how each of them ended."""

    __slots__ = (
        "args",
        "busy",
        "clock",
        "cpu",
        "created_at",
        "expiry",
        "finished_at",
        "fn",
        "fn_name",
        "holds",
        "kept_size",
        "key",
        "n",
        "name",
        "node",
        "opts",
        "outcome",
        "peak_rss",
        "pid",
        "prefix",
        "queued_since",
        "rss_share",
        "settled",
        "split",
        "stored",
        "worker",
    )

    def __init__(
        self,
        *,
        prefix: str,
        fn: Any,
        args: list[tuple[Any, ...]],
        name: str,
        fn_name: str,
        opts: TaskOptions,
        created_at: float,
        key: str | None = None,
    ) -> None:
        self.prefix = prefix
        self.fn: Any = fn  # dropped once settled; kept to run an item on its own again
        self.args: list[tuple[Any, ...]] | None = args  # dropped once settled
        self.n = len(args)
        self.name = name
        self.fn_name = fn_name
        self.key = key or fn_name  # the callable's key for duration estimates (Task.key)
        self.opts = opts
        self.created_at = created_at
        # the compact outcome, once the chunk ran: the worker's pickle of (values, errors),
        # or the marker of its release, and per-item readings
        self.stored: StoredValue | ReleasedValue | None = None
        self.clock: array[float] | None = None  # n + 1 perf_counter readings
        self.cpu: array[float] | None = None
        self.worker = 0
        self.pid: int | None = None
        self.node = ""
        self.peak_rss = 0
        self.rss_share = 0
        self.queued_since = created_at
        # index -> the final record of an item that did not end compactly
        self.outcome: dict[int, TaskResult] = {}  # their values as kept (StoredValue)
        self.split: dict[int, Task] = {}  # index -> the item's own task, while unfinished
        self.finished_at = 0.0  # when the last item ended (set when settled)
        self.settled = False
        self.busy = False  # its failed items are being handed out: do not settle yet
        self.holds = 0  # who keeps its values (see _retention.ValueBudget)
        self.kept_size = 0
        self.expiry = 0.0  # when lookups forget it (time.monotonic()), once kept for them

    # -- ids -------------------------------------------------------------------------------

    def item_id(self, i: int) -> str:
        """The task id of item ``i``."""
        return f"{self.prefix}{i:04x}"

    def index_of(self, task_id: str) -> int | None:
        """The index of the item whose id is ``task_id`` (its prefix already matched)."""
        tail = task_id[PREFIX_LEN:]
        if len(tail) != 4:
            return None
        try:
            i = int(tail, 16)
        except ValueError:
            return None
        return i if 0 <= i < self.n and self.item_id(i) == task_id else None

    # -- outcomes (supervisor thread) ------------------------------------------------------

    def ran(
        self,
        stored: StoredValue,
        clock: array[float],
        cpu: array[float],
        *,
        worker: int,
        pid: int | None,
        peak_rss: int,
        rss_delta: int,
        queued_since: float,
        node: str = "",
    ) -> None:
        """Keep what a worker reported for the chunk: ``stored``, its pickle of
        ``(values, errors)`` as received, and the readings, for the items it ran (all of
        them, or the first ones: the others then run as tasks of their own)."""
        self.stored = stored
        self.clock = clock
        self.cpu = cpu
        self.worker = worker
        self.pid = pid
        self.node = node
        self.peak_rss = peak_rss
        self.rss_share = int(rss_delta / self.n) if self.n else 0
        self.queued_since = queued_since

    def attempt(self, i: int, outcome: Any = "succeeded", error: str = "") -> Attempt:
        """Item ``i``'s attempt inside the chunk (after :meth:`ran`)."""
        clock, cpu = self.clock, self.cpu
        assert clock is not None and cpu is not None
        start, end = clock[i], clock[i + 1]
        return make_attempt(
            number=1,
            worker=self.worker,
            pid=self.pid,
            queued_for=max(0.0, start - self.queued_since),
            started_at=start,
            finished_at=end,
            duration=max(0.0, end - start),
            cpu_time=cpu[i],
            peak_rss=self.peak_rss,
            rss_delta=self.rss_share,
            outcome=outcome,
            error=error,
            exit_code=None,
            node=self.node,
        )

    def end_all(
        self,
        status: str,
        *,
        exc: BaseException | None,
        message: str,
        attempts: tuple[Attempt, ...],
        finished_at: float,
    ) -> int:
        """Give every item that has no ending yet, and no task of its own, the same
        ending; returns how many. (Never after :meth:`ran`: items then end one by one.)"""
        if self.clock is not None:
            return 0
        count = 0
        for i in range(self.n):
            if i in self.outcome or i in self.split:
                continue
            first = next((a.started_at for a in attempts if a.started_at is not None), None)
            self.outcome[i] = TaskResult(
                task_id=self.item_id(i),
                name=self.name,
                status=status,  # type: ignore[arg-type]
                exception=exc,
                attempts=len(attempts),
                priority=self.opts.priority,
                must_complete=self.opts.must_complete,
                group_id=self.opts.group_id,
                detached=self.opts.detached,
                created_at=self.created_at,
                started_at=first,
                finished_at=finished_at,
                duration=0.0 if first is None else max(0.0, finished_at - first),
                message=message,
                metadata=self.opts.metadata,
                attempt_log=attempts,
            )
            count += 1
        return count

    def settle(self, finished_at: float) -> None:
        """Every item has ended: from now on the chunk is only read."""
        self.finished_at = finished_at
        self.fn = None
        self.args = None
        self.settled = True

    def release(self, marker: ReleasedValue) -> None:
        """The value budget lets go of the items' values: each reads as ``marker`` (an
        item's own record is replaced, not changed: one kept as is may be the caller's)."""
        if self.stored is not None:
            self.stored = marker
        outcome = self.outcome
        for i, record in outcome.items():
            if record.status == "succeeded":
                outcome[i] = with_value(record, marker)

    def _values_for_records(self, eager: bool) -> list[Any] | ChunkValues | ReleasedValue:
        """How the records built now get their values from the chunk's pickle (once it
        ran): a :class:`ChunkValues` (on first read), the list itself (``eager``:
        unpickled now), or the released marker."""
        stored = self.stored
        assert stored is not None, "the chunk has not run"
        if isinstance(stored, ReleasedValue):
            return stored
        if eager:
            values: list[Any] = stored.load()[0]
            return values
        return ChunkValues(stored)

    # -- records (any thread once settled) -------------------------------------------------

    def record(self, i: int) -> TaskResult | None:
        """Item ``i``'s record, or None while it has not ended.

        Built anew on each call from the compact outcome (equal each time), so that a
        chunk kept for lookups holds its values and readings, not records. Its value is
        unpickled from the chunk's when first read.
        """
        record = self.outcome.get(i)
        if record is None:
            if self.clock is None or i in self.split:
                return None
            source = self._values_for_records(eager=False)
            assert not isinstance(source, list)
            attempt = self.attempt(i)
            return make_result(
                task_id=self.item_id(i),
                name=self.name,
                status="succeeded",
                value=source if isinstance(source, ReleasedValue) else source.deferred(i),
                exception=None,
                attempts=1,
                priority=self.opts.priority,
                must_complete=self.opts.must_complete,
                group_id=self.opts.group_id,
                detached=self.opts.detached,
                created_at=self.created_at,
                started_at=attempt.started_at,
                finished_at=attempt.finished_at,
                duration=attempt.duration,
                message="",
                metadata=self.opts.metadata,
                attempt_log=(attempt,),
            )
        return handout(record)

    def records(self) -> list[TaskResult]:
        """Every item's record, in order (the chunk must be settled).

        Equal to the records :meth:`record` gives one by one (a test checks it), built in
        one loop with the fields passed in declaration order: a summary of a large ``map``
        builds hundreds of thousands of them. The values of a chunk whose pickle is small
        are unpickled now, in one go; those of a larger one when first read (the whole
        chunk's at once).
        """
        outcome = self.outcome
        clock, cpu = self.clock, self.cpu
        if clock is None or cpu is None:
            records = [outcome.get(i) for i in range(self.n)]
            assert None not in records
            return [handout(r) for r in records]  # type: ignore[arg-type]
        stored = self.stored
        source = self._values_for_records(
            eager=isinstance(stored, StoredValue) and stored.nbytes <= _EAGER_BYTES
        )
        values: list[Any] | None = None  # the values, or else lazy ones from `lazy`
        lazy: ChunkValues | None = None
        if isinstance(source, ChunkValues):
            lazy = source
        elif isinstance(source, ReleasedValue):
            values = [source] * self.n
        else:
            values = source
        opts = self.opts
        priority, must, group, detached, meta = (
            opts.priority,
            opts.must_complete,
            opts.group_id,
            opts.detached,
            opts.metadata,
        )
        prefix, name, created = self.prefix, self.name, self.created_at
        worker, pid, peak, share, since, node = (
            self.worker,
            self.pid,
            self.peak_rss,
            self.rss_share,
            self.queued_since,
            self.node,
        )
        attempt, result = make_attempt, make_result
        out: list[TaskResult] = []
        append = out.append
        for i in range(self.n):
            record = outcome.get(i)
            if record is None:
                value = values[i] if lazy is None else lazy.deferred(i)  # type: ignore[index]
                start = clock[i]
                end = clock[i + 1]
                took = end - start if end > start else 0.0
                waited = start - since if start > since else 0.0
                # Attempt: number, worker, pid, queued_for, started_at, finished_at,
                # duration, cpu_time, peak_rss, rss_delta, outcome, error, exit_code, node
                first = attempt(
                    1, worker, pid, waited, start, end, took, cpu[i], peak, share,
                    "succeeded", "", None, node,
                )  # fmt: skip
                # TaskResult: task_id, name, status, value, exception, attempts, priority,
                # must_complete, group_id, detached, created_at, started_at, finished_at,
                # duration, message, metadata, attempt_log
                record = result(
                    f"{prefix}{i:04x}", name, "succeeded", value, None, 1, priority,
                    must, group, detached, created, start, end, took, "", meta, (first,),
                )  # fmt: skip
            else:
                record = handout(record)
            append(record)
        return out
