"""What a checkpoint costs the thread that records results, without any pool.

- *record*: ``record()`` of ``--items`` tiny values (an int each, keys made beforehand by
  ``key_of``), with the background writer committing in batches, then one ``flush()``: the
  figure is rows per second of the whole, from the first ``record`` to ``flush`` returning.
- *flush, idle*: a ``flush()`` with nothing queued (what the map wiring pays per value it
  hands to the caller when the writer has caught up).
- *flush, one row*: ``record`` then ``flush`` (a commit of one row: the worst case of a
  caller that takes each value as soon as it is recorded).
- *key_of*: making the key of an int input.
- *lookup_many*: reading every record back by key, as a resumed run does.

The file is on the temporary directory's disk. Medians of ``--repeats``.

    python benchmarks/bench_checkpoint_store.py [--items 200000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from osiiso_mp._checkpoint import Checkpoint


def _record(path: str, keys: list[str]) -> tuple[float, float]:
    """Seconds to record and flush every key; seconds for lookup_many of all of them."""
    with Checkpoint(path) as ck:
        start = time.perf_counter()
        for i, key in enumerate(keys):
            ck.record(key, i, namespace="bench", name="bench")
        ck.flush()
        recorded = time.perf_counter() - start
        start = time.perf_counter()
        found = ck.lookup_many(keys, "bench")
        looked = time.perf_counter() - start
        assert len(found) == len(keys)
    return recorded, looked


def _per_call(fn: object, calls: int) -> float:
    """Microseconds per call of ``fn()``."""
    assert callable(fn)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    keys = [Checkpoint.key_of(i) for i in range(args.items)]
    with tempfile.TemporaryDirectory() as tmp:
        records, lookups = [], []
        for n in range(args.repeats):
            recorded, looked = _record(os.path.join(tmp, f"run{n}.sqlite"), keys)
            records.append(recorded)
            lookups.append(looked)
        with Checkpoint(os.path.join(tmp, "flush.sqlite")) as ck:
            ck.record("warm", 0)
            ck.flush()
            idle = statistics.median(_per_call(ck.flush, 100_000) for _ in range(args.repeats))
            counter = iter(range(10**9))

            def one_row() -> None:
                ck.record(str(next(counter)), 0)
                ck.flush()

            one = statistics.median(_per_call(one_row, 2_000) for _ in range(args.repeats))
    key_us = _per_call(lambda: Checkpoint.key_of(123456), 100_000)
    recorded = statistics.median(records)
    looked = statistics.median(lookups)
    n = args.items
    print(f"record + commit : {n:,} rows in {recorded:.3f}s = {n / recorded:,.0f} rows/s")
    print(f"lookup_many     : {n:,} rows in {looked:.3f}s = {n / looked:,.0f} rows/s")
    print(f"flush, idle     : {idle:.3f} us")
    print(f"flush, one row  : {one:.1f} us (record + a one-row commit)")
    print(f"key_of(int)     : {key_us:.3f} us")


if __name__ == "__main__":
    main()
