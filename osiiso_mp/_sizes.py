"""Byte sizes as options take them: an int, or a string such as ``"1.5GiB"`` or ``"512MB"``.

:func:`parse_size` is how ``max_rss`` and ``retain_bytes`` read a size (through
:mod:`._checks`); it knows binary and decimal units and refuses the ambiguous ones.
"""

from __future__ import annotations

import numbers
import re

__all__ = ["parse_size"]


_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "pb": 1000**5,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
    "pib": 1024**5,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
    "ti": 1024**4,
    "pi": 1024**5,
}
_AMBIGUOUS = {"k": "kB", "m": "MB", "g": "GB", "t": "TB", "p": "PB"}
_SIZE_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-z]*)\s*", re.ASCII | re.IGNORECASE)


def parse_size(value: int | str, *, minimum: int = 1) -> int:
    """A number of bytes from an int (>= ``minimum``, 1 unless told) or a string such as
    ``"1.5GiB"``.

    Binary units ``KiB MiB GiB TiB PiB`` (also ``Ki Mi Gi Ti Pi``) are powers of 1024;
    decimal units ``kB KB MB GB TB PB`` are powers of 1000; ``B`` or no unit means bytes.
    Units are case-insensitive and may be separated by spaces; a fractional result is
    rounded down to whole bytes. A bare ``K``/``M``/``G``/``T`` is refused as ambiguous.
    Anything else (below ``minimum``, negative, a bool, junk) raises :class:`ValueError`.
    """
    given: object = value  # checked at run time whatever the annotation says
    if isinstance(given, bool):
        raise ValueError(f"size must be a number of bytes or a string like '1.5GiB', got {given!r}")
    if isinstance(given, numbers.Integral):
        size = int(given)
        if size < minimum:
            what = "a positive number" if minimum == 1 else f"a number >= {minimum}"
            raise ValueError(f"size must be {what} of bytes, got {given!r}")
        return size
    if not isinstance(given, str):
        raise ValueError(
            "size must be a number of bytes or a string like '1.5GiB', "
            f"got {given!r} ({type(given).__name__})"
        )
    value = given
    match = _SIZE_RE.fullmatch(value)
    if match is None:
        raise ValueError(
            f"cannot parse size {value!r}: expected a number with an optional unit, "
            "like '512MiB', '1.5GiB' or '2GB'"
        )
    number, unit = match.groups()
    unit_key = unit.lower()
    if unit_key in _AMBIGUOUS:
        raise ValueError(
            f"ambiguous size unit in {value!r}: write {_AMBIGUOUS[unit_key]!r} (powers of 1000) "
            f"or {unit_key.upper() + 'iB'!r} (powers of 1024)"
        )
    if unit_key not in _UNITS:
        raise ValueError(
            f"unknown size unit {unit!r} in {value!r}; "
            "use B, kB, MB, GB, TB, PB or KiB, MiB, GiB, TiB, PiB"
        )
    from fractions import Fraction  # here: importing it costs start-up time

    size = int(Fraction(number) * _UNITS[unit_key])  # exact, then rounded down
    if size < minimum:
        unit = "byte" if minimum == 1 else "bytes"
        raise ValueError(f"size must be at least {minimum} {unit}, got {value!r}")
    return size
