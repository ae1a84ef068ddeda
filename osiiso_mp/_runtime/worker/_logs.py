"""The worker's logging: its log records go to the supervisor, tagged with the running task.

:class:`ForwardingHandler`, on the worker's root logger at the configured level, sends each
record as a :class:`LogRecorded` message over the worker's channel, with the seq of the
task that logged it (:data:`~._tasks.current_seq`, None outside any task) and, inside a map
chunk, the index of the item running (:data:`~._tasks.chunk_item`). The supervisor hands it
to the user's logging there (see ``forward_log`` in :mod:`..supervisor._setup`).

The channel belongs to the worker's event loop: a record logged on another thread (one a
task started, or a library's) is queued on it under its lock
(:meth:`~..protocol._channel.Channel.send_from_thread`), and the loop, woken with
``call_soon_threadsafe``, writes it. So it keeps its place: the records a sync task's
threads log go out ahead of the task's result (the loop writes once the task returns),
and a worker's last write before it exits takes them too. Such a thread does not inherit
the task's context, so its records carry no seq unless the thread was started with the
task's context (``asyncio.to_thread`` copies it).
"""

from __future__ import annotations

import logging
import threading

from ..protocol._channel import Channel
from ..protocol._messages import LogRecorded
from ._tasks import chunk_item, current_seq

__all__ = ["ForwardingHandler"]


class ForwardingHandler(logging.Handler):
    """Sends the worker's log records to the supervisor, tagged with the running task."""

    def __init__(self, channel: Channel, level: int) -> None:
        """Made on the thread that runs the loop ``channel`` belongs to."""
        super().__init__(level)
        self._channel = channel
        channel.allow_threadsafe_sends()  # (on the loop's thread, as it asks)
        self._loop_thread = threading.get_ident()
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            exc_text = record.exc_text
            if record.exc_info and not exc_text:
                exc_text = self._formatter.formatException(record.exc_info)
            seq = current_seq.get()
            msg = LogRecorded(
                seq,
                record.name,
                record.levelno,
                record.getMessage(),
                record.created,
                record.pathname,
                record.lineno,
                record.funcName,
                exc_text,
                None if seq is None else chunk_item.index,
            )
        except Exception:  # a broken record must not fail the task that logged it
            self.handleError(record)
            return
        if threading.get_ident() == self._loop_thread:
            self._channel.send(msg)
        else:
            self._channel.send_from_thread(msg)
