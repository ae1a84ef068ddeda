"""The worker actor in this process, over a real socket pair: what one read brings in is
all taken in before any of it starts (no worker process: the actor leaves by stopping
its loop)."""

from __future__ import annotations

import asyncio
import logging
import pickle
import socket

from osiiso_mp._runtime.protocol._framing import encode, read_frame_blocking
from osiiso_mp._runtime.protocol._messages import (
    CancelTask,
    Configure,
    Message,
    RunTask,
    Stop,
    TaskFinished,
    TaskStarted,
    WorkerReady,
)
from osiiso_mp._runtime.worker._actor import WorkerActor


def _serve(frames: bytes) -> list[Message]:
    """Run a worker actor that reads ``frames`` (ending with Stop) in one read; what it
    sent back, after its WorkerReady."""
    loop = asyncio.new_event_loop()
    a, b = socket.socketpair()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        cfg = Configure(0, None, None, None, 1, None, logging.WARNING)
        actor = WorkerActor(loop, b, cfg, loop.stop)
        actor.start()
        a.sendall(frames)
        loop.call_later(10, loop.stop)  # (a hang fails below, not for ever)
        loop.run_forever()
        assert actor.left
        b.close()
        got = []
        while (msg := read_frame_blocking(a)) is not None:
            got.append(msg)
    finally:
        root.handlers[:], root.level = handlers, level
        loop.close()
        a.close()
    assert isinstance(got[0], WorkerReady)
    return got[1:]


def _task(seq: int, priority: int, announce: bool = True) -> bytes:
    payload = pickle.dumps((abs, (-seq,), {}), protocol=5)
    return encode(RunTask(seq, 1, priority, payload, False, None, announce))


def test_a_better_task_and_a_cancel_in_the_same_read_come_first() -> None:
    got = _serve(_task(1, 5) + _task(2, 0) + encode(CancelTask(1)) + encode(Stop()))
    assert [(type(m).__name__, m.seq) for m in got] == [  # type: ignore[attr-defined]
        ("TaskFinished", 1),
        ("TaskStarted", 2),
        ("TaskFinished", 2),
    ]
    cancelled, started, done = got
    assert isinstance(cancelled, TaskFinished) and cancelled.outcome == "cancelled"
    assert isinstance(started, TaskStarted)
    assert isinstance(done, TaskFinished) and done.outcome == "succeeded"
    assert pickle.loads(done.payload) == 2


def test_unannounced_tasks_of_one_read_run_best_first() -> None:
    frames = b"".join(_task(seq, 9 - seq, announce=False) for seq in range(1, 5))
    got = _serve(frames + encode(Stop()))
    assert [m.seq for m in got] == [4, 3, 2, 1]  # type: ignore[attr-defined]
    assert all(isinstance(m, TaskFinished) and m.outcome == "succeeded" for m in got)
