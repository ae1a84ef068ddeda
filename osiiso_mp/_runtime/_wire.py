"""Framing: length-prefixed pickled messages over one duplex socket per worker.

A frame is a 4-byte big-endian length followed by that many bytes of a protocol-5 pickle of
one :class:`~._messages.Message`. Frames queued during one event-loop iteration go out in one
``send`` (write coalescing), so a worker's result and its next ``TaskStarted`` share a syscall.

:class:`Channel` is the one piece of I/O both actors share: it reads frames from a non-blocking
socket with ``loop.add_reader`` and writes with ``send``, falling back to ``add_writer`` when
the kernel buffer is full. It owns its socket; nothing else reads or writes it.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct
from collections.abc import Callable

from ._messages import Message

__all__ = ["Channel", "encode", "read_frame_blocking"]

_HEADER = struct.Struct("!I")
_HEADER_SIZE = _HEADER.size
_RECV_SIZE = 1 << 18
MAX_FRAME = (1 << 32) - 1


def encode(msg: Message) -> bytes:
    """One frame holding ``msg``."""
    data = pickle.dumps(msg, protocol=5)
    if len(data) > MAX_FRAME:
        raise ValueError(f"message of {len(data)} bytes exceeds the 4 GiB frame limit")
    return _HEADER.pack(len(data)) + data


def read_frame_blocking(sock: socket.socket) -> Message | None:
    """Read exactly one frame from a blocking socket; None on a clean end of stream."""
    header = _recv_exactly(sock, _HEADER_SIZE)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    body = _recv_exactly(sock, size)
    if body is None:
        return None
    msg: Message = pickle.loads(body)
    return msg


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


class Channel:
    """Frames in and out of one non-blocking socket, driven by an asyncio event loop.

    ``on_message`` is called for each frame received, in order; ``on_closed`` once, when the
    peer closes its end or the socket fails. Sends made during one loop iteration are
    coalesced into one write at the end of it; :meth:`flush` writes immediately.
    """

    __slots__ = (
        "_buf",
        "_closed",
        "_fd",
        "_flush_scheduled",
        "_loop",
        "_on_closed",
        "_on_message",
        "_out",
        "_pending",
        "_sock",
        "_writer_added",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        on_message: Callable[[Message], None],
        on_closed: Callable[[], None],
    ) -> None:
        sock.setblocking(False)
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._on_message = on_message
        self._on_closed = on_closed
        self._buf = bytearray()
        self._out: list[bytes] = []
        self._pending = memoryview(b"")
        self._flush_scheduled = False
        self._writer_added = False
        self._closed = False
        loop.add_reader(self._fd, self._on_readable)

    @property
    def closed(self) -> bool:
        """True once the channel is closed (by either side)."""
        return self._closed

    def send(self, msg: Message) -> None:
        """Queue ``msg``; it goes out at the end of this loop iteration (or on :meth:`flush`)."""
        if self._closed:
            return
        self._out.append(encode(msg))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def send_frame(self, frame: bytes) -> None:
        """Queue an already encoded frame (see :func:`encode`)."""
        if self._closed:
            return
        self._out.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write everything queued now, as far as the kernel takes it without blocking."""
        self._flush_scheduled = False
        if self._closed or not self._out:
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        if self._pending:
            self._pending = memoryview(bytes(self._pending) + data)
            return
        self._write(memoryview(data))

    def _write(self, view: memoryview) -> None:
        try:
            sent = self._sock.send(view)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.close()
            return
        if sent < len(view):
            self._pending = view[sent:]
            if not self._writer_added:
                self._writer_added = True
                self._loop.add_writer(self._fd, self._on_writable)

    def _on_writable(self) -> None:
        view = self._pending
        self._pending = memoryview(b"")
        self._loop.remove_writer(self._fd)
        self._writer_added = False
        if view:
            self._write(view)

    def _on_readable(self) -> None:
        self._read_once()

    def _read_once(self) -> bool:
        """One ``recv``, delivered; False when nothing more can be read now."""
        try:
            data = self._sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            data = b""
        if not data:
            self.close()
            return False
        self._feed(data)
        return True

    def drain(self) -> None:
        """Read and deliver everything the peer already sent (used once the peer is dead)."""
        while not self._closed and self._read_once():
            pass

    def _feed(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        end = len(buf)
        view = memoryview(buf)
        try:
            while end - pos >= _HEADER_SIZE:
                (size,) = _HEADER.unpack_from(view, pos)
                stop = pos + _HEADER_SIZE + size
                if stop > end:
                    break
                msg = pickle.loads(view[pos + _HEADER_SIZE : stop])
                pos = stop
                self._on_message(msg)
                if self._closed:
                    return
        finally:
            view.release()
            if pos and not self._closed:
                del buf[:pos]

    def close(self) -> None:
        """Stop reading and writing, close the socket, and call ``on_closed`` (once)."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._fd)
        if self._writer_added:
            self._loop.remove_writer(self._fd)
            self._writer_added = False
        self._sock.close()
        self._buf = bytearray()
        self._out.clear()
        self._on_closed()
