"""The process titles' format (stable: docs/guides/cli.md documents it). The titles of real
processes are read back in tests/integration/test_process_titles.py."""

from __future__ import annotations

import pytest

from osiiso_mp._runtime._title import SERVER_COMM, server_title, worker_comm, worker_title

pytestmark = pytest.mark.timeout(30)


def test_worker_title() -> None:
    assert worker_title(3, 1, 12345) == "osiiso_mp worker 3 (executor 1, parent 12345)"
    assert worker_title(0, 2, 7, "node-a") == "osiiso_mp worker 0 (executor 2, parent 7 on node-a)"


def test_server_title() -> None:
    assert server_title(12345) == "osiiso_mp fork server (parent 12345)"


def test_names_fit_in_comm() -> None:
    """The kernel keeps 15 bytes of a process's name: every slot's name fits whole up to
    slot 9,999,999."""
    assert worker_comm(3) == "osiiso-w3"
    assert worker_comm(9_999_999) == "osiiso-w9999999"
    assert len(worker_comm(10**12).encode()) <= 15
    assert SERVER_COMM == "osiiso-forksrv" and len(SERVER_COMM.encode()) <= 15
