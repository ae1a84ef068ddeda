"""A griffe extension for the docs site: the reST bits of osiiso_mp's docstrings, as Markdown.

The docstrings are written for both ``help()`` and the site, so they keep a few reST habits
that Markdown does not know. Before mkdocstrings renders them, this rewrites:

- Sphinx roles (``:class:`~osiiso_mp.TaskResult```, ``:meth:`run```) to code spans;
- a paragraph ending in ``::`` (a reST literal block follows) to end in ``:``, and a line
  holding only ``::`` to nothing (the indented block after it is a Markdown code block);
- reST "simple tables" (columns under ``====  ====`` rules) to Markdown tables.

Only the text mkdocstrings renders changes; the docstrings in the code are left alone.
Loaded by ``mkdocs.yml`` (``extensions: [docs/_griffe_rst.py]``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|meth|func|attr|mod|exc|data|obj):`(~?)([^`]+)`")
_RULE = re.compile(r"^\s*=+(?:\s+=+)+\s*$")


def _role(match: re.Match[str]) -> str:
    short, target = match.groups()
    if short:
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def _cells(line: str, starts: list[int]) -> list[str]:
    bounds = [*starts[1:], None]
    return [line[a:b].strip() for a, b in zip(starts, bounds, strict=True)]


def _table(lines: list[str]) -> list[str]:
    """A reST simple table (rule, header, rule, rows, rule) as a Markdown table."""
    rule = lines[0]
    starts = [m.start() for m in re.finditer(r"=+", rule)]
    header = _cells(lines[1], starts)
    rows: list[list[str]] = []
    for line in lines[3:-1]:
        if not line.strip():
            continue
        cells = _cells(line, starts)
        if rows and not cells[0]:  # a continuation line of the row above
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
        else:
            rows.append(cells)
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return ["", *out, ""]


def rst_to_markdown(text: str) -> str:
    """The rewritten docstring text (see the module docstring)."""
    text = _ROLE.sub(_role, text)
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        rules = [j for j in range(i, len(lines)) if _RULE.match(lines[j])][:3]
        if _RULE.match(line) and len(rules) == 3 and rules[1] == i + 2:
            out += _table(lines[i : rules[2] + 1])
            i = rules[2] + 1
            continue
        if line.strip() == "::":
            line = ""
        elif line.rstrip().endswith("::"):
            line = line.rstrip()[:-1]
        out.append(line)
        i += 1
    return "\n".join(out)


class RstToMarkdown(griffe.Extension):
    """Rewrite every docstring of the loaded package (see the module docstring)."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
