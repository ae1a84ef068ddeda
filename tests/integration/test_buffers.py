"""Large arguments and results: out-of-band buffers and shared memory, with real workers.

Sizes are chosen around the thresholds of :mod:`osiiso_mp._runtime.protocol._buffers`: below
``INLINE_MIN`` a buffer is pickled in band; from it, it travels beside the pickle through
the socket; from ``SHARED_MIN``, in an anonymous shared-memory file (memfd). Each path must
keep pickle's semantics: the task sees a private, writable snapshot taken at submit time,
and the caller gets a private, writable result.
"""

from __future__ import annotations

import gc
import os
import signal
import time
import weakref
from typing import Any

import numpy as np
import pytest

from osiiso_mp import Executor, WorkerCrashedError
from osiiso_mp._runtime.protocol._buffers import INLINE_MIN, SHARED_MIN

pytestmark = pytest.mark.timeout(60)

SIZES = {
    "in band": 1 << 10,
    "inline": INLINE_MIN * 2,
    "shared": SHARED_MIN * 8,
}


def _memfd_descriptors() -> list[str]:
    """This process's open descriptors of osiiso_mp's shared-memory files."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if "memfd:osiiso_mp" in target:
            found.append(f"fd {fd}")
    return found


def _memfd_mappings() -> list[str]:
    """This process's mappings of osiiso_mp's shared-memory files (received values)."""
    with open("/proc/self/maps") as maps:
        return [line.strip() for line in maps if "memfd:osiiso_mp" in line]


def _memfds() -> list[str]:
    """Every descriptor and mapping of osiiso_mp's shared-memory files in this process."""
    return _memfd_descriptors() + _memfd_mappings()


def _dev_shm() -> set[str]:
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


