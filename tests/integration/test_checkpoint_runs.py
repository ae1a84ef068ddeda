"""Resumable batches (issue 22): ``map``/``group``/``pmap`` with a ``Checkpoint``, against
real workers, and a parent killed with SIGKILL mid-map.

Task functions count their calls by appending the input to a file named by the
``CALLS`` environment variable (workers inherit the parent's environment), so a test sees
exactly which inputs ran, in which run.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from osiiso_mp import (
    AsyncExecutor,
    Checkpoint,
    ExecutionError,
    Executor,
    pmap,
)

RESTORED = "restored from checkpoint"

# --------------------------------------------------------------------------- task functions


def _called(item: object) -> None:
    with open(os.environ["CALLS"], "a") as f:
        f.write(json.dumps(item) + "\n")


def square(x: int) -> int:
    _called(x)
    return x * x


def square_unless_marked(x: int) -> int:
    """Fails on multiples of 5 while the file named by FAIL exists."""
    _called(x)
    if x % 5 == 0 and os.path.exists(os.environ["FAIL"]):
        raise ValueError(f"no {x} today")
    return x * x


def add(a: int, b: int) -> int:
    _called([a, b])
    return a + b


def size_of(s: set[int]) -> int:
    _called(sorted(s))
    return len(s)


async def asquare(x: int) -> int:
    _called(x)
    await asyncio.sleep(0)
    return x * x


def calls(path: Path) -> Counter[Any]:
    if not path.exists():
        return Counter()
    return Counter(
        tuple(v) if isinstance(v, list) else v
        for v in map(json.loads, path.read_text().splitlines())
    )


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh calls file (CALLS) and a failure marker path (FAIL, absent) per test."""
    monkeypatch.setenv("CALLS", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("FAIL", str(tmp_path / "fail"))
    return tmp_path


# --------------------------------------------------------------------------- map


@pytest.mark.parametrize("chunksize", [None, 1, 3])
def test_a_resumed_map_runs_only_what_the_first_run_did_not_finish(
    env: Path, chunksize: int | None
) -> None:
    calls_file, db = env / "calls.jsonl", env / "ck.sqlite"
    with Checkpoint(db) as ck, Executor(procs=2) as ex:
        it = ex.map(square, range(12), checkpoint=ck, chunksize=chunksize)
        first = [next(it) for _ in range(5)]  # the run stops early: the rest is cancelled
        it.close()
        ex.run()
    assert first == [0, 1, 4, 9, 16]
    ran_first = calls(calls_file)
    assert set(range(5)) <= set(ran_first)
    calls_file.unlink()
    with Checkpoint(db) as ck, Executor(procs=2) as ex:
        values = list(ex.map(square, range(12), checkpoint=ck, chunksize=chunksize))
        summary = ex.run()
    assert values == [x * x for x in range(12)]
    ran_again = calls(calls_file)
    # every input ran at most once more, and none whose value was handed over
    assert not set(ran_again) & set(range(5))
    assert all(n == 1 for n in ran_again.values())
    assert set(ran_first) | set(ran_again) == set(range(12))
    # the summary holds the whole batch, in input order: restored inputs have no attempt
    assert [r.value for r in summary.results] == values
    for x, record in enumerate(summary.results):
        if x in ran_again:
            assert (record.attempts, record.message) == (1, "")
        else:
            assert record.status == "succeeded"
            assert (record.attempts, record.message, record.attempt_log) == (0, RESTORED, ())
            assert record.started_at is None and record.duration == 0.0
    assert summary.succeeded == 12
    assert summary.restored == 12 - len(ran_again)
    assert f"12 ({summary.restored} restored from checkpoint)" in summary.report()
    assert f"12 ({summary.restored} restored from checkpoint)" in summary._repr_html_()


def test_failures_are_not_recorded_and_run_again(env: Path) -> None:
    calls_file, db = env / "calls.jsonl", env / "ck.sqlite"
    namespace = Checkpoint.namespace_of(square_unless_marked)
    (env / "fail").touch()
    with Checkpoint(db) as ck, Executor(procs=2) as ex:
        # a group runs every item: 0, 5 and 10 fail, the rest are recorded
        summary = ex.group(square_unless_marked, range(12), checkpoint=ck).wait()
        assert [r.status for r in summary.results].count("failed") == 3
        assert ck.count() == 9
        # a map stops at its first failure (the rest is cancelled): what ended is recorded
        with pytest.raises(ValueError, match="no 100 today"):
            list(ex.map(square_unless_marked, range(100, 112), checkpoint=ck))
        ex.run()
        recorded = ck.lookup_many([str(x) for x in range(100, 112)], namespace)
        assert "100" not in recorded and "105" not in recorded
        assert all(rec.value == int(key) ** 2 for key, rec in recorded.items())
    (env / "fail").unlink()
    calls_file.unlink()
    with Checkpoint(db) as ck, Executor(procs=2) as ex:
        assert ex.group(square_unless_marked, range(12), checkpoint=ck).values() == [
            x * x for x in range(12)
        ]
        assert list(ex.map(square_unless_marked, range(100, 112), checkpoint=ck)) == [
            x * x for x in range(100, 112)
        ]
        assert ck.count() == 24
    assert calls(calls_file) == Counter(
        {x: 1 for x in [0, 5, 10, *(x for x in range(100, 112) if str(x) not in recorded)]}
    )


def test_restored_records_take_their_place_among_new_tasks_in_input_order(env: Path) -> None:
    db = env / "ck.sqlite"
    with Checkpoint(db) as ck:
        namespace = Checkpoint.namespace_of(square)
        for x in (1, 2, 5, 9):  # an earlier run finished these (with other values, even)
            ck.record(Checkpoint.key_of(x), -x, namespace=namespace, name="square")
    with closing(sqlite3.connect(db)) as conn, conn:  # ... a day ago
        conn.execute("UPDATE records SET recorded_at = recorded_at - 86400")
    with Checkpoint(db) as ck, Executor(procs=2) as ex:
        values = list(ex.map(square, range(10), checkpoint=ck, chunksize=2))
        summary = ex.run()
    restored = [x for x, r in enumerate(summary.results) if r.message == RESTORED]
    assert restored == [1, 2, 5, 9]
    assert values == [-x if x in restored else x * x for x in range(10)]
    assert calls(env / "calls.jsonl") == Counter({x: 1 for x in range(10) if x not in restored})
    # their times are when they were first recorded, on the records' clock (perf_counter);
    # the run's duration is this run's, not a day
    for x in restored:
        age = time.perf_counter() - summary.results[x].finished_at
        assert 86400 <= age <= 86400 + 60
        assert summary.results[x].name == "square"
        assert summary.results[x].task_id != summary.results[x - 1].task_id
    assert 0 < summary.duration < 60


def test_custom_keys_and_namespaces(env: Path) -> None:
    db = env / "ck.sqlite"
    sets = [{1, 2}, {3}, {4, 5, 6}]
    with Checkpoint(db) as ck, Executor(procs=2) as ex:
        with pytest.raises(TypeError, match="key="):  # a set has no JSON: nothing runs
            ex.map(size_of, sets, checkpoint=ck)
        assert not (env / "calls.jsonl").exists()
        by_sorted = lambda s: ",".join(map(str, sorted(s)))  # noqa: E731
        assert list(ex.map(size_of, sets, checkpoint=ck, key=by_sorted)) == [2, 1, 3]
        assert ck.namespaces() == [Checkpoint.namespace_of(size_of)]
        assert ck.is_done("4,5,6", namespace=Checkpoint.namespace_of(size_of))
        # another namespace knows none of them; the same one knows all
        assert list(ex.map(size_of, sets, checkpoint=ck, key=by_sorted, namespace="v2")) == [
            2,
            1,
            3,
        ]
        assert list(ex.map(size_of, sets, checkpoint=ck, key=by_sorted)) == [2, 1, 3]
    assert sum(calls(env / "calls.jsonl").values()) == 6
    with Checkpoint(db) as ck:
        assert sorted(ck.namespaces()) == sorted([Checkpoint.namespace_of(size_of), "v2"])


def test_a_map_over_several_iterables_keys_the_argument_tuples(env: Path) -> None:
    db = env / "ck.sqlite"
    with Checkpoint(db) as ck, Executor(procs=2) as ex:
        assert list(ex.map(add, [1, 2, 3], [10, 20, 30], checkpoint=ck)) == [11, 22, 33]
        assert ck.is_done("[2,20]", namespace=Checkpoint.namespace_of(add))
        assert list(ex.map(add, [1, 2, 4], [10, 20, 40], checkpoint=ck)) == [11, 22, 44]
    assert calls(env / "calls.jsonl") == Counter({(1, 10): 1, (2, 20): 1, (3, 30): 1, (4, 40): 1})


def test_a_streamed_map_resumes_too(env: Path) -> None:
    db = env / "ck.sqlite"
    with Checkpoint(db) as ck, Executor(procs=2) as ex:
        assert list(ex.map(square, range(0, 40, 2), checkpoint=ck, buffersize=4)) == [
            x * x for x in range(0, 40, 2)
        ]
        assert list(ex.map(square, range(40), checkpoint=ck, buffersize=4)) == [
            x * x for x in range(40)
        ]
        summary = ex.run()
    assert calls(env / "calls.jsonl") == Counter({x: 1 for x in range(40)})
    assert [r.message == RESTORED for r in summary.results[20:]] == [x % 2 == 0 for x in range(40)]


def test_bad_checkpoint_arguments_are_refused_before_anything_runs(env: Path) -> None:
    with Executor(procs=1) as ex, Checkpoint() as ck:
        with pytest.raises(TypeError, match=r"checkpoint must be an osiiso_mp\.Checkpoint"):
            ex.map(square, [1], checkpoint="ck.sqlite")  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="go with checkpoint="):
            ex.map(square, [1], key=str)
        with pytest.raises(TypeError, match="namespace="):  # every lambda is "<lambda>"
            ex.map(lambda x: x, [1], checkpoint=ck)
        with pytest.raises(TypeError, match=r"group\(fn, iterable\) form"):
            ex.group([(square, 1)], checkpoint=ck)  # type: ignore[call-overload]
        closed = Checkpoint()
        closed.close()
        with pytest.raises(ValueError, match="closed"):
            ex.map(square, [1], checkpoint=closed)
        assert ex.run().results == ()
    assert not (env / "calls.jsonl").exists()


