"""A bad option is reported from the caller's line: a short traceback (the caller's frames
and the facade's ``raise``), not a walk through the library's checks. Each case runs as a
script of its own, as a user would see it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    from osiiso_mp import Executor

    def main():
        {call}

    main()
    """
)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("call", "error"),
    [
        ("Executor(procs=2, retires=3)", "TypeError: Executor() got an unexpected keyword"),
        ("Executor(procs=2, max_rss='lots')", "ValueError: max_rss"),
        ("Executor(procs=0)", "ValueError: procs"),
        ("Executor(procs=1).options(timeout=-1)", "ValueError: timeout"),
        ("Executor(procs=1).options(retries=1).options(priorty=1)", "TypeError"),
    ],
)
def test_a_bad_option_is_reported_from_the_callers_line(call: str, error: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(call=call)],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode == 1
    err = done.stderr
    last = err.strip().splitlines()[-1]
    assert last.startswith(error), err
    frames = [line for line in err.splitlines() if line.startswith('  File "')]
    # the script's two lines (module, main), then the facade's raise: nothing deeper
    assert len(frames) == 3, err
    assert frames[1].endswith("in main") and "osiiso_mp" in frames[2], err
    assert "_checks.py" not in err and "_build_config.py" not in err, err
    assert len(err.splitlines()) <= 12, err
