"""Framing: pickled messages and their large buffers over one duplex Unix socket per worker.

A frame is::

    !IHH        meta_len, n_inline, n_shared
    !Q * n      the size of each inline buffer
    meta        a protocol-5 pickle of one :class:`~._messages.Message`, as a plain tuple
    buffers     the inline buffers' bytes, in order

Small messages pickle whole into ``meta``. Large payloads travel beside it, never copied into
the pickle (:func:`attach`):

- *inline* buffers (:class:`pickle.PickleBuffer`) are written straight from their memory with
  scatter-gather ``sendmsg`` and read straight into a buffer of their own on the other side,
  which the message then holds as a writable ``memoryview`` (no copy after the kernel's);
- *shared* buffers (:class:`SharedBuffer`, from ``SHARED_MIN`` bytes up) are copied once
  into an anonymous shared-memory file (Linux ``memfd``) whose descriptor rides on the frame
  (``SCM_RIGHTS``); the receiver maps it copy-on-write (private and writable; unmapped when
  the value goes) and closes the descriptor at once. Such a file has no name, so nothing
  can leak into ``/dev/shm``: the kernel frees it when its last descriptor and mapping go,
  however the processes holding them end (a crash included).

A frame may also hand descriptors to the peer (:class:`PassedFd`: the pipes and shared memory
of the multiprocessing objects in an initializer's arguments); they ride on the frame the
same way, and arrive as plain descriptors the receiver owns.

Frames queued during one event-loop iteration go out together (write coalescing), so a
worker's result and its next ``TaskStarted`` share a syscall.

:class:`Channel` is the one piece of I/O both actors share: it reads frames from a non-blocking
socket with ``loop.add_reader`` and writes with ``sendmsg``, falling back to ``add_writer``
when the kernel buffer is full. It owns its socket; nothing else reads or writes it.
"""

from __future__ import annotations

import array
import asyncio
import io
import os
import pickle
import select
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from ._messages import (
    ChunkFinished,
    Configure,
    Message,
    RunTask,
    TaskFinished,
    from_wire,
    to_wire,
)

__all__ = [
    "INLINE_MIN",
    "SHARED_MIN",
    "SHARED_PER_FRAME",
    "Channel",
    "PassedFd",
    "SharedBuffer",
    "attach",
    "blob_size",
    "attach_copy",
    "encode",
    "encode_frame",
    "read_frame_blocking",
    "shared_supported",
]

_MSG_CTRUNC = int(socket.MSG_CTRUNC)  # a plain int: IntFlag's & runs Python code per read
_HEADER = struct.Struct("!IHH")
_HEADER_SIZE = _HEADER.size
_SIZE = struct.Struct("!Q")
_RECV_SIZE = 1 << 18
_BIG = 1 << 16  # an incomplete frame this large is read into a buffer of its own
_MAX_FDS = 64  # descriptors per write (and per read: the receiver's ancillary room)
_ANC_SIZE = socket.CMSG_SPACE(_MAX_FDS * array.array("i").itemsize)
_IOV_MAX = 512  # buffers per sendmsg (Linux allows 1024)
MAX_META = (1 << 32) - 1

INLINE_MIN = 1 << 16
"""Buffers from this size travel beside the message pickle instead of inside it."""

SHARED_MIN = 1 << 20
"""Buffers from this size travel in shared memory (Linux), below it through the socket."""

_SHARED_LIVE_MAX = 256  # shared buffers a process may hold at once (one descriptor each)
SHARED_PER_FRAME = 32
"""Shared buffers one message may carry (their descriptors ride on one write); a payload's
further large buffers go through the socket."""
_CARRIERS = (RunTask, TaskFinished, ChunkFinished)  # may carry attached buffers


def shared_supported() -> bool:
    """True where buffers can travel in shared memory (anonymous ``memfd`` files, Linux)."""
    return hasattr(os, "memfd_create")


