"""Pure scheduling decisions: no I/O, no clocks, no processes; tested on their own.

- :class:`ReadyQueue`: the supervisor's priority lanes. Lower priority values run first and,
  within a priority, tasks run in submission order (FIFO by sequence number). Removal is lazy:
  a cancelled entry stays in the heap until it reaches the top.
- :func:`retry_delay`: whether a failed attempt is retried, and after how long.
- :func:`may_prefetch`: the pipelining rule that keeps pipelining from defeating priorities.
- :class:`DurationEstimates`: how long each callable's attempts usually take, so that work is
  queued behind a running task only when that task is known to be short.
- :class:`TokenBucket`: the executor-wide ``rate``/``burst`` limit on attempt starts.
- :func:`send_depth`: how many tasks a worker may hold before one more is sent to it;
  :func:`must_announce`: whether a worker reports a task's start before running it.
- :class:`._read_ahead.ReadAhead` (a module of its own): how far the workers of a ``map``
  without ``buffersize`` may run ahead of its reader.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Generic, TypeVar

__all__ = [
    "DurationEstimates",
    "ReadyQueue",
    "TokenBucket",
    "chunk_size",
    "may_prefetch",
    "must_announce",
    "ahead_budget",
    "send_depth",
    "retry_delay",
]

T = TypeVar("T")


class ReadyQueue(Generic[T]):
    """Items ordered by ``(priority, seq)``, with lazy removal by ``seq``."""

    __slots__ = ("_heap", "_live")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, T]] = []
        self._live: set[int] = set()

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, seq: int) -> bool:
        return seq in self._live

    def push(self, priority: int, seq: int, item: T) -> None:
        """Add ``item``; ``seq`` must be unique among the items queued."""
        if seq in self._live:
            raise ValueError(f"seq {seq} is already queued")
        self._live.add(seq)
        heapq.heappush(self._heap, (priority, seq, item))

    def peek(self) -> tuple[int, int, T] | None:
        """The best ``(priority, seq, item)``, or None when empty."""
        heap, live = self._heap, self._live  # entries removed by seq are dropped here
        while heap and heap[0][1] not in live:
            heapq.heappop(heap)
        return heap[0] if heap else None

    def pop(self) -> tuple[int, int, T]:
        """Remove and return the best entry; IndexError when empty."""
        entry = self.peek()
        if entry is None:
            raise IndexError("pop from an empty ReadyQueue")
        self.drop_peeked()
        return entry

    def drop_peeked(self) -> None:
        """Remove the entry that :meth:`peek` has just returned (nothing in between may
        change the queue): the dispatcher's peek-then-take, without a second skip."""
        self._live.discard(heapq.heappop(self._heap)[1])

    def remove(self, seq: int) -> bool:
        """Forget ``seq``; False when it was not queued."""
        if seq not in self._live:
            return False
        self._live.discard(seq)
        if not self._live:
            self._heap.clear()
        return True

    def items(self) -> Iterable[T]:
        """The queued items, in no particular order."""
        return (item for _, seq, item in self._heap if seq in self._live)


TINY = 0.001  # seconds: sync tasks estimated shorter than this run unannounced, in batches


def must_announce(
    *,
    is_async: bool,
    timeout: float | None,
    suspect: bool,
    chunk: bool,
    start_hook: bool,
    estimate: float | None,
) -> bool:
    """Must the worker announce a task (report ``TaskStarted``) before running it? Yes,
    unless it is a sync task without a timeout whose callable is known to take under
    :data:`TINY`: such a task needs no mid-run kill, and its start travels in its
    ``TaskFinished``, so such tasks run and are answered in batches. An ``on_start`` hook
    (``start_hook``) needs every start; a map chunk is always announced. A ``suspect`` task
    (held by a worker that died) is always announced from then on: it may be the one that
    killed it, unseen, and must not do so again anonymously (each crash would requeue the
    whole batch and replace the worker, for ever)."""
    if is_async or timeout is not None or suspect or chunk or start_hook:
        return True
    return estimate is None or estimate >= TINY


