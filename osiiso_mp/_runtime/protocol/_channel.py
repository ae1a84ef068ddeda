"""The channel: frames in and out of one worker's socket, driven by an asyncio event loop.

:class:`Channel` is the one piece of I/O both actors share: it reads frames
(:mod:`._framing`) from a non-blocking socket with ``loop.add_reader`` and writes with
``sendmsg``, falling back to ``add_writer`` when the kernel buffer is full. It owns its
socket; nothing else reads or writes it.

Frames queued during one event-loop iteration go out together (write coalescing), so a
worker's result and its next ``TaskStarted`` share a syscall. A large frame is read straight
into a buffer of its own, whose inline buffers the message then holds without a copy.
"""

from __future__ import annotations

import array
import asyncio
import os
import pickle
import select
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from ._framing import (
    ANC_SIZE,
    HEADER,
    HEADER_SIZE,
    MAX_FDS,
    decode,
    encode,
    encode_frame,
    take_fds,
)
from ._messages import Message, from_wire
from ._outbox import Segment, send_all

__all__ = ["Channel"]

_MSG_CTRUNC = int(socket.MSG_CTRUNC)  # a plain int: IntFlag's & runs Python code per read
_RECV_SIZE = 1 << 18
_BIG = 1 << 16  # an incomplete frame this large is read into a buffer of its own
_IOV_MAX = 512  # buffers per sendmsg (Linux allows 1024)


