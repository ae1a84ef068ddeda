"""The worker's traceback text: code pickled by value keeps its file name (every other
reducer applies as in cloudpickle), and the parent fills in the source lines the worker
could not read (no process: the texts are made here)."""

from __future__ import annotations

import copyreg
import linecache
import pickle
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from osiiso_mp._remote_tb import fill_source
from osiiso_mp._runtime.protocol._by_value import dumps_by_value

CELL = "def f(x):\n    y = x + 1\n    raise ValueError(y)\n\n\ndef g():\n    return f(1)\n"
FILENAME = "/tmp/ipykernel_0/osiiso-unit-cell.py"  # exists nowhere: linecache alone has it


@pytest.fixture
def cell() -> Iterator[dict[str, Any]]:
    """``CELL`` compiled as IPython compiles a cell: its lines in linecache only."""
    linecache.cache[FILENAME] = (len(CELL), None, CELL.splitlines(True), FILENAME)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(CELL, FILENAME, "exec"), namespace)
    try:
        yield namespace
    finally:
        linecache.cache.pop(FILENAME, None)


def _text_without_source(namespace: dict[str, Any]) -> str:
    """The traceback of ``g()`` as a worker that cannot read the cell formats it."""
    lines = linecache.cache.pop(FILENAME)
    try:
        namespace["g"]()
    except ValueError as exc:
        return "".join(traceback.format_exception(exc))
    finally:
        linecache.cache[FILENAME] = lines
    raise AssertionError("g() did not raise")


def test_code_pickled_by_value_keeps_its_file_name_and_lines(cell: dict[str, Any]) -> None:
    def outer() -> Any:
        def inner() -> int:
            return 1

        return inner

    for fn in (cell["g"], outer, outer(), lambda: 0):
        data = dumps_by_value(fn)
        assert b"<dynamic-code>" not in data
        loaded = pickle.loads(data)
        assert loaded is not fn
        assert loaded.__code__.co_filename == fn.__code__.co_filename
        assert loaded.__code__.co_firstlineno == fn.__code__.co_firstlineno
    rebuilt = pickle.loads(dumps_by_value(cell["g"]))
    assert rebuilt.__code__.co_filename == FILENAME
    with pytest.raises(ValueError) as info:
        rebuilt()
    frames = traceback.extract_tb(info.value.__traceback__)
    assert [(f.filename, f.lineno, f.line) for f in frames[-2:]] == [
        (FILENAME, 7, "return f(1)"),
        (FILENAME, 3, "raise ValueError(y)"),
    ]


def test_the_parent_fills_in_the_missing_source_lines(cell: dict[str, Any]) -> None:
    text = _text_without_source(cell)
    assert f'File "{FILENAME}", line 3, in f\nValueError: 2' in text  # no source line
    filled = fill_source(text)
    assert f'  File "{FILENAME}", line 7, in g\n    return f(1)\n' in filled
    assert f'  File "{FILENAME}", line 3, in f\n    raise ValueError(y)\nValueError: 2' in filled
    # the frame of this test file had its line already: it is not repeated
    assert filled.count('namespace["g"]()') == 1
    assert fill_source(filled) == filled


def test_exception_groups_and_chains_get_their_lines_at_their_margin(
    cell: dict[str, Any],
) -> None:
    lines = linecache.cache.pop(FILENAME)
    try:
        try:
            cell["g"]()
        except ValueError as exc:
            group = ExceptionGroup("many", [exc])
        text = "".join(traceback.format_exception(group))
    finally:
        linecache.cache[FILENAME] = lines
    filled = fill_source(text)
    assert f'    |   File "{FILENAME}", line 3, in f\n    |     raise ValueError(y)\n' in filled
    assert f'    |   File "{FILENAME}", line 7, in g\n    |     return f(1)\n' in filled


def test_what_the_parent_cannot_read_stays_as_it_was() -> None:
    text = (
        "Traceback (most recent call last):\n"
        '  File "<dynamic-code>", line 3, in f\n'
        '  File "<string>", line 1, in <module>\n'
        '  File "/no/such/dir/osiiso_missing.py", line 9, in h\n'
        "KeyError: 1\n"
    )
    assert fill_source(text) is text
    assert fill_source("KeyError: 1\n") == "KeyError: 1\n"


def test_lines_of_the_parents_own_string_code_are_not_taken_for_the_workers() -> None:
    # Python 3.13 keeps the source of `python -c` in linecache as "<string>" (pytest-xdist
    # starts its processes so): a worker's "<string>" frame is other code
    text = (
        "Traceback (most recent call last):\n"
        '  File "<string>", line 1, in <module>\n'
        '  File "<stdin>", line 1, in <module>\n'
        "KeyError: 1\n"
    )
    saved = {name: linecache.cache.get(name) for name in ("<string>", "<stdin>")}
    try:
        for name in saved:
            linecache.cache[name] = (9, None, ["parent_only()\n"], name)
        assert fill_source(text) is text
    finally:
        for name, entry in saved.items():
            if entry is None:
                linecache.cache.pop(name, None)
            else:
                linecache.cache[name] = entry


class _Registered:
    """Pickles through a reducer registered with copyreg after the pickler was made."""

    def __init__(self, x: int) -> None:
        self.x = x


def _rebuild_registered(x: int) -> _Registered:
    return _Registered(x + 1000)  # (so that the test sees the reducer was used)


def test_reducers_registered_with_copyreg_later_still_apply() -> None:
    dumps_by_value(0)  # the pickler class is made
    copyreg.pickle(_Registered, lambda obj: (_rebuild_registered, (obj.x,)))
    try:
        assert pickle.loads(dumps_by_value([_Registered(1), _Registered(2)]))[1].x == 1002
    finally:
        del copyreg.dispatch_table[_Registered]
    assert pickle.loads(dumps_by_value(_Registered(3))).x == 3  # gone: its own reduce


def test_cloudpickles_own_reducers_still_apply() -> None:
    class Local:
        @classmethod
        def make(cls) -> int:
            return 7

        size = property(lambda self: 5)

    data = dumps_by_value((Local.make, Local.__dict__["size"], Local()))
    make, size, obj = pickle.loads(data)
    assert make() == 7 and isinstance(size, property)
    assert size.fget is not None and size.fget(obj) == 5
