"""``TaskFuture``'s own ``__init__`` and ``FutureCondition`` stand in for ``cf.Future``'s
(no processes): the same fields, and a condition that behaves as ``threading.Condition``."""

from __future__ import annotations

import concurrent.futures as cf
import threading
from typing import Any, cast

import pytest

from osiiso_mp._future import FutureCondition, TaskFuture


def _future() -> TaskFuture[Any]:
    return TaskFuture(cast(Any, None), "id", "name")


def test_the_fields_of_cf_future() -> None:
    fut = _future()
    mine, theirs = vars(fut), vars(cf.Future())
    assert set(theirs) - {"_done_callbacks", "_waiters"} <= set(mine)
    for field, value in theirs.items():
        if field == "_done_callbacks":  # the class's empty tuple until the first callback
            assert field not in mine and list(fut._done_callbacks) == value == []
        elif field == "_waiters":  # made on first use
            assert "_waiter_list" not in mine and fut._waiters == value == []
            assert fut._waiter_list is fut._waiters  # made once, kept
        elif field == "_condition":
            assert type(mine[field]) is FutureCondition
            assert isinstance(mine[field], type(value._lock))  # an RLock, as cf's
            assert isinstance(mine[field], threading.Condition)
        else:
            assert mine[field] == value, field


def test_the_condition_waits_notifies_and_is_reentrant() -> None:
    cond = FutureCondition()
    with pytest.raises(RuntimeError):
        cond.notify_all()  # not owned
    assert cond.acquire() and cond.acquire(False)  # reentrant
    cond.release()
    assert not cond.wait(0.01)  # released while waiting, owned again after
    assert cond._is_owned()
    cond.release()
    assert not cond._is_owned()
    woke: list[bool] = []

    def waiter() -> None:
        with cond:
            woke.append(cond.wait(5))

    t = threading.Thread(target=waiter)
    t.start()
    while True:
        with cond:
            if getattr(cond, "_waiters", None):
                cond.notify_all()
                break
    t.join()
    assert woke == [True]


def test_a_future_settles_through_it() -> None:
    fut = _future()
    done: list[Any] = []
    fut.add_done_callback(done.append)
    threading.Timer(0.01, fut.set_result, (7,)).start()
    assert fut.result(5) == 7
    assert done == [fut]
    waited = cf.wait([fut, _future()], timeout=0.01)
    assert waited.done == {fut}


def test_no_deque_until_a_wait_and_notify_still_checks_ownership() -> None:
    cond = FutureCondition()
    assert not hasattr(cond, "_waiters")  # made on the first wait only
    with pytest.raises(RuntimeError):
        cond.notify()
    with cond:
        cond.notify_all()  # nobody waits: nothing to do, and no deque made
        cond.notify(2)
        assert not hasattr(cond, "_waiters")
        assert not cond.wait(0)
        assert cond._waiters is not None and len(cond._waiters) == 0
        cond.notify_all()
    assert "FutureCondition" in repr(cond)
    with pytest.raises(RuntimeError):
        cond.wait(0)  # not owned


def test_wait_for_and_several_waiters() -> None:
    cond = FutureCondition()
    flag: list[int] = []
    woke: list[bool] = []

    def waiter() -> None:
        with cond:
            woke.append(bool(cond.wait_for(lambda: flag, 5)))

    threads = [threading.Thread(target=waiter) for _ in range(3)]
    for t in threads:
        t.start()
    while True:
        with cond:
            if len(getattr(cond, "_waiters", ())) == 3:
                flag.append(1)
                cond.notify_all()
                break
    for t in threads:
        t.join()
    assert woke == [True, True, True]


def test_done_callbacks_before_and_after_the_end_and_from_asyncio() -> None:
    import asyncio

    fut = _future()
    called: list[Any] = []
    fut.add_done_callback(lambda f: called.append(("first", f.result())))
    assert type(fut._done_callbacks) is list  # made on the first callback, per future
    assert type(_future()._done_callbacks) is tuple
    fut.add_done_callback(lambda f: called.append(("second", f.result())))

    async def main() -> Any:
        return await asyncio.wrap_future(fut)  # a done-callback of its own

    async def both() -> Any:
        task = asyncio.ensure_future(main())
        await asyncio.sleep(0)
        threading.Timer(0.01, fut.set_result, (5,)).start()
        return await task

    assert asyncio.run(both()) == 5
    assert called == [("first", 5), ("second", 5)]
    fut.add_done_callback(lambda f: called.append(("late", f.result())))  # done: at once
    assert called[-1] == ("late", 5)
    late = _future()
    late.set_result(1)
    seen: list[Any] = []
    late.add_done_callback(seen.append)  # done before any callback: called at once
    assert seen == [late]
    assert [f.result() for f in cf.as_completed([late, fut])] in ([1, 5], [5, 1])


def test_result_once_done_and_before() -> None:
    value = object()
    fut = _future()
    with pytest.raises(cf.TimeoutError):
        fut.result(0.01)
    fut.set_result(value)
    assert fut.result() is value and fut.result(0) is value
    failed = _future()
    failed.set_exception(KeyError("k"))
    with pytest.raises(KeyError):
        failed.result()
    none = _future()
    none.set_result(None)  # a value of None is a value: no exception raised
    assert none.result() is None
    gone = _future()
    cf.Future.cancel(gone)  # the standard cancel, as the supervisor's _settle does
    with pytest.raises(cf.CancelledError):
        gone.result()


def test_set_result_as_cf_future_does(caplog: pytest.LogCaptureFixture) -> None:
    """``TaskFuture.set_result`` is ``cf.Future.set_result`` inline: the same wakes, the
    same callbacks (outside the lock, a raising one logged), the same errors."""
    fut = _future()
    got: list[Any] = []
    waiting = threading.Event()

    def blocked() -> None:  # woken by the condition (a wait made its deque)
        waiting.set()
        got.append(fut.result(5))

    def waited() -> None:  # woken through cf.wait's waiter, not the condition
        done, _ = cf.wait([fut], 5)
        got.append(len(done))

    threads = [threading.Thread(target=blocked), threading.Thread(target=waited)]
    for t in threads:
        t.start()
    waiting.wait(5)
    while not fut._waiters or not getattr(fut._condition, "_waiters", None):
        threading.Event().wait(0.001)  # both are waiting
    owned: list[bool] = []
    fut.add_done_callback(lambda f: owned.append(cast(Any, f._condition)._is_owned()))
    fut.add_done_callback(lambda f: 1 / 0)
    fut.add_done_callback(lambda f: got.append("after the raising one"))
    fut.set_result(42)
    for t in threads:
        t.join(2)  # woken at once (a missed wake would sleep out its 5 s)
        assert not t.is_alive()
    assert sorted(map(str, got)) == ["1", "42", "after the raising one"]
    assert owned == [False]  # callbacks run once the lock is released
    assert "exception calling callback" in caplog.text
    with pytest.raises(cf.InvalidStateError, match="FINISHED"):
        fut.set_result(1)
    assert fut.result() == 42
    gone = _future()
    cf.Future.cancel(gone)
    with pytest.raises(cf.InvalidStateError, match="CANCELLED"):
        gone.set_result(1)
    with pytest.raises(RuntimeError, match="un-acquired"):
        _future()._condition.notify_all()  # nobody waited, and not owned
