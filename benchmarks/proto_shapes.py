"""Skeletons of the two shapes a supervisor can take, to measure each one's ceiling.

Issue 21 asks whether one task at a time can beat every peer. The answer depends on the
shape more than on the code: where the supervisor runs decides how many thread and process
hops a task pays and how much of its work shares the caller's GIL. These skeletons keep
only what every task of osiiso_mp must have, and nothing else:

- a ``concurrent.futures.Future`` per task and a task id;
- the call pickled in the caller (``fn`` by reference, its arguments), and the result
  pickled in the worker;
- a record per task, built from the times the product keeps (submitted, dispatched, started,
  ended, settled) and retained;
- workers that each run an asyncio event loop (uvloop), as the product's workers must, and
  frames with a length prefix over socket pairs.

Left out, so that each figure is a ceiling (the most the shape can give), not an estimate:
priorities, retries, timeouts, cancellation, crash detection, telemetry beyond the five
times, back-pressure (tasks go to the worker with the fewest in flight, unbounded), the
by-value pickling of callables, and errors (a no-op cannot fail).

The shapes:

- ``shape: thread``: the supervisor is an event loop on a thread of the caller's process,
  as osiiso_mp is today. ``submit`` queues the task and wakes the loop only when it is not
  already due to drain the queue; the loop writes one frame per worker per turn and
  settles the futures as the replies arrive.
- ``shape: process``: the supervisor is an event loop in a process of its own. The caller
  keeps only the futures and one socket: ``submit`` writes the task's frame to it, and a
  reader thread settles the futures from the replies. The supervisor owns the task state
  (who runs what, since when) and forwards frames both ways without unpickling them.
- ``shape: process (waiter reads)``: the same supervisor process, but no reader thread:
  the thread that waits for a result reads the socket itself and settles whatever arrives,
  and ``submit`` writes its frames 64 at a time (or when a result is waited for) instead
  of one write each. This removes the thread hop on the way back and most of the caller's
  system calls. It is an upper bound, not a design: a future nobody waits on would never
  be sent nor settle and its done-callbacks would never run, so a product would still
  need a thread that flushes and reads when no caller does, at a cost not measured here.

They run as peers of ``benchmarks/harness.py`` (``--peers 'shape: thread'`` ...);
``benchmarks/bench_shapes.py`` runs them beside osiiso_mp and the peers in one run.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures as cf
import itertools
import os
import pickle
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

# A frame: its length (of what follows the length), the task id, then the pickle.
HEAD = struct.Struct("<IQ")
# The supervisor process adds the time it dispatched the task to the reply's frame.
REPLY_HEAD = struct.Struct("<IQd")
PROTOCOL = pickle.HIGHEST_PROTOCOL


def _frames(buf: bytearray, head: struct.Struct) -> tuple[list[tuple[int, int, int]], int]:
    """The whole frames at the start of ``buf``: (offset of the body, its end, task id)."""
    out = []
    pos, size, n = 0, head.size, len(buf)
    while n - pos >= size:
        fields = head.unpack_from(buf, pos)
        end = pos + 4 + fields[0]
        if end > n:
            break
        out.append((pos + size, end, fields[1]))
        pos = end
    return out, pos


class _Framed(asyncio.Protocol):
    """A protocol that hands each batch of whole frames it has read to :meth:`frames`
    (``view``: the buffer, released and trimmed after the call)."""

    head = HEAD

    def __init__(self) -> None:
        self.buf = bytearray()

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        found, used = _frames(buf, self.head)
        if not found:
            return
        view = memoryview(buf)
        try:
            self.frames(view, found)
        finally:
            view.release()
        del buf[:used]

    def frames(self, view: memoryview, found: list[tuple[int, int, int]]) -> None:
        raise NotImplementedError


# --------------------------------------------------------------------------- the worker
class _Worker(_Framed):
    """Reads task frames, runs each call, writes one reply frame per task (one write per
    batch of frames read)."""

    def __init__(self, done: asyncio.Future[None]) -> None:
        super().__init__()
        self.done = done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def frames(self, view: memoryview, found: list[tuple[int, int, int]]) -> None:
        out = []
        loads, dumps, clock, pack = pickle.loads, pickle.dumps, time.perf_counter, HEAD.pack
        for start, end, tid in found:
            fn, args = loads(view[start:end])
            started = clock()
            value = fn(*args)
            body = dumps((value, started, clock()), PROTOCOL)
            out.append(pack(len(body) + 8, tid))
            out.append(body)
        self.transport.write(b"".join(out))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


class _MeteredWorker(_Worker):
    """As :class:`_Worker`, with the telemetry every attempt of osiiso_mp must carry (its
    CPU time, peak RSS and RSS delta), taken by osiiso_mp's own ``Meter``."""

    def __init__(self, done: asyncio.Future[None]) -> None:
        super().__init__(done)
        from osiiso_mp._runtime.worker._telemetry import Meter

        self.meter = Meter()

    def frames(self, view: memoryview, found: list[tuple[int, int, int]]) -> None:
        out = []
        loads, dumps, pack = pickle.loads, pickle.dumps, HEAD.pack
        snapshot, measure = self.meter.snapshot, self.meter.measure
        for start, end, tid in found:
            fn, args = loads(view[start:end])
            began = snapshot()
            value = fn(*args)
            ended, cpu, peak, delta = measure(began)
            body = dumps((value, began[0], ended, cpu, peak, delta), PROTOCOL)
            out.append(pack(len(body) + 8, tid))
            out.append(body)
        self.transport.write(b"".join(out))


