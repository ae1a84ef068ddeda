"""Framing and messages, over a real socket pair and a real event loop (no workers)."""

from __future__ import annotations

import asyncio
import pickle
import socket

from osiiso_mp._runtime._messages import (
    ErrorInfo,
    RunTask,
    Stop,
    TaskFinished,
    TaskStarted,
    WorkerReady,
)
from osiiso_mp._runtime._wire import Channel, encode, read_frame_blocking


def test_messages_pickle_round_trip_including_empty_ones() -> None:
    msgs = [
        Stop(),
        WorkerReady(123),
        TaskStarted(1, 2.5),
        RunTask(7, 1, 3, b"payload", False, None),
        TaskFinished(7, "succeeded", b"x", 1.0, 2.0, 0.5, 1 << 20, -4096),
        ErrorInfo("ValueError", "bad", "Traceback...", None),
    ]
    for msg in msgs:
        assert pickle.loads(pickle.dumps(msg, protocol=5)) == msg


def test_blocking_reader_reads_frames_and_end_of_stream() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(encode(WorkerReady(1)) + encode(TaskStarted(3, 1.5)))
        assert read_frame_blocking(b) == WorkerReady(1)
        assert read_frame_blocking(b) == TaskStarted(3, 1.5)
        a.close()
        assert read_frame_blocking(b) is None


def test_channel_delivers_split_coalesced_and_large_frames() -> None:
    big = b"z" * (3 << 20)  # larger than one recv and than the socket buffer

    async def main() -> list[object]:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        got: list[object] = []
        closed = asyncio.Event()
        sender = Channel(loop, a, lambda m: None, lambda: None)
        receiver = Channel(loop, b, got.append, closed.set)
        frames = [RunTask(i, 1, 3, big if i == 2 else b"p", False, None) for i in range(5)]
        for msg in frames:
            sender.send(msg)  # coalesced into one write at the end of this iteration
        # a frame split across two writes arrives whole
        raw = encode(Stop())
        a_sock = socket.socket(fileno=a.fileno())  # same fd, to write raw halves
        try:
            await asyncio.sleep(0.05)
            while len(got) < 5:
                await asyncio.sleep(0.01)
            a_sock.send(raw[:3])
            await asyncio.sleep(0.01)
            a_sock.send(raw[3:])
            while len(got) < 6:
                await asyncio.sleep(0.01)
        finally:
            a_sock.detach()
        sender.close()
        await asyncio.wait_for(closed.wait(), 5)
        assert receiver.closed
        return got

    got = asyncio.run(main())
    assert [m.seq for m in got[:5]] == [0, 1, 2, 3, 4]  # type: ignore[attr-defined]
    assert got[2].payload == big  # type: ignore[attr-defined]
    assert got[5] == Stop()
