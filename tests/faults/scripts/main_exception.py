"""Run as ``python main_exception.py START_METHOD``.

A task raises an exception class defined in this ``__main__`` module; the parent must be able
to catch it by its class. Prints ``CAUGHT <message>`` and exits 0 on success; prints
``WRONG ...`` and exits 1 otherwise.
"""

import sys

from osiiso_mp import Executor
from osiiso_mp._errors import RemoteTraceback


class MainError(Exception):
    """Defined in ``__main__``: workers only know it by value."""


def boom(x: int) -> None:
    raise MainError(f"main boom {x}")


def main() -> int:
    with Executor(procs=1, start_method=sys.argv[1]) as ex:
        fut = ex.submit(boom, 5)
        try:
            fut.result(timeout=20)
        except MainError as exc:
            if type(exc) is not MainError:
                print("WRONG subclass", type(exc))
                return 1
            if not isinstance(exc.__cause__, RemoteTraceback) or "boom" not in str(exc.__cause__):
                print("WRONG cause", repr(exc.__cause__))
                return 1
            print("CAUGHT", exc)
        except BaseException as exc:
            print("WRONG", type(exc).__module__, type(exc).__qualname__, repr(exc))
            return 1
        else:
            print("WRONG no exception")
            return 1
        summary = ex.run(timeout=20)
        ids = [r.task_id for r in summary.results]
        if ids != [fut.task_id] or summary.failed != 1 or summary.results[0].attempts != 1:
            print("WRONG summary", summary)
            return 1
        canary = ex.submit(pow, 2, 5)
        if canary.result(timeout=20) != 32:
            print("WRONG canary")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
