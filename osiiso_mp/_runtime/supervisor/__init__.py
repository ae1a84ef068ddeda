"""The supervisor actor: the single owner of every task's state, made of parts.

Data flow::

    caller threads                 supervisor thread (its own uvloop)              workers
    --------------                 ----------------------------------              -------
    submit(): pickle (fn, args)
      -> Submit -------> inbox --> on_submit ---> ReadyQueue (priority, seq)
                         (deque +       |                |  dispatch: pipelining
                          one wakeup    |                v  (may_prefetch)
                          per batch)    |         RunTask frame  ----------------->  worker
                                        |                                               |
                                        |  on_message <--- TaskStarted / TaskFinished --+
                                        |        |
                                        |        +-- retry? --> delay timer --> ReadyQueue
                                        v        v
    fut.result() <-- Future.set_* <-- finish: one TaskResult per task, exactly once

    Every other command (cancel, queries, shutdown: the closed set in ._commands) takes the
    same inbox; those that need an answer carry a reply future.

- Callers never touch task state. They post commands (:mod:`._commands`) to the inbox, which
  the supervisor drains on its own thread; the submit path costs the caller one deque append
  and, at most once per drained batch, one wake-up of its loop (see ``Supervisor.post``).
- The door (:mod:`._door`): while a worker holds nothing and nothing is queued, the
  supervisor opens a door to it, and the next plain task (sync, no timeout, no delay, no
  id of the caller's) is written to that worker by the caller's thread itself, which then
  wakes the supervisor. The task waits in the door until the supervisor adopts it, as sent
  to that worker, at the start of whatever it does next, while the worker runs it: one
  task at a time no longer waits for the supervisor's thread on its way out.
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
  memory (:mod:`..protocol._buffers`); a task's shared buffers are closed when its record
  is made.
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
``sent`` map, or finished (``_finish`` called once, then it is forgotten here); or, between
a caller's write through the door and its adoption, in the door (``Door.taken``), which
the supervisor empties before it handles anything else.

Who owns what (each part is a plain object on the supervisor thread, owning its state;
the shell composes them and they call one another directly)::

    _actor.Supervisor   the shell: thread, uvloop, inbox, queries, shutdown, breaking
    _ledger.Ledger      tasks in flight (by seq, by id), map chunks under way, finished
                        records and settled chunks kept for lookups, the value budget
    _pool.WorkerPool    one WorkerView per slot: start through the transport, route what
                        workers send, notice exits, replace, kill, stopped-worker check
    _dispatch.Dispatcher  the ready queue, delay/backoff timers, the rate gate, sending
                        ahead (pipelining), maps' read-ahead
    _attempts.Attempts  attempt events: started (timeouts armed), finished, lost; retries
    _outcomes.Outcomes  one record per task (finish), cancellation, fail_first, hooks
    _chunks.ChunkOutcomes  how a map chunk's items end, together or one by one
    _memcap.MemoryCap   max_rss: sample, replace workers above it
    _door.DoorKeeper    the door to an idle worker: opened, closed, its task adopted

The life of one task: ``Submit`` -> ``Dispatcher.on_submit`` (refused, scheduled or
queued) -> ``dispatch`` sends ``RunTask`` on a worker's link -> the worker's
``TaskStarted`` (``Attempts.on_started``: running, timeout armed) -> ``TaskFinished``
(``Attempts.on_finished``: an attempt recorded; a failure retried after its backoff) ->
``Outcomes.finish``: the one record, kept by the ledger, and the future settled.
"""

from ._actor import Supervisor
from ._chunks import ChunkItem

__all__ = ["ChunkItem", "Supervisor"]