def ahead_budget(switch_interval: float) -> float:
    """Seconds of estimated work a worker may hold: 2 ms, or four of the interpreter's GIL
    switch intervals (``sys.getswitchinterval()``, 5 ms by default) when that is more.

    The supervisor shares the user's GIL: while a thread of the user's runs Python code,
    the supervisor gets the GIL back only at a switch. It lets go of the GIL at every
    system call (its loop's poll, each read and write of a socket), and a busy caller may
    take it each time, so one turn of the supervisor, from a result read to the next task
    written, can take several intervals: a worker holding less work than that runs dry
    before its next task is sent (see ``benchmarks/bench_busy_caller.py``)."""
    return max(0.002, 4.0 * switch_interval)


def send_depth(
    *,
    chunk: bool,
    is_async: bool,
    concurrency: int,
    holds_chunks_only: bool,
    holds_short_only: bool,
    longest: float | None,
    budget: float = 0.002,
) -> int:
    """How many tasks a worker may hold (running or waiting there) and still be sent this
    one, before :func:`may_prefetch` lets a better one overtake.

    - a map chunk: one ahead of the running one, behind chunks only (``holds_chunks_only``)
      so that the pipe never runs dry and the last chunks are not stuck behind a busy
      worker;
    - an async task: up to the worker's ``concurrency``, one more when everything it holds
      is known to be short (``holds_short_only``);
    - a sync task: as many as fit in ``budget`` seconds (:func:`ahead_budget`) of the
      ``longest`` estimate among this task's callable and those the worker holds (None:
      one of them is long or unknown, so only one).
    """
    if chunk:
        return 2 if holds_chunks_only else 1
    if is_async:
        return concurrency + 1 if holds_short_only else concurrency
    return DurationEstimates.depth_for(longest, budget)


def retry_delay(
    *,
    attempts_made: int,
    retries: int,
    base_delay: float,
    backoff: float,
    requested: float | None = None,
) -> float | None:
    """Seconds to wait before the next attempt, or None when the retry budget is spent.

    ``attempts_made`` counts the attempts so far (the failed one included); ``retries`` is the
    number of extra attempts allowed after the first. Retry ``k`` (``k = attempts_made``)
    waits ``base_delay * backoff ** (k - 1)``, unless the task asked for ``requested``
    seconds (``raise Retry(delay=...)``).
    """
    if attempts_made > retries:
        return None
    if requested is not None:
        return max(0.0, requested)
    return base_delay * backoff ** (attempts_made - 1)


def may_prefetch(
    candidate: tuple[int, int],
    in_flight: int,
    depth: int,
    worst_waiting: tuple[int, int] | None,
) -> bool:
    """May the supervisor send ``candidate`` (its ``(priority, seq)``) to this worker now?

    Yes while fewer than ``depth`` tasks are in flight on the worker. Beyond that, only when
    it beats ``worst_waiting``, the worst ``(priority, seq)`` already sent there but not yet
    started (None when none waits): the worker runs what it
    holds in ``(priority, seq)`` order, so a better task sent now overtakes it.

    Invariant kept: every task still in the supervisor's queue ranks after every task waiting
    inside a worker that the worker will start before it, so on one worker, tasks always
    start in priority order however deep the pipeline.
    """
    if in_flight < depth:
        return True
    return worst_waiting is not None and candidate < worst_waiting


