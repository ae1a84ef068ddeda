"""``python -m osiiso_mp info``: what this machine gives a pool, and what is installed.

:func:`machine_facts` gathers the facts (``info --json`` prints them as they are);
:func:`render_facts` lays them out for a reader: the version, Python and platform; how many
CPUs a pool gets by default and which limit decided it (the affinity mask, a cgroup quota,
``OSIISO_MP_MAX_CPUS``); the cgroup memory limit; the start methods and transports; the
runtime dependencies; and which optional extras are installed, with what each brings.
Nothing here imports an optional package: versions come from the installed metadata.
"""

from __future__ import annotations

import math
import os
import platform
import sys
from typing import Any

__all__ = ["OPTIONAL", "machine_facts", "render_facts"]

DEPENDENCIES = ("uvloop", "cloudpickle", "psutil", "setproctitle")
"""The runtime dependencies, by distribution name."""

OPTIONAL: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("progress", ("tqdm",), "progress=True draws tqdm's bar in a terminal"),
    ("notebook", ("tqdm", "ipywidgets"), "the progress widget in Jupyter"),
    ("pandas", ("pandas",), "RunSummary.to_pandas()"),
    ("ray", ("ray",), 'transport="ray": workers as Ray actors, on a cluster'),
)
"""The optional extras: (extra, the distributions it installs, what it brings)."""

NOT_INSTALLED = "not installed"


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return NOT_INSTALLED


def machine_facts() -> dict[str, Any]:
    """The facts ``info`` shows, as JSON-ready values (the keys of earlier versions kept)."""
    from ._build_config import build_config
    from ._config import START_METHODS, TRANSPORT_NAMES
    from ._resources import ENV_MAX_CPUS, cgroup_limits
    from ._version import __version__

    limits = cgroup_limits()
    budget = int(limits["cpu_budget"])  # type: ignore[call-overload]
    facts: dict[str, Any] = {
        "osiiso_mp": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    facts.update({dist: _version(dist) for dist in DEPENDENCIES})
    facts.update(
        {
            "cpu_budget": budget,
            "default_start_method": build_config(1, {}, cpu_budget=lambda: budget).start_method,
            "limits": limits,
            "python_implementation": platform.python_implementation(),
            "python_executable": sys.executable,
            "package_path": os.path.dirname(os.path.abspath(__file__)),
            "env_max_cpus_raw": os.environ.get(ENV_MAX_CPUS),
            "start_methods": sorted(START_METHODS),
            "transports": list(TRANSPORT_NAMES),
            "optional": {dist: _version(dist) for _, dists, _ in OPTIONAL for dist in dists},
        }
    )
    return facts


def _cpu_reason(limits: dict[str, Any], raw_env: str | None) -> str:
    """Which limit decided the CPU budget, in words."""
    budget = limits["cpu_budget"]
    count = limits["cpu_count"]
    reasons = []
    if limits["env_max_cpus"] == budget:
        reasons.append(f"OSIISO_MP_MAX_CPUS={raw_env} caps it")
    quota = limits["cpu_quota"]
    if quota is not None and math.ceil(quota) == budget:
        rounded = "" if quota == budget else f", rounded up to {budget}"
        reasons.append(f"the cgroup CPU quota is {quota:g} CPUs{rounded}")
    if limits["affinity"] == budget:
        if budget == count:
            reasons.append(f"all {count} CPUs of this machine are usable")
        else:
            reasons.append(f"the CPU affinity mask allows {budget} of the {count} CPUs")
    return "; ".join(reasons) or "at least 1 CPU, whatever the limits"


def _cgroup_version(version: object) -> str:
    if version is None:
        return "no cgroup found"
    if version == "hybrid":
        return "cgroup v1 and v2, hybrid"
    return f"cgroup v{version}"


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def render_facts(facts: dict[str, Any]) -> str:
    """The facts of :func:`machine_facts`, laid out for a reader (several lines, no
    trailing newline)."""
    from ._errors import format_bytes

    limits = facts["limits"]
    budget = facts["cpu_budget"]
    workers = _count(budget, "worker process", "worker processes")
    quota = limits["cpu_quota"]
    raw_env = facts.get("env_max_cpus_raw")
    if limits["env_max_cpus"] is not None:
        env = str(limits["env_max_cpus"])
    elif raw_env is not None and raw_env.strip():
        env = f"{raw_env!r} ignored: not a positive whole number"
    else:
        env = "not set"
    memory = limits["memory_max"]
    default_method = facts["default_start_method"]
    methods = [m + (" (default)" if m == default_method else "") for m in facts["start_methods"]]
    transports = [t + (" (default)" if t == "local" else "") for t in facts["transports"]]
    titles = (
        'ps shows "osiiso_mp worker N (executor E, parent PID)"'
        if facts.get("setproctitle", NOT_INSTALLED) != NOT_INSTALLED
        else "setproctitle is not installed: top shows workers' names, ps does not"
    )
    rows: list[tuple[str, list[tuple[str, str]]]] = [
        (
            "CPUs",
            [
                ("budget", f"{workers} by default (procs=None)"),
                ("why", _cpu_reason(limits, raw_env)),
                ("os.cpu_count()", str(limits["cpu_count"])),
                ("affinity mask", _count(limits["affinity"], "CPU", "CPUs")),
                (
                    "cgroup CPU quota",
                    ("none" if quota is None else f"{quota:g} CPUs")
                    + f" ({_cgroup_version(limits['cgroup_version'])})",
                ),
                ("OSIISO_MP_MAX_CPUS", env),
            ],
        ),
        (
            "memory",
            [("cgroup memory limit", "none" if memory is None else format_bytes(memory))],
        ),
        (
            "workers",
            [
                ("start methods", ", ".join(methods)),
                ("transports", ", ".join(transports)),
                ("process titles", titles),
            ],
        ),
        (
            "dependencies",
            [(dist, facts.get(dist, NOT_INSTALLED)) for dist in DEPENDENCIES],
        ),
    ]
    optional = facts["optional"]
    extras = []
    for extra, dists, brings in OPTIONAL:
        versions = ", ".join(f"{d} {optional.get(d, NOT_INSTALLED)}" for d in dists)
        if any(optional.get(d, NOT_INSTALLED) == NOT_INSTALLED for d in dists):
            extras.append((extra, f"not installed; {brings} (pip install 'osiiso_mp[{extra}]')"))
        else:
            extras.append((extra, f"installed ({versions}); {brings}"))
    rows.append(("optional extras", extras))

    width = max(len(label) for _, section in rows for label, _ in section)
    lines = [
        f"osiiso_mp {facts['osiiso_mp']} on {facts.get('python_implementation', 'Python')} "
        f"{facts['python']}, {facts['platform']}",
    ]
    for key, label in (("python_executable", "python"), ("package_path", "package")):
        if facts.get(key):
            lines.append(f"  {label:<7}  {facts[key]}")
    for title, section in rows:
        lines.append(f"{title}:")
        lines.extend(f"  {label:<{width}}  {value}" for label, value in section)
    return "\n".join(lines)
