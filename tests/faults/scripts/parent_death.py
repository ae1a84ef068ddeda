"""Run as ``python parent_death.py START_METHOD``; the test SIGKILLs this process.

Starts an ``Executor(procs=2)``, learns both worker pids (tasks return ``os.getpid()``),
gives both workers a long sleep, prints one JSON line ``{"workers": [pid, pid]}`` and then
sleeps until it is killed.
"""

import json
import os
import sys
import time

from osiiso_mp import Executor


def sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def main() -> None:
    ex = Executor(procs=2, start_method=sys.argv[1])
    pids: set[int] = set()
    deadline = time.monotonic() + 20
    while len(pids) < 2:
        if time.monotonic() > deadline:
            print(json.dumps({"error": f"only saw worker pids {sorted(pids)}"}), flush=True)
            sys.exit(1)
        futs = [ex.submit(sleep_then_pid, 0.2) for _ in range(2)]
        pids.update(f.result(timeout=20) for f in futs)
    for _ in range(4):
        ex.submit(time.sleep, 120)
    time.sleep(0.2)  # let the long sleeps start
    print(json.dumps({"workers": sorted(pids)}), flush=True)
    time.sleep(120)


if __name__ == "__main__":
    main()
