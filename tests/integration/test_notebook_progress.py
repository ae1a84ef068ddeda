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

import pytest
from notebook_support import run_cells, stream

WIDGET = "application/vnd.jupyter.widget-view+json"

BATCH = """
from osiiso_mp import Executor

with Executor(procs=2) as ex:
    futures = [ex.submit(abs, -i) for i in range(6)]
    summary = ex.run(progress=True)
print("values", sorted(summary.values))
"""


@pytest.mark.timeout(120)
def test_the_bar_is_a_widget_where_ipywidgets_imports(tmp_path: pathlib.Path) -> None:
    (batch,) = run_cells([BATCH], tmp_path)
    assert "values [0, 1, 2, 3, 4, 5]" in stream(batch, "stdout")
    assert any(WIDGET in o.get("data", {}) for o in batch.outputs), batch.outputs
    assert stream(batch, "stderr") == "", batch.outputs  # no warning, no console bar


@pytest.mark.timeout(120)
def test_without_ipywidgets_the_bar_is_one_text_line_and_no_warning(
    tmp_path: pathlib.Path,
) -> None:
    hide = "import sys\nsys.modules['ipywidgets'] = None  # as if not installed"
    _, batch = run_cells([hide, BATCH], tmp_path)
    assert "values [0, 1, 2, 3, 4, 5]" in stream(batch, "stdout")
    assert not any(WIDGET in o.get("data", {}) for o in batch.outputs), batch.outputs
    err = stream(batch, "stderr")
    assert "IProgress" not in err and "Warning" not in err, err
    assert "osiiso_mp run" in err and "6/6" in err, err
    assert err.count("\n") <= 1, err  # one line, redrawn in place with \r
