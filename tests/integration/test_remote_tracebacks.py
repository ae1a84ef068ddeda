"""Remote tracebacks name the user's file (or notebook cell), its line and its source line.

A function defined in a script (``__main__``) or a notebook cell travels to the workers by
value. Its frame in the worker's traceback must read as ``ProcessPoolExecutor`` shows a
script function's: ``File "/path/script.py", line 7, in boom`` and the line itself below,
never ``File "<dynamic-code>"``. Where the worker cannot read the source (a notebook cell,
whose source only the kernel's ``linecache`` holds), the parent fills the line in.
"""

from __future__ import annotations

import linecache
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from notebook_support import run_cells, stream

import osiiso_mp
from osiiso_mp import Executor, OsiisoError, RemoteError
from osiiso_mp._errors import RemoteTraceback

pytestmark = pytest.mark.timeout(120)

ROOT = Path(osiiso_mp.__file__).resolve().parents[1]  # the checkout under test

SCRIPT = textwrap.dedent(
    '''\
    """A script whose own function raises in a worker: prints the remote tracebacks."""
    import sys

    from osiiso_mp import Executor


    class Unpicklable(Exception):
        def __reduce__(self):
            raise TypeError("no pickling")


    def boom(x):
        y = x + 1
        raise ValueError(f"boom {y}")


    def unpicklable(x):
        raise Unpicklable(x)


    def main():
        with Executor(procs=1, start_method=sys.argv[1]) as ex:
            exc = ex.submit(boom, 1).exception(timeout=60)
            print("SUBMIT-CAUSE", str(exc.__cause__), sep="\\n")
            try:
                list(ex.map(boom, [5, 6], chunksize=2))  # one chunk: the chunk's path
            except ValueError as err:
                print("MAP-CAUSE", str(err.__cause__), sep="\\n")
            exc = ex.submit(unpicklable, 3).exception(timeout=60)
            print("REMOTE-ERROR", type(exc).__name__, exc.traceback, sep="\\n")
            summary = ex.run(timeout=60)
            print("RECORD-CAUSE", str(summary.results[0].exception.__cause__), sep="\\n")


    if __name__ == "__main__":
        main()
    '''
)


def _frame(text: str, filename: str, line: int, name: str) -> list[str]:
    """The frame's line and the line after it, in ``text`` (asserting the frame is there)."""
    lines = text.splitlines()
    head = f'  File "{filename}", line {line}, in {name}'
    assert head in lines, f"no {head!r} in:\n{text}"
    at = lines.index(head)
    return lines[at : at + 2]