def _serve_worker(
    sock: socket.socket, protocol: type[_Worker] = _Worker
) -> None:  # pragma: no cover - runs in the child
    import uvloop

    async def serve() -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await asyncio.get_running_loop().create_connection(lambda: protocol(done), sock=sock)
        await done

    uvloop.run(serve())
    os._exit(0)


def _fork(target: Callable[..., None], *args: Any) -> int:
    """Fork a child that runs ``target(*args)`` and never returns to the caller's code."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            target(*args)
        finally:
            os._exit(1)
    return pid


def _close_all_but(socks: Sequence[socket.socket], keep: Sequence[socket.socket]) -> None:
    for s in socks:
        if not any(s is k for k in keep):
            s.close()


# --------------------------------------------------------------------------- base
class _Shape:
    """The peer interface of ``harness.py``: start, submit_all, map, call, stop."""

    name = "?"
    notes = ""

    def __init__(self, procs: int) -> None:
        self.procs = procs
        self.ids = itertools.count()
        # The retained records: (submitted, dispatched, started, ended, settled).
        self.records: list[tuple[float, float, float, float, float]] = []
        self.pids: list[int] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        raise NotImplementedError

    def result(self, fut: cf.Future[Any]) -> Any:
        return fut.result()

    def submit_all(self, fn: Callable[..., Any], argslist: Sequence[tuple[Any, ...]]) -> list[Any]:
        futures = [self.submit(fn, *a) for a in argslist]
        return [self.result(f) for f in futures]

    def map(self, fn: Callable[..., Any], data: Sequence[Any]) -> list[Any]:
        return self.submit_all(fn, [(x,) for x in data])

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.result(self.submit(fn, *args))

    def _reap(self) -> None:
        for pid in self.pids:
            os.waitpid(pid, 0)
        if len(self.records) < 1:
            raise AssertionError("no record was kept")


# --------------------------------------------------------------------------- thread shape
class _FromWorker(_Framed):
    def __init__(self, shape: ThreadShape, index: int) -> None:
        super().__init__()
        self.shape, self.index = shape, index

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.shape.transports[self.index] = transport  # type: ignore[assignment]

    def frames(self, view: memoryview, found: list[tuple[int, int, int]]) -> None:
        self.shape.settle(view, found, self.index)


class ThreadShape(_Shape):
    name = "shape: thread"
    worker: type[_Worker] = _Worker
    notes = (
        "skeleton: supervisor = uvloop loop on a thread of the caller's process (osiiso_mp's "
        "shape), futures + 5-time records, no policy; a ceiling, see proto_shapes.py"
    )

    def start(self) -> None:
        ends = [socket.socketpair() for _ in range(self.procs)]
        every = [s for pair in ends for s in pair]
        for _ours, theirs in ends:
            self.pids.append(_fork(self._child, every, theirs, self.worker))
        for _ours, theirs in ends:
            theirs.close()
        self.queue: collections.deque[tuple[int, cf.Future[Any], float, bytes]] = (
            collections.deque()
        )
        self.due = False
        self.inflight: dict[int, tuple[cf.Future[Any], float, float]] = {}
        self.load = [0] * self.procs
        self.transports: list[asyncio.Transport | None] = [None] * self.procs
        import uvloop

        self.loop = uvloop.new_event_loop()
        ready = threading.Event()

        async def connect() -> None:
            for i, (ours, _theirs) in enumerate(ends):
                await self.loop.create_connection(lambda i=i: _FromWorker(self, i), sock=ours)
            ready.set()

        self.loop.create_task(connect())
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        ready.wait()

    @staticmethod
    def _child(
        every: list[socket.socket], mine: socket.socket, worker: type[_Worker]
    ) -> None:  # pragma: no cover
        _close_all_but(every, [mine])
        _serve_worker(mine, worker)

    def future(self, fn: Callable[..., Any]) -> cf.Future[Any]:
        """A new task's future."""
        return cf.Future()

    def settle(self, view: memoryview, found: list[tuple[int, int, int]], index: int) -> None:
        """On the loop: settle the tasks of the reply frames ``found`` from worker ``index``."""
        inflight, records = self.inflight, self.records
        loads, clock = pickle.loads, time.perf_counter
        for start, end, tid in found:
            value, started, ended = loads(view[start:end])
            fut, submitted, dispatched = inflight.pop(tid)
            records.append((submitted, dispatched, started, ended, clock()))
            fut.set_result(value)
        self.load[index] -= len(found)

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        fut = self.future(fn)
        body = pickle.dumps((fn, args), PROTOCOL)
        self.queue.append((next(self.ids), fut, time.perf_counter(), body))
        if not self.due:
            self.due = True
            self.loop.call_soon_threadsafe(self._drain)
        return fut

    def _drain(self) -> None:
        """On the loop: every queued task to the worker with the fewest in flight, one
        write per worker."""
        self.due = False
        queue, load, inflight = self.queue, self.load, self.inflight
        out: list[list[bytes]] = [[] for _ in load]
        clock, pack = time.perf_counter, HEAD.pack
        while queue:
            tid, fut, submitted, body = queue.popleft()
            w = load.index(min(load))
            load[w] += 1
            inflight[tid] = (fut, submitted, clock())
            out[w].append(pack(len(body) + 8, tid))
            out[w].append(body)
        for w, parts in enumerate(out):
            if parts:
                self.transports[w].write(b"".join(parts))  # type: ignore[union-attr]

    def stop(self) -> None:
        def close() -> None:
            for t in self.transports:
                if t is not None:
                    t.close()
            self.loop.call_later(0.01, self.loop.stop)

        self.loop.call_soon_threadsafe(close)
        self.thread.join()
        self.loop.close()
        self._reap()


