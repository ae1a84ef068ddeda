"""A worker on Ray says what it is in ``ps`` too: Ray's title, then ours
(``ray::WorkerHost.serve osiiso_mp worker 0 (executor 1, parent 12345 on HOST)``), while the
process's name stays Ray's (``ray::WorkerHost``, which ``ray stop`` looks for)."""

from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path

import pytest

from osiiso_mp import Executor

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]


@pytest.mark.usefixtures("ray_session")
def test_a_ray_worker_adds_our_title_to_rays() -> None:
    with Executor(procs=1, transport="ray") as ex:
        pid = ex.submit(os.getpid).result(timeout=60)  # the session's Ray is on this host
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        title = " ".join(part.decode() for part in raw.split(b"\0") if part)
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    pattern = (
        r"ray::WorkerHost\.serve osiiso_mp worker 0 \(executor \d+, "
        rf"parent {os.getpid()} on {re.escape(socket.gethostname())}\)"
    )
    assert re.fullmatch(pattern, title), title
    assert name.startswith("ray::WorkerHost"), name