class Channel:
    """Frames in and out of one non-blocking Unix socket, driven by an asyncio event loop.

    ``on_message`` is called for each frame received, in order; ``on_closed`` once, when the
    peer closes its end or the socket fails; ``after_read`` (if given) after each read the
    loop calls for, once its frames are delivered, while the channel is open. Sends made
    during one loop iteration are coalesced into one write at the end of it; :meth:`flush`
    writes immediately.

    A peer that dies leaves what it sent in our receive queue. A write to it fails
    (``EPIPE``) while that queue may still be unread: a failed write only stops sending,
    and reading goes on to the end of file, so that every frame the peer sent before it
    died is delivered (a worker's last result, the start of the task that killed it). A
    peer that died with our frames unread also makes one read fail with ``ECONNRESET``;
    Linux reports it only once the queue is empty, but reading on to the end of file does
    not depend on that.
    """

    __slots__ = (
        "_after_read",
        "_big",
        "_big_got",
        "_big_shape",
        "_buf",
        "_closed",
        "_fd",
        "_fds_in",
        "_feeding",
        "_flush_owned",
        "_flush_scheduled",
        "_loop",
        "_on_closed",
        "_on_message",
        "_out",
        "_rbuf",
        "_rview",
        "_sock",
        "_wlock",
        "_write_failed",
        "_writer_added",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        on_message: Callable[[Message], None],
        on_closed: Callable[[], None],
        *,
        after_read: Callable[[], None] | None = None,
    ) -> None:
        sock.setblocking(False)
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._on_message = on_message
        self._on_closed = on_closed
        self._after_read = after_read
        self._buf = bytearray()  # the start of an unfinished frame
        self._rbuf = bytearray(_RECV_SIZE)  # every read lands here first
        self._rview = memoryview(self._rbuf)
        self._feeding = False
        self._big: bytearray | None = None  # the large frame being read, whole
        self._big_got = 0
        self._big_shape = (0, 0, 0)  # its header: (meta_len, n_inline, n_shared)
        self._fds_in: deque[int] = deque()  # received descriptors, not yet claimed
        self._out: deque[Segment] = deque()
        self._flush_scheduled = False
        self._flush_owned = False  # the owner flushes before this turn ends (will_flush)
        self._writer_added = False
        self._write_failed = False  # the peer is gone: send nothing more, read what is left
        self._closed = False
        self._wlock: threading.Lock | None = None  # see send_threadsafe
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
        self._queue(parts, fds)

    def send_frame(self, frame: bytes) -> None:
        """Queue one whole frame without buffers or descriptors, already encoded (see
        :func:`~._framing.finished_frame`); as :meth:`send` otherwise."""
        if self._closed or self._write_failed:
            return
        self._queue((frame,), ())

    def send_from_thread(self, msg: Message) -> None:
        """From another thread: queue ``msg`` in order with what the loop's thread queues,
        and have the loop flush it. A sync task holding the loop's thread delays the flush
        (the frame goes out ahead of the task's result, queued after it), and the last
        flush of a worker that exits takes it too. Needs :meth:`allow_threadsafe_sends`
        first (the loop's writes, which empty the queue, then take the lock)."""
        lock = self._wlock
        assert lock is not None, "allow_threadsafe_sends() first"
        parts, fds = encode_frame(msg)
        with lock:
            if self._closed or self._write_failed:
                return
            self._append(parts, fds)
        try:
            self._loop.call_soon_threadsafe(self._flush_queued)
        except RuntimeError:  # the loop is closed: nobody will write it any more
            pass

    def _flush_queued(self) -> None:
        """(Loop's thread.) Flush what another thread queued, unless a flush is coming."""
        if not (self._flush_scheduled or self._flush_owned):
            self.flush()

    def _queue(self, parts: Sequence[Any], fds: Sequence[int]) -> None:
        """Append one frame's ``parts`` (and the descriptors it passes) to the last segment
        not yet on the wire, and make sure a flush comes."""
        self._append(parts, fds)
        if not (self._flush_scheduled or self._flush_owned or self._writer_added):
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def _append(self, parts: Sequence[Any], fds: Sequence[int]) -> None:
        """Append one frame's ``parts`` (and its descriptors) to the last segment not yet
        on the wire. (Each frame's parts go in with one ``extend``: another thread's frame
        appended meanwhile lands before or after it, never inside it.)"""
        out = self._out
        seg = out[-1] if out else None
        if seg is None or seg.started or (fds and len(seg.fds) + len(fds) > MAX_FDS):
            seg = Segment()
            out.append(seg)
        seg.bufs.extend(parts)
        if len(parts) > 1:  # a frame with buffers beside its pickle
            seg.plain = False
            seg.fds.extend(fds)

    def will_flush(self) -> None:
        """Promise a :meth:`flush` later in this same callback: until it, sends schedule no
        flush of their own (which would cost the loop a turn with nothing left to write).
        Only :meth:`flush` ends the promise (:meth:`flush_blocking` leaves it standing); the
        caller must make sure it comes, else what is sent meanwhile waits for a later
        flush."""
        self._flush_owned = True

    def flush(self) -> None:
        """Write everything queued now, as far as the kernel takes it without blocking."""
        self._flush_scheduled = False
        self._flush_owned = False
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

    def allow_threadsafe_sends(self) -> None:
        """Let another thread :meth:`send_threadsafe` from now on (call on the loop's
        thread: the loop's writes then take a lock)."""
        if self._wlock is None:
            self._wlock = threading.Lock()

    def send_threadsafe(self, msg: Message) -> bool:
        """From another thread: write ``msg``, a small message without buffers, now, even
        while the loop's thread is held (by a sync task). False when it cannot go now: the
        channel is closed, or the loop's thread has part of a frame on the wire (try
        later). Needs :meth:`allow_threadsafe_sends` first."""
        lock = self._wlock
        assert lock is not None, "allow_threadsafe_sends() first"
        frame = encode(msg)
        with lock:
            out = self._out
            if self._closed or self._write_failed or (out and out[0].started):
                return False
            # (a failed write: the loop's next one finds the socket failed too)
            return send_all(self._sock, frame)

    def direct_lock(self) -> threading.Lock:
        """The lock under which another thread may :meth:`write_direct` (made on first
        use, as :meth:`allow_threadsafe_sends` makes it: from then on the loop's writes
        take it too). Call it first on the loop's thread."""
        self.allow_threadsafe_sends()
        assert self._wlock is not None
        return self._wlock

    def direct_ready(self) -> bool:
        """Whether :meth:`write_direct` may write now: the channel is open and has nothing
        queued (call with :meth:`direct_lock` held, so that it stays so)."""
        return not (self._closed or self._write_failed or self._out)

    def write_direct(self, frame: bytes) -> bool:
        """From any thread, with :meth:`direct_lock` held and :meth:`direct_ready` found
        true: write ``frame`` whole, now (waiting for room as long as it takes). False if
        the socket failed: the loop's next read or write finds it failed too."""
        return send_all(self._sock, frame)

    def _write(self) -> None:
        lock = self._wlock
        if lock is None:
            self._write_unlocked()
            return
        with lock:
            self._write_unlocked()

    def _write_unlocked(self) -> None:
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
        if self._after_read is not None and not self._closed:
            self._after_read()

    def _read_once(self) -> bool:
        """One read, delivered; False when nothing more can be read now."""
        if self._feeding:  # called back from inside _feed: the outer call goes on
            return False
        big = self._big
        try:
            if big is not None:
                view = memoryview(big)[self._big_got :]
                n, ancdata, flags, _ = self._sock.recvmsg_into([view], ANC_SIZE)
                view.release()
            else:  # into a buffer kept for the purpose: allocating one per read costs more
                n, ancdata, flags, _ = self._sock.recvmsg_into([self._rview], ANC_SIZE)
        except (BlockingIOError, InterruptedError):
            return False
        except ConnectionResetError:
            return True  # the peer died: reported once, what it sent is still queued
        except OSError:
            n, ancdata, flags = 0, [], 0
        if ancdata:
            take_fds(ancdata, self._fds_in)
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
        msg = decode(memoryview(big), HEADER_SIZE, self._big_shape, self._fds_in, copy=False)
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
            while end - pos >= HEADER_SIZE:
                shape = HEADER.unpack_from(view, pos)
                meta_len, n_inline, n_shared = shape
                body = pos + HEADER_SIZE
                if not (n_inline or n_shared):  # the common case: nothing beside the pickle
                    stop = body + meta_len
                    if stop > end:
                        if meta_len + HEADER_SIZE < _BIG:
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
                total = HEADER_SIZE + 8 * n_inline + meta_len
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
                msg = decode(view, body, shape, self._fds_in, copy=True)
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
        lock = self._wlock
        if lock is None:
            self._sock.close()
        else:
            with lock:  # not under a send_threadsafe
                self._sock.close()
        self._buf = bytearray()
        self._big = None
        while self._fds_in:
            os.close(self._fds_in.popleft())
        self._on_closed()
