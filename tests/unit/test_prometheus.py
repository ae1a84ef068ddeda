"""``PoolStats.to_prometheus()`` on snapshots made by hand: names, labels, numbers, refusals.

(A real pool's snapshot, parsed by ``prometheus_client``, is checked in
tests/integration/test_stats_counters.py.)
"""

from __future__ import annotations

import pytest

from osiiso_mp import PoolStats, WorkerSnapshot

pytestmark = pytest.mark.timeout(10)


def snapshot(*workers: WorkerSnapshot) -> PoolStats:
    return PoolStats(
        workers=workers,
        pending=4,
        running=1,
        scheduled=2,
        completed=9,
        succeeded=5,
        failed=3,
        cancelled=1,
        retries=2,
        timeouts=1,
        crashes=1,
        memory_exceeded=1,
    )


BUSY = WorkerSnapshot(0, 101, "busy", ("t1",), 7, 50_000_000, 99.5, 2)
GONE = WorkerSnapshot(1, None, "starting", (), 0, 0, float("nan"), 0)


def samples(text: str) -> dict[str, str]:
    """Sample lines as ``{name{labels}: value}``."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = value
    return out


def test_counters_gauges_and_per_worker_samples() -> None:
    got = samples(snapshot(BUSY, GONE).to_prometheus())
    assert got['osiiso_mp_tasks_total{status="succeeded"}'] == "5"
    assert got['osiiso_mp_tasks_total{status="failed"}'] == "3"
    assert got['osiiso_mp_tasks_total{status="cancelled"}'] == "1"
    assert got["osiiso_mp_retries_total"] == "2"
    assert got["osiiso_mp_timeouts_total"] == "1"
    assert got["osiiso_mp_crashes_total"] == "1"
    assert got["osiiso_mp_memory_exceeded_total"] == "1"
    assert got["osiiso_mp_tasks_pending"] == "4"
    assert got["osiiso_mp_tasks_running"] == "1"
    assert got["osiiso_mp_tasks_scheduled"] == "2"
    assert got['osiiso_mp_workers{state="busy"}'] == "1"
    assert got['osiiso_mp_workers{state="starting"}'] == "1"
    assert got['osiiso_mp_workers{state="idle"}'] == "0"  # every state, even at 0
    assert got['osiiso_mp_worker_rss_bytes{worker="0"}'] == "50000000"
    assert got['osiiso_mp_worker_cpu_percent{worker="0"}'] == "99.5"
    assert got['osiiso_mp_worker_cpu_percent{worker="1"}'] == "NaN"
    assert got['osiiso_mp_worker_running_tasks{worker="0"}'] == "1"
    assert got['osiiso_mp_worker_pid{worker="0"}'] == "101"
    assert 'osiiso_mp_worker_pid{worker="1"}' not in got  # no process: no pid sample
    assert got['osiiso_mp_worker_tasks_done_total{worker="0"}'] == "7"
    assert got['osiiso_mp_worker_restarts_total{worker="0"}'] == "2"


def test_help_and_type_come_before_each_family() -> None:
    lines = snapshot(BUSY).to_prometheus().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("# HELP osiiso_mp_retries_total "):
            assert lines[i + 1] == "# TYPE osiiso_mp_retries_total counter"
            assert lines[i + 2] == "osiiso_mp_retries_total 2"
            break
    else:
        raise AssertionError("no HELP line for the retries counter")
    assert "# TYPE osiiso_mp_tasks_pending gauge" in lines


def test_constant_labels_come_first_and_are_escaped() -> None:
    text = snapshot(BUSY).to_prometheus(labels={"service": 'a"b\\c\nd', "zone": "eu"})
    assert 'osiiso_mp_tasks_total{service="a\\"b\\\\c\\nd",zone="eu",status="failed"} 3' in text
    assert 'osiiso_mp_retries_total{service="a\\"b\\\\c\\nd",zone="eu"} 2' in text


def test_an_empty_pool_still_names_every_family() -> None:
    text = snapshot().to_prometheus(prefix="x")
    assert text.endswith("\n")
    assert "# TYPE x_worker_rss_bytes gauge" in text
    assert "x_worker_rss_bytes{" not in text


@pytest.mark.parametrize("prefix", ["", "9lives", "has space", "dash-ed"])
def test_a_bad_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="not a valid Prometheus metric name"):
        snapshot().to_prometheus(prefix)


@pytest.mark.parametrize("name", ["", "1a", "a-b", "__reserved"])
def test_a_bad_label_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a valid Prometheus label name"):
        snapshot().to_prometheus(labels={name: "v"})


@pytest.mark.parametrize("name", ["status", "state", "worker"])
def test_a_label_the_metrics_use_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="one the metrics use"):
        snapshot().to_prometheus(labels={name: "v"})


def test_new_counters_default_to_zero_for_older_callers() -> None:
    stats = PoolStats(workers=(), pending=0, running=0, scheduled=0, completed=0)
    assert (stats.succeeded, stats.failed, stats.cancelled, stats.retries) == (0, 0, 0, 0)
    assert (stats.timeouts, stats.crashes, stats.memory_exceeded) == (0, 0, 0)