# --------------------------------------------------------------------------- group, pmap, async


def test_a_group_restores_done_futures(env: Path) -> None:
    db = env / "ck.sqlite"
    with Checkpoint(db) as ck, Executor(procs=2) as ex:
        assert ex.group(square, range(6), checkpoint=ck).values() == [x * x for x in range(6)]
        group = ex.group(square, range(9), group_id="again", checkpoint=ck)
        futures = group.futures
        assert all(f.done() for f in futures[:6])
        assert group.values() == [x * x for x in range(9)]
        records = [f.task_result() for f in futures]
        summary = group.wait()
    assert [r is not None and r.message == RESTORED for r in records] == [True] * 6 + [False] * 3
    assert {r.group_id for r in summary.results} == {"again"}
    assert [r.attempts for r in summary.results] == [0] * 6 + [1] * 3
    assert calls(env / "calls.jsonl") == Counter({x: 1 for x in range(9)})


def test_pmap_resumes_and_makes_its_successes_durable_even_when_it_raises(env: Path) -> None:
    db = env / "ck.sqlite"
    (env / "fail").touch()
    with Checkpoint(db) as ck:
        with pytest.raises(ExecutionError):
            pmap(square_unless_marked, range(11), procs=2, checkpoint=ck)
        assert ck.count() == 8
    (env / "fail").unlink()
    with Checkpoint(db) as ck:
        assert pmap(square_unless_marked, range(11), procs=2, checkpoint=ck) == [
            x * x for x in range(11)
        ]
    assert calls(env / "calls.jsonl") == Counter({x: 2 if x % 5 == 0 else 1 for x in range(11)})