def _double_in_place(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    a *= 2  # the task's copy is writable, and private
    return a


def _checksum(a: np.ndarray[Any, Any]) -> float:
    return float(a.sum())


def _ones(n: int) -> np.ndarray[Any, Any]:
    return np.ones(n, dtype=np.uint8)


def _length(data: bytes) -> tuple[str, int, int]:
    return type(data).__name__, len(data), data[-1]


def _make(n: int) -> bytes:
    return bytes(range(256)) * (n // 256)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _exit_on_first(a: np.ndarray[Any, Any], marker: str) -> float:
    if not os.path.exists(marker):
        with open(marker, "w"):
            pass
        os._exit(7)  # the worker dies with the buffer mapped
    return float(a.sum())


def _die(a: np.ndarray[Any, Any]) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("path", list(SIZES))
def test_array_argument_and_result_round_trip(path: str, launch: dict[str, Any]) -> None:
    n = SIZES[path]
    a = np.arange(n, dtype=np.uint8)
    with Executor(procs=1, **launch) as ex:
        out = ex.submit(_double_in_place, a).result(timeout=30)
    np.testing.assert_array_equal(a, np.arange(n, dtype=np.uint8))  # ours is untouched
    np.testing.assert_array_equal(out, np.arange(n, dtype=np.uint8) * 2)
    assert out.flags.writeable
    out[0] = 9  # the result is ours to change
    assert out[0] == 9


@pytest.mark.parametrize("path", ["inline", "shared"])
def test_argument_is_a_snapshot_taken_at_submit(path: str) -> None:
    n = SIZES[path]
    a = np.zeros(n, dtype=np.uint8)
    with Executor(procs=1) as ex:
        blocker = ex.submit(_sleep, 0.3)  # the next task waits in the queue meanwhile
        fut = ex.submit(_checksum, a)
        a[:] = 1  # changed after submit, before the task runs
        assert fut.result(timeout=30) == 0.0
        blocker.result(timeout=30)


@pytest.mark.parametrize("path", list(SIZES))
def test_large_bytes_arguments_and_results_stay_bytes(transport: str, path: str) -> None:
    n = SIZES[path]
    data = _make(n)
    with Executor(procs=2, transport=transport) as ex:
        assert ex.submit(_length, data).result(timeout=30) == ("bytes", n, 255)
        back = ex.submit(_make, n).result(timeout=30)
    assert type(back) is bytes
    assert back == data


def test_many_shared_buffers_in_flight_beyond_the_descriptor_budget(transport: str) -> None:
    # more tasks with shared-memory arguments than the parent keeps descriptors for:
    # the rest travel through the socket; every value arrives
    n = SHARED_MIN
    arrays = [np.full(n, i % 251, dtype=np.uint8) for i in range(300)]
    with Executor(procs=2, transport=transport) as ex:
        futs = [ex.submit(_checksum, a) for a in arrays]
        got = [f.result(timeout=60) for f in futs]
    assert got == [float((i % 251) * n) for i in range(300)]
    gc.collect()
    assert _memfds() == []


def _sums(*arrays: np.ndarray[Any, Any]) -> list[int]:
    return [int(a.sum()) for a in arrays]


def _copies(n: int, a: np.ndarray[Any, Any]) -> list[np.ndarray[Any, Any]]:
    return [a + i for i in range(n)]


def test_more_large_buffers_in_one_task_than_one_frame_shares(transport: str) -> None:
    # 70 arrays of 1 MiB each way, more descriptors than one write may carry: past
    # SHARED_PER_FRAME, the rest travel by the socket
    arrays = [np.full(SHARED_MIN, i, dtype=np.uint8) for i in range(70)]
    with Executor(procs=1, transport=transport) as ex:
        assert ex.submit(_sums, *arrays).result(timeout=60) == [i * SHARED_MIN for i in range(70)]
        back = ex.submit(_copies, 70, arrays[1]).result(timeout=60)
    assert [int(a[0]) for a in back] == [(1 + i) % 256 for i in range(70)]


def test_worker_crash_with_shared_buffer_in_flight_is_retried_and_leaks_nothing(
    tmp_path: Any,
) -> None:
    shm_before = _dev_shm()
    a = np.full(SIZES["shared"], 3, dtype=np.uint8)
    marker = str(tmp_path / "crashed-once")
    with Executor(procs=1) as ex:
        fut = ex.options(retries=1).submit(_exit_on_first, a, marker)
        assert fut.result(timeout=30) == 3.0 * a.size  # the retry got the same buffer
        record = fut.task_result(timeout=30)
        assert record is not None
        assert [t.outcome for t in record.attempt_log] == ["crashed", "succeeded"]
        assert record.attempt_log[0].exit_code == 7
    del fut, record
    gc.collect()
    assert _memfds() == []  # the parent freed its shared file with the task's record
    assert _dev_shm() == shm_before  # memfd files have no name: nothing can be left there


def test_worker_killed_while_mapping_a_shared_buffer_leaks_nothing() -> None:
    shm_before = _dev_shm()
    a = np.ones(SIZES["shared"], dtype=np.uint8)
    with Executor(procs=2) as ex:
        futs = [ex.submit(_die, a) for _ in range(4)]
        for fut in futs:
            with pytest.raises(WorkerCrashedError):
                fut.result(timeout=30)
        assert ex.submit(_checksum, a).result(timeout=30) == float(a.size)  # pool recovered
    del futs
    gc.collect()
    assert _memfds() == []
    assert _dev_shm() == shm_before


def test_large_results_held_by_the_caller_hold_no_descriptor() -> None:
    # a caller may keep thousands of large results: none of them may pin a descriptor
    # (each is a private mapping, unmapped when the value goes)
    with Executor(procs=2, result_ttl=0) as ex:
        held = [f.result(timeout=30) for f in [ex.submit(_ones, SHARED_MIN) for _ in range(40)]]
        assert _memfd_descriptors() == []
        ex.run()
    assert [int(a.sum()) for a in held] == [SHARED_MIN] * 40
    assert all(a.flags.writeable for a in held)
    held[0][:] = 7  # copy-on-write: private to us
    assert int(held[0].sum()) == 7 * SHARED_MIN
    del held, ex
    gc.collect()
    assert _memfds() == []  # every mapping went with its value


def _shrink_frames() -> None:
    """Initializer: this worker's frames may hold only small pickles (a limit lowered so
    that the over-the-limit path can be exercised without 4 GiB of data)."""
    from osiiso_mp._runtime.protocol import _framing

    _framing.MAX_META = 2_000


def _many_small(n: int) -> list[int]:
    return list(range(n))


def test_a_message_beyond_the_frame_limits_fails_its_task_instead_of_hanging(
    transport: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from osiiso_mp import SerializationError
    from osiiso_mp._runtime.protocol import _framing

    with Executor(procs=1, initializer=_shrink_frames, transport=transport) as ex:
        # a result over the worker's limit: the task fails, the worker carries on
        with pytest.raises(SerializationError, match="result"):
            ex.submit(_many_small, 3_000).result(timeout=30)
        assert ex.submit(_many_small, 3).result(timeout=30) == [0, 1, 2]
        # an argument over the supervisor's limit: the task fails, nothing is sent
        monkeypatch.setattr(_framing, "MAX_META", 2_000)
        with pytest.raises(SerializationError, match="arguments"):
            ex.submit(len, list(range(3_000))).result(timeout=30)
        monkeypatch.undo()
        assert ex.submit(len, [1, 2]).result(timeout=30) == 2


def test_a_dropped_executor_keeps_nothing_alive_once_its_last_worker_exited() -> None:
    # the fork server's reader thread used to keep the last exit watcher it called, and
    # through it the shut-down executor's supervisor and the values it retained (here in
    # shared memory), until another local worker exited
    ex = Executor(procs=1)
    back = ex.submit(_make, SHARED_MIN * 4).result(timeout=30)
    assert len(back) == SHARED_MIN * 4
    ex.shutdown()
    supervisor = weakref.ref(ex._core.sup)
    del ex, back
    deadline = time.monotonic() + 5
    while (supervisor() is not None or _memfds()) and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    assert supervisor() is None, "a shut-down, dropped executor is still alive"
    assert _memfds() == []
