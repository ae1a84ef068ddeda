"""The supervisor actor: the single owner of every task's state.

Data flow::

    caller threads                 supervisor thread (its own uvloop)              workers
    --------------                 ----------------------------------              -------
    submit(): pickle (fn, args)
      -> SubmitTask ---> inbox --> _on_submit --> ReadyQueue (priority, seq)
                         (deque +       |                |  _dispatch: pipelining
                          one wakeup    |                v  (may_prefetch)
                          per batch)    |         RunTask frame  ----------------->  worker
                                        |                                               |
                                        |  _on_message <--- TaskStarted / TaskFinished -+
                                        |        |
                                        |        +-- retry? --> delay timer --> ReadyQueue
                                        v        v
    fut.result() <-- Future.set_* <-- _finish: one TaskResult per task, exactly once

    Every other command (cancel, queries, shutdown: the closed set in ._commands) takes the
    same inbox; those that need an answer carry a reply future.

- Callers never touch task state. They post commands (:mod:`._commands`) to the inbox, which
  the supervisor drains on its own thread; the submit path costs the caller one deque append
  and, at most once per drained batch, one ``call_soon_threadsafe``.
- Pipelining: a worker may hold tasks beyond the one it runs, so it never idles waiting
  for the next message, but only behind tasks whose callable is known to be short
  (:class:`DurationEstimates`): as many as fit in about 2 ms of estimated work, 2 to 64. A
  worker running a sync task does not read its pipe, so a task queued behind a long one
  could not be taken back for an idle worker. A better priority task may still overtake
  what a worker holds (:func:`may_prefetch`). Sync tasks known to take under 1 ms, without
  a timeout, are sent unannounced and run in batches (see ``_announce``).
- ``map`` hands over chunks: one task carrying a callable and many argument tuples, whose
  items keep their own ids and records (:mod:`._chunk`). A failed item leaves its chunk as
  a task of its own (retried or finished); a chunk lost with its worker becomes one
  announced task per item; a chunk cancelled or refused ends every item that has not.
- Large payloads travel beside the message pickles, out of band, and from 1 MiB in shared
  memory (:mod:`._wire`); a task's shared buffers are closed when its record is made.
- A value goes to the caller as the object (through its future, or a ``map`` iterator);
  what is kept for ``run()`` and lookups holds it as it came from the worker, within the
  ``retain_bytes`` budget (:mod:`._retention`).
- Worker processes are watched with pidfds: an exit is noticed at once, the worker's pipe is
  drained (results it sent before dying still count), and then whatever was running there
  is recorded as ``crashed`` and retried or failed. Tasks that were only *sent* to the dead
  worker never started, so they go back to the queue with no attempt recorded.
- A worker stopped (SIGSTOP) for two seconds is killed and replaced; its running task
  ends ``crashed``. Whenever a worker exits, what is left of its process group (children
  its tasks started) is killed before the worker is reaped.
- Timeouts are timers on this loop, armed from the worker's ``TaskStarted`` timestamp
  (``perf_counter`` is one clock for all processes on Linux). A sync attempt past its
  timeout is killed with its worker; async attempts are timed out inside the worker, with a
  kill as a backstop.
- Cancellation always wins unless the record already exists: a cancelled task is finished
  at once; a worker still holding it is told to drop it, or killed if it is running it.
- Memory cap (``max_rss``): a timer on this loop reads every ready worker's resident size
  every 100 ms (one ``pread`` of ``/proc/<pid>/statm`` each), and again as each task finishes.
  A worker above the cap is killed and replaced: its running attempts end
  ``memory_exceeded`` with a :class:`MemoryLimitError` (then retried or failed), and what it
  only held goes back to the queue. A worker above the cap between tasks is recycled before
  it runs another: it gets no new task once a finished task left it above, and the worker
  itself refuses to start a task while above the cap (:class:`MemoryExceeded`).

Invariant: a task is in exactly one of: the ready queue, a retry/delay timer, one worker's
``sent`` map, or finished (``_finish`` called once, then it is forgotten here).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import itertools
import logging
import math
import os
import pickle
import sys
import threading
import time
from array import array
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, TypeVar

from .._errors import (
    ClosedError,
    InternalError,
    MemoryLimitError,
    OsiisoError,
    Retry,
    TaskTimeoutError,
    WorkerCrashedError,
    format_bytes,
)
from .._errors import SerializationError as _SerializationError
from .._options import HOOKS, ExecutorConfig
from .._records import (
    Attempt,
    Outcome,
    TaskInfo,
    TaskResult,
    make_attempt,
    make_result,
    with_value,
)
from .._resources import thread_env
from ._chunk import CHUNK_SUFFIX, PREFIX_LEN, Chunk
from ._commands import (
    Ask,
    Call,
    Cancel,
    CancelAll,
    CheckId,
    Command,
    Estimate,
    Find,
    Info,
    LetGo,
    MapRead,
    OpenMaps,
    Query,
    QueueSize,
    SetFailPolicy,
    Shutdown,
    Snapshot,
    Status,
    Submit,
)
from ._messages import (
    CancelTask,
    ChunkFinished,
    Configure,
    ErrorInfo,
    InitFailed,
    LogRecorded,
    MemoryExceeded,
    Message,
    RunTask,
    Stop,
    TaskFinished,
    TaskStarted,
    WorkerReady,
    on_our_clock,
)
from ._policy import (
    DurationEstimates,
    ReadAhead,
    ReadyQueue,
    TokenBucket,
    may_prefetch,
    retry_delay,
)
from ._retention import (
    IN_BATCH,
    IN_LOOKUPS,
    Holder,
    StoredValue,
    ValueBudget,
    kept_as_is,
)
from ._serialize import dumps_task, rebuild_exception
from ._task import Task, task_info
from ._wire import PassedFd, blob_size, release
from .transports import Transport, WorkerLink

__all__ = ["ChunkItem", "Supervisor"]

log = logging.getLogger("osiiso_mp")

R = TypeVar("R")
_Kept = TypeVar("_Kept", "Task", "Chunk")  # what lookups by id keep, each with an expiry

# one worker in a stats() snapshot: (slot, pid, state, running task ids, done, restarts)
WorkerRow = tuple[int, int | None, str, tuple[str, ...], int, int, float, int]

_ASYNC_GRACE = 1.0  # seconds past an async timeout before the worker is killed as a backstop
_STOP_GRACE = 2.0  # seconds a stopping worker gets before it is killed
_INIT_FAILURES = 3  # consecutive initializer failures that break the executor
_TINY = 0.001  # seconds: sync tasks estimated shorter than this run unannounced, in batches
_LIVENESS_INTERVAL = 0.5  # seconds between two checks for stopped workers
_STOPPED_GRACE = 2.0  # a worker stopped this long is killed and replaced
_RSS_INTERVAL = 0.1  # seconds between two samples of the workers' memory (max_rss)


class _Worker:
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
        "over_cap",
        "pid",
        "ready",
        "retiring",
        "sent",
        "stop_sent",
        "stopped_since",
        "unstarted",
        "worst",
    )

    def __init__(self, slot: int) -> None:
        self.id = slot
        self.link: WorkerLink = None  # type: ignore[assignment]  # set once connected
        self.pid = 0
        self.clock_offset = 0.0  # add to the worker's perf_counter readings to get ours
        self.ready = False
        self.killed = False
        self.exited = False
        self.retiring = False
        self.stop_sent = False
        self.stopped_since: float | None = None  # time.monotonic() when first seen stopped
        self.over_cap = False  # found above max_rss: no new work, about to be replaced
        self.assigned = 0
        self.done = 0  # attempts this process finished
        self.sent: dict[int, Task] = {}  # seq -> task, started or not
        self.unstarted: dict[int, Task] = {}  # seq -> task, sent but not started
        # Kept in step with sent/unstarted, so that dispatch costs O(1) per worker:
        self.names: dict[str, int] = {}  # task key -> how many of the sent tasks call it
        self.worst: tuple[int, int] | None = None  # max (priority, seq) among unstarted

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
        if task is not None:
            self._left_waiting(task)
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
        if self.unstarted.pop(task.seq, None) is not None:
            self._left_waiting(task)

    def _left_waiting(self, task: Task) -> None:
        if (task.opts.priority, task.seq) == self.worst:
            self.worst = max(
                ((t.opts.priority, t.seq) for t in self.unstarted.values()), default=None
            )


class Supervisor:
    """Owns the task state and the workers of one executor, on a thread of its own."""

    def __init__(self, config: ExecutorConfig, transport: Transport) -> None:
        self.config = config
        self._transport = transport
        self._caps = transport.capabilities
        self._inbox: deque[Command] = deque()
        self._post_lock = threading.Lock()
        self._wake_pending = False
        self._loop = self._new_loop()
        self._thread = threading.Thread(target=self._run, name="osiiso_mp-supervisor", daemon=True)
        self._queue: ReadyQueue[Task] = ReadyQueue()
        # the read-ahead of every map without buffersize that has live tasks
        self._flows: set[ReadAhead[Task]] = set()
        self._estimates = DurationEstimates()
        self._tasks: dict[int, Task] = {}  # every unfinished task, by seq
        # finished tasks for lookups by id, task_id -> task (its .expiry on time.monotonic())
        self._finished: OrderedDict[str, Task] = OrderedDict()
        # the values kept for run() and lookups, within retain_bytes
        self._budget = ValueBudget(config.retain_bytes)
        self.completed = 0
        self._by_id: dict[str, Task] = {}  # every unfinished task, by task_id
        # map chunks by id prefix: unsettled ones (their transport task), and settled ones
        # kept for lookups like records: prefix -> chunk (its .expiry as above)
        self._live_chunks: dict[str, Task] = {}
        self._kept_chunks: OrderedDict[str, Chunk] = OrderedDict()
        self._next_expiry = math.inf  # the earliest expiry in either: nothing is due before
        self._split_seqs = itertools.count(-1, -1)  # items split off chunks go first
        self._workers: list[_Worker | None] = [None] * config.procs
        self.respawns = 0
        self.restarts = [0] * config.procs
        self._init_failures = 0
        self._init_error: str | None = None
        self._init_stage = "initializer"  # what failed last: "initializer" or "setup"
        self._in_lookups = IN_LOOKUPS if config.result_ttl > 0 else 0
        self.broken: str | None = None
        self._closing = False
        self._stopped = threading.Event()
        self._shutdown_replies: list[cf.Future[None]] = []
        self.fail_policy = config.fail_policy  # run(fail_policy=...) may swap it for a run
        self._hooks: dict[str, Callable[..., Any]] = {
            name: hook for name in HOOKS if (hook := getattr(config, name)) is not None
        }
        self._bucket = (
            None
            if config.rate is None
            else TokenBucket(config.rate, config.burst, time.monotonic())
        )
        self._rate_timer: asyncio.TimerHandle | None = None
        # the initializer, pickled once, and the descriptors its arguments' multiprocessing
        # objects need (kept open until teardown: every worker started gets them)
        self._initializer: bytes | None = None
        self._inherited: tuple[PassedFd, ...] = ()
        if config.initializer is not None:
            self._initializer, inherited = _dumps_initializer(config.initializer, config.initargs)
            self._inherited = tuple(map(PassedFd, inherited))
        self._env = thread_env(config.inner_threads, config.procs)
        self._rss_timer: asyncio.TimerHandle | None = None
        self._live_timer: asyncio.TimerHandle | None = None
        self._fresh_over_cap = 0  # workers in a row found above max_rss before any task

    @staticmethod
    def _new_loop() -> asyncio.AbstractEventLoop:
        try:
            import uvloop

            return uvloop.new_event_loop()
        except ImportError:  # pragma: no cover - uvloop is a dependency
            return asyncio.new_event_loop()

    # -- thread and inbox ------------------------------------------------------------------

    def start(self) -> None:
        """Start the supervisor thread; workers boot in the background."""
        self._thread.start()

    @property
    def thread_id(self) -> int | None:
        """``threading.get_ident()`` of the supervisor thread."""
        return self._thread.ident

    @property
    def alive(self) -> bool:
        """True until the supervisor has stopped."""
        return not self._stopped.is_set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the supervisor thread to end; True if it did."""
        if self._thread.ident is not None and threading.get_ident() != self._thread.ident:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def post(self, cmd: Command) -> None:
        """Hand ``cmd`` to the supervisor (any thread). Commands run in the order posted.

        Raises :class:`ClosedError` once the supervisor has stopped.
        """
        with self._post_lock:  # Invariant: nothing enters the inbox after teardown drained it
            if self._stopped.is_set():
                raise ClosedError("the executor is shut down")
            self._inbox.append(cmd)
            if not self._wake_pending:
                self._wake_pending = True
                self._loop.call_soon_threadsafe(self._drain_inbox)

    def call(self, fn: Callable[[], R], timeout: float | None = None) -> R:
        """Run ``fn`` on the supervisor thread and return its result (any thread)."""
        if threading.get_ident() == self._thread.ident:
            return fn()
        reply: cf.Future[Any] = cf.Future()
        self.post(Call(fn, reply))
        return reply.result(timeout)  # type: ignore[no-any-return]

    def ask(self, query: Query) -> Any:
        """Answer ``query`` on the supervisor thread and return the answer (any thread):
        once the supervisor has stopped, answered here (nothing else touches the state)."""
        if threading.get_ident() == self._thread.ident:
            return self.answer(query)
        if self.alive:
            reply: cf.Future[Any] = cf.Future()
            try:
                self.post(Ask(query, reply))
            except ClosedError:
                pass
            else:
                try:
                    return reply.result()
                except ClosedError:
                    pass
        self.join()
        if isinstance(query, CancelAll | SetFailPolicy):
            return 0 if isinstance(query, CancelAll) else None  # every task was settled
        return self.answer(query)

    def answer(self, query: Query) -> Any:
        """The answer to ``query`` (see :mod:`._commands`), read on this thread."""
        if isinstance(query, Status):
            found = query.task or self.lookup(query.task_id or "")
            if found is None:
                return "not_found"
            return "complete" if isinstance(found, TaskResult) else found.state
        if isinstance(query, Info):
            found = query.task or self.lookup(query.task_id or "")
            if isinstance(found, ChunkItem):
                return found.info()
            return task_info(found) if isinstance(found, Task) else None
        if isinstance(query, Find):
            found = self.lookup(query.task_id)
            return found.fut if isinstance(found, Task) else found
        if isinstance(query, CancelAll):
            return sum(1 for task in query.tasks if self._cancel(task, query.reason))
        if isinstance(query, QueueSize):
            return self.queue_size()
        if isinstance(query, Snapshot):
            return self.snapshot()
        if isinstance(query, Estimate):
            return self.estimate(query.key)
        if isinstance(query, CheckId):
            return self.check_unique(query.task_id)
        if isinstance(query, SetFailPolicy):
            return self._set_fail_policy(query.policy, query.batch)
        raise TypeError(f"not a query: {query!r}")  # pragma: no cover

    def request_cancel(self, task: Task, reason: str) -> bool | None:
        """Cancel ``task`` from any thread (see :meth:`_cancel`); None once stopped."""
        if threading.get_ident() == self._thread.ident:
            return self._cancel(task, reason)
        reply: cf.Future[bool] = cf.Future()
        try:
            self.post(Cancel(task, reason, reply))
        except ClosedError:
            return None
        return reply.result()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            for slot in range(self.config.procs):
                self._spawn(slot)
            if self.config.max_rss is not None:
                self._rss_timer = self._loop.call_later(_RSS_INTERVAL, self._sample_rss)
            self._live_timer = self._loop.call_later(_LIVENESS_INTERVAL, self._check_liveness)
            self._loop.run_forever()
        finally:
            self._teardown()

    def _drain_inbox(self) -> None:
        self._wake_pending = False
        inbox = self._inbox
        while inbox:
            cmd = inbox.popleft()
            try:
                self._handle(cmd)
            except Exception:  # pragma: no cover - a bug here must not kill the supervisor
                log.exception("osiiso_mp supervisor failed to handle %r", type(cmd).__name__)
        self._dispatch()
        # Write what dispatch queued now, not a turn of the loop later (a poll and a pass
        # over the timers sooner: the round trip's latency); it is all queued already, so
        # it still leaves in as few writes.
        for w in self._workers:
            if w is not None and not w.exited:
                w.link.flush()

    def _handle(self, cmd: Command) -> None:
        if isinstance(cmd, Submit):
            self._on_submit(cmd.task)
        elif isinstance(cmd, Cancel):
            cmd.reply.set_result(self._cancel(cmd.task, cmd.reason))
        elif isinstance(cmd, Call):
            try:
                cmd.reply.set_result(cmd.fn())
            except BaseException as exc:
                cmd.reply.set_exception(exc)
        elif isinstance(cmd, Ask):
            try:
                cmd.reply.set_result(self.answer(cmd.query))
            except BaseException as exc:
                cmd.reply.set_exception(exc)
        elif isinstance(cmd, LetGo):
            self._budget.let_go_all(cmd.holders, IN_BATCH)
            if cmd.reply is not None:
                cmd.reply.set_result(None)
        elif isinstance(cmd, MapRead):
            self._on_map_read(cmd)
        elif isinstance(cmd, OpenMaps):
            self._open_maps(cmd.flow)
        elif isinstance(cmd, Shutdown):
            self._on_shutdown(cmd)

    # -- workers ---------------------------------------------------------------------------

    def _spawn(self, slot: int) -> None:
        w = _Worker(slot)
        try:
            w.link = self._transport.connect(slot, self._loop, _Events(self, w))
        except Exception as exc:
            log.error("osiiso_mp could not start a worker: %s", exc)
            self._break(f"could not start a worker process: {exc}")
            return
        w.pid = w.link.pid
        self._workers[slot] = w
        w.link.send(self._configure(slot, w.link))
        w.link.flush()  # now: the first workers start before the loop runs

    def _configure(self, slot: int, link: WorkerLink) -> Configure:
        """A worker's set-up: what every worker takes, and, on our host (the transport
        says), our ``sys.path``, working directory, environment, CPUs and descriptors."""
        config = self.config
        local = self._caps.same_host
        affinity = config.cpu_affinity if local else None
        return Configure(
            worker_id=slot,
            parent_pid=link.parent_pid if local else None,
            sys_path=tuple(sys.path) if local else None,
            cwd=os.getcwd() if local else None,
            concurrency=config.concurrency,
            initializer=self._initializer,
            log_level=logging.getLogger().getEffectiveLevel(),
            env=(*os.environ.items(), *self._env) if local else self._env,
            whole_env=local,
            cpu_affinity=(
                None if affinity is None else tuple(sorted(affinity[slot % len(affinity)]))
            ),
            nice=config.nice,
            max_rss=config.max_rss,
            authkey=_authkey(),
            inherited=self._inherited if local else (),
        )

    def _on_message(self, w: _Worker, msg: Message) -> None:
        if w.killed:
            return  # a killed worker's last words: its tasks were settled when it was killed
        if w.clock_offset:
            msg = on_our_clock(msg, w.clock_offset)
        if isinstance(msg, TaskFinished):
            self._on_finished(w, msg)
            if self.config.max_rss is not None:
                self._check_rss(w)
        elif isinstance(msg, ChunkFinished):
            self._on_chunk_finished(w, msg)
            if self.config.max_rss is not None:
                self._check_rss(w)
        elif isinstance(msg, TaskStarted):
            self._on_started(w, msg)
        elif isinstance(msg, WorkerReady):
            w.pid = msg.pid
            w.ready = True
            self._init_failures = 0
            if not self._caps.one_clock:  # map its clock onto ours (latency aside)
                w.clock_offset = time.perf_counter() - msg.clock
        elif isinstance(msg, LogRecorded):
            self._on_log(w, msg)
        elif isinstance(msg, MemoryExceeded):
            self._mark_over_cap(w, msg.rss)
        elif isinstance(msg, InitFailed):
            self._init_failures += 1
            self._init_error = msg.error
            self._init_stage = msg.stage
            log.error("osiiso_mp worker %s failed: %s\n%s", msg.stage, msg.error, msg.traceback)
        self._dispatch_soon()

    def _on_log(self, w: _Worker, msg: LogRecorded) -> None:
        """Hand a worker's log record to the parent's logger of the same name, with the
        task's id and name and the worker's id and pid attached."""
        logger = logging.getLogger(msg.name)
        if not logger.isEnabledFor(msg.levelno):
            return
        task = None if msg.seq is None else w.sent.get(msg.seq)
        task_id = None if task is None else task.task_id
        if task is not None and task.chunk is not None and msg.item is not None:
            task_id = task.chunk.item_id(msg.item)
        record = logging.makeLogRecord(
            {
                "name": msg.name,
                "levelno": msg.levelno,
                "levelname": logging.getLevelName(msg.levelno),
                "msg": msg.message,
                "created": msg.created,
                "msecs": (msg.created % 1) * 1000,
                "pathname": msg.pathname,
                "filename": os.path.basename(msg.pathname),
                "module": os.path.splitext(os.path.basename(msg.pathname))[0],
                "lineno": msg.lineno,
                "funcName": msg.func_name,
                "exc_text": msg.exc_text,
                "process": w.pid,
                "processName": f"osiiso_mp-worker-{w.id}",
                "task_id": task_id,
                "task_name": None if task is None else task.name,
                "worker": w.id,
                "worker_pid": w.pid,
            }
        )
        logger.handle(record)

    def _on_channel_closed(self, w: _Worker) -> None:
        # End of file before the exit is seen: the process is exiting, or something closed
        # the pipe and left the process alive. Give it a moment, then make sure.
        if not w.exited:
            self._loop.call_later(_STOP_GRACE, self._kill_if_alive, w)

    def _on_exit(self, w: _Worker, code: int | None) -> None:
        w.exited = True
        w.link.drain()  # deliver what it sent before it died
        w.link.close()
        if not w.killed:
            self._settle_lost(w, code, time.perf_counter(), None)
        if self._workers[w.id] is w:
            self._workers[w.id] = None
            self._replace(w, code)
        self._dispatch()
        self._maybe_finish_shutdown()

    def _replace(self, w: _Worker, code: int | None) -> None:
        if self._closing and not self._tasks:
            return
        if self._init_failures >= _INIT_FAILURES:
            init = self.config.initializer
            what = (
                "worker setup"
                if init is None or self._init_stage != "initializer"
                else f"worker initializer {getattr(init, '__qualname__', repr(init))}"
            )
            self._break(f"{what} failed {self._init_failures} times in a row: {self._init_error}")
            return
        if self.broken is not None:
            return
        self.respawns += 1
        self.restarts[w.id] += 1
        if not w.ready and not w.retiring:
            # died before it could serve: back off a little to avoid a respawn storm
            self._loop.call_later(0.05 * min(self.restarts[w.id], 20), self._respawn, w.id)
        else:
            self._spawn(w.id)

    def _respawn(self, slot: int) -> None:
        if self._workers[slot] is None and self.broken is None and self.alive:
            if self._closing and not self._tasks:
                self._maybe_finish_shutdown()
                return
            self._spawn(slot)
            self._dispatch()

    def _kill_if_alive(self, w: _Worker) -> None:
        if not w.exited:
            self._kill(w)

    def _kill(self, w: _Worker) -> None:
        """Kill ``w`` now; its tasks must already be settled by the caller."""
        w.killed = True
        w.link.kill()

    def _kill_settling(self, w: _Worker, now: float, reason: str) -> None:
        """Kill ``w`` and settle what it held: unstarted tasks go back to the queue, and
        tasks running beside the one being stopped count as crashed."""
        self._kill(w)
        self._settle_lost(w, -9, now, reason)

    def _settle_lost(self, w: _Worker, code: int | None, now: float, reason: str | None) -> None:
        """The tasks ``w`` held are lost with it: those not started go back to the queue;
        those running end their attempt ``crashed`` (and are retried or fail)."""
        for task in list(w.sent.values()):
            self._detach(w, task)
            if task.abandoned:
                continue
            if task.started_at is None:
                task.suspect = True  # perhaps the batch's running task (see _announce)
                self._requeue(task)
                continue
            err = WorkerCrashedError(code, pid=w.pid, name=task.name, task_id=task.task_id)
            if reason is not None:
                err.args = (f"{err} ({reason})",)
            self._attempt_over(task, w, "crashed", err, now, exit_code=code)

    # -- liveness: stopped workers ---------------------------------------------------------

    def _check_liveness(self) -> None:
        """Every half second: replace a worker that has been stopped (SIGSTOP, a debugger)
        for ``_STOPPED_GRACE`` seconds. A stopped process reads no pipe and runs nothing,
        so its tasks would otherwise wait forever. The kernel's process state says it
        unambiguously, unlike silence, which a long C call holding the GIL also causes."""
        self._live_timer = self._loop.call_later(_LIVENESS_INTERVAL, self._check_liveness)
        now = time.monotonic()
        for w in tuple(self._workers):
            if w is None or w.killed or w.exited:
                continue
            if not w.link.stopped():
                w.stopped_since = None
                continue
            if w.stopped_since is None:
                w.stopped_since = now
            elif now - w.stopped_since >= _STOPPED_GRACE:
                log.warning(
                    "osiiso_mp: worker %d (pid %d) was stopped for %.1fs; replacing it",
                    w.id,
                    w.pid,
                    now - w.stopped_since,
                )
                self._kill_settling(
                    w, time.perf_counter(), f"it was stopped for {_STOPPED_GRACE:g}s (SIGSTOP?)"
                )
                self._dispatch()

    # -- memory cap (max_rss) --------------------------------------------------------------

    def _sample_rss(self) -> None:
        """Every 100 ms: replace the workers found above ``max_rss``."""
        self._rss_timer = self._loop.call_later(_RSS_INTERVAL, self._sample_rss)
        limit = self.config.max_rss
        assert limit is not None
        for w in tuple(self._workers):
            if w is None or not w.ready or w.killed or w.exited or w.over_cap:
                continue
            rss = w.link.rss()
            if rss > limit:
                w.over_cap = True
                self._over_memory(w, rss)

    def _check_rss(self, w: _Worker) -> None:
        """Right after a task finished on ``w``: a worker it left above ``max_rss`` gets no
        new task, and is replaced before it could start one."""
        if not w.ready or w.killed or w.over_cap:
            return
        rss = w.link.rss()
        limit = self.config.max_rss
        assert limit is not None
        if rss > limit:
            self._mark_over_cap(w, rss)

    def _mark_over_cap(self, w: _Worker, rss: int) -> None:
        """``w`` is above ``max_rss`` (found while reading its messages): dispatch skips it
        from now on, and it is replaced once the messages read with this one are handled."""
        if w.over_cap or w.killed:
            return
        w.over_cap = True
        self._loop.call_soon(self._over_memory, w, rss)

    def _over_memory(self, w: _Worker, rss: int) -> None:
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
        limit = self.config.max_rss
        assert limit is not None
        now = time.perf_counter()
        running = [t for t in w.sent.values() if t.seq not in w.unstarted and not t.abandoned]
        if running or w.done:
            self._fresh_over_cap = 0
        else:
            self._fresh_over_cap += 1
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
            self._detach(w, task)
        self._kill_settling(w, now, reason)
        for task in running:
            err = MemoryLimitError(limit, rss, name=task.name, task_id=task.task_id)
            self._attempt_over(task, w, "memory_exceeded", err, now, exit_code=-9, peak_rss=rss)
        if self._fresh_over_cap >= _INIT_FAILURES:
            self._break(
                f"{self._fresh_over_cap} workers in a row were above max_rss "
                f"({format_bytes(limit)}) before running any task ({format_bytes(rss)} "
                "measured last): raise max_rss, or make the initializer use less memory"
            )

    def _break(self, reason: str) -> None:
        """The pool cannot serve: fail everything waiting and refuse new work."""
        if self.broken is not None:
            return
        self.broken = reason
        log.error("osiiso_mp executor is broken: %s", reason)
        self._open_maps(None)  # what maps held back fails with the rest
        for task in list(self._queue.items()):
            self._queue.remove(task.seq)
            self._finish_failed(task, OsiisoError(f"{reason}{_task_suffix(task)}"))
        self._maybe_finish_shutdown()

    # -- submission and dispatch -----------------------------------------------------------

    def check_unique(self, task_id: str) -> None:
        """Raise ValueError if a task with ``task_id`` is still in flight."""
        if isinstance(self.lookup(task_id), (Task, ChunkItem)):
            raise _duplicate_id(task_id)

    def _on_submit(self, task: Task) -> None:
        self._tasks[task.seq] = task
        if task.chunk is not None:
            self._live_chunks[task.chunk.prefix] = task
        refusal = self._refusal(task)
        if refusal is not None:
            self._finish_failed(task, refusal)
            return
        if task.chunk is None:
            self._by_id[task.task_id] = task
        if task.flow is not None:
            task.flow.track(task.seq)
            self._flows.add(task.flow)
        wait = task.opts.first_start_after(time.time())
        if wait:  # delay= / run_at=: wait on a timer, holding no worker
            self._schedule(task, wait)
        else:
            self._enqueue(task)

    def _refusal(self, task: Task) -> BaseException | None:
        """Why a new task fails at once without an attempt, or None when it may run."""
        if (
            task.opts.task_id is not None  # an id of the caller's; ours are random uuid4s
            and task.chunk is None
            and isinstance(self.lookup(task.task_id), (Task, ChunkItem))
        ):  # lost a race with another thread's same id
            return _duplicate_id(task.task_id)
        if self._closing:
            return ClosedError(f"the executor is shut down{_task_suffix(task)}")
        if task.error is not None:  # it could not be pickled
            return task.error
        if self.broken is not None:
            return ClosedError(f"{self.broken}{_task_suffix(task)}")
        return None

    def _schedule(self, task: Task, delay: float) -> None:
        """Park ``task`` for ``delay`` seconds (a start delay or a retry backoff)."""
        task.state = "scheduled"
        task.scheduled_for = time.time() + delay
        task.timer = self._loop.call_later(delay, self._due, task)

    def _due(self, task: Task) -> None:
        task.timer = None
        task.scheduled_for = None
        if task.state == "scheduled":
            self._enqueue(task)
            self._dispatch()

    def _enqueue(self, task: Task) -> None:
        task.state = "queued"
        self._queue.push(task.opts.priority, task.seq, task)

    def _requeue(self, task: Task) -> None:
        if task.cancel_reason is None:
            self._enqueue(task)

    def _dispatch_soon(self) -> None:
        # Coalesce: messages from one read are handled first, then dispatch runs once.
        if not self._wake_pending:
            self._wake_pending = True
            self._loop.call_soon(self._drain_inbox)

    def _dispatch(self) -> None:
        queue = self._queue
        if not queue:
            return
        workers = [
            w
            for w in self._workers
            if w is not None and w.ready and not (w.killed or w.retiring or w.over_cap)
        ]
        estimates = self._estimates
        # per worker, the longest estimate among the callables it holds (None: one is long
        # or unknown); estimates do not change during this call, so it is worked out once
        held: dict[int, float | None] = {}
        while queue:
            entry = queue.peek()
            assert entry is not None
            task = entry[2]
            flow = task.flow
            if flow is not None and flow.holds_back(task.seq):
                queue.pop()  # its map's reader is behind: it waits (see ReadAhead)
                flow.park(task.seq, task)
                continue
            own = None if task.is_async else estimates.longest((task.key,))
            best: _Worker | None = None
            for w in workers:
                # send ahead only behind tasks known to be short (see DurationEstimates)
                if task.chunk is not None:
                    # one chunk ahead of the running one, behind chunks only: the pipe never
                    # runs dry, and the last chunks are not stuck behind a busy worker
                    depth = 2 if all(n.endswith(CHUNK_SUFFIX) for n in w.names) else 1
                elif task.is_async:
                    depth = self.config.concurrency
                    if estimates.all_short(w.names):
                        depth += 1
                elif own is None:
                    depth = 1
                else:
                    if w.id not in held:
                        held[w.id] = estimates.longest(w.names)
                    theirs = held[w.id]
                    depth = estimates.depth_for(None if theirs is None else max(own, theirs))
                if may_prefetch((entry[0], entry[1]), len(w.sent), depth, w.worst) and (
                    best is None or len(w.sent) < len(best.sent)
                ):
                    best = w
            if best is None:
                return
            if self._bucket is not None and not self._rate_allows():
                return
            queue.pop()
            self._send(best, task)
            held.pop(best.id, None)  # it holds one more callable now
            if best.killed or best.retiring:  # max_tasks_per_worker reached
                workers.remove(best)

    def _rate_allows(self) -> bool:
        """Take a start token; when none is left, arm one timer to dispatch again."""
        assert self._bucket is not None
        if self._rate_timer is not None:
            return False
        wait = self._bucket.take(time.monotonic())
        if wait == 0.0:
            return True
        self._rate_timer = self._loop.call_later(wait, self._rate_due)
        return False

    def _rate_due(self) -> None:
        self._rate_timer = None
        self._dispatch()

    def _send(self, w: _Worker, task: Task) -> None:
        msg = RunTask(
            task.seq,
            len(task.attempts) + 1,
            task.opts.priority,
            task.payload,
            task.is_async,
            task.opts.timeout if task.is_async else None,
            self._announce(task),
            task.buffers,
            task.chunk is not None,
        )
        try:
            w.link.send(msg)
        except ValueError as exc:  # beyond what one frame can hold: it can never be sent
            err = _SerializationError(
                "arguments", "frame", str(exc), name=task.name, task_id=task.task_id
            )
            self._finish_failed(task, err)
            return
        task.state = "queued"
        task.worker = w
        task.started_at = None
        w.add(task)
        w.assigned += 1
        limit = self.config.max_tasks_per_worker
        if limit is not None and w.assigned >= limit:
            self._retire(w)

    def _announce(self, task: Task) -> bool:
        """Must the worker announce ``task`` (flush TaskStarted) before running it? Yes,
        unless it is a sync task without a timeout whose callable is known to take under a
        millisecond: such a task needs no mid-run kill, and its start travels in its
        TaskFinished (no TaskStarted at all). An ``on_start`` hook needs every start.

        A task that was held by a worker that died is always announced from then on: it may
        be the one that killed it, unseen, and it must not do so again anonymously (each
        crash would requeue the whole batch and replace the worker, for ever).
        """
        if (
            task.is_async
            or task.opts.timeout is not None
            or task.suspect
            or task.chunk is not None
            or "on_start" in self._hooks
        ):
            return True
        estimate = self._estimates.estimate(task.key)
        return estimate is None or estimate >= _TINY

    def _retire(self, w: _Worker) -> None:
        """Send no more work to ``w``; it exits once it has finished what it holds."""
        w.retiring = True
        if not w.stop_sent:
            w.stop_sent = True
            w.link.send(Stop())
            w.link.flush()

    def _detach(self, w: _Worker, task: Task) -> None:
        w.remove(task)
        if task.timer is not None:
            task.timer.cancel()
            task.timer = None

    # -- events from workers ---------------------------------------------------------------

    def _on_started(self, w: _Worker, msg: TaskStarted) -> None:
        task = w.started(msg.seq)
        if task is None:
            return
        task.started_at = msg.started_at
        if task.first_started_at is None:
            task.first_started_at = msg.started_at
        if task.abandoned:
            # cancelled after it was sent: a sync attempt is stopped the hard way; an async
            # one is cancelled inside the worker by the CancelTask already on its way
            if not task.is_async:
                self._kill_settling(w, time.perf_counter(), "a cancelled task had started there")
            return
        task.state = "running"
        if self._hooks:
            self._hook("on_start", task.fut)
        timeout = task.opts.timeout
        if timeout is not None:
            delay = msg.started_at + timeout - time.perf_counter()
            if task.is_async:
                delay += _ASYNC_GRACE
            task.timer = self._loop.call_later(max(0.0, delay), self._on_timeout, w, task)

    def _on_timeout(self, w: _Worker, task: Task) -> None:
        task.timer = None
        if task.seq not in w.sent or w.killed:
            return
        now = time.perf_counter()
        timeout = task.opts.timeout or 0.0
        self._detach(w, task)
        self._kill_settling(w, now, f"task {task.name!r} timed out there")
        err = TaskTimeoutError(timeout, name=task.name, task_id=task.task_id)
        self._attempt_over(task, w, "timed_out", err, now, exit_code=-9)

    def _on_finished(self, w: _Worker, msg: TaskFinished) -> None:
        task = w.sent.get(msg.seq)
        if task is None:
            return
        self._detach(w, task)
        if msg.started_at is not None:
            w.done += 1
        if task.abandoned:
            return
        if msg.outcome == "cancelled" and msg.started_at is None:
            self._requeue(task)  # dropped before it started, without our asking: run it again
            return
        task.started_at = msg.started_at
        if msg.outcome == "succeeded":
            try:
                value = pickle.loads(msg.payload, buffers=msg.buffers)
            except BaseException as exc:
                err: BaseException = _SerializationError(
                    "result",
                    type(exc).__name__,
                    f"unpickling failed in the parent: {exc}",
                    name=task.name,
                    task_id=task.task_id,
                )
                self._record_attempt(task, w, msg, "failed", _short_error(err))
                self._after_failure(task, err)
                return
            self._record_attempt(task, w, msg, "succeeded", "")
            stored: StoredValue | None = None
            size = 0  # the bytes the budget counts (0: nothing keeps the value)
            if self._holds(task.opts):
                payload = msg.payload
                if kept_as_is(value, payload, msg.buffers):
                    size = len(payload)
                else:
                    stored = StoredValue(payload, msg.buffers)
                    size = stored.nbytes
            came = 0  # its size as it came, for a map's read-ahead
            if task.flow is not None:
                came = stored.nbytes if stored is not None else _message_bytes(msg)
            self._finish(
                task, "succeeded", value=value, stored=stored, kept_size=size, flow_bytes=came
            )
            return
        if msg.outcome == "cancelled":
            self._record_attempt(task, w, msg, "cancelled", "cancelled in the worker")
            self._finish(task, "cancelled", message="cancelled in the worker")
            return
        info: ErrorInfo = pickle.loads(msg.payload)
        error = rebuild_exception(info)
        if msg.outcome == "timed_out" and isinstance(error, TaskTimeoutError):
            # timed out inside the worker (async): name the task in the error
            cause = error.__cause__
            error = TaskTimeoutError(
                error.timeout, name=task.name, task_id=task.task_id, killed=False
            )
            error.__cause__ = cause
        elif isinstance(error, InternalError):
            cause = error.__cause__  # the worker knew no names: name the task here
            error = InternalError(
                error.stage, error.type_name, error.detail, name=task.name, task_id=task.task_id
            )
            error.__cause__ = cause
        self._record_attempt(task, w, msg, msg.outcome, _short_error(error))
        self._after_failure(task, error)

    def _on_chunk_finished(self, w: _Worker, msg: ChunkFinished) -> None:
        """A chunk ran: its items that succeeded end here, compactly; each failed item
        becomes a task of its own, retried or finished as a single task would be. Items
        the worker did not run (it stops a chunk whose values grow large) go on their own
        too, so that their values come, and wait for the map's reader, one at a time."""
        task = w.sent.get(msg.seq)
        if task is None:
            return
        chunk = task.chunk
        assert chunk is not None
        self._detach(w, task)
        ran = len(msg.clock) // 8 - 1  # the items the worker ran (clock: one more reading)
        w.done += ran
        if task.abandoned:
            return
        try:
            values, errors = pickle.loads(msg.payload, buffers=msg.buffers)
        except BaseException as exc:
            err = _SerializationError(
                "result",
                type(exc).__name__,
                f"unpickling failed in the parent: {exc}",
                name=task.name,
                task_id=task.task_id,
            )
            task.attempts.append(
                _unreported_attempt(
                    task,
                    w,
                    "failed",
                    _short_error(err),
                    time.perf_counter(),
                    peak_rss=msg.peak_rss,
                    rss_delta=msg.rss_delta,
                )
            )
            self._after_failure(task, err)
            return
        clock: array[float] = array("d")
        clock.frombytes(msg.clock)
        cpu: array[float] = array("d")
        cpu.frombytes(msg.cpu)
        if ran:
            self._estimates.observe(chunk.key, (clock[-1] - clock[0]) / ran)
        stored = StoredValue(msg.payload, msg.buffers)
        chunk.ran(
            stored,
            clock,
            cpu,
            worker=w.id,
            pid=w.pid,
            peak_rss=msg.peak_rss,
            rss_delta=msg.rss_delta,
            queued_since=task.queued_since,
        )
        flow = task.flow
        if flow is None:
            if ran < chunk.n:
                values.extend([None] * (chunk.n - ran))
            task.fut._deliver(values)  # the values go to the map reading them
        elif not flow.reader_gone:
            if ran < chunk.n:
                values.extend([None] * (chunk.n - ran))
            task.fut._deliver(values)
            self._delivered(flow, task.fut, stored.nbytes)
        del values
        chunk.holds = self._holds(chunk.opts)
        if chunk.holds:
            self._budget.keep(chunk, stored.nbytes)
        self._end_transport(task)
        self.completed += ran - len(errors)
        chunk.busy = True  # not settled before every failed item is handled
        for i in sorted(errors):  # each is retried, or finished and handed to the chunk
            error = rebuild_exception(errors[i])
            item = self._split_item(task, i, [chunk.attempt(i, "failed", _short_error(error))])
            self._after_failure(item, error)
        for i in range(ran, chunk.n):  # not run: each goes on its own, where the chunk was
            # (its seq and the next task's are SEQ_STEP apart), so that the chunk a map reads
            # first completes first, and values wait for their reader as little as they can
            item = self._split_item(task, i, [], seq=task.seq + 1 + i)
            if item.error is not None:
                self._finish_failed(item, item.error)
            else:
                self._enqueue(item)
        chunk.busy = False
        self._settle_chunk_if_done(task)

    def _end_transport(self, task: Task) -> None:
        """A chunk's transport task is over (its items may live on as tasks of their own)."""
        task.state = "complete"
        if task.timer is not None:
            task.timer.cancel()
            task.timer = None
        self._tasks.pop(task.seq, None)
        release((task.payload, *task.buffers))
        if task.flow is not None:
            self._ended_in_flow(task.flow, task.seq)
        task.payload = b""
        task.buffers = ()

    def _split_item(
        self, transport: Task, i: int, attempts: list[Attempt], *, seq: int | None = None
    ) -> Task:
        """Item ``i`` of a chunk becomes a task of its own, with the attempts it made in the
        chunk: it is retried, or finished, as a single task; its record goes to the chunk.
        It goes before every task submitted, the last split first, unless ``seq`` says
        where.

        Its payload is pickled again, from the callable and arguments ``map`` received.
        """
        chunk = transport.chunk
        assert chunk is not None and chunk.args is not None
        args = chunk.args[i]
        error: BaseException | None = None
        try:
            payload, buffers = dumps_task(chunk.fn, args, {}, shared=self._caps.shared_memory)
        except _SerializationError as exc:
            payload, buffers = b"", ()
            error = exc
        item = Task(
            seq=next(self._split_seqs) if seq is None else seq,
            task_id=chunk.item_id(i),
            name=chunk.name,
            fn_name=chunk.fn_name,
            key=chunk.key,
            fut=_ItemSink(self, transport, i),
            opts=chunk.opts,
            payload=payload,
            buffers=buffers,
            is_async=False,
            error=error,
            args=args,
            kwargs={},
            created_at=chunk.created_at,
            enqueue_ms=transport.enqueue_ms,
        )
        item.attempts = attempts
        item.first_started_at = next(
            (a.started_at for a in attempts if a.started_at is not None), None
        )
        item.queued_since = time.perf_counter()
        item.cancel_reason = transport.cancel_reason
        flow = item.flow = transport.flow
        if flow is not None:
            flow.track(item.seq)
        chunk.split[i] = item
        self._tasks[item.seq] = item
        self._by_id[item.task_id] = item
        return item

    def _split_chunk(self, task: Task) -> None:
        """A chunk was lost with its worker, at an item nobody knows: every item becomes a
        task of its own, announced, so that a crash it causes again is put down to it."""
        chunk = task.chunk
        assert chunk is not None
        self._end_transport(task)
        for i in range(chunk.n):
            item = self._split_item(task, i, [])
            item.suspect = True
            if item.error is not None:
                self._finish_failed(item, item.error)
            else:
                self._enqueue(item)
        self._settle_chunk_if_done(task)

    def _item_settled(
        self,
        transport: Task,
        i: int,
        record: TaskResult,
        kept: TaskResult,
        size: int,
        flow_bytes: int = 0,
    ) -> None:
        """An item split off a chunk has its record (from ``_finish``, through its sink):
        the chunk keeps ``kept`` (its value stored, ``size`` bytes), the value itself goes
        to the map reading the chunk."""
        chunk = transport.chunk
        assert chunk is not None
        chunk.split.pop(i, None)
        chunk.outcome[i] = kept
        flow = transport.flow
        if record.status == "succeeded" and (flow is None or not flow.reader_gone):
            transport.fut._deliver_item(i, record.value)
            if flow is not None:
                self._delivered(flow, transport.fut, flow_bytes)
        if size:
            chunk.holds = self._holds(chunk.opts)
            self._budget.keep(chunk, size)
        self._settle_chunk_if_done(transport)

    def _end_chunk(self, task: Task, status: str, exc: BaseException | None, message: str) -> None:
        """A chunk ends as a whole (cancelled, refused, failed before its items ran): every
        item without an ending gets this one, with the chunk's attempts."""
        chunk = task.chunk
        assert chunk is not None
        self._end_transport(task)
        finished = task.attempts[-1].finished_at if task.attempts else time.perf_counter()
        self.completed += chunk.end_all(
            status, exc=exc, message=message, attempts=tuple(task.attempts), finished_at=finished
        )
        self._settle_chunk_if_done(task)
        if status == "failed" and self.fail_policy == "fail_first":
            self.trip_fail_first(task)
        self._maybe_finish_shutdown()

    def _settle_chunk_if_done(self, task: Task) -> None:
        """Settle the chunk ``task`` carries once every item has ended: its transport is
        over, no item lives on as a task of its own, and no failed item is being handed
        out. Then keep it for lookups, and wake its reader."""
        chunk = task.chunk
        assert chunk is not None
        if task.state != "complete" or chunk.settled or chunk.busy:
            return
        if chunk.split:  # items run on their own: those that have ended may be read now
            task.fut._advance()
            return
        chunk.settle(time.perf_counter())
        if self._live_chunks.get(chunk.prefix) is task:
            del self._live_chunks[chunk.prefix]
        now = time.monotonic()
        self._expire(now)
        self._keep(self._kept_chunks, chunk.prefix, chunk, now)
        task.fut._settle_chunk()
        self._maybe_finish_shutdown()

    # -- read-ahead of maps without buffersize ---------------------------------------------

    def _delivered(self, flow: ReadAhead[Task], entry: Any, nbytes: int) -> None:
        """``nbytes`` of a map's values now wait for its reader in ``entry`` (its
        ``MapChunk``, or the ``TaskFuture`` of an element sent on its own), which tells the
        reader how much it frees by taking them (``_unread_bytes``)."""
        flow.delivered(nbytes)
        entry._unread_bytes += nbytes

    def _ended_in_flow(self, flow: ReadAhead[Task], seq: int) -> None:
        """Task ``seq`` of a map has ended: another may now be its lowest."""
        flow.untrack(seq)
        if not flow:
            self._flows.discard(flow)
        if flow.parked:
            self._unpark(flow)

    def _unpark(self, flow: ReadAhead[Task]) -> None:
        """Queue again the parked tasks of ``flow`` that may start now."""
        for task in flow.release():
            if task.state == "queued" and task.cancel_reason is None:
                self._enqueue(task)

    def _on_map_read(self, cmd: MapRead) -> None:
        flow = cmd.flow
        flow.read(cmd.nbytes)
        if cmd.waiting_for is not None:
            flow.wait_for(cmd.waiting_for)
        if cmd.gone:
            flow.reader_gone = True
            flow.open()
        if flow.parked:
            self._unpark(flow)

    def _open_maps(self, flow: ReadAhead[Task] | None) -> None:
        """Hold nothing back any more in ``flow``, or in every map (None)."""
        for each in (flow,) if flow is not None else tuple(self._flows):
            each.open()
            if each.parked:
                self._unpark(each)

    # -- attempts, retries, records --------------------------------------------------------

    def _record_attempt(
        self, task: Task, w: _Worker, msg: TaskFinished, outcome: Outcome, error: str
    ) -> None:
        started = msg.started_at
        if started is not None:
            self._estimates.observe(task.key, msg.finished_at - started)
        task.attempts.append(
            make_attempt(
                number=len(task.attempts) + 1,
                worker=w.id,
                pid=w.pid,
                queued_for=max(
                    0.0, (started if started is not None else msg.finished_at) - task.queued_since
                ),
                started_at=started,
                finished_at=msg.finished_at,
                duration=0.0 if started is None else max(0.0, msg.finished_at - started),
                cpu_time=msg.cpu_time,
                peak_rss=msg.peak_rss,
                rss_delta=msg.rss_delta,
                outcome=outcome,
                error=error,
                exit_code=None,
            )
        )
        if task.first_started_at is None and started is not None:
            task.first_started_at = started
        if self._hooks:
            self._hook("on_attempt", task.attempts[-1])

    def _attempt_over(
        self,
        task: Task,
        w: _Worker,
        outcome: Outcome,
        exc: BaseException,
        now: float,
        *,
        exit_code: int | None,
        peak_rss: int = 0,
    ) -> None:
        """An attempt ended without a report from the worker (killed, crashed, cancelled);
        ``peak_rss`` is the worker's size when it was killed for memory, else unknown (0)."""
        if task.chunk is not None and outcome != "cancelled":
            self._split_chunk(task)
            return
        if task.started_at is not None:
            self._estimates.observe(task.key, now - task.started_at)
        error = str(exc) if isinstance(exc, _Cancelled) else _short_error(exc)
        task.attempts.append(
            _unreported_attempt(
                task, w, outcome, error, now, exit_code=exit_code, peak_rss=peak_rss
            )
        )
        if self._hooks:
            self._hook("on_attempt", task.attempts[-1])
        if outcome == "cancelled":
            self._finish(task, "cancelled", message=str(exc))
        else:
            self._after_failure(task, exc)

    def _after_failure(self, task: Task, exc: BaseException) -> None:
        if task.cancel_reason is not None:
            self._finish(task, "cancelled", message=task.cancel_reason)
            return
        opts = task.opts
        delay = retry_delay(
            attempts_made=len(task.attempts),
            retries=opts.retries,
            base_delay=opts.retry_delay,
            backoff=opts.backoff,
            requested=exc.delay if isinstance(exc, Retry) else None,
        )
        if delay is None or self.broken is not None:
            self._finish_failed(task, exc)
            return
        task.worker = None
        task.started_at = None
        task.queued_since = time.perf_counter()  # the retry's wait (backoff included) begins
        if self._hooks:
            self._hook("on_retry", task.fut, exc)
        if task.state == "complete":  # the hook cancelled it
            return
        if delay <= 0:
            self._enqueue(task)
        else:
            self._schedule(task, delay)

    def _finish_failed(self, task: Task, exc: BaseException) -> None:
        self._finish(task, "failed", exc=exc, message=_message(exc))

    def _finish(
        self,
        task: Task,
        status: str,
        *,
        value: Any = None,
        stored: StoredValue | None = None,
        kept_size: int = 0,
        exc: BaseException | None = None,
        message: str = "",
        flow_bytes: int = 0,
    ) -> None:
        """Make the task's one record and settle its future. ``value`` goes to the caller;
        what the executor keeps is ``stored``, its serialized form, or else the record as
        it is (no value, or one kept as is); ``kept_size`` bytes of it count in the value
        budget (0: none). ``flow_bytes``: the value's size as it came, for the read-ahead
        of the map it belongs to."""
        if task.state == "complete":  # pragma: no cover - the invariant says once
            log.error("osiiso_mp: task %s finished twice", task.task_id)
            return
        if task.chunk is not None:
            self._end_chunk(task, status, exc, message)
            return
        task.state = "complete"
        if task.timer is not None:
            task.timer.cancel()
            task.timer = None
        self._tasks.pop(task.seq, None)
        if self._by_id.get(task.task_id) is task:
            del self._by_id[task.task_id]
        now = time.perf_counter()
        finished = task.attempts[-1].finished_at if task.attempts else now
        first = task.first_started_at
        opts = task.opts
        record = make_result(
            task_id=task.task_id,
            name=task.name,
            status=status,
            value=value,
            exception=exc,
            attempts=len(task.attempts),
            priority=opts.priority,
            must_complete=opts.must_complete,
            group_id=opts.group_id,
            detached=opts.detached,
            created_at=task.created_at,
            started_at=first,
            finished_at=finished,
            duration=0.0 if first is None else max(0.0, finished - first),
            message=message,
            metadata=opts.metadata,
            attempt_log=tuple(task.attempts),
        )
        release((task.payload, *task.buffers))  # shared memory is freed here, not later
        task.payload = b""
        task.buffers = ()
        kept = record if stored is None else with_value(record, stored)
        sink = task.fut
        flow = task.flow
        if type(sink) is _ItemSink:  # an item of a map chunk: the chunk keeps it
            self.completed += 1
            sink.settle_item(record, kept, kept_size, flow_bytes)
        else:
            self._retain(task, kept, kept_size, stored=stored is not None)
            if flow is not None and status == "succeeded":
                self._delivered(flow, sink, flow_bytes)
            sink._settle(record)
        if flow is not None:
            self._ended_in_flow(flow, task.seq)
        if self._hooks:
            self._hook("on_complete", record)
        if status == "failed" and self.fail_policy == "fail_first":
            self.trip_fail_first(task)
        self._maybe_finish_shutdown()

    # -- retention and lookups by id ------------------------------------------------------

    def _holds(self, opts: Any) -> int:
        """Who keeps a finished task's value: ``IN_BATCH`` unless it is detached,
        ``IN_LOOKUPS`` unless ``result_ttl`` is 0 (0: nobody, so it is not kept)."""
        return self._in_lookups if opts.detached else self._in_lookups | IN_BATCH

    def _retain(self, task: Task, kept: TaskResult, kept_size: int, *, stored: bool) -> None:
        """Give the finished ``task`` its kept record (``stored``: with its value stored,
        not the future's own); keep it for lookups by id for ``result_ttl`` seconds, then
        forget it; count its value (``kept_size`` bytes) in the budget. (Its future is
        settled next: the batch finds the record first.)

        Records are kept in finish order and share one time-to-live, so the oldest are at
        the front: expiry is a pop from the left, amortised O(1) per task.
        """
        self.completed += 1
        task.finished(kept, stored=stored)
        now = time.monotonic()
        self._expire(now)
        self._keep(self._finished, task.task_id, task, now)
        if kept_size:
            task.holds = self._holds(task.opts)
            self._budget.keep(task, kept_size)

    def batch_let_go(self, holders: list[Holder], *, wait: bool = False) -> None:
        """The batch no longer holds these entries (``run()`` summarised them, or they
        were pruned): their values count only while lookups still keep them. Any thread;
        ``wait``: return once done (else it is posted). Once stopped, done here."""
        if not holders:
            return
        reply: cf.Future[None] | None = cf.Future() if wait else None
        try:
            self.post(LetGo(tuple(holders), reply))
            if reply is not None:
                reply.result()
        except ClosedError:
            self.join()  # stopped: nothing else touches its state any more
            self._budget.let_go_all(holders, IN_BATCH)

    def _keep(self, kept: OrderedDict[str, Any], key: str, item: Any, now: float) -> None:
        """Keep ``item`` (a finished :class:`Task` or a :class:`Chunk`: it has an ``expiry``)
        in ``kept`` under ``key`` for ``result_ttl`` seconds (0: not at all)."""
        ttl = self.config.result_ttl
        if ttl > 0:
            old = kept.pop(key, None)  # an id reused after it finished: newest wins
            if old is not None:
                self._budget.let_go(old, IN_LOOKUPS)
            item.expiry = expiry = now + ttl
            kept[key] = item
            if expiry < self._next_expiry:
                self._next_expiry = expiry

    def _expire(self, now: float) -> None:
        """Forget the records and chunks whose time to live has run out (a comparison
        with the earliest expiry when none has: this runs once per finished task)."""
        if now < self._next_expiry:
            return
        tasks = self._expire_from(self._finished, now)
        self._next_expiry = min(tasks, self._expire_from(self._kept_chunks, now))

    def _expire_from(self, kept: OrderedDict[str, _Kept], now: float) -> float:
        """Forget what ``kept`` holds past its expiry; the next expiry there (or inf)."""
        while kept:
            oldest = next(iter(kept.values()))
            if oldest.expiry > now:
                return oldest.expiry
            kept.popitem(last=False)
            self._budget.let_go(oldest, IN_LOOKUPS)
        return math.inf

    def replacements(self) -> int:
        """Workers replaced so far, counting those killed whose exit is not yet seen (their
        replacement follows it at once): a run's summary counts the replacements its own
        tasks caused, although the exit of a worker killed for a timeout is noticed just
        after the task's record is made. Read from any thread (a racy read, good enough for
        counting)."""
        pending = 0
        if not self._closing:
            for w in tuple(self._workers):
                if w is not None and w.killed and not w.exited:
                    pending += 1
        return self.respawns + pending

    def lookup(self, task_id: str) -> Task | TaskResult | ChunkItem | None:
        """The unfinished task or the retained record with ``task_id``, or for an item of a
        map chunk still under way, a :class:`ChunkItem` (supervisor thread)."""
        task = self._by_id.get(task_id)
        if task is not None:
            sink = task.fut
            if type(sink) is _ItemSink:  # an item split off a chunk: the chunk answers
                return ChunkItem(sink._transport, sink._i)
            return task
        entry = self._finished.get(task_id)
        if entry is not None:
            return entry.records()[0] if entry.expiry > time.monotonic() else None
        prefix = task_id[:PREFIX_LEN]
        transport = self._live_chunks.get(prefix)
        if transport is not None:
            chunk = transport.chunk
            assert chunk is not None
            i = chunk.index_of(task_id)
            if i is None:
                return None
            return chunk.record(i) or ChunkItem(transport, i)
        kept = self._kept_chunks.get(prefix)
        if kept is None or kept.expiry <= time.monotonic():
            return None
        i = kept.index_of(task_id)
        return None if i is None else kept.record(i)

    def estimate(self, key: str) -> float | None:
        """Seconds one call of the callable known as ``key`` (a task's ``key``) is expected
        to take, or None when unknown."""
        return self._estimates.estimate(key)

    def queue_size(self) -> int:
        """Tasks waiting to start: queued (sent ahead or not) and scheduled ones."""
        return sum(
            1 if t.chunk is None else t.chunk.n
            for t in self._tasks.values()
            if t.state in ("queued", "scheduled")
        )

    def snapshot(
        self,
    ) -> tuple[list[WorkerRow], dict[str, int]]:
        """Per worker ``(id, pid, state, running task ids, tasks done, rss, cpu percent,
        restarts)`` and the task counts, read consistently on the supervisor thread (memory
        and CPU as the worker's link reads them)."""
        workers: list[WorkerRow] = []
        for slot, w in enumerate(self._workers):
            if w is None:
                workers.append((slot, None, "starting", (), 0, 0, 0.0, self.restarts[slot]))
                continue
            running = tuple(t.task_id for t in w.sent.values() if t.state == "running")
            if w.killed or w.exited:
                state = "stopping"
            elif not w.ready:
                state = "starting"
            elif w.retiring:
                state = "retiring"
            else:
                state = "busy" if running else "idle"
            rss, cpu = (0, 0.0) if w.exited else w.link.usage()
            workers.append((slot, w.pid, state, running, w.done, rss, cpu, self.restarts[slot]))
        counts = {"pending": 0, "running": 0, "scheduled": 0}
        for t in self._tasks.values():
            key = "pending" if t.state == "queued" else t.state
            counts[key] = counts.get(key, 0) + (1 if t.chunk is None else t.chunk.n)
        counts["completed"] = self.completed
        return workers, counts

    def _set_fail_policy(self, policy: str, batch: tuple[Any, ...]) -> str | None:
        """Use ``policy`` from now on; the one it replaced, or None when unchanged.
        Switching to ``fail_first`` trips at once if ``batch`` already holds a failure."""
        old = self.fail_policy
        if old == policy:
            return None
        self.fail_policy = policy
        if policy == "fail_first":
            for entry in batch:
                record = entry.failed()
                if record is not None:
                    self.trip_fail_first(record)
                    break
        return old

    def trip_fail_first(self, failed: Task | TaskResult) -> None:
        """``fail_first``: cancel every unfinished task but ``must_complete`` ones."""
        reason = f"cancelled: fail_first after task {failed.name!r} failed"
        for other in list(self._tasks.values()):
            if not other.opts.must_complete:
                self._cancel(other, reason)

    def _hook(self, name: str, *args: Any) -> None:
        """Run a user hook on this thread; one that raises is logged and ignored."""
        hook = self._hooks.get(name)
        if hook is None:
            return
        try:
            hook(*args)
        except Exception:
            log.exception("osiiso_mp: the %s hook raised; ignored", name)

    # -- cancellation ----------------------------------------------------------------------

    def _cancel(self, task: Task, reason: str) -> bool:
        """Cancel ``task`` now; False only when it had already finished. For a map chunk:
        every item of it that has not ended."""
        chunk = task.chunk
        if chunk is None:
            return self._cancel_one(task, reason)
        cancelled = self._cancel_one(task, reason)
        for item in list(chunk.split.values()):
            cancelled = self._cancel_one(item, reason) or cancelled
        return cancelled

    def _cancel_one(self, task: Task, reason: str) -> bool:
        if task.state == "complete":
            return False
        if task.seq not in self._tasks:  # not yet seen: the SubmitTask is still in the inbox
            return False
        task.cancel_reason = reason
        now = time.perf_counter()
        w = task.worker
        if self._queue.remove(task.seq) or task.state == "scheduled" or w is None:
            self._finish(task, "cancelled", message=reason)
        elif task.seq in w.unstarted:
            task.abandoned = True
            w.link.send(CancelTask(task.seq))
            self._finish(task, "cancelled", message=reason)
        else:  # running
            if task.is_async:
                task.abandoned = True
                w.link.send(CancelTask(task.seq))
                self._attempt_over(task, w, "cancelled", _Cancelled(reason), now, exit_code=None)
            else:
                self._detach(w, task)
                self._kill_settling(w, now, f"task {task.name!r} was cancelled there")
                self._attempt_over(task, w, "cancelled", _Cancelled(reason), now, exit_code=-9)
        return True

    # -- shutdown --------------------------------------------------------------------------

    def _on_shutdown(self, cmd: Shutdown) -> None:
        self._closing = True
        self._open_maps(None)  # a drain runs every task, a reader or not
        if cmd.reply is not None:
            self._shutdown_replies.append(cmd.reply)
        if cmd.cancel_pending and not cmd.kill:
            # a graceful drain: what has not started is cancelled, but must_complete is kept
            for task in list(self._tasks.values()):
                not_started = task.state in ("queued", "scheduled") and (
                    task.worker is None or task.seq in task.worker.unstarted
                )
                if not_started and not task.opts.must_complete:
                    self._cancel(task, "cancelled by shutdown")
        if cmd.kill:
            for task in list(self._tasks.values()):
                self._cancel(task, "cancelled by a forced shutdown")
        self._maybe_finish_shutdown()

    def _maybe_finish_shutdown(self) -> None:
        if not self._closing or self._tasks:
            return
        live = [w for w in self._workers if w is not None]
        for w in live:
            if not w.stop_sent and not w.killed:
                w.stop_sent = True
                w.retiring = True
                w.link.send(Stop())
                self._loop.call_later(_STOP_GRACE, self._kill_if_alive, w)
        if not live and not self._stopped.is_set():
            self._loop.stop()

    def _teardown(self) -> None:
        if self._rss_timer is not None:
            self._rss_timer.cancel()
            self._rss_timer = None
        if self._live_timer is not None:
            self._live_timer.cancel()
            self._live_timer = None
        for w in self._workers:
            if w is not None and not w.exited:
                w.link.kill()
                w.link.close()
        self._transport.close()
        for passed in self._inherited:
            os.close(passed.fd)
        self._inherited = ()
        with self._post_lock:
            self._stopped.set()
            leftovers = list(self._inbox)
            self._inbox.clear()
        for cmd in leftovers:  # posted after the last drain: answer, never strand a caller
            if isinstance(cmd, Submit):
                cmd.task.fut._settle_closed()
            elif isinstance(cmd, Cancel):
                cmd.reply.set_result(False)
            elif isinstance(cmd, Call | Ask):  # an Ask is then answered by its caller
                cmd.reply.set_exception(ClosedError("the executor is shut down"))
            elif isinstance(cmd, LetGo):
                self._budget.let_go_all(cmd.holders, IN_BATCH)
                if cmd.reply is not None:
                    cmd.reply.set_result(None)
            elif isinstance(cmd, Shutdown) and cmd.reply is not None:
                cmd.reply.set_result(None)
        for reply in self._shutdown_replies:
            if not reply.done():
                reply.set_result(None)
        try:
            self._loop.close()
        except Exception:  # pragma: no cover
            pass


