"""``RayTransport(...)`` checks its arguments when it is made, and starts nothing (no Ray
is imported or joined until an executor uses it)."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from osiiso_mp import Executor, RayTransport


def test_a_transport_is_made_without_touching_ray() -> None:
    had_ray = "ray" in sys.modules
    transport = RayTransport(
        "ray://head:10001", num_cpus=0.5, memory="2GiB", resources={"gpu_box": 1}
    )
    assert (transport.address, transport.num_cpus, transport.memory) == (
        "ray://head:10001",
        0.5,
        2 << 30,
    )
    assert transport.resources == {"gpu_box": 1}
    assert transport.started_ray is False
    assert ("ray" in sys.modules) == had_ray
    assert "ray://head:10001" in repr(transport)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"num_cpus": -1}, ValueError, "num_cpus must be a number of CPUs >= 0"),
        ({"num_cpus": "2"}, TypeError, "num_cpus must be a number of CPUs >= 0"),
        ({"memory": 0}, ValueError, "memory must be a number of bytes"),
        ({"memory": "lots"}, ValueError, "memory must be a number of bytes"),
        ({"memory": 1.5}, TypeError, "memory must be a number of bytes"),
        ({"resources": ["gpu"]}, TypeError, "resources must be a dict with string keys"),
        ({"resources": {"gpu": -1}}, ValueError, "resources['gpu'] must be an amount >= 0"),
        ({"runtime_env": "env"}, TypeError, "runtime_env must be a dict with string keys"),
        ({"init": {1: 2}}, TypeError, "init must be a dict with string keys"),
        ({"bind": 8080}, TypeError, "bind must be a string or None"),
    ],
)
def test_bad_arguments_are_refused_with_their_names(
    kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words.replace("[", r"\[").replace("]", r"\]")):
        RayTransport(**kwargs)


def test_the_executor_refuses_an_unknown_transport_name() -> None:
    with pytest.raises(ValueError, match="transport must be one of 'local', 'ray'"):
        Executor(procs=1, transport="dask")
