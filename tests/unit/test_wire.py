"""Framing and messages, over a real socket pair and a real event loop (no workers)."""

from __future__ import annotations

import asyncio
import os
import pickle
import socket

import pytest

from osiiso_mp._runtime.protocol._buffers import INLINE_MIN, SHARED_MIN, SharedBuffer, attach
from osiiso_mp._runtime.protocol._channel import Channel
from osiiso_mp._runtime.protocol._framing import (
    encode,
    finished_frame,
    read_frame_blocking,
    run_frame,
    started_frame,
)
from osiiso_mp._runtime.protocol._messages import (
    MESSAGES,
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
    UsageReported,
    WorkerReady,
    from_wire,
    to_wire,
)


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


def test_every_message_survives_its_wire_form() -> None:
    samples: dict[type[Message], Message] = {
        Configure: Configure(0, 1, ("p",), "/", 1, None, 20, (("A", "b"),), (0,), 1, 1 << 30),
        RunTask: RunTask(7, 1, 3, b"payload", False, None, False, (b"x",), True),
        CancelTask: CancelTask(4),
        Stop: Stop(),
        WorkerReady: WorkerReady(123),
        InitFailed: InitFailed("boom", "tb", "setup"),
        MemoryExceeded: MemoryExceeded(1 << 20),
        UsageReported: UsageReported(1 << 24, 1.25),
        TaskStarted: TaskStarted(1, 2.5),
        TaskFinished: TaskFinished(7, "failed", b"x", None, 2.0, 0.5, 1, -4, ()),
        LogRecorded: LogRecorded(5, "n", 20, "m", 1.0, "p.py", 3, None, None, 2),
        ChunkFinished: ChunkFinished(9, b"v", b"\0" * 16, b"\0" * 8, 1 << 20, -4, (b"y",)),
    }
    assert set(samples) == set(MESSAGES)
    for msg in samples.values():
        wire = to_wire(msg)
        assert type(wire) is tuple
        back = from_wire(pickle.loads(pickle.dumps(wire, protocol=5)))
        assert type(back) is type(msg) and back == msg


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


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _exchange(msgs: list[Message], expect: int) -> list[Message]:
    """Send ``msgs`` through a real socket pair in one loop iteration; collect ``expect``."""

    async def main() -> list[Message]:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        got: list[Message] = []
        sender = Channel(loop, a, lambda m: None, lambda: None)
        receiver = Channel(loop, b, got.append, lambda: None)
        for msg in msgs:
            sender.send(msg)
        deadline = loop.time() + 10
        while len(got) < expect and loop.time() < deadline:
            await asyncio.sleep(0.005)
        sender.close()
        receiver.close()
        return got

    return asyncio.run(main())


def test_attach_picks_the_path_by_size() -> None:
    small = b"s" * (INLINE_MIN - 1)
    assert attach(small) is small
    assert isinstance(attach(b"i" * INLINE_MIN), pickle.PickleBuffer)
    shared = attach(b"h" * SHARED_MIN)
    assert isinstance(shared, SharedBuffer) and shared.nbytes == SHARED_MIN
    shared.close()
    shared.close()  # idempotent


