"""The command line's arguments and ``info``'s layout, in this process (nothing is started:
every refused argument ends before a command runs). What needs a real process (a closed
pipe, Ctrl-C, the commands end to end) is in tests/integration/test_cli.py."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from osiiso_mp import __version__
from osiiso_mp.__main__ import main, positive_int
from osiiso_mp._info import OPTIONAL, render_facts

pytestmark = pytest.mark.timeout(30)

# every numeric argument of every command
NUMERIC = [
    ("demo", "--procs"),
    ("bench", "--procs"),
    ("bench", "--tasks"),
    ("bench", "--repeats"),
]


@pytest.mark.parametrize(("command", "option"), NUMERIC)
@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("0", "must be at least 1, got 0"),
        ("-3", "must be at least 1, got -3"),
        ("two", "expected a whole number, got 'two'"),
        ("1.5", "expected a whole number, got '1.5'"),
        ("", "expected a whole number, got ''"),
    ],
)
def test_a_bad_number_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], command: str, option: str, value: str, why: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, option, value])
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0].startswith(f"usage: python -m osiiso_mp {command} ")
    assert lines[-1] == f"python -m osiiso_mp {command}: error: argument {option}: {why}"
    assert "Traceback" not in err


def test_positive_int() -> None:
    assert positive_int("1") == 1
    assert positive_int(" 12 ") == 12
    for bad in ("0", "-1", "x", "1e3"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_int(bad)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"osiiso_mp {__version__}\n"


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["dmeo"], "argument COMMAND: invalid choice: 'dmeo'"),
        (["info", "--jsn"], "unrecognized arguments: --jsn"),
    ],
)
def test_other_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], error: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert error in err.splitlines()[-1]
    assert "Traceback" not in err


def facts(**limits: Any) -> dict[str, Any]:
    """``info``'s facts for a machine with these limits (the rest made up)."""
    base = {
        "cpu_count": 16,
        "affinity": 16,
        "cgroup_version": 2,
        "cpu_quota": None,
        "memory_max": None,
        "env_max_cpus": None,
    }
    base.update(limits)
    return {
        "osiiso_mp": "9.8.7",
        "python": "3.12.1",
        "platform": "Linux-6.1-x86_64",
        "python_implementation": "CPython",
        "python_executable": "/venv/bin/python",
        "package_path": "/src/osiiso_mp",
        "uvloop": "0.21.0",
        "cloudpickle": "3.1.0",
        "psutil": "6.0.0",
        "setproctitle": "1.3.4",
        "cpu_budget": base["cpu_budget"],
        "default_start_method": "forkserver",
        "limits": base,
        "env_max_cpus_raw": None,
        "start_methods": ["forkserver", "spawn"],
        "transports": ["local", "ray"],
        "optional": {"tqdm": "4.66.0", "ipywidgets": "not installed", "pandas": "2.2.0"},
    }


def row(text: str, label: str) -> str:
    """The value of the row ``label`` in ``info``'s layout."""
    for line in text.splitlines():
        if line.startswith(f"  {label} "):
            return line[len(label) + 2 :].strip()
    raise AssertionError(f"no row {label!r} in:\n{text}")


def test_info_says_how_many_cpus_and_why() -> None:
    whole = render_facts(facts(cpu_budget=16))
    assert whole.startswith(
        "osiiso_mp 9.8.7 on CPython 3.12.1, Linux-6.1-x86_64\n"
        "  python   /venv/bin/python\n"
        "  package  /src/osiiso_mp\n"
    )
    assert row(whole, "budget") == "16 worker processes by default (procs=None)"
    assert row(whole, "why") == "all 16 CPUs of this machine are usable"
    assert row(whole, "cgroup CPU quota") == "none (cgroup v2)"
    assert row(whole, "OSIISO_MP_MAX_CPUS") == "not set"

    quota = render_facts(facts(cpu_budget=2, cpu_quota=1.5, memory_max=3 << 30))
    assert row(quota, "why") == "the cgroup CPU quota is 1.5 CPUs, rounded up to 2"
    assert row(quota, "cgroup CPU quota") == "1.5 CPUs (cgroup v2)"
    assert row(quota, "cgroup memory limit") == "3.00 GiB"

    pinned = render_facts(facts(cpu_budget=4, affinity=4))
    assert row(pinned, "why") == "the CPU affinity mask allows 4 of the 16 CPUs"
    assert row(pinned, "affinity mask") == "4 CPUs"

    capped = facts(cpu_budget=1, env_max_cpus=1)
    capped["env_max_cpus_raw"] = "1"
    text = render_facts(capped)
    assert row(text, "budget") == "1 worker process by default (procs=None)"
    assert row(text, "why") == "OSIISO_MP_MAX_CPUS=1 caps it"
    assert row(text, "OSIISO_MP_MAX_CPUS") == "1"

    ignored = facts(cpu_budget=16)
    ignored["env_max_cpus_raw"] = "lots"
    assert row(render_facts(ignored), "OSIISO_MP_MAX_CPUS") == (
        "'lots' ignored: not a positive whole number"
    )


def test_info_lists_versions_start_methods_and_extras() -> None:
    text = render_facts(facts(cpu_budget=16))
    assert row(text, "start methods") == "forkserver (default), spawn"
    assert row(text, "transports") == "local (default), ray"
    assert row(text, "setproctitle") == "1.3.4"
    assert row(text, "uvloop") == "0.21.0"
    assert "osiiso_mp worker N" in row(text, "process titles")
    assert row(text, "progress").startswith("installed (tqdm 4.66.0); progress=True")
    assert row(text, "pandas").startswith("installed (pandas 2.2.0); ")
    # one of its two packages is missing: the extra is not installed, and how to get it
    assert row(text, "notebook").startswith("not installed; ")
    assert row(text, "notebook").endswith("(pip install 'osiiso_mp[notebook]')")
    assert row(text, "ray").endswith("(pip install 'osiiso_mp[ray]')")
    assert {extra for extra, _, _ in OPTIONAL} <= {
        line.split()[0] for line in text.split("optional extras:\n", 1)[1].splitlines()
    }


def test_info_without_setproctitle_says_what_is_lost() -> None:
    missing = facts(cpu_budget=16)
    missing["setproctitle"] = "not installed"
    text = render_facts(missing)
    assert row(text, "setproctitle") == "not installed"
    assert row(text, "process titles").startswith("setproctitle is not installed")
