"""Run as ``python lambdas_main.py START_METHOD``: an Executor created at the top level of a
``__main__`` script with no ``if __name__ == "__main__"`` guard, mapping a lambda, a closure
and a function defined in ``__main__``.

Prints one line per result, then ``pids:`` and the worker pids (so the caller can check they
are gone once this script has exited).
"""

import os
import sys
from collections.abc import Callable
from typing import cast

from osiiso_mp import Executor

method = sys.argv[1]
offset = 100


def make_adder(n: int) -> Callable[[int], int]:
    def add(x: int) -> int:
        return x + n

    return add


def cube(x: int) -> int:
    return x**3


with Executor(procs=2, start_method=method) as ex:
    print("lambda", list(ex.map(lambda x: x * x, range(6))))
    print("closure", list(ex.map(make_adder(offset), range(4))))
    print("main_fn", list(ex.map(cube, [1, 2, 3])))
    print("submit", ex.submit(cast(Callable[..., int], lambda a, b=1: a * 10 + b), 4, b=2).result())
    pids = sorted({ex.submit(os.getpid).result() for _ in range(4)})
print("pids:", " ".join(str(p) for p in pids))
