"""Run by test_ctrl_c: Ctrl-C while the main thread waits inside ``list(ex.map(...))``.

Prints 'ready' once both workers run a map task, then waits for the interrupt. Afterwards it
prints every map task's final status and how long ``run()`` took to collect them: the task
being waited on when Ctrl-C came must be cancelled (killed) like the others.
"""

import faulthandler
import sys
import threading
import time

from osiiso_mp import Executor

# A run takes a few seconds; one that stalls dumps every thread's stack to stderr and exits
# well inside the test's 60 s timeout, so that the failure says where it hung.
faulthandler.dump_traceback_later(30, exit=True)

ex = Executor(procs=2, start_method=sys.argv[1])


def announce_when_running() -> None:
    while ex.stats().running < 2:
        time.sleep(0.01)
    print("ready", flush=True)


threading.Thread(target=announce_when_running, daemon=True).start()
try:
    list(ex.map(time.sleep, [60, 60, 60]))
except KeyboardInterrupt:
    started = time.monotonic()
    summary = ex.run(timeout=20)
    statuses = sorted(r.status for r in summary.results)
    print("interrupted", *statuses, f"{time.monotonic() - started:.1f}", flush=True)
ex.shutdown()