class SharedBuffer:
    """A copy of a buffer in an anonymous shared-memory file (``memfd``), sent as its
    descriptor. It belongs to whoever made it, who must :meth:`close` it (the supervisor
    keeps a task's until the task's record exists, for retries); a garbage-collected one
    closes itself. The file is freed by the kernel once every descriptor and mapping of it
    is gone."""

    __slots__ = ("_fd", "nbytes")

    _live = 0  # open SharedBuffers in this process (bounded by _SHARED_LIVE_MAX)
    _lock = threading.Lock()

    def __init__(self, data: Any) -> None:
        self._fd = -1  # first: __del__ runs even if what follows raises
        view = memoryview(data).cast("B")
        self.nbytes = view.nbytes
        fd = os.memfd_create("osiiso_mp", os.MFD_CLOEXEC)
        try:
            done = 0
            while done < self.nbytes:
                done += os.write(fd, view[done:])
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        with SharedBuffer._lock:
            SharedBuffer._live += 1

    @classmethod
    def room(cls) -> bool:
        """True while this process may open another shared buffer."""
        return cls._live < _SHARED_LIVE_MAX

    def fileno(self) -> int:
        """The descriptor of the file (valid until :meth:`close`)."""
        if self._fd < 0:
            raise ValueError("the shared buffer is closed")
        return self._fd

    def close(self) -> None:
        """Close this process's descriptor (idempotent)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
            with SharedBuffer._lock:
                SharedBuffer._live -= 1

    def __del__(self) -> None:
        self.close()

    def __reduce__(self) -> Any:
        raise TypeError("a SharedBuffer only travels inside a frame (see _wire.encode_frame)")


class PassedFd:
    """A descriptor to hand to the peer inside a frame. The frame sends a duplicate, so
    whoever made this keeps its own descriptor (and closes it when done); the peer receives
    a plain ``int`` descriptor of its own in this object's place."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> Any:
        raise TypeError("a PassedFd only travels inside a frame (see _wire.encode_frame)")


Blob = Any  # bytes, or what attach() returns, or (received) a memoryview


def attach(data: Any, shared: bool = True) -> Blob:
    """``data`` (bytes-like, not mutated later), ready to travel: in the pickle when small,
    beside it when large, in shared memory when very large (and ``shared`` and room left)."""
    size = memoryview(data).nbytes
    if size < INLINE_MIN:
        return data
    if shared and size >= SHARED_MIN and shared_supported() and SharedBuffer.room():
        try:
            return SharedBuffer(data)
        except OSError:  # out of descriptors or memory for the file: the socket will do
            pass
    return pickle.PickleBuffer(data)


def attach_copy(buf: pickle.PickleBuffer, shared: bool = True) -> Blob:
    """A snapshot of an out-of-band buffer from a payload's pickle (its owner may change it
    once we return): in shared memory when large enough (and ``shared``), else a private
    ``bytearray`` (``bytes`` cannot change: they travel as they are)."""
    raw = buf.raw()
    if type(raw.obj) is bytes:
        return attach(raw.obj, shared)
    if shared and raw.nbytes >= SHARED_MIN and shared_supported() and SharedBuffer.room():
        try:
            return SharedBuffer(raw)
        except OSError:
            pass
    return pickle.PickleBuffer(bytearray(raw))


def blob_size(blob: Blob) -> int:
    """The size in bytes of what ``blob`` carries."""
    if type(blob) is SharedBuffer:
        return blob.nbytes
    return memoryview(blob).nbytes