class DurationEstimates:
    """Exponentially weighted mean attempt duration per callable name.

    A worker running a sync task does not read its pipe, so a task sent ahead to it cannot be
    taken back until the running one ends. Pipelining therefore only pays, and only is safe
    for load balance, behind tasks known to be short: :meth:`all_short` says whether every
    given callable has a known estimate under ``short`` seconds. Unknown callables count as
    long, so the first tasks of a new callable are never queued behind one another.
    """

    __slots__ = ("_est", "_limit", "alpha", "short")

    def __init__(self, short: float = 0.05, alpha: float = 0.3, limit: int = 4096) -> None:
        self.short = short
        self.alpha = alpha
        self._limit = limit
        self._est: dict[str, float] = {}

    def observe(self, name: str, seconds: float) -> None:
        """Fold one attempt's duration into ``name``'s estimate."""
        old = self._est.get(name)
        if old is None:
            if len(self._est) >= self._limit:
                self._est.clear()  # bounded memory for programs with endless distinct names
            self._est[name] = seconds
        else:
            self._est[name] = old + self.alpha * (seconds - old)

    def estimate(self, name: str) -> float | None:
        """The current estimate for ``name`` in seconds, or None when unknown."""
        return self._est.get(name)

    def pipeline_depth(self, names: Iterable[str], budget: float = 0.002, cap: int = 64) -> int:
        """How many sync tasks a worker may hold at once, given the callables ``names`` of
        the tasks involved: 1 (no sending ahead) unless every one is known short; then as
        many as fit in ``budget`` seconds of estimated work, between 2 and ``cap``."""
        return self.depth_for(self.longest(names), budget, cap)

    def longest(self, names: Iterable[str]) -> float | None:
        """The longest estimate among ``names`` (0.0 for none), or None when one of them is
        unknown or not short: the figure :meth:`depth_for` turns into a pipeline depth."""
        est = self._est
        short = self.short
        longest = 0.0
        for name in names:
            value = est.get(name)
            if value is None or value >= short:
                return None
            if value > longest:
                longest = value
        return longest

    @staticmethod
    def depth_for(longest: float | None, budget: float = 0.002, cap: int = 64) -> int:
        """:meth:`pipeline_depth` from :meth:`longest` of the names involved."""
        if longest is None:
            return 1
        return max(2, min(cap, int(budget / max(longest, 1e-6))))

    def all_short(self, names: Iterable[str]) -> bool:
        """True when every name has a known estimate below ``short`` (True for none)."""
        est = self._est
        short = self.short
        for name in names:
            value = est.get(name)
            if value is None or value >= short:
                return False
        return True


_EPSILON = 1e-9


class TokenBucket:
    """At most ``rate`` events per second on average, in bursts of at most ``burst``.

    The bucket holds up to ``burst`` tokens and gains ``rate`` tokens per second; each event
    takes one. The clock is passed in (``now``, in seconds), so the policy has no I/O.
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = now

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
            self._last = now

    def take(self, now: float) -> float:
        """Take a token: 0.0 when one was available, else the seconds until one will be
        (nothing is taken then)."""
        self._refill(now)
        if self._tokens >= 1.0 - _EPSILON:  # refills accumulate rounding error
            self._tokens = max(0.0, self._tokens - 1.0)
            return 0.0
        return (1.0 - self._tokens) / self.rate


CHUNK_SECONDS = 0.01  # work per map chunk when the callable's duration is known
CHUNK_UNKNOWN = 256  # most items per chunk while the callable's duration is unknown
CHUNK_MAX = 4096  # most items per chunk


def chunk_size(
    *,
    total: int | None,
    procs: int,
    estimate: float | None,
    window: int | None = None,
) -> int:
    """How many items of a ``map`` go to a worker in one message (``chunksize=None``).

    - ``total``: the number of items, or None when they stream (``buffersize=window``).
    - ``estimate``: seconds one call is expected to take, or None when unknown.

    Enough items to fill about :data:`CHUNK_SECONDS` of work when the duration is known
    (so a chunk's messages cost little beside its work, and long calls go one by one), at
    most :data:`CHUNK_UNKNOWN` while it is not; and few enough that every worker gets
    several chunks (4 each when the duration is known, 16 when not), so that the last
    chunks leave no worker idle for long. Streaming, a chunk is at most a quarter of a
    worker's share of the window. Always between 1 and :data:`CHUNK_MAX`.
    """
    procs = max(1, procs)
    if estimate is None:
        size = CHUNK_UNKNOWN
        per_worker = 16
    else:
        size = round(CHUNK_SECONDS / max(estimate, 1e-7))
        per_worker = 4
    if total is not None:
        size = min(size, total // (procs * per_worker))
    if window is not None:
        size = min(size, window // (procs * 4))
    return max(1, min(size, CHUNK_MAX))
