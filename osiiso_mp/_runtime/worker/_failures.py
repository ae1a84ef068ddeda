"""The worker's own failures (never a task's): the report that ends a task, and the fatal exit.

An exception in the worker's own code while it handles a task ends that task with an
:class:`~osiiso_mp.InternalError` naming the exception and the stage of the task's path it
came from (:func:`internal_error_info`, used by :class:`~._tasks.TaskRunner`), and the
worker carries on. Should even that report fail, or the failure lie outside any one task
(taking in a message, scheduling, the event loop itself), the worker prints the traceback
to its stderr and exits with status 70, ``INTERNAL_ERROR_EXIT`` (:func:`fatal`); the
supervisor then treats it as a crash and replaces it. No task waits for ever on a worker
that broke.
"""

from __future__ import annotations

import os
import pickle
import traceback
from typing import NoReturn

from ..._errors import INTERNAL_ERROR_EXIT, InternalError
from ..protocol._messages import ErrorInfo
from ..protocol._serialize import type_name

__all__ = ["fatal", "internal_error_info"]


def internal_error_info(exc: BaseException, stage: str) -> bytes:
    """The pickled :class:`ErrorInfo` of the :class:`InternalError` that ``exc``, raised by
    the worker's own code in ``stage`` of a task's path, ends the task with. Built from
    nothing the failure may have broken (no meter, no ``error_info``)."""
    err = InternalError(stage, type_name(exc), _describe(exc))
    text = "".join(traceback.format_exception(exc))
    info = ErrorInfo(type_name(err), str(err), text, pickle.dumps(err, protocol=5))
    return pickle.dumps(info, protocol=5)


def _describe(exc: BaseException) -> str:
    try:
        return str(exc)
    except BaseException:
        return f"<unprintable {type(exc).__name__}>"


def fatal(exc: BaseException, where: str) -> NoReturn:
    """The worker's own machinery failed outside any one task, or could not report a task's
    failure: print why to stderr and exit with ``INTERNAL_ERROR_EXIT``. The supervisor sees
    a crash: the running tasks fail (or are retried), those sent ahead run elsewhere."""
    try:
        text = "".join(traceback.format_exception(exc))
        os.write(2, f"osiiso_mp worker {os.getpid()}: internal error {where}:\n{text}".encode())
    except BaseException:
        pass
    os._exit(INTERNAL_ERROR_EXIT)
