"""Framing: pickled messages and their large buffers over one duplex Unix socket per worker.

A frame is::

    !IHH        meta_len, n_inline, n_shared
    !Q * n      the size of each inline buffer
    meta        a protocol-5 pickle of one :class:`~._messages.Message`, as a plain tuple
    buffers     the inline buffers' bytes, in order

Small messages pickle whole into ``meta``. Large payloads travel beside it, never copied into
the pickle (:mod:`._buffers`): inline buffers as the frame's ``buffers``, written straight
from their memory and handed to the message on the other side as slices of what was read;
shared buffers (and passed descriptors) as descriptors that ride on the frame
(``SCM_RIGHTS``), ``n_shared`` of them, in the order the pickle refers to them.

:func:`encode_frame` and :func:`encode` build frames (:func:`run_frame`,
:func:`started_frame` and :func:`finished_frame` the commonest ones, directly),
:func:`decode` rebuilds the message of a complete frame, and :func:`read_frame_blocking`
reads one from a blocking socket (a worker's :class:`~._messages.Configure`). Reading and
writing frames on an event loop is :class:`~._channel.Channel`'s job.
"""

from __future__ import annotations

import array
import io
import os
import pickle
import socket
import struct
from collections import deque
from typing import Any

from ._buffers import PassedFd, SharedBuffer, read_shared
from ._messages import (
    MESSAGES,
    ChunkFinished,
    Configure,
    Message,
    RunTask,
    TaskFinished,
    TaskStarted,
    from_wire,
    to_wire,
)

__all__ = [
    "ANC_SIZE",
    "HEADER",
    "HEADER_SIZE",
    "MAX_FDS",
    "MAX_META",
    "decode",
    "encode",
    "encode_frame",
    "finished_frame",
    "read_frame_blocking",
    "run_frame",
    "started_frame",
    "take_fds",
]

HEADER = struct.Struct("!IHH")
"""A frame's header: ``(meta_len, n_inline, n_shared)``."""
HEADER_SIZE = HEADER.size
_SIZE = struct.Struct("!Q")
MAX_FDS = 64
"""Descriptors per write (and per read: the receiver's ancillary room)."""
ANC_SIZE = socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)
"""The ancillary room for ``MAX_FDS`` descriptors, to pass to ``recvmsg``."""
MAX_META = (1 << 32) - 1
"""The largest message pickle one frame holds."""
_CARRIERS = (RunTask, TaskFinished, ChunkFinished)  # may carry attached buffers


class _FramePickler(pickle.Pickler):
    """Pickles a message with its large buffers out of band: inline ones through
    ``buffer_callback``, shared ones (and passed descriptors, tagged) as persistent ids
    (their descriptors are dup'ed, so the frame owns what it sends whatever its owner does
    next)."""

    def __init__(self, file: io.BytesIO, inline: list[pickle.PickleBuffer], fds: list[int]):
        super().__init__(file, protocol=5, buffer_callback=inline.append)
        self._fds = fds

    def persistent_id(self, obj: Any) -> Any:
        if type(obj) is SharedBuffer:
            self._fds.append(os.dup(obj.fileno()))
            return len(self._fds) - 1
        if type(obj) is PassedFd:
            self._fds.append(os.dup(obj.fd))
            return ("fd", len(self._fds) - 1)
        return None


class _FrameUnpickler(pickle.Unpickler):
    """Rebuilds a message from its frame: each descriptor received is mapped as a shared
    buffer, or handed over as it is where a :class:`PassedFd` was sent."""

    def __init__(self, file: io.BytesIO, buffers: list[Any], fds: list[int]):
        super().__init__(file, buffers=buffers)
        self._fds = fds

    def persistent_load(self, pid: Any) -> Any:
        if type(pid) is tuple:
            return self._fds[pid[1]]
        return read_shared(self._fds[pid])


def _carries(msg: Message) -> bool:
    if type(msg) is Configure:
        return bool(msg.inherited)
    return type(msg) in _CARRIERS and (
        bool(msg.buffers) or type(msg.payload) is not bytes  # type: ignore[attr-defined]
    )


def encode_frame(msg: Message) -> tuple[list[Any], list[int]]:
    """One frame holding ``msg``: the buffers to write in order, and the descriptors to
    send with them (owned by the caller from now on: close them once sent)."""
    if not _carries(msg):
        return [_plain(msg)], []
    out = io.BytesIO()
    inline: list[pickle.PickleBuffer] = []
    fds: list[int] = []
    try:
        _FramePickler(out, inline, fds).dump(to_wire(msg))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    meta = out.getbuffer()
    if meta.nbytes > MAX_META or len(inline) > 0xFFFF or len(fds) > MAX_FDS:
        for fd in fds:
            os.close(fd)
        raise ValueError("message too large for one frame")
    views = [b.raw() for b in inline]
    head = HEADER.pack(meta.nbytes, len(views), len(fds)) + b"".join(
        _SIZE.pack(v.nbytes) for v in views
    )
    return [head, meta, *views], fds


def encode(msg: Message) -> bytes:
    """One frame holding ``msg``, whole (a message without shared buffers)."""
    if _carries(msg):
        parts, fds = encode_frame(msg)
        for fd in fds:
            os.close(fd)
        if fds:
            raise ValueError("a frame with shared buffers cannot be encoded as bytes")
        return b"".join(parts)
    return _plain(msg)