def test_the_async_map_and_group_resume(env: Path) -> None:
    db = env / "ck.sqlite"

    async def main() -> tuple[list[int], list[int], list[str]]:
        with Checkpoint(db) as ck:
            async with AsyncExecutor(procs=2) as ex:
                first = [v async for v in ex.map(asquare, range(4), checkpoint=ck)]
                again = [v async for v in ex.map(asquare, range(8), checkpoint=ck)]
                group = ex.group(asquare, range(10), checkpoint=ck)
                await group.values()
                summary = await group.wait()
        return first, again, [r.message for r in summary.results]

    first, again, messages = asyncio.run(main())
    assert first == [0, 1, 4, 9] and again == [x * x for x in range(8)]
    assert messages == [RESTORED] * 8 + ["", ""]
    assert calls(env / "calls.jsonl") == Counter({x: 1 for x in range(10)})


# --------------------------------------------------------------------------- a killed parent

_KILLED = textwrap.dedent(
    """
    import os, sys, time
    from osiiso_mp import Checkpoint, Executor

    def slow_square(x):
        with open(os.environ["CALLS"], "a") as f:
            f.write(f"{x}\\n")
        time.sleep(0.02)
        return x * x

    if __name__ == "__main__":
        n = int(sys.argv[2])
        with Checkpoint(sys.argv[1]) as ck, Executor(procs=2) as ex:
            for x, value in zip(range(n), ex.map(slow_square, range(n), checkpoint=ck)):
                assert value == x * x
                print(x, flush=True)  # handed over (the parent may be killed any time now)
            ex.run()
            print("done", flush=True)
    """
)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kill_after", [3, 40])
def test_a_parent_killed_mid_map_loses_nothing_it_handed_over(env: Path, kill_after: int) -> None:
    script = env / "killed.py"
    script.write_text(_KILLED)
    db, calls_file, n = env / "ck.sqlite", env / "calls.jsonl", 120
    proc = subprocess.Popen(
        [sys.executable, str(script), str(db), str(n)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "CALLS": str(calls_file)},
    )
    assert proc.stdout is not None
    with proc.stdout:
        handed = [int(proc.stdout.readline()) for _ in range(kill_after)]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    time.sleep(0.5)  # the workers and the fork server follow their parent
    assert handed == list(range(kill_after))
    first = Counter(int(line) for line in calls_file.read_text().split())
    # the file opens cleanly and holds at least every value handed over before the kill
    with Checkpoint(db) as ck:
        namespace = "__main__.slow_square"
        kept = ck.lookup_many([str(x) for x in range(n)], namespace)
        assert set(map(str, handed)) <= set(kept)
        assert all(kept[k].value == int(k) ** 2 for k in kept)
    calls_file.unlink()
    done = subprocess.run(
        [sys.executable, str(script), str(db), str(n)],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "CALLS": str(calls_file)},
        check=True,
    )
    assert done.stdout.split()[-1] == "done"
    second = Counter(int(line) for line in calls_file.read_text().split())
    assert not set(second) & set(handed)  # what was handed over did not run again
    assert all(count == 1 for count in second.values())
    assert set(first) | set(second) == set(range(n))  # every input ran: at most once more
    assert all(first[x] + second[x] <= 2 for x in range(n))


