"""The callables every peer runs in the benchmarks, in a module of their own.

Workers unpickle them by reference (``bench_tasks.noop`` ...): the harness's children run
with this directory on ``PYTHONPATH``. They live apart from ``harness.py`` so that a
worker's first task imports only this small module, not the harness and everything it
imports (argparse, json, statistics ...): that import was a cost of the harness, not of the
pool under test, and it fell unevenly (a forkserver that preloads ``__main__`` paid it once,
before forking; a pool that does not paid it in every worker).
"""

from __future__ import annotations

from typing import Any


def noop() -> None:
    """Nothing at all."""


def nbytes(data: bytes) -> int:
    """Take a buffer in, send a small answer back."""
    return len(data)


def make_bytes(n: int) -> bytes:
    """Send a buffer of ``n`` bytes back."""
    return b"\x01" * n


def array_nbytes(a: Any) -> int:
    """Take an array in, read one value per 4 KiB page (a pool that maps the data rather
    than copying it pays for its page faults here), send a small answer back."""
    a[:: 4096 // a.itemsize].sum()
    return int(a.nbytes)


def make_array(n: int) -> Any:
    """Send a float64 array of ``n`` bytes back (the caller touches every page of it)."""
    import numpy as np

    return np.ones(n // 8)
