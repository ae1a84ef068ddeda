"""Smoke test of the installed wheel, run by .ci/run from outside the checkout.

What works only from an editable checkout fails here: the package must import from the
virtualenv's site-packages, start its workers (the fork server, the worker entry point), run
a sync and an async task, report a crash, and build a summary.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import osiiso_mp
from osiiso_mp import Executor, WorkerCrashedError


def square(x: int) -> int:
    return x * x


async def async_square(x: int) -> int:
    await asyncio.sleep(0)
    return x * x


def crash() -> None:
    os._exit(3)


def main() -> None:
    where = Path(osiiso_mp.__file__).resolve()
    assert Path(sys.prefix).resolve() in where.parents, f"imported from {where}, not the venv"
    assert (where.parent / "py.typed").exists(), "py.typed is missing from the wheel"
    with Executor(procs=2) as ex:
        assert ex.submit(square, 7).result(timeout=60) == 49
        assert ex.submit(async_square, 8).result(timeout=60) == 64
        crashed = ex.submit(crash).exception(timeout=60)
        assert isinstance(crashed, WorkerCrashedError) and crashed.exit_code == 3, crashed
        assert list(ex.map(square, range(100))) == [i * i for i in range(100)]
        summary = ex.run(timeout=60)
    assert (summary.succeeded, summary.failed) == (102, 1), summary.report()
    summary.display()
    print(f"smoke test passed: osiiso_mp {osiiso_mp.__version__} from {where.parent}")


if __name__ == "__main__":
    main()