# --------------------------------------------------------------------------- two at once

_SHARER = textwrap.dedent(
    """
    import sys
    from osiiso_mp import Checkpoint, Executor

    def cube(x):
        return x ** 3

    if __name__ == "__main__":
        start, stop = int(sys.argv[2]), int(sys.argv[3])
        with Checkpoint(sys.argv[1]) as ck, Executor(procs=2) as ex:
            for _ in range(3):  # maps of small chunks: many commits, interleaved
                values = list(ex.map(cube, range(start, stop), checkpoint=ck, chunksize=7))
                assert values == [x ** 3 for x in range(start, stop)]
                ck.clear("scratch")
                ck.record_many([(str(x), x) for x in range(50)], "scratch")
        print("ok")
    """
)


@pytest.mark.timeout(120)
def test_two_executors_in_two_processes_share_one_file(env: Path) -> None:
    script, db = env / "sharer.py", env / "ck.sqlite"
    script.write_text(_SHARER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(db), str(start), str(start + 600)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for start in (0, 300)  # overlapping inputs: both may record 300-599
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        assert out.split() == ["ok"]
    with Checkpoint(db) as ck:
        namespace = "__main__.cube"
        assert ck.count(namespace) == 900
        found = ck.lookup_many([str(x) for x in range(900)], namespace)
        assert {int(k): r.value for k, r in found.items()} == {x: x**3 for x in range(900)}
        assert ck.count("scratch") == 50
    with closing(sqlite3.connect(db)) as conn, conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