@pytest.mark.timeout(120)
def test_a_script_function_names_its_file_line_and_source(
    tmp_path: Path, start_method: str
) -> None:
    script = tmp_path / "user_script.py"
    script.write_text(SCRIPT)
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}  # this checkout's osiiso_mp
    proc = subprocess.run(
        [sys.executable, str(script), start_method],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=str(tmp_path),
        env=env,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    out = proc.stdout
    assert "<dynamic-code>" not in out
    sections = dict.fromkeys(("SUBMIT-CAUSE", "MAP-CAUSE", "REMOTE-ERROR", "RECORD-CAUSE"), "")
    current = None
    for line in out.splitlines():
        if line in sections:
            current = line
        elif current is not None:
            sections[current] += line + "\n"
    for key in ("SUBMIT-CAUSE", "MAP-CAUSE", "RECORD-CAUSE"):
        frame = _frame(sections[key], str(script), 14, "boom")
        assert frame[1] == '    raise ValueError(f"boom {y}")', (key, sections[key])
        assert "ValueError: boom" in sections[key]
    remote = sections["REMOTE-ERROR"]
    assert remote.startswith("RemoteError\n"), remote  # not rebuilt: the text stands in
    assert _frame(remote, str(script), 18, "unpicklable")[1] == "    raise Unpicklable(x)"


CELL = "def cell_fn(x):\n    y = x * 2\n    raise KeyError(y)\n"


class _Boom(Exception):
    def __reduce__(self) -> Any:
        raise TypeError("cannot pickle _Boom")


@pytest.fixture
def cell() -> Iterator[tuple[str, dict[str, Any]]]:
    """A function compiled as IPython compiles a cell: its source in the parent's linecache
    only, under a file name that exists nowhere (the workers cannot read it)."""
    filename = "/tmp/ipykernel_0/osiiso-no-such-cell.py"
    assert not os.path.exists(filename)
    linecache.cache[filename] = (len(CELL), None, CELL.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": "__main__"}  # a cell runs in __main__
    exec(compile(CELL, filename, "exec"), namespace)
    try:
        yield filename, namespace
    finally:
        linecache.cache.pop(filename, None)


def test_a_cell_function_gets_its_source_line_from_the_parent(
    cell: tuple[str, dict[str, Any]], launch: dict[str, Any]
) -> None:
    filename, namespace = cell
    fn = namespace["cell_fn"]
    assert fn.__module__ == "__main__"  # travels by value, as a cell's function does
    with Executor(procs=1, **launch) as ex:
        exc = ex.submit(fn, 4).exception(timeout=60)
        assert isinstance(exc, KeyError) and exc.args == (8,)
        cause = exc.__cause__
        assert isinstance(cause, RemoteTraceback)
        text = str(cause)
        assert _frame(text, filename, 3, "cell_fn")[1] == "    raise KeyError(y)"
        assert "<dynamic-code>" not in text
        try:
            list(ex.map(fn, [1, 2], chunksize=2))
        except KeyError as err:
            chunk_text = str(err.__cause__)
        else:
            raise AssertionError("the map did not raise")
        assert _frame(chunk_text, filename, 3, "cell_fn")[1] == "    raise KeyError(y)"
        ex.run(timeout=60)


NOTEBOOK_CELLS = [
    f"import sys\nsys.path.insert(0, {str(ROOT)!r})  # this checkout's osiiso_mp\n"
    "from osiiso_mp import Executor\nex = Executor(procs=1)",
    "def in_a_cell(x):\n    y = x * 3\n    raise ValueError(y)",
    "exc = ex.submit(in_a_cell, 2).exception(timeout=60)\nex.shutdown()\nprint(exc.__cause__)",
]


@pytest.mark.timeout(120)
def test_a_real_notebook_cell_is_named_with_its_line(tmp_path: Path) -> None:
    # IPython compiles each cell under a file name of its own that exists nowhere (e.g.
    # /tmp/ipykernel_123/456.py): the worker cannot read it, the kernel's linecache has it
    text = stream(run_cells(NOTEBOOK_CELLS, tmp_path)[2])
    frames = [line for line in text.splitlines() if line.endswith(", line 3, in in_a_cell")]
    assert len(frames) == 1, text
    assert frames[0].startswith('  File "') and "<dynamic-code>" not in text
    assert _frame(text, frames[0].split('"')[1], 3, "in_a_cell")[1] == "    raise ValueError(y)"
    assert text.rstrip().endswith("ValueError: 6")


def test_the_remote_error_text_gets_the_source_line_too(cell: tuple[str, dict[str, Any]]) -> None:
    filename, namespace = cell
    source = "def cell_raises(x):\n    raise Boom(x)\n"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace["Boom"] = _Boom
    exec(compile(source, filename, "exec"), namespace)
    with Executor(procs=1) as ex:
        exc = ex.submit(namespace["cell_raises"], 1).exception(timeout=60)
        assert isinstance(exc, RemoteError)  # the exception could not come back
        assert _frame(exc.traceback, filename, 2, "cell_raises")[1] == "    raise Boom(x)"
        assert exc.traceback == str(exc.__cause__)
        ex.run(timeout=60)


INIT_CELL = "def cell_init():\n    ready = False\n    raise RuntimeError('no database')\n"


@pytest.mark.timeout(60)
def test_a_failing_initializer_is_logged_with_its_source_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    filename = "/tmp/ipykernel_0/osiiso-no-such-init-cell.py"
    assert not os.path.exists(filename)
    linecache.cache[filename] = (len(INIT_CELL), None, INIT_CELL.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(INIT_CELL, filename, "exec"), namespace)
    try:
        with (
            caplog.at_level("ERROR", logger="osiiso_mp"),
            pytest.raises(OsiisoError, match="cell_init"),
            Executor(procs=1, initializer=namespace["cell_init"]) as ex,
        ):
            ex.submit(abs, 1).result(timeout=30)
    finally:
        linecache.cache.pop(filename, None)
    logged = "\n".join(r.getMessage() for r in caplog.records if "initializer" in r.getMessage())
    assert _frame(logged, filename, 3, "cell_init")[1] == "    raise RuntimeError('no database')"