class ThreadRecordsShape(ThreadShape):
    """The thread shape plus what osiiso_mp's contract asks of every task, made with
    osiiso_mp's own classes, and nothing else: a ``TaskFuture`` with a uuid4 task id and a
    name; in the worker, the attempt's telemetry (``Meter``: two ``getrusage`` and two
    reads of ``/proc/self/statm``); in the supervisor, an ``Attempt`` and a ``TaskResult``
    (built positionally, as osiiso_mp builds them) kept by task id, which is what
    ``result(task_id)``, ``status()`` and ``info()`` read. Still no policy: the floor of a
    product with these records, in this shape."""

    name = "shape: thread + records"
    notes = (
        "skeleton: shape: thread plus TaskFuture, uuid task id, the worker's Meter, an "
        "Attempt and a TaskResult kept by task id (osiiso_mp's classes); no policy"
    )
    worker = _MeteredWorker

    def start(self) -> None:
        from osiiso_mp._future import TaskFuture
        from osiiso_mp._intake import new_task_id
        from osiiso_mp._results import make_attempt, make_result

        self.task_future, self.new_task_id = TaskFuture, new_task_id
        self.make_attempt, self.make_result = make_attempt, make_result
        self.kept: dict[str, Any] = {}  # task id -> its TaskResult
        super().start()

    def future(self, fn: Callable[..., Any]) -> cf.Future[Any]:
        return self.task_future(None, self.new_task_id(), fn.__qualname__)  # type: ignore[arg-type]

    def settle(self, view: memoryview, found: list[tuple[int, int, int]], index: int) -> None:
        inflight, records, kept = self.inflight, self.records, self.kept
        loads, clock = pickle.loads, time.perf_counter
        make_attempt, make_result, pid = self.make_attempt, self.make_result, self.pids[index]
        for start, end, tid in found:
            value, started, ended, cpu, peak, delta = loads(view[start:end])
            entry: Any = inflight.pop(tid)  # (a TaskFuture, which cf.Future's type lacks)
            fut, submitted, dispatched = entry
            ran = ended - started
            attempt = make_attempt(
                1, index, pid, started - submitted, started, ended, ran, cpu, peak, delta,
                "succeeded", "", None, "",
            )  # fmt: skip
            record = make_result(
                fut.task_id, fut.name, "succeeded", value, None, 1, 3, False, None, False,
                submitted, started, ended, ran, "", None, (attempt,),
            )  # fmt: skip
            kept[fut.task_id] = record
            records.append((submitted, dispatched, started, ended, clock()))
            fut._settle(record)
        self.load[index] -= len(found)


