"""Large buffers beside a message's pickle: inline and shared-memory blobs, passed descriptors.

A payload's large buffers never go into the message pickle; :func:`attach` (and
:func:`attach_copy`, for a buffer its owner may change) makes each one ready to travel
beside it (see :mod:`._framing` for how a frame carries them):

- *inline* buffers (:class:`pickle.PickleBuffer`, from ``INLINE_MIN`` bytes up) are written
  straight from their memory with scatter-gather ``sendmsg`` and read straight into a buffer
  of their own on the other side, which the message then holds as a writable ``memoryview``
  (no copy after the kernel's);
- *shared* buffers (:class:`SharedBuffer`, from ``SHARED_MIN`` bytes up) are copied once
  into an anonymous shared-memory file (Linux ``memfd``) whose descriptor rides on the frame
  (``SCM_RIGHTS``); the receiver maps it copy-on-write (private and writable; unmapped when
  the value goes) and closes the descriptor at once (:func:`read_shared`). Such a file has
  no name, so nothing can leak into ``/dev/shm``: the kernel frees it when its last
  descriptor and mapping go, however the processes holding them end (a crash included).

A frame may also hand descriptors to the peer (:class:`PassedFd`: the pipes and shared memory
of the multiprocessing objects in an initializer's arguments); they ride on the frame the
same way, and arrive as plain descriptors the receiver owns.
"""

from __future__ import annotations

import os
import pickle
import threading
from typing import Any

__all__ = [
    "INLINE_MIN",
    "SHARED_MIN",
    "SHARED_PER_FRAME",
    "Blob",
    "PassedFd",
    "SharedBuffer",
    "attach",
    "attach_copy",
    "blob_size",
    "read_shared",
    "release",
    "shared_supported",
]

INLINE_MIN = 1 << 16
"""Buffers from this size travel beside the message pickle instead of inside it."""

SHARED_MIN = 1 << 20
"""Buffers from this size travel in shared memory (Linux), below it through the socket."""

_SHARED_LIVE_MAX = 256  # shared buffers a process may hold at once (one descriptor each)
SHARED_PER_FRAME = 32
"""Shared buffers one message may carry (their descriptors ride on one write); a payload's
further large buffers go through the socket."""


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
        raise TypeError("a SharedBuffer only travels inside a frame (see _framing.encode_frame)")


class PassedFd:
    """A descriptor to hand to the peer inside a frame. The frame sends a duplicate, so
    whoever made this keeps its own descriptor (and closes it when done); the peer receives
    a plain ``int`` descriptor of its own in this object's place."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> Any:
        raise TypeError("a PassedFd only travels inside a frame (see _framing.encode_frame)")


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


def read_shared(fd: int) -> Any:
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
