"""A worker's traceback text, completed in the parent with the source lines it lacks.

A worker formats the traceback of a task's exception with the standard library, which
prints each frame's source line when the worker can read the file (``linecache``). A
function from a notebook cell has no file the worker can read (IPython keeps a cell's
source in the kernel's ``linecache`` only), nor has a file on another host; the traceback
then shows ``File "/tmp/ipykernel_123/456.py", line 3, in f`` and nothing below it. The
parent, which ran the cell or holds the file, often has those lines: :func:`fill_source`
adds them where they are missing, as ``traceback`` would have printed them (without the
``^^^`` markers, which need the column offsets the text does not keep).

It runs in the parent, on failures only, on the text alone: a frame line whose next line
is not its source line gets one when ``linecache.getline`` (the parent's cache, or the file
read where the parent is) has it.
"""

from __future__ import annotations

import linecache
import re

__all__ = ["fill_source"]

# a frame line of a formatted traceback, after any prefix of an exception group's margin
_FRAME = re.compile(r'^(?P<lead>[ |+\-]*?)  File "(?P<file>.+)", line (?P<line>\d+), in .*$')


def fill_source(text: str) -> str:
    """``text`` (a formatted traceback) with the source line of each frame that has none
    filled in from the parent's ``linecache``, where it has the line."""
    if 'File "' not in text:
        return text
    lines = text.split("\n")
    out: list[str] = []
    changed = False
    for i, line in enumerate(lines):
        out.append(line)
        match = _FRAME.match(line)
        if match is None:
            continue
        indent = match["lead"] + "    "  # where traceback puts a frame's source line
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if following.startswith(indent) and not following[len(indent) :].startswith(" "):
            continue  # it has its source line
        source = _source_line(match["file"], int(match["line"]))
        if source:
            out.append(indent + source)
            changed = True
    return "\n".join(out) if changed else text


# the names every exec'd string and piped script run under: the parent's lines of one
# (Python 3.13 keeps those of ``python -c``, as "<string>") are not the worker's
_ANY_CODE = frozenset(("<string>", "<stdin>"))


def _source_line(filename: str, lineno: int) -> str:
    """Line ``lineno`` of ``filename``, stripped, as the parent knows it ('' if not)."""
    if filename in _ANY_CODE or (
        filename.startswith("<") and filename.endswith(">") and filename not in linecache.cache
    ):
        return ""  # "<string>", "<dynamic-code>", "<frozen ...>": nothing to read
    try:
        return linecache.getline(filename, lineno).strip()
    except Exception:  # a broken loader, an unreadable file: no line, as traceback does
        return ""
