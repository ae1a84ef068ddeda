"""The wire protocol between the supervisor and its workers: one frozen class per message.

Commands (supervisor -> worker) are verbs; events (worker -> supervisor) are past tense.
This module imports only the standard library: both ends of the pipe load it.

A conversation with one worker::

    supervisor                          worker
        | -- Configure ----------------->  |   first frame: sys.path, cwd, initializer, caps
        | <----------------- WorkerReady   |   (or InitFailed, then the worker exits)
        | -- RunTask(seq=1) ------------>  |   several RunTasks may be in flight (pipelining);
        | -- RunTask(seq=2) ------------>  |   the worker runs them in (priority, seq) order
        | <------------- TaskStarted(1)    |
        | <------------ TaskFinished(1)    |   value or exception, plus the attempt's telemetry
        | -- RunTask(seq=3, chunk) ----->  |   a map chunk: one callable, many argument tuples
        | <----------- ChunkFinished(3)    |   every item's value or error, and its timings
        | <-------------- LogRecorded      |   a log record, tagged with the running task
        | -- CancelTask(2) ------------->  |   dropped if not started: TaskFinished(cancelled)
        | <------------- MemoryExceeded    |   above max_rss before a task: holds it, waits
        | <---------------- UsageReported  |   its memory and CPU (a worker elsewhere only)
        | -- Stop ---------------------->  |   finish what was sent, then exit 0

On the wire a message is the plain tuple ``(tag, *fields)`` (:func:`to_wire`), which the
framing (:mod:`._framing`) pickles with protocol 5; elsewhere (an :class:`ErrorInfo` inside a
result) messages pickle as ``(class, field tuple)``, cheaper than pickling the instance.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from ..._slots import frozen_class, slot_builder

Outcome = Literal["succeeded", "failed", "timed_out", "cancelled"]


class Message:
    """Base of every message: pickles as the class and its fields in order."""

    __slots__ = ()
    __values__: ClassVar[Callable[[Any], tuple[Any, ...]]]  # set by frozen_class

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), type(self).__values__(self))


# --- supervisor -> worker: commands -------------------------------------------------------


@frozen_class
class Configure(Message):
    """First frame a worker reads: where it is and how to set itself up.

    ``env``, ``cpu_affinity`` and ``nice`` are applied before the initializer runs;
    ``max_rss`` makes the worker check its own resident size before it starts each task.
    """

    worker_id: int
    # the process to die with, and our sys.path and working directory: where the worker is
    # on the supervisor's host (None: it is not, so they do not apply)
    parent_pid: int | None
    sys_path: tuple[str, ...] | None
    cwd: str | None
    concurrency: int
    initializer: bytes | None  # cloudpickled (initializer, initargs), or None
    log_level: int  # the parent's root logging level: records below it are not forwarded
    # the worker's whole environment: the parent's at spawn time, plus the inner_threads
    # variables (a forked worker would otherwise see the fork server's older environment)
    env: tuple[tuple[str, str], ...] = ()
    cpu_affinity: tuple[int, ...] | None = None  # this slot's CPUs, or None: leave as is
    nice: int | None = None  # increment passed to os.nice, or None
    max_rss: int | None = None  # bytes, or None: no memory cap
    # the parent's multiprocessing authkey: manager proxies in tasks connect with it
    authkey: bytes = b""
    # descriptors the initializer's arguments refer to (pipes and shared memory of
    # multiprocessing objects, see _inherit): PassedFd when sent, int descriptors received
    inherited: tuple[Any, ...] = ()
    whole_env: bool = True  # env replaces the worker's environment (else: set these too)
    # large buffers of results may travel in shared memory (the transport can pass it)
    shared_memory: bool = True
    # seconds between the worker's own reports of its memory and CPU (UsageReported), for
    # a worker the supervisor cannot read (elsewhere); with max_rss it also watches
    # itself mid-task (MemoryExceeded). None: no reports (the supervisor reads /proc)
    report_usage: float | None = None
    # the worker's process title (see .._title): "osiiso_mp worker 3 (executor 1, ...)"
    title: str = ""


@frozen_class
class RunTask(Message):
    """Run one attempt of a task. ``payload`` is cloudpickled ``(fn, args, kwargs)``, whose
    large out-of-band buffers (a numpy array's data, say) travel in ``buffers``; both may be
    attached beside the message pickle rather than inside it (see :mod:`._buffers`).

    ``is_async`` says the callable is a coroutine function (it then runs concurrently with
    other async tasks); ``timeout`` is enforced inside the worker for async tasks only, since
    a sync attempt past its timeout is killed with its worker by the supervisor.
    ``announce=False`` lets the worker run a sync task without a ``TaskStarted`` (its start
    travels in its ``TaskFinished``): the supervisor sends that only for tasks
    without a timeout whose callable is known to take well under a millisecond, which need
    no mid-run kill, so that such tasks can be run and answered in batches.
    """

    seq: int
    attempt: int
    priority: int
    payload: Any  # bytes, or an attached buffer (a memoryview once received)
    is_async: bool
    timeout: float | None
    announce: bool = True  # flush TaskStarted before running (False: no TaskStarted at all)
    buffers: tuple[Any, ...] = ()  # the payload pickle's out-of-band buffers
    chunk: bool = False  # the payload is ``(fn, [args, ...])``: run fn once per item, in order


@frozen_class
class CancelTask(Message):
    """Drop the task if it has not started; cancel it inside the worker if it is async."""

    seq: int


@frozen_class
class Stop(Message):
    """Finish the tasks already sent, then exit cleanly."""


# --- worker -> supervisor: events ---------------------------------------------------------


@frozen_class
class WorkerReady(Message):
    """The worker is configured and its initializer (if any) succeeded. ``clock`` is its
    ``time.perf_counter()`` as it sent this and ``boot`` its kernel's boot id: where the
    worker may be on another host, the supervisor maps the worker's readings onto its own
    clock from them (see :mod:`.._clock`)."""

    pid: int
    clock: float = 0.0
    node: str = ""  # where it runs, if it knows better than its transport's link
    boot: str = ""  # /proc/sys/kernel/random/boot_id ("": unknown)


@frozen_class
class InitFailed(Message):
    """The worker could not be set up; it exits after sending this. ``stage`` says what
    failed: ``"initializer"`` (it raised) or ``"setup"`` (CPU affinity or niceness)."""

    error: str
    traceback: str
    stage: str = "initializer"


@frozen_class
class MemoryExceeded(Message):
    """The worker found itself above ``max_rss`` (``rss`` bytes): before starting a task,
    or (a worker reporting its usage) while one runs.

    It starts nothing more and waits to be killed and replaced: what it holds and never
    started goes back to the queue; what runs there ends ``memory_exceeded``.
    """

    rss: int


@frozen_class
class UsageReported(Message):
    """A worker's resident size (bytes) and CPU time (seconds, since it started), sent by
    a worker the supervisor cannot read (``Configure.report_usage``), from a thread of
    its own so that a sync task holding the worker's loop does not silence it."""

    rss: int
    cpu_time: float


@frozen_class
class TaskStarted(Message):
    """An attempt began (``started_at`` is ``time.perf_counter()`` in the worker)."""

    seq: int
    started_at: float


@frozen_class
class TaskFinished(Message):
    """An attempt ended, with its telemetry.

    ``payload`` is the pickled value (succeeded) or a pickled :class:`ErrorInfo` (otherwise);
    a value's large out-of-band buffers travel in ``buffers``, as for :class:`RunTask`.
    For a task cancelled before it started, ``started_at`` is None and ``payload`` is empty.
    """

    seq: int
    outcome: Outcome
    payload: Any  # bytes, or an attached buffer (a memoryview once received)
    started_at: float | None
    finished_at: float
    cpu_time: float
    peak_rss: int
    rss_delta: int
    buffers: tuple[Any, ...] = ()  # the value pickle's out-of-band buffers


@frozen_class
class ChunkFinished(Message):
    """A chunk (a :class:`RunTask` with ``chunk=True``) ran its items, in order: all of
    them, or the first ``n`` of them when their values grew large (the others did not run).

    ``payload`` pickles ``(values, errors)``: one value per item that ran (None where it
    failed) and ``{index: ErrorInfo}`` for the items that raised or whose value could not be
    pickled. ``clock`` holds ``n + 1`` ``time.perf_counter()`` readings packed as doubles
    (item ``i`` ran from ``clock[i]`` to ``clock[i + 1]``) and ``cpu`` the ``n`` items' CPU
    seconds; ``peak_rss`` and ``rss_delta`` are measured over the whole chunk.
    """

    seq: int
    payload: Any  # bytes, or an attached buffer (a memoryview once received)
    clock: bytes
    cpu: bytes
    peak_rss: int
    rss_delta: int
    buffers: tuple[Any, ...] = ()  # the payload pickle's out-of-band buffers


@frozen_class
class ErrorInfo(Message):
    """A task's exception as it travels: the pickled exception when it pickles, and text.

    ``pickled`` is None when the exception itself could not be pickled; the parent then builds
    a :class:`~osiiso_mp.RemoteError` from the type name, message and traceback text.
    """

    type_name: str
    message: str
    traceback: str
    pickled: bytes | None


@frozen_class
class LogRecorded(Message):
    """A log record emitted in the worker, message already formatted (arguments applied in
    the worker, so that unpicklable arguments never travel). ``seq`` is the task that was
    running, or None outside any task (and ``item`` the item of a map chunk)."""

    seq: int | None
    name: str
    levelno: int
    message: str
    created: float
    pathname: str
    lineno: int
    func_name: str | None
    exc_text: str | None
    item: int | None = None  # in a map chunk: the index of the item running


# --- the wire form: a plain tuple ---------------------------------------------------------

MESSAGES: tuple[type[Message], ...] = (
    Configure,
    RunTask,
    CancelTask,
    Stop,
    WorkerReady,
    InitFailed,
    MemoryExceeded,
    UsageReported,
    TaskStarted,
    TaskFinished,
    LogRecorded,
    ChunkFinished,
)
"""The messages that travel as frames; a message's tag is its index here."""


def _builder(cls: type[Message]) -> Any:
    """A function making a ``cls`` from its wire tuple ``(tag, *fields)`` without calling
    ``__init__`` (a frozen class's ``__init__`` costs most of a small message's
    decoding)."""
    return slot_builder(cls, cls.__match_args__, tuple_offset=1)  # type: ignore[attr-defined]


_TAGS: dict[type[Message], tuple[int, Any]] = {
    cls: (tag, cls.__values__) for tag, cls in enumerate(MESSAGES)
}


def _first_build(tag: int) -> Callable[[tuple[Any, ...]], Message]:
    """Builds the builder of ``MESSAGES[tag]`` on first use, then hands over to it: import
    time is start-up time, and a process decodes only some kinds of message."""

    def first(t: tuple[Any, ...]) -> Message:
        build = _BUILDERS[tag] = _builder(MESSAGES[tag])
        msg: Message = build(t)
        return msg

    return first


_BUILDERS: list[Callable[[tuple[Any, ...]], Message]] = [
    _first_build(tag) for tag in range(len(MESSAGES))
]


def on_our_clock(msg: Message, offset: float) -> Message:
    """``msg`` with the worker's ``perf_counter`` readings moved by ``offset`` seconds onto
    the supervisor's clock (a worker on another host; messages without readings as they
    are)."""
    if isinstance(msg, TaskStarted):
        return TaskStarted(msg.seq, msg.started_at + offset)
    if isinstance(msg, TaskFinished):
        return TaskFinished(
            msg.seq,
            msg.outcome,
            msg.payload,
            None if msg.started_at is None else msg.started_at + offset,
            msg.finished_at + offset,
            msg.cpu_time,
            msg.peak_rss,
            msg.rss_delta,
            msg.buffers,
        )
    if isinstance(msg, ChunkFinished):
        clock: array[float] = array("d")
        clock.frombytes(msg.clock)
        moved = array("d", (t + offset for t in clock))
        return ChunkFinished(
            msg.seq,
            msg.payload,
            moved.tobytes(),
            msg.cpu,
            msg.peak_rss,
            msg.rss_delta,
            msg.buffers,
        )
    return msg


def to_wire(msg: Message) -> tuple[Any, ...]:
    """``msg`` as the plain tuple ``(tag, *fields)`` that frames carry: a plain tuple
    pickles and unpickles several times faster than a dataclass instance."""
    tag, getter = _TAGS[type(msg)]
    return (tag, *getter(msg))


def from_wire(t: tuple[Any, ...]) -> Message:
    """The message whose wire tuple is ``t`` (see :func:`to_wire`)."""
    msg: Message = _BUILDERS[t[0]](t)
    return msg