class _Events:
    """A worker's link reports to the supervisor through this (see ``LinkEvents``)."""

    __slots__ = ("_sup", "_w")

    def __init__(self, sup: Supervisor, w: _Worker) -> None:
        self._sup = sup
        self._w = w

    def message(self, msg: Message) -> None:
        self._sup._on_message(self._w, msg)

    def closed(self) -> None:
        self._sup._on_channel_closed(self._w)

    def exited(self, code: int | None) -> None:
        self._sup._on_exit(self._w, code)


class ChunkItem:
    """An item of a map chunk that is still under way, as :meth:`Supervisor.lookup` finds it:
    its chunk's transport task and its index."""

    __slots__ = ("index", "transport")

    def __init__(self, transport: Task, index: int) -> None:
        self.transport = transport
        self.index = index

    @property
    def state(self) -> str:
        """The item's state: its own task's when it left the chunk, else its chunk's."""
        chunk = self.transport.chunk
        assert chunk is not None
        return (chunk.split.get(self.index) or self.transport).state

    def info(self) -> TaskInfo | None:
        """A :class:`TaskInfo` snapshot of the item (supervisor thread)."""
        chunk = self.transport.chunk
        assert chunk is not None
        item = chunk.split.get(self.index)
        if item is not None:
            return task_info(item)
        if chunk.args is None:  # settled
            return None
        return task_info(
            self.transport, task_id=chunk.item_id(self.index), args=chunk.args[self.index]
        )

    @property
    def future(self) -> Any:
        """The chunk's :class:`~osiiso_mp._map.MapChunk`."""
        return self.transport.fut