def _plain(msg: Message) -> bytes:
    """The frame of a message with nothing beside its pickle."""
    data = pickle.dumps(to_wire(msg), protocol=5)
    if len(data) > MAX_META:
        raise ValueError(f"message of {len(data)} bytes exceeds the 4 GiB frame limit")
    return HEADER.pack(len(data), 0, 0) + data


_RUN = MESSAGES.index(RunTask)
_STARTED = MESSAGES.index(TaskStarted)
_FINISHED = MESSAGES.index(TaskFinished)


def run_frame(
    seq: int,
    attempt: int,
    priority: int,
    payload: bytes,
    is_async: bool,
    timeout: float | None,
    announce: bool,
    chunk: bool,
) -> bytes:
    """The frame of ``RunTask(seq, attempt, priority, payload, is_async, timeout,
    announce, (), chunk)`` whose payload is plain ``bytes`` without buffers (the common
    case), made without building the message: the same bytes as :func:`encode` gives for
    it (``ValueError`` past the frame limit, as there)."""
    # to_wire's tuple: the tag, then every field in order (buffers: none)
    wire = (_RUN, seq, attempt, priority, payload, is_async, timeout, announce, (), chunk)
    data = pickle.dumps(wire, protocol=5)
    if len(data) > MAX_META:
        raise ValueError(f"message of {len(data)} bytes exceeds the 4 GiB frame limit")
    return HEADER.pack(len(data), 0, 0) + data


def started_frame(seq: int, started_at: float) -> bytes:
    """The frame of ``TaskStarted(seq, started_at)``, made without building the message:
    the same bytes as :func:`encode` gives for it."""
    data = pickle.dumps((_STARTED, seq, started_at), protocol=5)
    return HEADER.pack(len(data), 0, 0) + data


def finished_frame(
    seq: int,
    outcome: str,
    payload: bytes,
    started_at: float | None,
    finished_at: float,
    cpu_time: float,
    peak_rss: int,
    rss_delta: int,
) -> bytes:
    """The frame of ``TaskFinished(seq, outcome, payload, ...)`` whose payload is plain
    ``bytes`` without buffers (the common case), made without building the message: the
    same bytes as :func:`encode` gives for it."""
    # to_wire's tuple: the tag, then every field in order (buffers: none)
    wire = (
        _FINISHED,
        seq,
        outcome,
        payload,
        started_at,
        finished_at,
        cpu_time,
        peak_rss,
        rss_delta,
        (),
    )
    data = pickle.dumps(wire, protocol=5)
    if len(data) > MAX_META:
        raise ValueError(f"message of {len(data)} bytes exceeds the 4 GiB frame limit")
    return HEADER.pack(len(data), 0, 0) + data


def decode(
    view: memoryview,
    pos: int,
    shape: tuple[int, int, int],
    fds: deque[int],
    copy: bool,
) -> Message:
    """The message of the complete frame whose header ``shape`` (meta_len, n_inline,
    n_shared) was read, and whose sizes start at ``view[pos:]``.

    Inline buffers are copied out when ``copy`` (the frame sits in a reused buffer), else
    handed over as writable slices of ``view``. Shared buffers are mapped from the next
    ``n_shared`` received descriptors (or those descriptors handed over, where they were
    passed as :class:`PassedFd`).
    """
    meta_len, n_inline, n_shared = shape
    sizes = struct.unpack_from(f"!{n_inline}Q", view, pos) if n_inline else ()
    start = pos + 8 * n_inline
    meta = view[start : start + meta_len]
    at = start + meta_len
    buffers: list[Any] = []
    for size in sizes:
        part = view[at : at + size]
        buffers.append(bytearray(part) if copy else part)
        at += size
    if not n_shared:
        return from_wire(pickle.loads(meta, buffers=buffers))
    received = [fds.popleft() for _ in range(n_shared)]
    return from_wire(_FrameUnpickler(io.BytesIO(meta), buffers, received).load())


def read_frame_blocking(sock: socket.socket) -> Message | None:
    """Read exactly one frame from a blocking socket, with the descriptors it carries;
    None on a clean end of stream."""
    fds: deque[int] = deque()
    header = _recv_exactly(sock, HEADER_SIZE, fds)
    if header is None:
        return None
    shape = HEADER.unpack(header)
    meta_len, n_inline, n_shared = shape
    sizes = _recv_exactly(sock, 8 * n_inline, fds) if n_inline else b""
    if sizes is None:
        return None
    rest = meta_len + sum(struct.unpack(f"!{n_inline}Q", sizes))
    body = _recv_exactly(sock, rest, fds)
    if body is None or len(fds) < n_shared:
        for fd in fds:
            os.close(fd)
        return None
    return decode(memoryview(sizes + body), 0, shape, fds, copy=True)


def _recv_exactly(sock: socket.socket, n: int, fds: deque[int]) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk, ancdata, _, _ = sock.recvmsg(n - len(buf), ANC_SIZE)
        if ancdata:
            take_fds(ancdata, fds)
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def take_fds(ancdata: list[tuple[int, int, bytes]], into: deque[int]) -> None:
    """Append the descriptors received in ``ancdata`` (``recvmsg``'s) to ``into``."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
            into.extend(fds)
