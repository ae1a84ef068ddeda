"""Over two Ray nodes (``ray.cluster_utils.Cluster``, both on this machine): each attempt's
record says which node it ran on, and a node lost mid-task costs a retry elsewhere, with
exactly one record per task. The cluster runs in a process of its own (the other Ray tests
share a one-node Ray in this one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray
    from ray.cluster_utils import Cluster
    from osiiso_mp import Executor, RayTransport

    def where(seconds):
        time.sleep(seconds)
        return os.getpid()

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    lost = cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, logging_level=40)
    cluster.wait_for_nodes()
    out = {}
    try:
        with Executor(procs=2, transport=RayTransport()) as ex:
            first = [ex.submit(where, 1.0) for _ in range(2)]  # one on each node
            for fut in first:
                fut.result(timeout=120)
            out["nodes"] = sorted({fut.task_result().attempt_log[0].node for fut in first})
            futs = [ex.options(retries=1).submit(where, 3.0) for _ in range(2)]
            time.sleep(1.0)  # both running, one on each node
            cluster.remove_node(lost)
            out["values"] = [fut.result(timeout=120) for fut in futs]
            summary = ex.run(timeout=120)
        out["records"] = len(summary.results)
        out["ids"] = len({r.task_id for r in summary.results})
        out["logs"] = [
            [(a.outcome, a.node, a.error) for a in fut.task_result().attempt_log]
            for fut in futs
        ]
        out["attempts"] = [
            (r.attempts, len(r.attempt_log)) for r in summary.results
        ]
    finally:
        ray.shutdown()
        cluster.shutdown()
    print(json.dumps(out))
    """
)


@pytest.mark.timeout(240)
def test_records_name_both_nodes_and_a_lost_node_costs_one_retry_elsewhere() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=220,
        env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(out["nodes"]) == 2  # "ip:node id", one per node
    assert out["records"] == out["ids"] == 4  # exactly one record per task
    assert all(attempts == logged for attempts, logged in out["attempts"])
    logs = out["logs"]
    lost = [log for log in logs if log[0][0] == "crashed"]
    kept = [log for log in logs if log[0][0] != "crashed"]
    assert len(lost) == 1 and len(kept) == 1, logs
    (crashed, retried) = lost[0]
    assert "Ray: ActorDiedError" in crashed[2]
    assert retried[0] == "succeeded" and retried[1] != crashed[1]  # on the other node
    assert [a[0] for a in kept[0]] == ["succeeded"]
