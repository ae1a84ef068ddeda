"""Every Python example in the README and on the docs site runs, as a script of its own (no
import guard), so the docs cannot drift from the code.

Each ```python block of README.md and of every page under docs/ runs in a fresh
interpreter, unless the line before it is ``<!-- not-run -->`` (a fragment that cannot run
alone; keep those few).
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
NOT_RUN = "<!-- not-run -->"
FENCE = "```python"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def python_blocks(text: str) -> list[tuple[str, bool]]:
    """Every ```python block of a Markdown text, with whether it is to be run."""
    lines = text.splitlines(keepends=True)
    blocks: list[tuple[str, bool]] = []
    previous = ""  # the last non-blank line before the current one
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if line == FENCE:
            end = i + 1
            while end < len(lines) and lines[end].rstrip() != "```":
                end += 1
            assert end < len(lines), f"unterminated code block at line {i + 1}"
            blocks.append(("".join(lines[i + 1 : end]), previous != NOT_RUN))
            previous = ""
            i = end + 1
            continue
        if line.strip():
            previous = line.strip()
        i += 1
    return blocks


def _collect() -> tuple[list[tuple[str, str]], list[str]]:
    """(id, code) of every block to run, and the ids of those marked not-run."""
    runnable: list[tuple[str, str]] = []
    skipped: list[str] = []
    for page in PAGES:
        name = page.relative_to(DOCS).as_posix() if page.is_relative_to(DOCS) else page.name
        for index, (code, run) in enumerate(python_blocks(page.read_text())):
            block_id = f"{name}-{index}"
            if run:
                runnable.append((block_id, code))
            else:
                skipped.append(block_id)
    return runnable, skipped


RUNNABLE, SKIPPED = _collect()


def test_python_blocks_parses_fences_and_markers() -> None:
    text = (
        "intro\n```python\na = 1\n```\n\n<!-- not-run -->\n\n```python\nb\n```\n```text\nc\n```\n"
    )
    assert python_blocks(text) == [("a = 1\n", True), ("b\n", False)]


def test_docs_have_runnable_examples() -> None:
    quickstart = [block_id for block_id, _ in RUNNABLE if block_id.startswith("quickstart.md")]
    assert len(quickstart) >= 4
    readme = [block_id for block_id, _ in RUNNABLE if block_id.startswith("README.md")]
    assert len(readme) >= 3  # one example per kind of user
    assert len(RUNNABLE) >= 30
    assert len(SKIPPED) <= 5, f"keep not-run blocks few: {SKIPPED}"


def test_not_run_markers_precede_python_blocks() -> None:
    for page in PAGES:
        marked = page.read_text().count(NOT_RUN)
        skipped = sum(not run for _, run in python_blocks(page.read_text()))
        assert marked == skipped, f"{page.name}: a {NOT_RUN} marker not before a python block"


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("block_id", "code"), RUNNABLE, ids=[b for b, _ in RUNNABLE])
def test_docs_example_runs(block_id: str, code: str, tmp_path: pathlib.Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code)
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=80,
    )
    assert proc.returncode == 0, f"{block_id}:\n{proc.stderr}"
    if "progress=" not in code:  # progress bars draw on stderr
        assert proc.stderr == "", f"{block_id}:\n{proc.stderr}"
