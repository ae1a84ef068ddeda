"""Code written for ``ProcessPoolExecutor`` works unchanged on ``Executor``.

Each test is written the way a user of the standard library's pool writes it: the same
``except`` clauses, the same attributes, the same multiprocessing objects, on both start
methods.
"""

from __future__ import annotations

import os
import pickle
import threading
from concurrent.futures.process import BrokenProcessPool, _RemoteTraceback
from typing import Any

import pytest

from osiiso_mp import Executor, SerializationError, WorkerCrashedError

# --- task functions (run in workers) --------------------------------------------------------


def die() -> None:
    os._exit(7)


def square(x: int) -> int:
    return x * x


def keep(x: Any) -> Any:
    return x


def fail() -> None:
    raise KeyError("missing")


def return_lock() -> Any:
    return threading.Lock()


# --- exceptions -------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_dead_worker_is_caught_as_broken_process_pool(start_method: str) -> None:
    with Executor(procs=1, start_method=start_method) as ex:
        fut = ex.submit(die)
        try:
            fut.result(timeout=30)
        except BrokenProcessPool as exc:  # what ProcessPoolExecutor code catches
            caught: BaseException = exc
        assert isinstance(caught, WorkerCrashedError) and caught.exit_code == 7
        # unlike ProcessPoolExecutor's, the pool is not broken: only that task failed
        assert ex.submit(square, 4).result(timeout=30) == 16


@pytest.mark.timeout(60)
def test_pickling_failures_are_caught_as_pickle_errors(start_method: str) -> None:
    with Executor(procs=1, start_method=start_method) as ex:
        try:  # an argument that cannot be pickled
            ex.submit(keep, threading.Lock()).result(timeout=30)
        except pickle.PicklingError as exc:
            argument: BaseException = exc
        assert isinstance(argument, SerializationError) and argument.stage == "arguments"
        assert "lock" in str(argument).lower()
        assert not isinstance(argument, pickle.UnpicklingError)

        try:  # a result that cannot be pickled
            ex.submit(return_lock).result(timeout=30)
        except pickle.PicklingError as exc:
            result: BaseException = exc
        assert isinstance(result, SerializationError) and result.stage == "result"

        try:  # a callable the worker cannot unpickle
            ex.submit(_Unloadable()).result(timeout=30)
        except pickle.UnpicklingError as exc:
            unpickling: BaseException = exc
        assert isinstance(unpickling, SerializationError) and unpickling.stage == "unpickling"
        assert not isinstance(unpickling, pickle.PicklingError)
        ex.run(timeout=30)


class _Unloadable:
    """A callable whose unpickling fails in the worker."""

    def __call__(self) -> None:  # pragma: no cover - never runs
        pass

    def __reduce__(self) -> Any:
        return (_refuse, ())


def _refuse() -> None:
    raise RuntimeError("cannot be rebuilt here")


def test_serialization_errors_keep_their_name_and_pickle_as_they_are() -> None:
    for stage in ("callable", "arguments", "result", "unpickling"):
        err = SerializationError(stage, "Lock", "cannot pickle", name="t", task_id="i")
        assert type(err).__name__ == "SerializationError"
        assert repr(err).startswith("SerializationError(")
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err)
        assert (back.stage, back.name, back.task_id) == (stage, "t", "i")
        assert isinstance(err, pickle.UnpicklingError) == (stage == "unpickling")
        assert isinstance(err, pickle.PicklingError) == (stage != "unpickling")


@pytest.mark.timeout(60)
def test_the_remote_traceback_is_the_standard_librarys_class() -> None:
    with Executor(procs=1) as ex:
        exc = ex.submit(fail).exception(timeout=30)
    assert isinstance(exc, KeyError)
    assert isinstance(exc.__cause__, _RemoteTraceback)
    assert "raise KeyError" in str(exc.__cause__)


# --- sizing -------------------------------------------------------------------------------


def test_max_workers_is_checked_with_the_standard_librarys_words() -> None:
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_workers must be greater than 0"):
            Executor(max_workers=bad)


@pytest.mark.timeout(60)
def test_dask_sizes_itself_from_max_workers() -> None:
    import dask.array as da
    from dask.base import compute, get_scheduler

    with Executor(procs=2) as ex:
        assert ex._max_workers == 2 == ex.procs
        scheduler = get_scheduler(scheduler=ex)  # type: ignore[no-untyped-call]
        assert scheduler.args[1] == 2  # dask's num_workers, read from _max_workers
        x = da.arange(100, chunks=10)
        (total,) = compute((x * x).sum(), scheduler=ex)  # type: ignore[no-untyped-call]
    assert total == sum(i * i for i in range(100))