class _ItemSink:
    """Stands for the future of an item split off a chunk: hands its record to the chunk."""

    __slots__ = ("_i", "_sup", "_transport")

    def __init__(self, sup: Supervisor, transport: Task, i: int) -> None:
        self._sup = sup
        self._transport = transport
        self._i = i

    def settle_item(
        self, record: TaskResult, kept: TaskResult, size: int, flow_bytes: int = 0
    ) -> None:
        """The item has its record (``kept``: as its chunk keeps it, ``size`` bytes of
        stored value; ``flow_bytes``: its value's size as it came)."""
        self._sup._item_settled(self._transport, self._i, record, kept, size, flow_bytes)

    def _settle_closed(self) -> None:  # pragma: no cover - split items are never submitted
        raise AssertionError("an item split off a chunk was submitted")


def _unreported_attempt(
    task: Task,
    w: _Worker,
    outcome: Outcome,
    error: str,
    now: float,
    *,
    exit_code: int | None = None,
    peak_rss: int = 0,
    rss_delta: int = 0,
) -> Attempt:
    """``task``'s attempt on ``w``, ended at ``now`` without the worker's own figures for
    it (killed, crashed, cancelled, or a report that could not be read): no CPU time."""
    started = task.started_at
    return Attempt(
        number=len(task.attempts) + 1,
        worker=w.id,
        pid=w.pid,
        queued_for=max(0.0, (started if started is not None else now) - task.queued_since),
        started_at=started,
        finished_at=now,
        duration=0.0 if started is None else max(0.0, now - started),
        cpu_time=0.0,
        peak_rss=peak_rss,
        rss_delta=rss_delta,
        outcome=outcome,
        error=error,
        exit_code=exit_code,
    )


