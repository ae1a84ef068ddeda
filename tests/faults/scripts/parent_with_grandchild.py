"""Run by test_process_tree: a parent whose task started a child of its own, then waits to
be SIGKILLed. Prints the worker's pid and the grandchild's pid."""

import os
import subprocess
import sys
import time

from osiiso_mp import Executor


def start_grandchild(_: int) -> tuple[int, int]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    return os.getpid(), child.pid


ex = Executor(procs=1, start_method=sys.argv[1])
worker, grandchild = ex.submit(start_grandchild, 0).result(timeout=60)
ex.submit(time.sleep, 120)  # keep the worker busy
print(worker, grandchild, flush=True)
time.sleep(120)
