"""``python -m osiiso_mp demo`` (what ``make demo`` runs) tells its story in seconds: what
the batch holds, the run's summary, how each task ended, a telemetry digest, and where to
look next."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
import time

import pytest

from osiiso_mp._demo import NEXT_STEPS

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.timeout(60)
def test_demo_tells_the_whole_story(tmp_path: pathlib.Path) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "osiiso_mp", "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=50,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out = proc.stdout
    assert elapsed < 10, f"the demo took {elapsed:.1f}s\n{out}"

    # what is about to happen
    assert out.startswith("osiiso_mp demo: 20 tasks on ")
    for name in ("fetch-api", "parse-data", "slow-report", "native-ext"):
        assert f"\n  {name} " in out, name

    # the summary, exactly as display() prints it
    assert "  Run Summary: COMPLETED WITH ERRORS\n" in out
    assert "  Total tasks : 20\n  Succeeded   : 17\n  Failed      : 3\n  Cancelled   : 0\n" in out
    failures = out.split("  Failures:\n", 1)[1]
    assert "    - parse-data\n      Invalid JSON at line 42\n" in failures
    assert "    - slow-report\n      attempt timed out after 0.5s" in failures
    assert "    - native-ext\n      worker " in failures and "exit code 139" in failures
    assert "fetch-api" not in failures  # it succeeded on its retry

    # how each task ended, and the digest
    assert (
        "\noutcomes: 17 succeeded (1 after a retry); "
        "3 failed: 1 raised, 1 timed out, 1 crashed; 0 cancelled\n"
    ) in out
    digest = re.search(
        r"^telemetry: 21 attempts \(1 retried\); attempt duration mean (\d+\.\d{3})s, "
        r"p95 (\d+\.\d{3})s; (\d+\.\d\d) CPU s on \d+ workers \(efficiency \d+%\); "
        r"peak RSS \d+\.\d\d [KMG]iB; slowest slow-report 0\.5\ds$",
        out,
        re.M,
    )
    assert digest, out
    mean, p95, cpu = (float(g) for g in digest.groups())
    assert mean > 0 and p95 > 0 and cpu > 0

    # where to look next: every line is there, and every file it names exists
    next_steps = out.split("\nwhere to look next:\n", 1)[1]
    for what, why in NEXT_STEPS:
        assert re.search(rf"^  {re.escape(what)} +{re.escape(why)}$", next_steps, re.M), what
        if not what.startswith("python "):
            assert (ROOT / what).is_file(), what
    assert "python -m osiiso_mp info" in next_steps
    assert "docs/quickstart.md" in next_steps
    assert "examples/quickstart.ipynb" in next_steps
