"""Run by test_ctrl_c: a batch that a terminal's Ctrl-C interrupts.

Prints the worker pids, then 'ready', then blocks in run(). After the KeyboardInterrupt it
prints what became of the tasks and checks that the executor is still usable (as a
notebook kernel's would be), then interrupts again inside a `with` block.
"""

import faulthandler
import os
import sys
import time

from osiiso_mp import Executor

# A run takes a few seconds; one that stalls dumps every thread's stack to stderr and exits
# well inside the test's 90 s timeout, so that the failure says where it hung.
faulthandler.dump_traceback_later(45, exit=True)

ex = Executor(procs=2, start_method=sys.argv[1])


def probe(_: int) -> int:
    time.sleep(0.2)
    return os.getpid()


probes = ex.map(probe, range(4))
print("pids", *sorted(set(probes)), flush=True)
ex.run()  # the probes' batch
running = [ex.submit(time.sleep, 60) for _ in range(2)]
queued = [ex.submit(time.sleep, 60) for _ in range(3)]
while not all(f.status() == "running" for f in running):
    time.sleep(0.01)
print("ready", flush=True)
try:
    ex.run()
except KeyboardInterrupt:
    records = [f.task_result(timeout=10) for f in running + queued]
    states = [r.status if r is not None else "missing" for r in records]
    print("interrupted", *states, flush=True)
# the executor still works after the interrupt
print("after", ex.submit(pow, 2, 10).result(timeout=30), flush=True)
with ex:
    ex.submit(time.sleep, 60)
    print("ready-again", flush=True)
    time.sleep(60)  # a second Ctrl-C lands here; leaving the block kills what runs