# --------------------------------------------------------------------------- process shape
class _Supervisor:
    """The supervisor process's loop: tasks from the caller to the worker with the fewest
    in flight, replies back to the caller with the time of dispatch added. It owns the task
    state (which worker runs which task, since when) and unpickles nothing."""

    def __init__(self, caller: socket.socket, workers: list[socket.socket]) -> None:
        self.caller_sock, self.worker_socks = caller, workers
        self.inflight: dict[int, tuple[int, float]] = {}
        self.load = [0] * len(workers)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = loop.create_future()
        self.workers: list[asyncio.Transport] = []
        for i, s in enumerate(self.worker_socks):
            t, _ = await loop.create_connection(lambda i=i: _Upstream(self, i), sock=s)
            self.workers.append(t)
        self.caller, _ = await loop.create_connection(
            lambda: _Downstream(self), sock=self.caller_sock
        )
        await self.done
        for t in self.workers:
            t.close()
        await asyncio.sleep(0.01)


class _Downstream(_Framed):
    """Task frames from the caller."""

    def __init__(self, sup: _Supervisor) -> None:
        super().__init__()
        self.sup = sup

    def frames(self, view: memoryview, found: list[tuple[int, int, int]]) -> None:
        sup = self.sup
        load, inflight, clock = sup.load, sup.inflight, time.perf_counter
        out: list[list[bytes]] = [[] for _ in load]
        for start, end, tid in found:
            w = load.index(min(load))
            load[w] += 1
            inflight[tid] = (w, clock())
            out[w].append(bytes(view[start - HEAD.size : end]))
        for w, parts in enumerate(out):
            if parts:
                sup.workers[w].write(b"".join(parts))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.sup.done.done():
            self.sup.done.set_result(None)


class _Upstream(_Framed):
    """Reply frames from one worker."""

    def __init__(self, sup: _Supervisor, index: int) -> None:
        super().__init__()
        self.sup, self.index = sup, index

    def frames(self, view: memoryview, found: list[tuple[int, int, int]]) -> None:
        sup = self.sup
        inflight, pack = sup.inflight, REPLY_HEAD.pack
        out: list[bytes] = []
        for start, end, tid in found:
            _w, dispatched = inflight.pop(tid)
            out.append(pack(end - start + 16, tid, dispatched))
            out.append(bytes(view[start:end]))
        sup.load[self.index] -= len(found)
        sup.caller.write(b"".join(out))


def _serve_supervisor(
    caller: socket.socket, workers: list[socket.socket]
) -> None:  # pragma: no cover
    import uvloop

    uvloop.run(_Supervisor(caller, workers).run())
    os._exit(0)


