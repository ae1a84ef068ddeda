"""``progress=True`` in a real Jupyter kernel: tqdm's notebook widget where ipywidgets
imports, and otherwise one clean text line, never tqdm's "IProgress not found" warning
followed by console bars stacked line after line.

Each case runs a two-cell notebook in a kernel of its own (ipykernel's "python3", started
with this interpreter). The case without ipywidgets makes it unimportable in that kernel
(``sys.modules["ipywidgets"] = None``) before anything imports tqdm, as in an environment
where it is not installed.
"""

from __future__ import annotations

import pathlib
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

WIDGET = "application/vnd.jupyter.widget-view+json"

BATCH = """
from osiiso_mp import Executor

with Executor(procs=2) as ex:
    futures = [ex.submit(abs, -i) for i in range(6)]
    summary = ex.run(progress=True)
print("values", sorted(summary.values))
"""


def _run(cells: list[str], tmp_path: pathlib.Path) -> list[Any]:
    nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]  # type: ignore[no-untyped-call]
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=60,
        startup_timeout=60,
        shutdown_kernel="graceful",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    return list(nb.cells)


def _stream(cell: Any, name: str) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == name)


@pytest.mark.timeout(120)
def test_the_bar_is_a_widget_where_ipywidgets_imports(tmp_path: pathlib.Path) -> None:
    (batch,) = _run([BATCH], tmp_path)
    assert "values [0, 1, 2, 3, 4, 5]" in _stream(batch, "stdout")
    assert any(WIDGET in o.get("data", {}) for o in batch.outputs), batch.outputs
    assert _stream(batch, "stderr") == "", batch.outputs  # no warning, no console bar


@pytest.mark.timeout(120)
def test_without_ipywidgets_the_bar_is_one_text_line_and_no_warning(
    tmp_path: pathlib.Path,
) -> None:
    hide = "import sys\nsys.modules['ipywidgets'] = None  # as if not installed"
    _, batch = _run([hide, BATCH], tmp_path)
    assert "values [0, 1, 2, 3, 4, 5]" in _stream(batch, "stdout")
    assert not any(WIDGET in o.get("data", {}) for o in batch.outputs), batch.outputs
    err = _stream(batch, "stderr")
    assert "IProgress" not in err and "Warning" not in err, err
    assert "osiiso_mp run" in err and "6/6" in err, err
    assert err.count("\n") <= 1, err  # one line, redrawn in place with \r
