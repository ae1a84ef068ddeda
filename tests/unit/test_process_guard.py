"""The guard of this folder (``conftest.py``) hears process creation while a test runs."""

from __future__ import annotations

import sys

from . import conftest as guard


def test_the_guard_records_process_creation_events_and_nothing_else() -> None:
    # raised by hand: the events os.posix_spawn and subprocess.Popen raise, no process
    sys.audit("open", "/dev/null", "r", 0)
    sys.audit("os.posix_spawn", "/bin/true", ["true"], None)
    sys.audit("subprocess.Popen", "/bin/true", ["true"], None, None)
    seen, guard._Watch.seen = guard._Watch.seen, []  # none was real: let the test pass
    assert len(seen) == 2
    assert seen[0].startswith("os.posix_spawn('/bin/true') in thread ")
    assert seen[1].startswith("subprocess.Popen('/bin/true') in thread ")
