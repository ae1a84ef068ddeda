"""``python -m osiiso_mp``: the command line (see ``docs/guides/cli.md``).

::

    python -m osiiso_mp --version                 osiiso_mp X.Y.Z
    python -m osiiso_mp info [--json]             what this machine gives a pool
    python -m osiiso_mp demo [--procs N]          a demo batch and its summary
    python -m osiiso_mp bench [--procs N] [--tasks N] [--repeats N]

- Every number is checked: a bad one ends in argparse's usage error (exit status 2, no
  traceback).
- A reader that goes away (``python -m osiiso_mp demo | head -1``) ends the command quietly
  with exit status 141, what a shell reports for a program that SIGPIPE ended (so
  ``set -o pipefail`` scripts see what they see for other tools). An executor that was
  running shuts down as on any other exception, and its workers go with it.
- Ctrl-C during ``demo`` or ``bench`` interrupts the run as in any program using an
  executor: queued tasks are cancelled, running ones killed, no worker is left, and the
  ``KeyboardInterrupt`` ends the command (killed by SIGINT, status 130 in a shell).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from ._version import __version__

__all__ = ["EPIPE_STATUS", "main", "positive_int"]

EPIPE_STATUS = 141
"""The exit status when the reader of our output went away: 128 + SIGPIPE."""


def positive_int(text: str) -> int:
    """An argparse ``type``: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m osiiso_mp",
        description="osiiso_mp: an actor-model multiprocess executor.",
        epilog="python -m osiiso_mp COMMAND --help tells more about each command.",
    )
    parser.add_argument("--version", action="version", version=f"osiiso_mp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    info = sub.add_parser(
        "info",
        help="CPUs a pool gets and why, cgroup limits, versions, extras",
        description="What this machine gives a pool: CPUs and which limit decided them, "
        "the cgroup memory limit, start methods, versions, and the optional extras.",
    )
    info.add_argument("--json", action="store_true", help="print the facts as JSON")
    demo = sub.add_parser(
        "demo",
        help="run a demo batch (with failures) and print its summary",
        description="Run 20 tasks, some of which fail, time out or crash their worker, "
        "and print the run's summary.",
    )
    demo.add_argument(
        "--procs",
        type=positive_int,
        default=None,
        metavar="N",
        help="worker processes (default: the CPU budget, at most 4)",
    )
    bench = sub.add_parser(
        "bench",
        help="no-op throughput, round trip and start-up vs ProcessPoolExecutor",
        description="osiiso_mp beside ProcessPoolExecutor: no-op throughput, round-trip "
        "latency and start-up, medians of several repeats.",
    )
    bench.add_argument(
        "--procs", type=positive_int, default=2, metavar="N", help="worker processes (2)"
    )
    bench.add_argument(
        "--tasks",
        type=positive_int,
        default=5000,
        metavar="N",
        help="no-op tasks per throughput run (5000)",
    )
    bench.add_argument(
        "--repeats", type=positive_int, default=3, metavar="N", help="repeats of each (3)"
    )
    return parser


def _run(args: argparse.Namespace) -> None:
    if args.command == "demo":
        from ._demo import run_demo

        run_demo(args.procs)
    elif args.command == "bench":
        from ._bench import run_bench

        run_bench(procs=args.procs, tasks=args.tasks, repeats=args.repeats)
    else:
        from ._info import machine_facts, render_facts

        facts = machine_facts()
        print(json.dumps(facts, indent=2, default=str) if args.json else render_facts(facts))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        _run(args)
        sys.stdout.flush()  # a reader gone shows here, where we can still handle it
    except BrokenPipeError:
        # Python's own recipe (see the signal module's notes on SIGPIPE): the interpreter
        # flushes stdout again at exit, so point it at /dev/null first
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EPIPE_STATUS
    return 0


if __name__ == "__main__":
    sys.exit(main())
