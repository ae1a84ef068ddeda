"""Code written for ``ProcessPoolExecutor`` works unchanged on ``Executor``.

Each test is written the way a user of the standard library's pool writes it: the same
``except`` clauses, the same attributes, the same multiprocessing objects, on both start
methods.
"""

from __future__ import annotations

import gc
import logging
import logging.handlers
import multiprocessing
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
def test_pickling_failures_are_caught_as_pickle_errors(launch: dict[str, Any]) -> None:
    with Executor(procs=1, **launch) as ex:
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
def test_the_remote_traceback_is_the_standard_librarys_class(launch: dict[str, Any]) -> None:
    with Executor(procs=1, **launch) as ex:
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
def test_dask_sizes_itself_from_max_workers(start_method: str) -> None:
    import dask.array as da
    from dask.base import compute, get_scheduler

    with Executor(max_workers=2, start_method=start_method) as ex:
        assert ex._max_workers == 2 == ex.procs
        scheduler = get_scheduler(scheduler=ex)  # type: ignore[no-untyped-call]
        assert scheduler.args[1] == 2  # dask's num_workers, read from _max_workers
        x = da.arange(100, chunks=10)
        (total,) = compute((x * x).sum(), scheduler=ex)  # type: ignore[no-untyped-call]
    assert total == sum(i * i for i in range(100))


# --- multiprocessing objects: manager proxies in tasks, inherited objects in initargs --------


def produce(q: Any, n: int) -> Any:
    """Put ``n`` items on a manager queue proxy and hand the proxy back."""
    for i in range(n):
        q.put((os.getpid(), i))
    return q


@pytest.mark.timeout(60)
def test_manager_proxies_travel_in_arguments_and_results(start_method: str) -> None:
    with multiprocessing.Manager() as manager, Executor(procs=1, start_method=start_method) as ex:
        q = manager.Queue()
        shared = manager.dict()
        back = ex.submit(produce, q, 3).result(timeout=30)
        got = [q.get(timeout=10) for _ in range(3)]
        assert [i for _, i in got] == [0, 1, 2]
        assert got[0][0] != os.getpid()  # put there by the worker
        assert back.qsize() == 0  # the proxy it returned works here
        ex.submit(shared.__setitem__, "k", "v").result(timeout=30)
        assert shared["k"] == "v"


_INHERITED: dict[str, Any] = {}


def setup_logging(queue: Any) -> None:
    """The logging cookbook's initializer: records go to the parent through a queue."""
    handler = logging.handlers.QueueHandler(queue)
    logger = logging.getLogger("drop_in.worker")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def log_something(text: str) -> int:
    logging.getLogger("drop_in.worker").info("%s from %d", text, os.getpid())
    return os.getpid()


def flush_log_queue_then_die() -> None:
    """Die once the queue's feeder thread is done: the parent may read a record before
    the feeder releases the queue's write lock, and a process that dies holding it
    blocks every other writer for good (``multiprocessing``'s documented hazard)."""
    for handler in logging.getLogger("drop_in.worker").handlers:
        if isinstance(handler, logging.handlers.QueueHandler):
            handler.queue.close()  # type: ignore[attr-defined]
            handler.queue.join_thread()  # type: ignore[attr-defined]
    os._exit(7)


@pytest.mark.timeout(60)
def test_the_logging_cookbooks_queue_in_initargs_serves_replacements_too(
    start_method: str,
) -> None:
    ctx = multiprocessing.get_context(start_method)
    queue = ctx.Queue()
    with Executor(procs=1, mp_context=ctx, initializer=setup_logging, initargs=(queue,)) as ex:
        first = ex.submit(log_something, "hello").result(timeout=30)
        record = queue.get(timeout=10)
        assert record.getMessage() == f"hello from {first}"
        crash = ex.submit(flush_log_queue_then_die)
        assert isinstance(crash.exception(timeout=30), BrokenProcessPool)
        second = ex.submit(log_something, "again").result(timeout=30)
        assert second != first  # a replacement, set up from the same initargs
        assert queue.get(timeout=10).getMessage() == f"again from {second}"
    queue.close()
    queue.join_thread()
    del queue
    gc.collect()  # its locks, now (see the end of the next test)


def keep_shared(objects: dict[str, Any]) -> None:
    _INHERITED.update(objects)


def use_shared() -> tuple[int, float]:
    o = _INHERITED
    with o["lock"]:
        o["value"].value += 1
    with o["rlock"], o["rlock"]:  # re-entrant
        o["array"][0] = 42.5
    with o["semaphore"]:
        pass
    with o["condition"]:
        o["condition"].notify_all()
    o["event"].set()
    return os.getpid(), o["array"][1]


@pytest.mark.timeout(60)
def test_locks_events_and_shared_values_in_initargs(start_method: str) -> None:
    ctx = multiprocessing.get_context(start_method)
    objects = {
        "lock": ctx.Lock(),
        "rlock": ctx.RLock(),
        "event": ctx.Event(),
        "semaphore": ctx.Semaphore(2),
        "condition": ctx.Condition(),
        "value": ctx.Value("i", 10),
        "array": ctx.Array("d", [0.0, 7.25]),
    }
    with Executor(procs=2, mp_context=ctx, initializer=keep_shared, initargs=(objects,)) as ex:
        results = [ex.submit(use_shared).result(timeout=30) for _ in range(4)]
    assert all(second == 7.25 for _, second in results)
    assert objects["value"].value == 14  # type: ignore[attr-defined]
    assert objects["array"][0] == 42.5  # type: ignore[index]
    assert objects["event"].is_set()  # type: ignore[attr-defined]
    # collected now: later, inside a call into multiprocessing's resource tracker (another
    # test making a lock), their finalizers would call it reentrantly (an error on 3.13)
    del objects
    gc.collect()


def test_a_lock_of_the_fork_context_is_refused_with_the_way_out() -> None:
    lock = multiprocessing.get_context("fork").Lock()
    with pytest.raises(ValueError, match=r"'fork' context.*get_context\('forkserver'\)"):
        Executor(procs=1, initializer=keep_shared, initargs=({"lock": lock},))