class _Cancelled(Exception):
    """Carries a cancellation reason through the attempt bookkeeping."""


def _message_bytes(msg: TaskFinished) -> int:
    """The size of a result as it came: its pickle and out-of-band buffers."""
    return blob_size(msg.payload) + sum(blob_size(b) for b in msg.buffers)


def _short_error(exc: BaseException) -> str:
    text = _message(exc)
    line = text.splitlines()[0] if text else ""
    name = type(exc).__name__
    out = f"{name}: {line}" if line else name
    return out if len(out) <= 200 else out[:197] + "..."


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<unprintable {type(exc).__name__}>"


def _duplicate_id(task_id: str) -> ValueError:
    return ValueError(f"task_id {task_id!r} is already in flight; ids must be unique")


def _task_suffix(task: Task) -> str:
    return f" (task {task.name!r}, id {task.task_id})"


def _dumps_initializer(
    init: Callable[..., object], initargs: tuple[Any, ...]
) -> tuple[bytes, list[int]]:
    """Pickle the initializer once, every worker unpickles and calls it; with the
    descriptors that multiprocessing objects among ``initargs`` hand to each worker (see
    ``_inherit``: they travel as process arguments do for ``ProcessPoolExecutor``)."""
    from ._inherit import dumps_inherited
    from ._serialize import dumps_task

    def dumps() -> bytes:
        data, _ = dumps_task(init, initargs, {}, out_of_band=False)
        assert type(data) is bytes
        return bytes(data)

    return dumps_inherited(dumps, (init, initargs, {}))


def _authkey() -> bytes:
    """This process's multiprocessing authkey, which workers take (as a child process of
    ours would inherit it) so that manager proxies in tasks' arguments and results connect."""
    from multiprocessing import process

    return bytes(process.current_process().authkey)
