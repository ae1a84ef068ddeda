"""``python -m osiiso_mp`` run as users run it, in a process of its own: ``--version``,
``info`` (readable, and ``--json``), refused arguments, a reader that goes away (a real
pipe, and ``| head -1`` in a shell), and Ctrl-C during the demo. Every case checks the exit
status and that no traceback is printed (but Ctrl-C's), and the demo's cases that no worker
or fork server of it is left: they are found by their process titles, which name their
parent (``osiiso_mp worker 0 (executor 1, parent PID)``)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from process_support import wait_for, wait_until

from osiiso_mp import __version__

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60
EPIPE_STATUS = 141


def env(**extra: str) -> dict[str, str]:
    """This checkout first on the path (the commands run in a scratch directory)."""
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT) if not path else os.pathsep.join([str(ROOT), path]),
        **extra,
    }


def cli(*args: str, tmp: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "osiiso_mp", *args],
        cwd=tmp,
        env=env(**extra),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )


def titled(parent: int) -> dict[int, str]:
    """pid -> title of every live osiiso_mp process (worker or fork server) of ``parent``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        title = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
        if title.startswith("osiiso_mp ") and title.endswith(f"parent {parent})"):
            found[int(entry.name)] = title
    return found


def none_left(parent: int) -> None:
    wait_until(lambda: not titled(parent), f"the processes of {parent} to end", timeout=10)


def test_version(tmp_path: Path) -> None:
    proc = cli("--version", tmp=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"osiiso_mp {__version__}\n", "")


@pytest.mark.parametrize(
    "args",
    [
        ("demo", "--procs", "0"),
        ("demo", "--procs", "-3"),
        ("bench", "--tasks", "0"),
        ("bench", "--repeats", "many"),
    ],
)
def test_a_bad_number_is_refused_with_a_usage_error(tmp_path: Path, args: tuple[str, ...]) -> None:
    proc = cli(*args, tmp=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    *usage, error = proc.stderr.splitlines()
    assert usage[0].startswith(f"usage: python -m osiiso_mp {args[0]} ")
    assert error.startswith(f"python -m osiiso_mp {args[0]}: error: argument {args[1]}: ")


def test_info_reads_as_text_and_as_json(tmp_path: Path) -> None:
    text = cli("info", tmp=tmp_path)
    raw = cli("info", "--json", tmp=tmp_path)
    assert (text.returncode, text.stderr, raw.returncode, raw.stderr) == (0, "", 0, "")
    facts: dict[str, Any] = json.loads(raw.stdout)
    # the keys of the JSON users may already read
    for key in ("osiiso_mp", "python", "platform", "uvloop", "cloudpickle", "psutil"):
        assert key in facts
    assert facts["osiiso_mp"] == __version__
    assert facts["cpu_budget"] == facts["limits"]["cpu_budget"] >= 1
    assert facts["default_start_method"] == "forkserver"
    assert facts["package_path"] == str(ROOT / "osiiso_mp")
    out = text.stdout
    assert out.startswith(f"osiiso_mp {__version__} on ")
    budget = facts["cpu_budget"]
    processes = "worker process" if budget == 1 else "worker processes"
    assert f"{budget} {processes} by default (procs=None)" in out
    for section in ("CPUs:", "memory:", "workers:", "dependencies:", "optional extras:"):
        assert f"\n{section}\n" in out, section
    assert not out.lstrip().startswith("{")


def test_info_says_when_osiiso_mp_max_cpus_decides(tmp_path: Path) -> None:
    proc = cli("info", tmp=tmp_path, OSIISO_MP_MAX_CPUS="1")
    assert proc.returncode == 0, proc.stderr
    assert "1 worker process by default" in proc.stdout
    assert "OSIISO_MP_MAX_CPUS=1 caps it" in proc.stdout


def test_a_reader_that_goes_away_mid_demo_ends_it_quietly(tmp_path: Path) -> None:
    """A real pipe: the first line read, then the read end closed while the demo's
    executor is running. Its next write fails; the command ends with status 141, prints
    nothing on stderr, and leaves no worker or fork server behind."""
    with subprocess.Popen(
        [sys.executable, "-m", "osiiso_mp", "demo"],
        cwd=tmp_path,
        env=env(PYTHONUNBUFFERED="1"),  # line by line, as to a terminal
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            first = proc.stdout.readline()
            assert first.startswith(b"osiiso_mp demo: 20 tasks on ")
            wait_until(lambda: len(titled(proc.pid)) > 1, "the demo's workers")
            proc.stdout.close()
            assert proc.wait(WAIT) == EPIPE_STATUS
            err = proc.stderr.read().decode()
        finally:
            if proc.poll() is None:
                proc.kill()
    assert err == ""
    none_left(proc.pid)


@pytest.mark.parametrize("command", [("demo",), ("info",), ("info", "--json")])
def test_a_reader_gone_before_the_first_line(tmp_path: Path, command: tuple[str, ...]) -> None:
    """No reader at all (the pipe's read end closed before the command starts), with
    Python's usual buffering: the write fails at the end, quietly too."""
    read, write = os.pipe()
    os.close(read)
    try:
        with subprocess.Popen(
            [sys.executable, "-m", "osiiso_mp", *command],
            cwd=tmp_path,
            env={k: v for k, v in env().items() if k != "PYTHONUNBUFFERED"},
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            _, err = proc.communicate(timeout=WAIT)
    finally:
        os.close(write)
    assert proc.returncode == EPIPE_STATUS
    assert err == ""
    none_left(proc.pid)


def test_demo_piped_to_head_in_a_shell(tmp_path: Path) -> None:
    """``python -m osiiso_mp demo | head -1``, as the issue ran it (unbuffered, so that
    head goes away while the demo still has lines to write)."""
    command = f"{shlex.quote(sys.executable)} -m osiiso_mp demo | head -1"
    proc = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command}"],
        cwd=tmp_path,
        env=env(PYTHONUNBUFFERED="1"),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert proc.returncode == EPIPE_STATUS, proc.stderr
    assert proc.stdout.startswith("osiiso_mp demo: 20 tasks on ")
    assert proc.stdout.count("\n") == 1
    assert proc.stderr == ""


def test_ctrl_c_during_the_demo(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the foreground process group) while the demo's batch runs: the
    run is interrupted, the command dies of the KeyboardInterrupt (status 130 in a shell),
    and no worker or fork server is left."""
    with subprocess.Popen(
        [sys.executable, "-m", "osiiso_mp", "demo"],
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal's job
    ) as proc:
        try:
            # the batch runs once its workers are up (its slow task keeps it going 0.5 s)
            assert wait_for(lambda: len(titled(proc.pid)) > 1, WAIT), "no workers came up"
            os.killpg(proc.pid, signal.SIGINT)
            _, err = proc.communicate(timeout=WAIT)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == -signal.SIGINT, err
    assert err.rstrip().endswith("KeyboardInterrupt")
    none_left(proc.pid)
