"""The record of a whole run: :class:`RunSummary`, every task's record with counters, views
and groupings (``by_name()``, ``by_group()``), its text report (``display()``), its
machine-readable form (``to_dict()``, ``to_json()``, schema version 1), and, through
:mod:`._render`, an HTML table and an SVG timeline.

The records themselves are in :mod:`._results`, the telemetry figures in
:mod:`._run_telemetry`. Nothing here does I/O except :meth:`RunSummary.display`, which
prints.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, TypeVar

from ._errors import ExecutionError
from ._results import RESULT_FIELDS, TaskResult, safe_repr, value_repr
from ._run_telemetry import RunTelemetry

if TYPE_CHECKING:
    import os

    import pandas

    from ._render import SVG

__all__ = ["SCHEMA_VERSION", "RunSummary"]

K = TypeVar("K")

SCHEMA_VERSION = 1
"""The version of the :meth:`RunSummary.to_dict` schema."""
_BAR = "-" * 40
_GROUP_FAILURES_ABOVE = 10  # _failure_groups.GROUP_ABOVE, without importing it here


@dataclass(frozen=True, slots=True, repr=False)
class RunSummary:
    """Every record of one run (``Executor.run()`` / ``wait()``), with counters and views.

    ``results`` are in submission order; detached tasks are not in it. ``ok`` is True when no
    task failed or was cancelled and the run did not time out. The summary is frozen, and
    so are its views: ``values``, ``errors``, ``successes()``, ``cancellations()`` and the
    groups of ``by_name()`` and ``by_group()`` are tuples.
    """

    results: tuple[TaskResult, ...]
    duration: float
    timed_out: bool = False
    procs: int = 1
    respawns: int = 0
    total_submitted: int = field(init=False, compare=False)
    succeeded: int = field(init=False, compare=False)
    failed: int = field(init=False, compare=False)
    cancelled: int = field(init=False, compare=False)
    _telemetry: RunTelemetry | None = field(init=False, default=None, compare=False)

    def __post_init__(self) -> None:
        results = tuple(self.results)
        statuses = [r.status for r in results]
        object.__setattr__(self, "results", results)
        object.__setattr__(self, "total_submitted", len(results))
        object.__setattr__(self, "succeeded", statuses.count("succeeded"))
        object.__setattr__(self, "failed", statuses.count("failed"))
        object.__setattr__(self, "cancelled", statuses.count("cancelled"))

    # -- views ---------------------------------------------------------------------------

    @property
    def ok(self) -> bool:
        """True if no task failed or was cancelled and the run did not time out."""
        return self.failed == 0 and self.cancelled == 0 and not self.timed_out

    @property
    def restored(self) -> int:
        """How many of the succeeded tasks were restored from a checkpoint: inputs an
        earlier run finished (``succeeded`` records with no attempt; see ``Checkpoint``)."""
        return sum(1 for r in self.results if r.status == "succeeded" and not r.attempts)

    def _succeeded_label(self) -> str:
        """``"12"``, or ``"12 (8 restored from checkpoint)"`` (the text and HTML reports')."""
        restored = self.restored
        if not restored:
            return str(self.succeeded)
        return f"{self.succeeded} ({restored} restored from checkpoint)"

    @property
    def status_word(self) -> str:
        """``"TIMED OUT"``, else ``"PASSED"`` when :attr:`ok`, else ``"COMPLETED WITH ERRORS"``."""
        if self.timed_out:
            return "TIMED OUT"
        return "PASSED" if self.ok else "COMPLETED WITH ERRORS"

    @property
    def values(self) -> tuple[Any, ...]:
        """The values of the succeeded tasks, in submission order."""
        return tuple(r.value for r in self.results if r.status == "succeeded")

    @property
    def errors(self) -> tuple[TaskResult, ...]:
        """The failed records, in submission order."""
        return self._with_status("failed")

    @property
    def telemetry(self) -> RunTelemetry:
        """CPU, efficiency, per-worker and attempt figures of the run (computed once)."""
        if self._telemetry is None:
            built = RunTelemetry.build(self.results, self.duration, self.procs, self.respawns)
            object.__setattr__(self, "_telemetry", built)
            return built
        return self._telemetry

    def successes(self) -> tuple[TaskResult, ...]:
        """The succeeded records, in submission order."""
        return self._with_status("succeeded")

    def cancellations(self) -> tuple[TaskResult, ...]:
        """The cancelled records, in submission order."""
        return self._with_status("cancelled")

    def _with_status(self, status: str) -> tuple[TaskResult, ...]:
        return tuple(r for r in self.results if r.status == status)

    def by_task_id(self) -> dict[str, TaskResult]:
        """The records keyed by task id."""
        return {r.task_id: r for r in self.results}

    def by_name(self) -> dict[str, tuple[TaskResult, ...]]:
        """The records grouped by task name (tuples), names in order of first appearance."""
        return _grouped(self.results, lambda r: r.name)

    def by_group(self) -> dict[Hashable | None, tuple[TaskResult, ...]]:
        """The records grouped by ``group_id`` (tuples; ungrouped ones under None), in order
        of first appearance."""
        return _grouped(self.results, lambda r: r.group_id)

    def raise_for_errors(self, *, include_cancelled: bool = False) -> None:
        """Raise :class:`ExecutionError` when a task failed (or, if asked, was cancelled).

        The message counts them (``"2 task(s) failed"``, ``"2 task(s) failed, 1 task(s)
        cancelled"``); ``.results`` holds those records in submission order.
        """
        bad = {"failed", "cancelled"} if include_cancelled else {"failed"}
        culprits = [r for r in self.results if r.status in bad]
        if not culprits:
            return
        parts = []
        if self.failed:
            parts.append(f"{self.failed} task(s) failed")
        if include_cancelled and self.cancelled:
            parts.append(f"{self.cancelled} task(s) cancelled")
        raise ExecutionError(", ".join(parts), culprits)

    # -- text ----------------------------------------------------------------------------

    def report(self) -> str:
        """The text :meth:`display` prints (no trailing newline).

        Up to 10 failed tasks are listed one by one, with their messages; more are grouped
        by exception type and message (each kind with its count and one example task, at
        most 10 kinds and 3 lines of message each), so that the text stays short for any
        number of failures.
        """
        lines = [_BAR, f"  Run Summary: {self.status_word}", _BAR]
        for label, value in (
            ("Total tasks", str(self.total_submitted)),
            ("Succeeded", self._succeeded_label()),
            ("Failed", str(self.failed)),
            ("Cancelled", str(self.cancelled)),
            ("Duration", f"{self.duration:.3f}s"),
        ):
            lines.append(f"  {label:<12}: {value}")
        lines.append(_BAR)
        failures = self.errors  # cancelled tasks are counted above, not listed
        if len(failures) > _GROUP_FAILURES_ABOVE:
            from ._failure_groups import grouped_lines

            lines.extend(grouped_lines(failures))
            lines.append(_BAR)
        elif failures:
            lines.append("  Failures:")
            for r in failures:
                tries = f" ({r.attempts} attempts)" if r.attempts > 1 else ""
                lines.append(f"    - {r.name or r.task_id}{tries}")
                lines.extend(f"      {ln.rstrip()}" for ln in r.message.splitlines() if ln.strip())
            lines.append(_BAR)
        return "\n".join(lines)

    def display(self) -> None:
        """Print :meth:`report`."""
        print(self.report())

    def __repr__(self) -> str:
        return (
            f"RunSummary({self.status_word}, total={self.total_submitted}, "
            f"succeeded={self.succeeded}, failed={self.failed}, cancelled={self.cancelled}, "
            f"duration={self.duration:.3f}s)"
        )

    # -- machine-readable ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data (schema version 1).

        ::

            {"schema_version": 1, "status": "PASSED" | "TIMED OUT" | "COMPLETED WITH ERRORS",
             "ok": bool, "total_submitted": int, "succeeded": int, "failed": int,
             "cancelled": int, "timed_out": bool, "duration": float, "procs": int,
             "respawns": int,
             "telemetry": {"cpu_seconds", "efficiency", "attempts", "retries", "crashes",
                           "timeouts", "memory_exceeded", "respawns", "peak_rss",
                           "workers": [{"worker", "pids": [int], "attempts", "busy_time",
                                        "utilisation"}],
                           "slowest": [task_id, ...]},
             "results": [{"task_id", "name", "status",
                          "value_repr": repr(value) for succeeded tasks (a marker
                                        text once released), else null,
                          "exception": {"type": qualified name, "message": str} | null,
                          "attempts", "priority", "must_complete",
                          "group_id": a JSON scalar, else its repr,
                          "detached", "created_at", "started_at", "finished_at",
                          "duration", "message",
                          "metadata": as JSON if it converts (tuples become lists), else
                                      its repr,
                          "attempt_log": [{every Attempt field}]}]}

        Times are ``time.perf_counter()`` seconds, memory figures bytes. Every value is
        JSON-native, so ``json.loads(s.to_json()) == s.to_dict()``.
        """
        t = self.telemetry
        telemetry = _fields_dict(t)
        telemetry["workers"] = [_fields_dict(w) | {"pids": list(w.pids)} for w in t.workers]
        telemetry["slowest"] = [r.task_id for r in t.slowest]
        return {
            "schema_version": SCHEMA_VERSION,
            "status": self.status_word,
            "ok": self.ok,
            "total_submitted": self.total_submitted,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "timed_out": self.timed_out,
            "duration": self.duration,
            "procs": self.procs,
            "respawns": self.respawns,
            "telemetry": telemetry,
            "results": [_result_dict(r) for r in self.results],
        }

    def to_json(self, **json_kwargs: Any) -> str:
        """:meth:`to_dict` as JSON text; ``json_kwargs`` go to :func:`json.dumps`."""
        import json  # here: importing it costs start-up time

        return json.dumps(self.to_dict(), **json_kwargs)

    # -- notebooks (rendering lives in _render, imported on first use) --------------------

    def _repr_html_(self) -> str:
        """The summary as HTML, for Jupyter: counters, failures (grouped when many, the
        list bounded), the timeline, the attempt-duration and worker-utilisation plots."""
        from ._render import summary_html

        return summary_html(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        """IPython's pretty printer: the :meth:`report` text."""
        from ._render import pretty

        pretty(self, p, cycle)

    def timeline(self, width: int = 900) -> SVG:
        """An SVG Gantt chart of the attempts, one row per worker (a ``str`` that Jupyter
        renders as an image).

        It scales with its container up to ``width`` pixels, reads on light and dark
        themes, and names the task, outcome and duration of each bar in its tooltip. Above
        2,000 attempts it bins the run in time (per worker: busy share, and a mark wherever
        an attempt failed, timed out or crashed), so that it stays small for any run.
        """
        from ._render import timeline_svg

        return timeline_svg(self, width=width)

    # -- other tools' forms (in _exports, imported on first use) --------------------------

    def to_pandas(self) -> pandas.DataFrame:
        """A ``pandas.DataFrame`` with one row per attempt, in submission order (a task's
        attempts in order); a task that made no attempt (cancelled before it ran) has one
        row whose attempt columns are missing.

        Columns: the task's ``task_id``, ``name``, ``group_id``, ``status``, ``attempts``,
        ``exception_type`` (``module.QualName`` of a failed task's exception, bare for
        builtins), ``message`` and ``created_at``, repeated on each of its attempts; then
        the attempt's ``attempt`` (its number), ``outcome``, ``worker``, ``pid``, ``node``,
        ``queued_for``, ``started_at``, ``finished_at``, ``duration``, ``cpu_time``,
        ``peak_rss``, ``rss_delta``, ``error`` and ``exit_code``, as in :class:`Attempt`.
        Integer columns that may be missing are pandas' nullable ``Int64``; times are
        ``time.perf_counter()`` seconds (``float64``, NaN where missing).

        Raises:
            ImportError: pandas is not installed (``pip install 'osiiso_mp[pandas]'``).
        """
        from ._exports import data_frame

        return data_frame(self)

    def to_chrome_trace(self, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """The run as a Chrome trace (the Trace Event Format) that Perfetto
        (ui.perfetto.dev) and ``chrome://tracing`` open, like ``ray timeline``; with
        ``path``, also written there as JSON.

        One track per worker slot (named ``worker N (pid ...)``), one complete event
        (``"ph": "X"``) per attempt that started, named after the task, from its start for
        its duration (microseconds since the run's first submission), its category the
        attempt's outcome; an attempt that never started is an instant event. Each event's
        ``args`` hold the task id, attempt number, outcome, the task's status, pid, and
        the error and exit code where there is one.
        """
        from ._exports import chrome_trace, write_trace

        trace = chrome_trace(self)
        if path is not None:
            write_trace(trace, path)
        return trace


def _fields_dict(obj: Any) -> dict[str, Any]:
    """A dataclass instance's fields as a dict (shallow, unlike ``dataclasses.asdict``)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _type_name(exc: BaseException) -> str:
    """``module.QualName`` of an exception's type (bare for builtins)."""
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _jsonable(obj: Any) -> Any:
    """``obj`` as JSON-native data when it converts, else its repr."""
    try:
        import json

        return json.loads(json.dumps(obj, allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        return safe_repr(obj)


def _result_dict(r: TaskResult) -> dict[str, Any]:
    """One :class:`TaskResult` as JSON-ready data (see :meth:`RunSummary.to_dict`)."""
    exc: dict[str, str] | None = None
    if r.exception is not None:
        try:
            message = str(r.exception)
        except Exception:
            message = safe_repr(r.exception)
        exc = {"type": _type_name(r.exception), "message": message}
    group = r.group_id
    if not (group is None or isinstance(group, str | int | float | bool)):
        group = safe_repr(group)
    out = {
        ("value_repr" if k == "value" else k): (None if k == "value" else getattr(r, k))
        for k in RESULT_FIELDS
    }
    out.update(  # same keys, so the field order is kept
        value_repr=value_repr(r) if r.status == "succeeded" else None,
        exception=exc,
        group_id=group,
        metadata=_jsonable(r.metadata),
        attempt_log=[_fields_dict(a) for a in r.attempt_log],
    )
    return out


def _grouped(
    results: Iterable[TaskResult], key: Callable[[TaskResult], K]
) -> dict[K, tuple[TaskResult, ...]]:
    """``results`` grouped by ``key``, keys in order of first appearance, groups as tuples."""
    out: dict[K, list[TaskResult]] = {}
    for r in results:
        out.setdefault(key(r), []).append(r)
    return {k: tuple(group) for k, group in out.items()}
