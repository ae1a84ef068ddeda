"""Failed tasks grouped by exception type and message, for the summary's text and HTML.

A run with up to :data:`GROUP_ABOVE` failures lists each failed task (the exact
``display()`` format of PRODUCT.md). Above that, ``report()`` lists kinds of failure
instead: the tasks whose exceptions have the same type and the same message once the
task's own name and id and every number are set aside (``bad value 17`` and ``bad value
18`` are one kind; a crash's pid does not split crashes), most common first, each with its
count and one example task, at most :data:`MAX_KINDS` kinds and :data:`MESSAGE_LINES` lines
of message each: tens of lines for any number of failures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._errors import RemoteError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._results import TaskResult

__all__ = [
    "GROUP_ABOVE",
    "MAX_KINDS",
    "MESSAGE_LINES",
    "FailureGroup",
    "exception_type",
    "group_failures",
    "grouped_lines",
    "message_lines",
]

GROUP_ABOVE = 10
"""More failures than this and ``report()`` groups them (the HTML summary too)."""
MAX_KINDS = 10
"""The most kinds of failure ``report()`` lists; the rest are counted in one line."""
MESSAGE_LINES = 3
"""The most lines of a kind's example message ``report()`` shows."""
_LINE_CHARS = 200
_NUMBERS = re.compile(r"0x[0-9a-fA-F]+|\b[0-9a-f]{8,}\b|\d+(?:\.\d+)?")


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """One kind of failure: ``type_name`` (the exception's class name), ``message`` (the
    first task's message), ``records`` (the failed tasks, in submission order) and whether
    their messages differ beyond the numbers (``varies``)."""

    type_name: str
    message: str
    records: tuple[TaskResult, ...]
    varies: bool

    @property
    def example(self) -> TaskResult:
        """The first failed task of this kind."""
        return self.records[0]


def exception_type(r: TaskResult) -> str:
    """The name of the exception class a failed task raised: the original type's for a
    :class:`RemoteError`, the first public class for osiiso_mp's private ones, else the
    outcome of the last attempt (``"failed"``) when the record has no exception."""
    exc = r.exception
    if exc is None:
        return r.attempt_log[-1].outcome if r.attempt_log else "failed"
    if isinstance(exc, RemoteError):
        return exc.type_name.rsplit(".", 1)[-1]
    for cls in type(exc).__mro__:
        if not cls.__name__.startswith("_"):
            return cls.__qualname__
    return type(exc).__qualname__  # pragma: no cover - object is public


def _own_text(r: TaskResult) -> str:
    """The message without the task's own name and id (which every message differs by)."""
    text = r.message
    for phrase in (f" (task {r.name!r}, id {r.task_id})", f" (task {r.name!r})", r.task_id):
        text = text.replace(phrase, "")
    return text.strip()


def group_failures(records: Iterable[TaskResult]) -> list[FailureGroup]:
    """``records`` (failed tasks) grouped by exception type and message shape, the most
    common kind first (ties in order of first appearance)."""
    kinds: dict[tuple[str, str], list[tuple[TaskResult, str]]] = {}
    for r in records:
        text = _own_text(r)
        kinds.setdefault((exception_type(r), _NUMBERS.sub("#", text)), []).append((r, text))
    ordered = sorted(kinds.items(), key=lambda kv: -len(kv[1]))  # stable: ties keep order
    return [
        FailureGroup(
            type_name=type_name,
            message=group[0][0].message,
            records=tuple(r for r, _ in group),
            varies=any(text != group[0][1] for _, text in group),
        )
        for (type_name, _), group in ordered
    ]


def message_lines(message: str, most: int = MESSAGE_LINES) -> list[str]:
    """Up to ``most`` non-empty lines of ``message``, each cut at 200 characters, and a
    last ``"... (N more lines)"`` when lines were left out."""
    lines = [ln.rstrip() for ln in message.splitlines() if ln.strip()]
    out = [ln if len(ln) <= _LINE_CHARS else ln[: _LINE_CHARS - 3] + "..." for ln in lines]
    if len(out) > most:
        out = [*out[:most], f"... ({len(out) - most} more lines)"]
    return out


def grouped_lines(failures: tuple[TaskResult, ...]) -> list[str]:
    """The failures block of ``report()`` for a run with many failures (no closing bar)."""
    groups = group_failures(failures)
    lines = [
        f"  Failures: {_count(len(failures), 'task')}, {_count(len(groups), 'kind')}"
        " (by exception type and message)"
    ]
    for g in groups[:MAX_KINDS]:
        r = g.example
        tries = f" ({r.attempts} attempts)" if r.attempts > 1 else ""
        vary = " (messages vary)" if g.varies else ""
        lines.append(
            f"    - {g.type_name}: {_count(len(g.records), 'task')}{vary}, "
            f"e.g. {r.name or r.task_id}{tries}"
        )
        lines.extend(f"      {ln}" for ln in message_lines(g.message))
    rest = groups[MAX_KINDS:]
    if rest:
        more = sum(len(g.records) for g in rest)
        lines.append(f"    ... and {_count(len(rest), 'more kind')} ({_count(more, 'task')})")
    return lines


def _count(n: int, word: str) -> str:
    """``"1 task"``, ``"3 tasks"``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
