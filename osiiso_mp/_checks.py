"""The checks every option goes through, shared by :mod:`._task_options` and :mod:`._config`.

One rule everywhere: a value of the wrong *type* raises :class:`TypeError`, a value of the
right type that is out of range (or a bad combination of values) raises
:class:`ValueError`, an unknown option name raises :class:`TypeError`, and every message
names the option concerned. Besides the plain kinds (ints, seconds, flags, choices) this
holds the checks of the values that are more than a number: byte sizes (``max_rss``,
``retain_bytes``) and sets of CPUs (``cpu_affinity``).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import cast

from ._sizes import parse_size

__all__ = [
    "from_caller",
    "check_bool",
    "check_choice",
    "check_cpu_affinity",
    "check_int",
    "check_max_rss",
    "check_retain_bytes",
    "check_seconds",
    "describe",
    "is_int",
    "suggest",
]


def check_choice(name: str, value: object, allowed: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise :class:`ValueError`.

    Used for every enum-like argument (``start_method``, ``fail_policy``, ``on_timeout``, ...)
    so that they all fail the same way::

        >>> check_choice("fail_policy", "stop", ("continue", "fail_first"))
        Traceback (most recent call last):
        ...
        ValueError: fail_policy must be one of 'continue', 'fail_first', got 'stop'
    """
    if isinstance(value, str) and value in allowed:
        return value
    choices = ", ".join(repr(a) for a in allowed)
    raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def from_caller(exc: BaseException) -> BaseException:
    """``exc``, a validation error, stripped of the library frames it was raised through:
    re-raised (``raise from_caller(exc) from None``) it shows the caller's line and the
    facade's, not a dozen frames of checks."""
    return exc.with_traceback(None)


def describe(value: object) -> str:
    """``repr(value)`` followed by its type name, for type errors."""
    return f"{value!r} ({type(value).__name__})"


def is_int(value: object) -> bool:
    """An integer that is not a bool (``numbers.Integral``, so numpy integers count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    """A real number that is not a bool (int, float, Fraction, numpy scalars, ...)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _to_float(value: numbers.Real) -> float:
    """``float(value)``, with integers too large for a float mapped to +/-inf."""
    try:
        return float(value)
    except OverflowError:
        return -math.inf if value < 0 else math.inf


def check_int(name: str, value: object, *, minimum: int | None, requirement: str) -> int:
    """Validate an integer option; ``requirement`` completes "{name} must be ..."."""
    if not is_int(value):
        raise TypeError(f"{name} must be {requirement}, got {describe(value)}")
    result = int(cast(numbers.Integral, value))
    if minimum is not None and result < minimum:
        raise ValueError(f"{name} must be {requirement}, got {value!r}")
    return result


def check_seconds(
    name: str,
    value: object,
    *,
    requirement: str,
    minimum: float,
    inclusive: bool,
    allow_inf: bool = False,
) -> float:
    """Validate a real-valued option (a number of seconds, a factor, an epoch time)."""
    if not _is_real(value):
        raise TypeError(f"{name} must be {requirement}, got {describe(value)}")
    result = _to_float(cast(numbers.Real, value))
    in_range = result >= minimum if inclusive else result > minimum
    finite = math.isfinite(result) or (allow_inf and result == math.inf)
    if not (finite and in_range):
        raise ValueError(f"{name} must be {requirement}, got {value!r}")
    return result


def check_bool(name: str, value: object) -> bool:
    """Validate a flag: only ``True`` and ``False`` are accepted."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {describe(value)}")
    return value


def suggest(name: str, valid: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when ``name`` looks like a typo of a valid name, else ``""``."""
    import difflib  # only on the error path: it costs start-up time

    close = difflib.get_close_matches(name, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------- sizes, CPUs


def check_bytes(name: str, value: object, *, minimum: int, requirement: str) -> int:
    """Validate a size option: an int of at least ``minimum`` bytes, or a size string like
    ``"1.5GiB"``; bytes out. ``requirement`` completes "{name} must be ..."."""
    if isinstance(value, str):
        try:
            return parse_size(value, minimum=minimum)
        except ValueError as exc:
            raise ValueError(f"{name} must be {requirement}: {exc}") from None
    if not is_int(value):
        raise TypeError(f"{name} must be {requirement}, got {describe(value)}")
    size = int(cast(numbers.Integral, value))
    if size < minimum:
        raise ValueError(f"{name} must be {requirement}, got {value!r}")
    return size


def check_max_rss(value: object) -> int:
    """Validate ``max_rss``: a positive int of bytes or a size string; bytes out."""
    requirement = "a positive number of bytes or a size string like '1.5GiB'"
    return check_bytes("max_rss", value, minimum=1, requirement=requirement)


def check_retain_bytes(value: object) -> int:
    """Validate ``retain_bytes``: an int >= 0 or a size string; bytes out."""
    requirement = "a number of bytes >= 0, a size string like '1GiB', or None"
    return check_bytes("retain_bytes", value, minimum=0, requirement=requirement)


_AFFINITY_REQUIREMENT = (
    "a sequence of CPU ids (worker i gets cpus[i % len(cpus)]) or of sets of CPU ids"
)


def _check_cpu(value: object) -> int:
    """One CPU id of ``cpu_affinity``: an int >= 0."""
    return check_int("cpu_affinity CPU ids", value, minimum=0, requirement="ints >= 0")


def check_cpu_affinity(value: object) -> tuple[frozenset[int], ...]:
    """Validate ``cpu_affinity``; one frozenset of CPU ids per entry (slot ``i`` gets entry
    ``i % len``)."""
    if not hasattr(os, "sched_setaffinity"):
        raise ValueError(
            "cpu_affinity is not supported on this platform (it has no os.sched_setaffinity)"
        )
    if isinstance(value, AbstractSet | Mapping):
        raise TypeError(
            f"cpu_affinity must be {_AFFINITY_REQUIREMENT}, got {describe(value)}; a set has "
            "no order: write [0, 1] to pin each worker to one CPU, or [{0, 1}] to let every "
            "worker use both"
        )
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(f"cpu_affinity must be {_AFFINITY_REQUIREMENT}, got {describe(value)}")
    entries: list[frozenset[int]] = []
    for item in value:
        if is_int(item):
            entries.append(frozenset((_check_cpu(item),)))
            continue
        if isinstance(item, str | bytes) or not isinstance(item, Iterable):
            raise TypeError(
                f"cpu_affinity must be {_AFFINITY_REQUIREMENT}, got an entry {describe(item)}"
            )
        cpus = frozenset(_check_cpu(cpu) for cpu in item)
        if not cpus:
            raise ValueError("cpu_affinity entries must not be empty, got an empty set of CPUs")
        entries.append(cpus)
    if not entries:
        raise ValueError(f"cpu_affinity must be {_AFFINITY_REQUIREMENT} or None, got {value!r}")
    return tuple(entries)
