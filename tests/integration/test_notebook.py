"""examples/quickstart.ipynb runs top to bottom under a real Jupyter kernel and shows what
it promises: the values, the retry and the failure, the HTML summary, the SVG timeline and
the live view of the run; and it leaves no process behind once the kernel has stopped.

The kernel is ipykernel's "python3", which jupyter_client starts with this interpreter
(``sys.executable``, the virtualenv's), so the kernel imports the osiiso_mp under test.
Its workers are grandchildren of this process (children of the kernel's fork server), so
beyond the autouse fixture of conftest.py this test records their pids from inside the
kernel and checks that every one of them is gone after the kernel's shutdown.
"""

from __future__ import annotations

import json
import pathlib
import re
import sys
import time
from typing import Any

import nbformat
import psutil
import pytest
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"

# Appended to the in-memory copy of the notebook (never to the file): once the notebook's
# `with` blocks are over, the kernel should have no descendant but its fork server (one per
# process, by design). Prints the pids the test checks after the kernel has stopped.
PROBE = """
import json as _json, os as _os, sys as _sys, time as _time
import psutil as _psutil
from osiiso_mp._runtime.transports._forkserver import ForkServer as _ForkServer

def _live_descendants():
    out = []
    for p in _psutil.Process().children(recursive=True):
        try:
            if p.status() != _psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except _psutil.NoSuchProcess:
            pass
    return out

_server = _ForkServer._instance
_server_pid = _server.pid if _server is not None and _server.alive else None
_deadline = _time.monotonic() + 5
while [p for p in _live_descendants() if p != _server_pid] and _time.monotonic() < _deadline:
    _time.sleep(0.05)
_records = list(summary.results) + [f.task_result() for f in futures]
print("PROBE " + _json.dumps({
    "kernel_pid": _os.getpid(),
    "executable": _sys.executable,
    "fork_server": _server_pid,
    "descendants": _live_descendants(),
    "workers": sorted({a.pid for r in _records for a in r.attempt_log if a.pid is not None}),
}))
"""


def _read() -> Any:
    """The notebook, as nbformat's v4 node tree."""
    return nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]


def _cell(nb: Any, snippet: str) -> Any:
    """The one code cell whose source contains ``snippet``."""
    found = [c for c in nb.cells if c.cell_type == "code" and snippet in c.source]
    assert len(found) == 1, f"expected one code cell containing {snippet!r}, got {len(found)}"
    return found[0]


def _stream(cell: Any, name: str) -> str:
    """Everything the cell wrote to ``name`` (stdout or stderr)."""
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == name)


def _data(cell: Any, mime: str) -> str:
    """The cell's rich output of type ``mime`` (an execute_result or display_data)."""
    for o in cell.outputs:
        if o.output_type in ("execute_result", "display_data") and mime in o.data:
            value = o.data[mime]
            return value if isinstance(value, str) else "".join(value)
    raise AssertionError(f"no {mime} output in the cell {cell.source[:60]!r}: {cell.outputs}")


def _text(html: str) -> str:
    """HTML without its tags, whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _wait_gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    """The pids among ``pids`` still alive after up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    left = {p for p in pids if _alive(p)}
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = {p for p in left if _alive(p)}
    return left


def test_notebook_is_committed_without_outputs() -> None:
    nb = _read()
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], cell.source
            assert cell.execution_count is None, cell.source
    assert nb.metadata.kernelspec.name == "python3"


