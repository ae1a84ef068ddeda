"""``submit``'s quick paths for the commonest callable (no processes: a fake transport):
the names, estimate keys and refusals are those of the general path."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest

from osiiso_mp import ClosedError, Executor, TaskFuture
from osiiso_mp._intake import callable_name, estimate_key

from .fake_transport import FakeTransport

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def ex() -> Iterator[Executor]:
    """An executor whose one fake worker never gets ready: submitted tasks stay queued."""
    transport = FakeTransport()
    executor = Executor(procs=1, transport=transport)
    yield executor
    transport.exit_on_stop()
    executor.shutdown(wait=True, kill=True)
    transport.wait_closed()


def plain(x: int) -> int:
    return x


class Callable_:
    def __call__(self, x: int) -> int:
        return x


def _unnamed() -> Any:
    def fn(x: int) -> int:
        return x

    fn.__qualname__ = ""  # empty: callable_name falls back to __name__
    return fn


@pytest.mark.parametrize(
    "fn",
    [plain, lambda x: x, _unnamed(), functools.partial(plain), Callable_(), abs],
    ids=["function", "lambda", "empty-qualname", "partial", "object", "builtin"],
)
def test_names_and_keys_as_the_general_path_makes_them(ex: Executor, fn: Any) -> None:
    fut = ex.submit(fn, 1)
    task = fut._task
    assert task is not None
    name = callable_name(fn)
    assert fut.name == task.name == task.fn_name == name
    assert task.key == estimate_key(fn, name)


def test_a_lambdas_key_says_where_it_is_defined(ex: Executor) -> None:
    fut: TaskFuture[int] = ex.submit(lambda: 1)
    assert fut._task is not None and fut._task.key.startswith("test_a_lambdas_key")
    assert __file__ in fut._task.key


def test_refusals_come_first_and_in_order(ex: Executor) -> None:
    with pytest.raises(TypeError, match="needs a callable, got int"):
        ex.submit(3)  # type: ignore[call-overload]
    assert ex.queue_size() == 0
    ex.shutdown(wait=False)
    with pytest.raises(ClosedError, match="shut down"):
        ex.submit(plain, 1)
    with pytest.raises(ClosedError, match="shut down"):
        ex.submit(3)  # type: ignore[call-overload]  # closed is said before not callable