def release(blobs: Any) -> None:
    """Close the shared buffers among ``blobs`` (an iterable of blobs)."""
    for blob in blobs:
        if type(blob) is SharedBuffer:
            blob.close()


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
        return _read_shared(self._fds[pid])


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
    if meta.nbytes > MAX_META or len(inline) > 0xFFFF or len(fds) > _MAX_FDS:
        for fd in fds:
            os.close(fd)
        raise ValueError("message too large for one frame")
    views = [b.raw() for b in inline]
    head = _HEADER.pack(meta.nbytes, len(views), len(fds)) + b"".join(
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
    return _HEADER.pack(len(data), 0, 0) + data


def _decode(
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


def _read_shared(fd: int) -> Any:
    """A received shared buffer as private, writable memory; its descriptor is closed.

    Mapped copy-on-write where libc's ``mmap`` can be called directly (no copy: pages are
    read in as they are touched), else read into a ``bytearray`` (one copy). Python's own
    ``mmap`` is not used: it keeps a descriptor for as long as the mapping lives, so every
    large value a caller holds would hold a descriptor.
    """
    try:
        size = os.fstat(fd).st_size
        mapped = _map_private(fd, size)
        if mapped is not None:
            return mapped
        buf = bytearray(size)
        view = memoryview(buf)
        done = 0
        while done < size:
            n = os.preadv(fd, [view[done:]], done)
            if n <= 0:
                raise OSError(f"shared buffer ended at {done} of {size} bytes")
            done += n
        view.release()
        return buf
    finally:
        os.close(fd)


_libc: Any = None  # ctypes' libc with mmap/munmap typed, once loaded (False: unavailable)


def _map_private(fd: int, size: int) -> memoryview | None:
    """``size`` bytes of ``fd`` mapped private and writable, unmapped when the last view
    of them goes; None where libc cannot be called or the mapping fails."""
    global _libc
    if _libc is None:
        _libc = _load_libc()
    if _libc is False:
        return None
    import ctypes
    import weakref

    addr = _libc.mmap(None, size, 0x1 | 0x2, 0x02, fd, 0)  # PROT_READ|WRITE, MAP_PRIVATE
    if addr is None or addr == ctypes.c_void_p(-1).value:
        return None  # out of mappings (vm.max_map_count) or address space: copy instead
    region = (ctypes.c_char * size).from_address(addr)
    unmap = weakref.finalize(region, _libc.munmap, addr, size)
    unmap.atexit = False  # values may outlive the finalizers at exit: the kernel unmaps
    return memoryview(region).cast("B")


def _load_libc() -> Any:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_long,
        ]
        libc.munmap.restype = ctypes.c_int
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    except (OSError, AttributeError):
        return False
    return libc


def read_frame_blocking(sock: socket.socket) -> Message | None:
    """Read exactly one frame from a blocking socket, with the descriptors it carries;
    None on a clean end of stream."""
    fds: deque[int] = deque()
    header = _recv_exactly(sock, _HEADER_SIZE, fds)
    if header is None:
        return None
    shape = _HEADER.unpack(header)
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
    return _decode(memoryview(sizes + body), 0, shape, fds, copy=True)


def _recv_exactly(sock: socket.socket, n: int, fds: deque[int]) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk, ancdata, _, _ = sock.recvmsg(n - len(buf), _ANC_SIZE)
        if ancdata:
            _take_fds(ancdata, fds)
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _take_fds(ancdata: list[tuple[int, int, bytes]], into: deque[int]) -> None:
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
            into.extend(fds)


class _Segment:
    """Buffers to write in order, and descriptors to send with the first byte written.

    ``plain`` while it holds only whole small frames (``bytes``): those are joined and
    written with one ``send``, the common case; large buffers go out with scatter-gather.
    """

    __slots__ = ("bufs", "fds", "plain", "started")

    def __init__(self) -> None:
        self.bufs: list[Any] = []
        self.fds: list[int] = []
        self.plain = True
        self.started = False


class Channel:
    """Frames in and out of one non-blocking Unix socket, driven by an asyncio event loop.

    ``on_message`` is called for each frame received, in order; ``on_closed`` once, when the
    peer closes its end or the socket fails. Sends made during one loop iteration are
    coalesced into one write at the end of it; :meth:`flush` writes immediately.

    A peer that dies leaves what it sent in our receive queue. A write to it fails
    (``EPIPE``) while that queue may still be unread: a failed write only stops sending,
    and reading goes on to the end of file, so that every frame the peer sent before it
    died is delivered (a worker's last result, the start of the task that killed it). A
    peer that died with our frames unread also makes one read fail with ``ECONNRESET``;
    Linux reports it only once the queue is empty, but reading on to the end of file does
    not depend on that.
    """

    __slots__ = (
        "_big",
        "_big_got",
        "_big_shape",
        "_buf",
        "_closed",
        "_fd",
        "_fds_in",
        "_feeding",
        "_flush_scheduled",
        "_loop",
        "_on_closed",
        "_on_message",
        "_out",
        "_rbuf",
        "_rview",
        "_sock",
        "_write_failed",
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
        self._buf = bytearray()  # the start of an unfinished frame
        self._rbuf = bytearray(_RECV_SIZE)  # every read lands here first
        self._rview = memoryview(self._rbuf)
        self._feeding = False
        self._big: bytearray | None = None  # the large frame being read, whole
        self._big_got = 0
        self._big_shape = (0, 0, 0)  # its header: (meta_len, n_inline, n_shared)
        self._fds_in: deque[int] = deque()  # received descriptors, not yet claimed
        self._out: deque[_Segment] = deque()
        self._flush_scheduled = False
        self._writer_added = False
        self._write_failed = False  # the peer is gone: send nothing more, read what is left
        self._closed = False
        loop.add_reader(self._fd, self._on_readable)

    @property
    def closed(self) -> bool:
        """True once the channel is closed (by either side)."""
        return self._closed

    def send(self, msg: Message) -> None:
        """Queue ``msg``; it goes out at the end of this loop iteration (or on :meth:`flush`)."""
        if self._closed or self._write_failed:
            return
        parts, fds = encode_frame(msg)
        out = self._out
        seg = out[-1] if out else None
        if seg is None or seg.started or (fds and len(seg.fds) + len(fds) > _MAX_FDS):
            seg = _Segment()
            out.append(seg)
        seg.bufs.extend(parts)
        if len(parts) > 1:  # a frame with buffers beside its pickle
            seg.plain = False
            seg.fds.extend(fds)
        if not self._flush_scheduled and not self._writer_added:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write everything queued now, as far as the kernel takes it without blocking."""
        self._flush_scheduled = False
        if self._closed or self._writer_added:
            return  # the writer callback goes on once the kernel has room
        self._write()

    def flush_blocking(self) -> None:
        """Write everything queued before returning, waiting for room when the kernel has
        none. :meth:`flush` leaves what does not fit to the writer callback, which cannot
        run while sync code holds the loop: a worker uses this so that a task's start is
        out before the task runs (else a crash would be put down to the task before it),
        and its last results before it exits."""
        self._flush_scheduled = False
        poller: select.poll | None = None
        while self._out and not self._closed:
            self._write()
            if self._out and not self._closed:
                if poller is None:
                    poller = select.poll()
                    poller.register(self._fd, select.POLLOUT)
                poller.poll(1000)

    def _write(self) -> None:
        out = self._out
        sock = self._sock
        while out:
            seg = out[0]
            bufs = seg.bufs
            if seg.plain and len(bufs) > 1:  # small frames only: one buffer, one send
                bufs[:] = [b"".join(bufs)]
            anc = []
            if seg.fds and not seg.started:
                anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", seg.fds))]
            try:
                if len(bufs) == 1 and not anc:
                    sent = sock.send(bufs[0])
                else:
                    sent = sock.sendmsg(bufs[:_IOV_MAX], anc)
            except (BlockingIOError, InterruptedError):
                sent = -1
            except OSError:
                self._stop_writing()
                return
            if sent < 0:
                if not self._writer_added:
                    self._writer_added = True
                    self._loop.add_writer(self._fd, self._on_writable)
                return
            seg.started = True
            if anc:
                for fd in seg.fds:
                    os.close(fd)
                seg.fds.clear()
            done = 0  # whole buffers written
            for buf in bufs:
                size = buf.nbytes if isinstance(buf, memoryview) else len(buf)
                if sent < size:
                    break
                sent -= size
                done += 1
            del bufs[:done]
            if bufs:
                if sent:  # a partial write: keep the rest of the first buffer
                    bufs[0] = memoryview(bufs[0]).cast("B")[sent:]
                continue  # try again; EAGAIN arms the writer
            out.popleft()
        if self._writer_added:
            self._writer_added = False
            self._loop.remove_writer(self._fd)

    def _stop_writing(self) -> None:
        """Send nothing more: drop what is queued (closing the descriptors it carried) and
        stop waiting for room. A failed write does only this; reading goes on."""
        self._write_failed = True
        for seg in self._out:
            for fd in seg.fds:
                os.close(fd)
        self._out.clear()
        if self._writer_added:
            self._writer_added = False
            self._loop.remove_writer(self._fd)

    def _on_writable(self) -> None:
        if not self._closed:
            self._write()

    def _on_readable(self) -> None:
        self._read_once()

    def _read_once(self) -> bool:
        """One read, delivered; False when nothing more can be read now."""
        if self._feeding:  # called back from inside _feed: the outer call goes on
            return False
        big = self._big
        try:
            if big is not None:
                view = memoryview(big)[self._big_got :]
                n, ancdata, flags, _ = self._sock.recvmsg_into([view], _ANC_SIZE)
                view.release()
            else:  # into a buffer kept for the purpose: allocating one per read costs more
                n, ancdata, flags, _ = self._sock.recvmsg_into([self._rview], _ANC_SIZE)
        except (BlockingIOError, InterruptedError):
            return False
        except ConnectionResetError:
            return True  # the peer died: reported once, what it sent is still queued
        except OSError:
            n, ancdata, flags = 0, [], 0
        if ancdata:
            _take_fds(ancdata, self._fds_in)
        if flags & _MSG_CTRUNC:  # pragma: no cover - more descriptors than we allow
            self.close()
            return False
        if not n:
            self.close()
            return False
        if big is not None:
            self._big_got += n
            if self._big_got == len(big):
                self._deliver_big()
        else:
            self._feeding = True
            try:
                self._feed(n)
            finally:
                self._feeding = False
        return True

    def _deliver_big(self) -> None:
        big = self._big
        assert big is not None
        self._big = None
        msg = _decode(memoryview(big), _HEADER_SIZE, self._big_shape, self._fds_in, copy=False)
        self._on_message(msg)

    def drain(self) -> None:
        """Read and deliver everything the peer already sent (used once the peer is dead)."""
        while not self._closed and self._read_once():
            pass

    def _feed(self, n: int) -> None:
        """Deliver the complete frames among the ``n`` bytes just read into the receive
        buffer (after what was left over from earlier reads); keep the rest for later."""
        buf = self._buf
        if buf:
            buf += self._rview[:n]
            view = memoryview(buf)
            end = len(buf)
        else:  # parse in place: messages are unpickled (copied) out of it
            view = self._rview[:n]
            end = n
        pos = 0
        try:
            while end - pos >= _HEADER_SIZE:
                shape = _HEADER.unpack_from(view, pos)
                meta_len, n_inline, n_shared = shape
                body = pos + _HEADER_SIZE
                if not (n_inline or n_shared):  # the common case: nothing beside the pickle
                    stop = body + meta_len
                    if stop > end:
                        if meta_len + _HEADER_SIZE < _BIG:
                            break
                    else:
                        msg = from_wire(pickle.loads(view[body:stop]))
                        pos = stop
                        self._on_message(msg)
                        if self._closed:
                            return
                        continue
                if end - body < 8 * n_inline:
                    break
                total = _HEADER_SIZE + 8 * n_inline + meta_len
                if n_inline:
                    total += sum(struct.unpack_from(f"!{n_inline}Q", view, body))
                stop = pos + total
                if stop > end:
                    if total >= _BIG:  # read the rest straight into a buffer of its own
                        big = bytearray(total)
                        big[: end - pos] = view[pos:end]
                        self._big = big
                        self._big_got = end - pos
                        self._big_shape = shape
                        pos = end
                    break
                msg = _decode(view, body, shape, self._fds_in, copy=True)
                pos = stop
                self._on_message(msg)
                if self._closed:
                    return
        finally:
            if not self._closed:
                if view.obj is buf:
                    view.release()
                    if pos:
                        del buf[:pos]
                elif pos < end:  # keep the start of an unfinished frame
                    buf += view[pos:end]
            view.release()

    def close(self) -> None:
        """Stop reading and writing, close the socket, and call ``on_closed`` (once)."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._fd)
        self._stop_writing()
        self._sock.close()
        self._buf = bytearray()
        self._big = None
        while self._fds_in:
            os.close(self._fds_in.popleft())
        self._on_closed()