@pytest.mark.timeout(120)
def test_quickstart_notebook_runs(tmp_path: pathlib.Path) -> None:
    nb = _read()
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))  # type: ignore[no-untyped-call]
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=60,  # per cell
        startup_timeout=60,
        shutdown_kernel="graceful",
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working directory
    )
    started = time.perf_counter()
    client.execute()  # raises CellExecutionError if a cell raises; stops the kernel
    elapsed = time.perf_counter() - started

    # No cell failed (allow_errors is off, so execute() raised already; belt and braces).
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"{cell.source[:60]!r}: {errors}"
        assert "Traceback" not in _stream(cell, "stderr"), cell.source

    probe = json.loads(_stream(nb.cells[-1], "stdout").split("PROBE ", 1)[1])
    assert pathlib.Path(probe["executable"]).resolve() == pathlib.Path(sys.executable).resolve()

    # Values: a lambda over a closure, and a function defined in a cell.
    out = _stream(_cell(nb, "ex.map(lambda"), "stdout")
    assert "scaled: [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0]" in out
    assert "primes: [168, 1229, 5133]" in out

    # The batch: a retry that succeeds, a task that always fails, the live view, which
    # stays as the run's final state.
    batch = _cell(nb, 'ex.run(progress="live")')
    assert "fetched after 2 attempts" in _stream(batch, "stdout")
    live = _text(_data(batch, "text/html"))
    for fact in ("8/8 done", "7 ok", "1 failed", "finished", "workers: 0 of 2 busy"):
        assert fact in live, (fact, live)
    assert "last failure: JSONDecodeError: Expecting property name" in live, live

    # The summary, rendered as HTML.
    html = _data(_summary_cell(nb), "text/html")
    text = _text(html)
    assert "Run Summary: COMPLETED WITH ERRORS" in text
    for fact in (
        "Total tasks 8",
        "Succeeded 7",
        "Failed 1",
        "Cancelled 0",
        "Attempts 9 (1 retries)",
        "parse-data",
        "Expecting property name enclosed in double quotes",
    ):
        assert fact in text, (fact, text)
    # ...with its pictures inline: the timeline, the duration histogram, the utilisation
    assert html.count("<svg") == 3, html
    for title in ("9 attempts on 2 workers", "Attempt durations", "Worker utilisation"):
        assert title in text, (title, text)

    # The failure keeps its type, the retry has its attempt log.
    out = _stream(_cell(nb, "summary.errors"), "stdout")
    assert "parse-data: JSONDecodeError: Expecting property name" in out
    assert "caught in the notebook: JSONDecodeError" in out
    assert "fetch-api attempt 1: failed" in out
    assert "fetch-api attempt 2: succeeded" in out

    # The timeline, as SVG: one bar per attempt.
    svg = _data(_cell(nb, "summary.timeline()"), "image/svg+xml")
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert svg.count('class="attempt"') == 9
    assert "fetch-api #1 failed" in svg
    assert "parse-data #1 failed" in svg

    assert "9 attempts, 1 retried" in _stream(_cell(nb, "summary.telemetry"), "stdout")

    # An interrupted batch, resumed: the first run stopped after 20 values, every one of
    # them (and whatever else had finished) recorded; the second ran only the rest, and
    # its summary has all 60 inputs, the restored ones with no attempt.
    out = _stream(_cell(nb, "break  # stands for Ctrl-C"), "stdout")
    first = re.search(r"values read: (\d+), calls: (\d+), recorded: (\d+)", out)
    assert first is not None, out
    read, calls, recorded = map(int, first.groups())
    assert read == 20 and 20 <= recorded <= calls <= 60, out
    out = _stream(_cell(nb, "resumed = ex.run()"), "stdout")
    assert "values: 60, in order: True" in out, out
    second = re.search(r"restored: (\d+), ran: (\d+), calls in this run: (\d+)", out)
    assert second is not None, out
    restored, ran, calls_now = map(int, second.groups())
    assert restored == recorded and ran == 60 - recorded and calls_now == ran, out
    assert "succeeded 0 'restored from checkpoint'" in out, out

    # Processes: once the notebook's `with` blocks were over, only the fork server was
    # left in the kernel; after the kernel's shutdown nothing it started is alive.
    assert probe["workers"], probe
    assert set(probe["descendants"]) <= {probe["fork_server"]}, probe
    pids = {probe["kernel_pid"], *probe["descendants"], *probe["workers"]}
    if probe["fork_server"] is not None:
        pids.add(probe["fork_server"])
    assert not _wait_gone(pids), f"left behind after the kernel stopped: {probe}"

    print(f"notebook executed in {elapsed:.1f}s")


def _summary_cell(nb: Any) -> Any:
    """The code cell that is just ``summary`` (its rich display is the HTML table)."""
    found = [c for c in nb.cells if c.cell_type == "code" and c.source.strip() == "summary"]
    assert len(found) == 1, f"expected one cell that displays `summary`, got {len(found)}"
    return found[0]