def test_inline_and_shared_buffers_arrive_whole_writable_and_in_order() -> None:
    before = _open_fds()
    inline = bytes(range(256)) * (INLINE_MIN // 128)
    huge = bytes(reversed(range(256))) * (SHARED_MIN // 256 * 3)
    shared = SharedBuffer(huge)
    msgs: list[Message] = [
        RunTask(1, 1, 0, pickle.PickleBuffer(inline), False, None),
        RunTask(
            2, 1, 0, b"small", False, None, True, (shared, pickle.PickleBuffer(bytearray(inline)))
        ),
        TaskStarted(2, 1.0),
        TaskFinished(2, "succeeded", shared, 1.0, 2.0, 0.1, 0, 0),
    ]
    got = _exchange(msgs, 4)
    shared.close()  # the frames owned duplicates of the descriptor: closing ours is safe
    assert [type(m).__name__ for m in got] == ["RunTask", "RunTask", "TaskStarted", "TaskFinished"]
    first, second, _, done = got
    assert bytes(first.payload) == inline  # type: ignore[attr-defined]
    assert second.payload == b"small"  # type: ignore[attr-defined]
    big, mid = second.buffers  # type: ignore[attr-defined]
    assert bytes(big) == huge and bytes(mid) == inline
    assert not memoryview(big).readonly and not memoryview(mid).readonly  # as sent
    assert memoryview(first.payload).readonly  # type: ignore[attr-defined]  # bytes were sent
    assert bytes(done.payload) == huge  # type: ignore[attr-defined]
    assert _open_fds() == before  # every received and sent descriptor is closed


def test_more_shared_buffers_than_one_write_carries() -> None:
    before = _open_fds()
    blobs = [SharedBuffer(bytes([i]) * SHARED_MIN) for i in range(100)]
    msgs: list[Message] = [
        TaskFinished(i, "succeeded", blob, 1.0, 2.0, 0.0, 0, 0) for i, blob in enumerate(blobs)
    ]
    got = _exchange(msgs, 100)
    for blob in blobs:
        blob.close()
    assert [m.seq for m in got] == list(range(100))  # type: ignore[attr-defined]
    assert all(bytes(m.payload[:1]) == bytes([i]) for i, m in enumerate(got))  # type: ignore[attr-defined]
    assert _open_fds() == before


def test_closing_a_channel_closes_descriptors_it_never_sent() -> None:
    before = _open_fds()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        sender = Channel(loop, a, lambda m: None, lambda: None)
        blob = SharedBuffer(b"x" * SHARED_MIN)
        sender.send(TaskFinished(1, "succeeded", blob, 1.0, 2.0, 0.0, 0, 0))
        blob.close()
        sender.close()  # before the end of this iteration: the frame was never written
        b.close()

    asyncio.run(main())
    assert _open_fds() == before


def test_whole_frame_encoding_and_blocking_reads_take_inline_buffers() -> None:
    data = b"q" * INLINE_MIN
    msg = RunTask(5, 1, 0, pickle.PickleBuffer(data), False, None)
    a, b = socket.socketpair()
    with a, b:
        a.sendall(encode(msg))
        got = read_frame_blocking(b)
    assert isinstance(got, RunTask) and bytes(got.payload) == data
    blob = SharedBuffer(data)
    with pytest.raises(ValueError, match="shared buffers"):
        encode(TaskFinished(1, "succeeded", blob, 1.0, 2.0, 0.0, 0, 0))
    blob.close()


def test_shared_buffers_are_copied_where_they_cannot_be_mapped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # no callable libc (or mmap refused): the receiver reads the file into its own memory
    from osiiso_mp._runtime.protocol import _buffers

    monkeypatch.setattr(_buffers, "_libc", False)
    before = _open_fds()
    data = bytes(range(256)) * (SHARED_MIN // 256)
    blob = SharedBuffer(data)
    (got,) = _exchange([TaskFinished(1, "succeeded", blob, 1.0, 2.0, 0.0, 0, 0)], 1)
    blob.close()
    assert type(got.payload) is bytearray and got.payload == data  # type: ignore[attr-defined]
    assert _open_fds() == before


def test_a_thread_sends_while_the_loop_is_held_but_never_inside_a_frame() -> None:
    import threading

    loop = asyncio.new_event_loop()
    a, b = socket.socketpair()
    try:
        channel = Channel(loop, a, lambda m: None, lambda: None)
        channel.allow_threadsafe_sends()
        sent: list[bool] = []

        def report() -> None:
            sent.append(channel.send_threadsafe(UsageReported(1 << 20, 0.5)))

        # the loop is not running (a sync task holds it): the thread's frame goes out
        thread = threading.Thread(target=report)
        thread.start()
        thread.join(5)
        assert sent == [True]
        assert read_frame_blocking(b) == UsageReported(1 << 20, 0.5)
        # a large frame the kernel took only part of: nothing may go in between
        big = TaskFinished(7, "succeeded", b"v" * (8 << 20), 1.0, 2.0, 0.5, 0, 0, ())
        channel.send(big)
        channel.flush()
        thread = threading.Thread(target=report)
        thread.start()
        thread.join(5)
        assert sent == [True, False]
        # the reader takes the big frame (the loop writes the rest), then the report
        got: list[object] = []
        reader = threading.Thread(target=lambda: got.append(read_frame_blocking(b)))
        reader.start()
        while reader.is_alive():
            loop.run_until_complete(asyncio.sleep(0.01))
        assert got == [big]
        report()
        assert sent == [True, False, True]
        assert read_frame_blocking(b) == UsageReported(1 << 20, 0.5)
    finally:
        loop.close()
        a.close()
        b.close()


def test_a_direct_write_goes_only_where_nothing_is_queued_and_whole() -> None:
    import threading

    loop = asyncio.new_event_loop()
    a, b = socket.socketpair()
    try:
        channel = Channel(loop, a, lambda m: None, lambda: None)
        lock = channel.direct_lock()
        assert channel.direct_lock() is lock  # one lock, made once
        run = run_frame(9, 1, 3, b"payload", False, None, False, False)
        written: list[bool] = []

        def write() -> None:  # as a caller's thread does through the door
            with lock:
                if channel.direct_ready():
                    written.append(channel.write_direct(run))

        thread = threading.Thread(target=write)
        thread.start()
        thread.join(5)
        assert written == [True]
        assert read_frame_blocking(b) == RunTask(9, 1, 3, b"payload", False, None, False, (), False)
        # something queued and not yet written: no direct write may go before it
        channel.send(Stop())
        with lock:
            assert not channel.direct_ready()
        channel.flush()
        assert read_frame_blocking(b) == Stop()
        with lock:
            assert channel.direct_ready()
        b.close()  # the peer is gone: the write fails, and says so
        with lock:
            assert channel.write_direct(run * 50_000) is False
        channel.close()
        with lock:
            assert not channel.direct_ready()
    finally:
        loop.close()
        a.close()


def test_a_promised_flush_schedules_none_and_the_promise_ends_at_the_flush() -> None:
    loop = asyncio.new_event_loop()
    a, b = socket.socketpair()
    b.setblocking(False)
    try:
        channel = Channel(loop, a, lambda m: None, lambda: None)
        channel.will_flush()  # the owner flushes before its callback ends: no flush of its own
        channel.send(CancelTask(1))
        loop.run_until_complete(asyncio.sleep(0))
        loop.run_until_complete(asyncio.sleep(0))
        with pytest.raises(BlockingIOError):
            b.recv(1)
        channel.flush()
        b.setblocking(True)
        assert read_frame_blocking(b) == CancelTask(1)
        # the promise ended with that flush: the next send is flushed by the loop again
        channel.send(CancelTask(2))
        loop.run_until_complete(asyncio.sleep(0))
        assert read_frame_blocking(b) == CancelTask(2)
        # a blocking flush writes what is queued but leaves a promise standing
        channel.will_flush()
        channel.send(CancelTask(3))
        channel.flush_blocking()
        assert read_frame_blocking(b) == CancelTask(3)
        channel.send(CancelTask(4))
        loop.run_until_complete(asyncio.sleep(0))
        b.setblocking(False)
        with pytest.raises(BlockingIOError):
            b.recv(1)
        channel.flush()
        b.setblocking(True)
        assert read_frame_blocking(b) == CancelTask(4)
        channel.close()
    finally:
        loop.close()
        b.close()


@pytest.mark.parametrize(
    "fields",
    [
        (1, "succeeded", b"\x80\x05N.", 1.5, 2.25, 0.000125, 50_000_000, 4096),
        (2**40, "failed", b"e" * 70_000, 123456.789, 123457.0, 0.0, 0, -8192),
        (3, "cancelled", b"", None, 9.0, 0.0, 0, 0),
        (4, "timed_out", pickle.dumps(ErrorInfo("T", "m", "tb", None)), 0.0, -1.0, 2.5, 1, 2**63),
    ],
)
def test_a_finished_frame_made_directly_is_the_one_encode_makes(fields: tuple[object, ...]) -> None:
    direct = finished_frame(*fields)  # type: ignore[arg-type]
    assert direct == encode(TaskFinished(*fields))  # type: ignore[arg-type]
    a, b = socket.socketpair()
    with a, b:
        a.sendall(direct)
        assert read_frame_blocking(b) == TaskFinished(*fields)  # type: ignore[arg-type]


def test_a_frame_sent_whole_goes_out_in_order_with_the_others() -> None:
    loop = asyncio.new_event_loop()
    a, b = socket.socketpair()
    try:
        channel = Channel(loop, a, lambda m: None, lambda: None)
        done = TaskFinished(5, "succeeded", b"v", 1.0, 2.0, 0.5, 7, 8)
        channel.send(CancelTask(1))
        channel.send_frame(finished_frame(5, "succeeded", b"v", 1.0, 2.0, 0.5, 7, 8))
        channel.send(CancelTask(2))
        loop.run_until_complete(asyncio.sleep(0))  # the flush the sends scheduled
        assert [read_frame_blocking(b) for _ in range(3)] == [CancelTask(1), done, CancelTask(2)]
        channel.close()
        channel.send_frame(encode(CancelTask(3)))  # closed: dropped, as send drops it
    finally:
        loop.close()
        b.close()


@pytest.mark.parametrize("fields", [(1, 0.5), (2**40, 123456.789), (0, -1.0)])
def test_a_started_frame_made_directly_is_the_one_encode_makes(fields: tuple[int, float]) -> None:
    assert started_frame(*fields) == encode(TaskStarted(*fields))


@pytest.mark.parametrize(
    "fields",
    [
        (1, 1, 3, b"call", False, None, False, False),  # a known-tiny sync task
        (2**40, 3, -5, b"x" * 70_000, True, 2.5, True, False),  # async, with a timeout
        (7, 1, 0, b"", False, None, True, True),  # a map chunk
    ],
)
def test_a_run_frame_made_directly_is_the_one_encode_makes(fields: tuple[object, ...]) -> None:
    """What the dispatcher writes for a task with a plain payload: the bytes and the
    message that generic encoding makes of ``RunTask`` with no buffers."""
    msg = RunTask(*fields[:7], (), fields[7])  # type: ignore[arg-type, call-arg]
    direct = run_frame(*fields)  # type: ignore[arg-type]
    assert direct == encode(msg)
    a, b = socket.socketpair()
    with a, b:
        a.sendall(direct)
        assert read_frame_blocking(b) == msg
