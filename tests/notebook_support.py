"""Running code cells in a real Jupyter kernel, for the tests that check what a notebook
user sees (ipykernel's "python3", started with this interpreter, so it imports the
osiiso_mp under test)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

__all__ = ["run_cells", "stream"]


def run_cells(cells: list[str], workdir: Path) -> list[Any]:
    """Execute ``cells`` top to bottom in a fresh kernel whose working directory is
    ``workdir``; the executed cells (raises ``CellExecutionError`` if one raises)."""
    nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]  # type: ignore[no-untyped-call]
    NotebookClient(
        nb,
        kernel_name="python3",
        timeout=60,
        startup_timeout=60,
        shutdown_kernel="graceful",
        resources={"metadata": {"path": str(workdir)}},
    ).execute()
    return list(nb.cells)


def stream(cell: Any, name: str | None = None) -> str:
    """What ``cell`` wrote to the stream ``name`` (``"stdout"``/``"stderr"``; None: both)."""
    return "".join(
        o.text
        for o in cell.outputs
        if o.output_type == "stream" and (name is None or o.name == name)
    )
