"""``python -m osiiso_mp demo | bench | info``."""

from __future__ import annotations

import argparse
import json
import platform
import sys


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def _info() -> None:
    from ._build_config import build_config
    from ._resources import cgroup_limits, cpu_budget
    from ._version import __version__

    facts = {
        "osiiso_mp": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "uvloop": _version("uvloop"),
        "cloudpickle": _version("cloudpickle"),
        "psutil": _version("psutil"),
        "cpu_budget": cpu_budget(),
        "default_start_method": build_config(1, {}, cpu_budget=cpu_budget).start_method,
        "limits": cgroup_limits(),
    }
    print(json.dumps(facts, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m osiiso_mp")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run a demo batch and print its summary")
    demo.add_argument("--procs", type=int, default=None)
    bench = sub.add_parser("bench", help="no-op throughput and latency vs ProcessPoolExecutor")
    bench.add_argument("--procs", type=int, default=2)
    bench.add_argument("--tasks", type=int, default=5000)
    bench.add_argument("--repeats", type=int, default=3)
    sub.add_parser("info", help="CPU budget, cgroup limits, versions")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        run_demo(args.procs)
    elif args.command == "bench":
        from ._bench import run_bench

        run_bench(procs=args.procs, tasks=args.tasks, repeats=args.repeats)
    else:
        _info()
    return 0


if __name__ == "__main__":
    sys.exit(main())
