"""The worker's shortcut for small scalar results pickles them as dumps_value does."""

from __future__ import annotations

from typing import Any

import pytest

from osiiso_mp._runtime.protocol._serialize import dumps_value
from osiiso_mp._runtime.worker._tasks import _small_pickle


class MyInt(int):
    """An int subclass: not a plain scalar."""


@pytest.mark.parametrize(
    "value",
    [
        0,
        1,
        -1,
        255,
        256,
        2**31,
        -(2**31) - 1,
        2**63,
        2**64 - 1,
        -(2**64) + 1,
        0.0,
        -0.0,
        1.5,
        float("inf"),
        float("nan"),
        True,
        False,
        "",
        "x",
        "é" * 100,
        "\U0001f600" * (4095),
    ],
)
def test_small_scalars_pickle_as_dumps_value_pickles_them(value: Any) -> None:
    payload, buffers = dumps_value(value)
    assert buffers == () and type(payload) is bytes
    assert _small_pickle(value) == payload


@pytest.mark.parametrize(
    "value",
    [2**64, -(2**64), 2**5000, "y" * 4096, b"b", MyInt(3), None, (1,), [1], 1j],
)
def test_other_values_take_the_ordinary_path(value: Any) -> None:
    assert _small_pickle(value) is None
