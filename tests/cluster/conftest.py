"""The Ray tests share one local Ray (``ray.init(num_cpus=2)``, about 3 s to start), as a
cluster's users do, shut down once they are done; usage statistics are off."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="package")
def ray_session() -> Iterator[None]:
    """A local Ray, started once for this folder's tests, shut down after them."""
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.ERROR,
        object_store_memory=100 << 20,
    )
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(params=["local", "ray"])
def transport(request: pytest.FixtureRequest) -> str:
    """Both transports: the local fork server's processes, and Ray actors."""
    name: str = request.param
    if name == "ray":
        request.getfixturevalue("ray_session")
    return name