class ProcessShape(_Shape):
    name = "shape: process"
    notes = (
        "skeleton: supervisor = uvloop loop in a process of its own; the caller keeps the "
        "futures, one socket and a reader thread; 5-time records; a ceiling, see proto_shapes.py"
    )
    reader_thread = True

    def start(self) -> None:
        to_workers = [socket.socketpair() for _ in range(self.procs)]
        ours, sups = socket.socketpair()
        every = [s for pair in to_workers for s in pair] + [ours, sups]
        for _s, w in to_workers:
            self.pids.append(_fork(self._worker, every, w))
        sup_ends = [s for s, _w in to_workers]
        self.pids.append(_fork(self._supervisor, every, sups, sup_ends))
        _close_all_but(every, [ours])
        self.sock = ours
        self.send_lock = threading.Lock()
        self.futures: dict[int, tuple[cf.Future[Any], float]] = {}
        self.buf = bytearray()
        self.read_lock = threading.Lock()
        if self.reader_thread:
            self.reader = threading.Thread(target=self._read_forever, daemon=True)
            self.reader.start()

    @staticmethod
    def _worker(every: list[socket.socket], mine: socket.socket) -> None:  # pragma: no cover
        _close_all_but(every, [mine])
        _serve_worker(mine)

    @staticmethod
    def _supervisor(
        every: list[socket.socket], up: socket.socket, workers: list[socket.socket]
    ) -> None:  # pragma: no cover
        _close_all_but(every, [up, *workers])
        _serve_supervisor(up, workers)

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        fut: cf.Future[Any] = cf.Future()
        tid = next(self.ids)
        body = pickle.dumps((fn, args), PROTOCOL)
        self.futures[tid] = (fut, time.perf_counter())
        frame = HEAD.pack(len(body) + 8, tid) + body
        with self.send_lock:
            self.sock.sendall(frame)
        return fut

    def _read_once(self) -> bool:
        """Read what the socket has (blocking for the first bytes), settle every whole
        reply frame; False at the end of the stream."""
        data = self.sock.recv(1 << 18)
        if not data:
            return False
        buf = self.buf
        buf += data
        frames, used = _frames(buf, REPLY_HEAD)
        if frames:
            futures, records = self.futures, self.records
            loads, clock = pickle.loads, time.perf_counter
            view = memoryview(buf)
            for start, end, tid in frames:
                dispatched = REPLY_HEAD.unpack_from(buf, start - REPLY_HEAD.size)[2]
                value, started, ended = loads(view[start:end])
                fut, submitted = futures.pop(tid)
                records.append((submitted, dispatched, started, ended, clock()))
                fut.set_result(value)
            view.release()
            del buf[:used]
        return True

    def _read_forever(self) -> None:
        while self._read_once():
            pass

    def stop(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)
        if self.reader_thread:
            self.reader.join()
        else:
            self._read_forever()
        self.sock.close()
        self._reap()


class ProcessShapeWaiterReads(ProcessShape):
    name = "shape: process (waiter reads)"
    notes = (
        "skeleton: the supervisor process, no reader thread: the thread waiting on a result "
        "reads the socket itself, and submits are written 64 at a time or when a result is "
        "waited for (an upper bound, not a design; see proto_shapes.py)"
    )
    reader_thread = False
    batch = 64

    def start(self) -> None:
        super().start()
        self.unsent: list[bytes] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        fut: cf.Future[Any] = cf.Future()
        tid = next(self.ids)
        body = pickle.dumps((fn, args), PROTOCOL)
        self.futures[tid] = (fut, time.perf_counter())
        unsent = self.unsent
        unsent.append(HEAD.pack(len(body) + 8, tid))
        unsent.append(body)
        if len(unsent) >= 2 * self.batch:
            self._send_unsent()
        return fut

    def _send_unsent(self) -> None:
        if self.unsent:
            data = b"".join(self.unsent)
            self.unsent.clear()
            with self.send_lock:
                self.sock.sendall(data)

    def result(self, fut: cf.Future[Any]) -> Any:
        self._send_unsent()
        with self.read_lock:
            while not fut.done():
                if not self._read_once():
                    raise EOFError("the supervisor process went away")
        return fut.result()


SHAPES = (ThreadShape, ThreadRecordsShape, ProcessShape, ProcessShapeWaiterReads)
