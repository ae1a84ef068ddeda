"""Inputs a checkpoint had finished in an earlier run: done before anything is submitted.

A :class:`Restored` entry stands for a run of consecutive such inputs. It is an entry of a
map's window (values in input order, handed over as a chunk's are) and of the batch of the
next ``run()`` (a ``succeeded`` record per input, with no attempt, built when read), and a
``concurrent.futures.Future`` that is done from the start, so that ``cf.wait``, progress
bars and readers treat it as any finished entry.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ._future import TaskFuture
from ._map_chunk import handing_over, take
from ._results import TaskResult

if TYPE_CHECKING:
    from ._runtime._task import Task
    from ._runtime.supervisor import Supervisor
    from ._task_options import TaskOptions

__all__ = ["Restored"]


class Restored(cf.Future[None]):
    """Restored inputs, in order: their values, and the times they were first recorded
    (``perf_counter`` readings), as records named ``name`` with ``opts``' fields."""

    _task: Task | None = None  # the supervisor never held it
    _unread_bytes = 0
    holder = None  # nothing of the executor's value budget

    def __init__(
        self,
        *,
        values: list[Any],
        finished: list[float],
        name: str,
        opts: TaskOptions,
        message: str,
        new_id: Callable[[], str],
    ) -> None:
        super().__init__()
        self._values: list[Any] | None = list(values)
        self._kept = values  # for the records (the reader takes the values out of _values)
        self._finished = finished
        self._name = name
        self._opts = opts
        self._message = message
        self._new_id = new_id  # the records' ids are made with them, when first read
        self._records: list[TaskResult] | None = None
        self.set_result(None)

    def __repr__(self) -> str:
        return f"<Restored {self._name!r} items={len(self._kept)}>"

    @property
    def weight(self) -> int:
        """How many inputs it stands for."""
        return len(self._kept)

    @property
    def finished_at(self) -> float:
        """When the last of them was first recorded (``perf_counter``)."""
        return max(self._finished)

    def future(self) -> None:
        """Nothing to wait on for this batch entry (it is done from the start)."""
        return None

    def failed(self) -> TaskResult | None:
        """None: restored inputs all succeeded (``fail_first`` looks for a failure)."""
        return None

    def records(self) -> list[TaskResult]:
        """A ``succeeded`` record per input, in order: no attempt, the restored message
        (built on first read)."""
        if self._records is None:
            self._records = self._build()
        return list(self._records)

    def futures(self, sup: Supervisor) -> list[TaskFuture[Any]]:
        """A done :class:`TaskFuture` per input, holding its record (for a group)."""
        out: list[TaskFuture[Any]] = []
        for record in self.records():
            fut: TaskFuture[Any] = TaskFuture(sup, record.task_id, record.name)
            fut._settle(record)  # nobody else has it yet: settled here
            out.append(fut)
        return out

    def _build(self) -> list[TaskResult]:
        opts, new_id = self._opts, self._new_id
        return [
            TaskResult(
                task_id=new_id(),
                name=self._name,
                status="succeeded",
                value=value,
                attempts=0,
                priority=opts.priority,
                must_complete=opts.must_complete,
                group_id=opts.group_id,
                detached=opts.detached,
                created_at=at,
                finished_at=at,
                message=self._message,
                metadata=opts.metadata,
            )
            for value, at in zip(self._kept, self._finished, strict=True)
        ]

    # -- as an entry of a map's window (see ``_map.MapEntry``) ------------------------------

    def cancel(self) -> bool:
        """Nothing to cancel: they are done."""
        return False

    def _ended(self, i: int) -> bool:
        return True

    def _wait_item(self, i: int, timeout: float | None) -> bool:
        return True

    def _on_progress(self, wake: Callable[[], object]) -> None:
        wake()

    def _item(self, i: int) -> Any:
        assert self._values is not None
        return take(self._values, i)

    def _take_values(self, start: int = 0) -> Iterator[Any]:
        values, self._values = self._values, None
        assert values is not None
        return handing_over(values[start:] if start else values)

    def _drop_values(self) -> None:
        self._values = None

    def _collect(self, values: list[Any], bad: list[TaskResult]) -> None:
        values.extend(self._kept)
