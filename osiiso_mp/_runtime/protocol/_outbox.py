"""What a channel writes: queued segments of frames, and one frame written whole from
another thread (see ``Channel.send_threadsafe``)."""

from __future__ import annotations

import select
import socket
from typing import Any

__all__ = ["Segment", "send_all"]


class Segment:
    """Buffers to write in order, and descriptors to send with the first byte written.

    ``plain`` while it holds only whole small frames (``bytes``): those are joined and
    written with one ``send``, the common case; large buffers go out with scatter-gather.
    ``started`` once its first byte is on the wire: nothing may be written in between.
    """

    __slots__ = ("bufs", "fds", "plain", "started")

    def __init__(self) -> None:
        self.bufs: list[Any] = []
        self.fds: list[int] = []
        self.plain = True
        self.started = False


def send_all(sock: socket.socket, data: bytes) -> bool:
    """Write all of ``data`` on the non-blocking ``sock``, waiting for room as long as it
    takes; False if the socket failed (what was written of it is then lost)."""
    frame = memoryview(data)
    poller: select.poll | None = None
    while frame:
        try:
            sent = sock.send(frame)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            return False
        frame = frame[sent:]
        if frame and not sent:
            if poller is None:
                poller = select.poll()
                poller.register(sock.fileno(), select.POLLOUT)
            poller.poll(100)
    return True
