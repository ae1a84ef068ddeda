"""Framing against a peer that dies: a real process writes its last frames and exits
(moved from tests/unit/test_wire.py: it starts a process)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time

from osiiso_mp._runtime.protocol._channel import Channel
from osiiso_mp._runtime.protocol._framing import encode
from osiiso_mp._runtime.protocol._messages import (
    CancelTask,
    Message,
    RunTask,
    Stop,
    TaskFinished,
    TaskStarted,
)


def test_frames_a_dead_peer_sent_are_delivered_even_when_a_write_fails_first() -> None:
    # A worker sends its last frames, then dies with frames of ours unread. The kernel
    # reports the death to the next call: our write fails with EPIPE (or a read fails once
    # with ECONNRESET), while what the peer sent is still queued for us. That must not end
    # the channel: before the fix, a failed write closed it, and the dead worker's last
    # result and the start of the task that killed it were lost (its crash was then put
    # down to the task before).
    ours, theirs = socket.socketpair()
    last_words = [TaskFinished(1, "succeeded", b"v", 1.0, 2.0, 0.5, 0, 0), TaskStarted(2, 3.0)]
    loop = asyncio.new_event_loop()
    got: list[Message] = []
    closed: list[int] = []
    try:
        channel = Channel(loop, ours, got.append, lambda: closed.append(len(got)))
        channel.send(RunTask(3, 1, 0, b"p", False, None))
        channel.flush()  # sits unread in the peer's queue: it dies with it there
        peer = subprocess.run(
            [sys.executable, "-c", _PEER],
            input=b"".join(encode(m) for m in last_words),
            pass_fds=[theirs.fileno()],
            env={**os.environ, "PEER_FD": str(theirs.fileno())},
            timeout=30,
        )
        assert peer.returncode == 3
        theirs.close()  # the peer's end is gone everywhere now
        channel.send(Stop())
        channel.flush()  # EPIPE, before anything was read
        assert not channel.closed, "a failed write must not stop the reading"
        channel.send(CancelTask(3))  # dropped quietly: nobody is there
        channel.flush_blocking()  # returns at once: nothing is queued any more
        deadline = time.monotonic() + 10
        while not closed and time.monotonic() < deadline:
            loop.run_until_complete(asyncio.sleep(0.01))
    finally:
        loop.close()
    assert got == last_words
    assert closed == [2], "closed once, after the peer's last frame"
    assert channel.closed


_PEER = """
import os, sys
fd = int(os.environ["PEER_FD"])
os.write(fd, sys.stdin.buffer.read())
os._exit(3)  # without reading what the other end sent
"""
