"""The unit tests start no process: each fails if it (or a thread it started) did.

An audit hook (``sys.addaudithook``: installed once, it cannot be removed) records the
process-creation events the interpreter raises while a unit test runs: ``fork``,
``forkpty``, ``posix_spawn``, the ``spawn*`` and ``exec*`` families, ``system`` and
``subprocess.Popen`` (multiprocessing and the fork server's start go through these too).
Tests that need a process belong in ``tests/integration``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

_PROCESS_EVENTS = frozenset(
    {
        "os.fork",
        "os.forkpty",
        "os.posix_spawn",
        "os.spawn",
        "os.exec",
        "os.system",
        "subprocess.Popen",
    }
)


class _Watch:
    """What the hook saw while ``active`` (read by the hook on every audit event, in every
    thread: the check must stay this cheap)."""

    active = False
    seen: list[str] = []  # noqa: RUF012 - one list, reset by the fixture
    installed = False


def _on_audit_event(event: str, args: tuple[Any, ...]) -> None:
    if _Watch.active and event in _PROCESS_EVENTS:
        what = repr(args[0]) if args else ""
        if len(what) > 200:
            what = what[:197] + "..."
        _Watch.seen.append(f"{event}({what}) in thread {threading.current_thread().name!r}")


@pytest.fixture(autouse=True)
def starts_no_process() -> Iterator[None]:
    """Fail the test if a process was started (or exec'd) while it ran."""
    if not _Watch.installed:
        sys.addaudithook(_on_audit_event)
        _Watch.installed = True
    _Watch.seen = []
    _Watch.active = True
    try:
        yield
    finally:
        _Watch.active = False
    seen, _Watch.seen = _Watch.seen, []
    if seen:
        pytest.fail(
            "a unit test must start no process (move it to tests/integration); it did: "
            + "; ".join(seen),
            pytrace=False,
        )
