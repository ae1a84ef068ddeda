"""A :class:`PoolStats` snapshot in the Prometheus text exposition format (version 0.0.4).

``PoolStats.to_prometheus()`` calls :func:`exposition`. Each metric family is written as
its ``# HELP`` line, its ``# TYPE`` line, then its samples; label values and help texts
are escaped as the format says (a backslash, a double quote in label values, a newline).
Every sample of a family is written even when it is 0 (the ``state`` of every worker
state, the ``status`` of every task status), so that series do not come and go. Pure
functions of the snapshot: no I/O, no dependency.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._snapshots import PoolStats

__all__ = ["exposition"]

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_OWN_LABELS = frozenset({"status", "state", "worker"})  # the labels the metrics use
_WORKER_STATES = ("starting", "idle", "busy", "retiring", "stopping")
_STATUSES = ("succeeded", "failed", "cancelled")

# one sample: its label pairs (after the constant labels) and its value
_Sample = tuple[Sequence[tuple[str, str]], float]


def exposition(stats: PoolStats, prefix: str, labels: Mapping[str, str]) -> str:
    """``stats`` as Prometheus text: every metric name starts with ``prefix``, every sample
    carries ``labels`` (see ``PoolStats.to_prometheus``)."""
    if not _METRIC_NAME.match(prefix):
        raise ValueError(f"prefix {prefix!r} is not a valid Prometheus metric name")
    for name in labels:
        if not _LABEL_NAME.match(name) or name.startswith("__"):
            raise ValueError(f"label {name!r} is not a valid Prometheus label name")
        if name in _OWN_LABELS:
            raise ValueError(f"label {name!r} is one the metrics use: choose another name")
    common = [(name, str(value)) for name, value in labels.items()]
    out: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: Iterable[_Sample]) -> None:
        # a counter's samples, and so (in this format) its HELP and TYPE, end in _total
        full = f"{prefix}_{name}_total" if kind == "counter" else f"{prefix}_{name}"
        out.append(f"# HELP {full} {_escape_help(help_text)}")
        out.append(f"# TYPE {full} {kind}")
        for pairs, value in samples:
            out.append(f"{full}{_labels([*common, *pairs])} {_number(value)}")

    def one(value: float) -> list[_Sample]:
        return [((), value)]

    workers = stats.workers
    by_state = dict.fromkeys(_WORKER_STATES, 0)
    for w in workers:
        by_state[w.state] = by_state.get(w.state, 0) + 1
    ended = {"succeeded": stats.succeeded, "failed": stats.failed, "cancelled": stats.cancelled}

    family(
        "tasks",
        "counter",
        "Tasks ended since the executor started, by status (map items one by one).",
        [((("status", s),), ended[s]) for s in _STATUSES],
    )
    family("retries", "counter", "Retries scheduled after a failed attempt.", one(stats.retries))
    family("timeouts", "counter", "Attempts that ran past their timeout.", one(stats.timeouts))
    family("crashes", "counter", "Attempts lost with their worker.", one(stats.crashes))
    family(
        "memory_exceeded",
        "counter",
        "Attempts whose worker was killed above max_rss.",
        one(stats.memory_exceeded),
    )
    family(
        "tasks_pending",
        "gauge",
        "Tasks queued to start (the queue depth), those sent ahead to a busy worker included.",
        one(stats.pending),
    )
    family("tasks_running", "gauge", "Tasks running now.", one(stats.running))
    family(
        "tasks_scheduled",
        "gauge",
        "Tasks waiting for a delay, a start time or a retry backoff.",
        one(stats.scheduled),
    )
    family(
        "workers",
        "gauge",
        "Worker slots by state.",
        [((("state", state),), count) for state, count in by_state.items()],
    )

    def per_worker(values: Iterable[tuple[int, float | None]]) -> list[_Sample]:
        return [((("worker", str(slot)),), v) for slot, v in values if v is not None]

    family(
        "worker_rss_bytes",
        "gauge",
        "Resident memory of the worker's process, in bytes (0 when it could not be read).",
        per_worker((w.worker, w.rss) for w in workers),
    )
    family(
        "worker_cpu_percent",
        "gauge",
        "CPU use of the worker's process since the previous stats() call, in percent.",
        per_worker((w.worker, w.cpu_percent) for w in workers),
    )
    family(
        "worker_running_tasks",
        "gauge",
        "Tasks the worker is running now.",
        per_worker((w.worker, len(w.current)) for w in workers),
    )
    family(
        "worker_pid",
        "gauge",
        "Process id of the worker (absent while the slot has no process).",
        per_worker((w.worker, w.pid) for w in workers),
    )
    family(
        "worker_tasks_done",
        "counter",
        "Attempts the worker's current process has finished (from 0 again when it is replaced).",
        per_worker((w.worker, w.tasks_done) for w in workers),
    )
    family(
        "worker_restarts",
        "counter",
        "Times the worker slot's process was replaced.",
        per_worker((w.worker, w.restarts) for w in workers),
    )
    out.append("")  # the text ends with a line feed
    return "\n".join(out)


def _labels(pairs: Sequence[tuple[str, str]]) -> str:
    """``{name="value",...}`` with the values escaped, or nothing for no labels."""
    if not pairs:
        return ""
    return "{" + ",".join(f'{name}="{_escape_value(value)}"' for name, value in pairs) + "}"


def _escape_value(value: str) -> str:
    return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _number(value: float) -> str:
    """A sample value as the format writes it: integers as such, ``NaN``, ``+Inf``."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)
