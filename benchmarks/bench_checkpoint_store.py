"""What a checkpoint costs the thread that records results, without any pool.

- *record*: ``record()`` of ``--items`` tiny values (an int each, keys made beforehand by
  ``key_of``), with the background writer committing in batches, then one ``flush()``: the
  figure is records per second of the whole, from the first ``record`` to ``flush``
  returning.
- *record_many*: the same records in ``record_many(..., flush=False)`` calls of 4,096 (as
  a map records its chunks), then one ``flush()``.
- *resume read*: what a resumed map reads, ``dict(Checkpoint._found(keys, namespace))``
  of every key, by a checkpoint opened afresh on the file (its index built from the
  file), then again by the same checkpoint (its index up to date).
- *lookup_many*: the same through the public ``lookup_many`` (a ``CheckpointRecord`` each).
- *lookup / is_done, one key*: one call for one key of the namespace of ``--items``
  records (reading one record decodes its batch, up to 1,024 records).
- *flush, idle*: a ``flush()`` with nothing queued (what the map wiring pays per value it
  hands to the caller when the writer has caught up).
- *flush, one record*: ``record`` then ``flush`` (a commit of one record: the worst case
  of a caller that takes each value as soon as it is recorded).
- *key_of*: making the key of an int input.

The file is on the temporary directory's disk. Medians of ``--repeats``.

    python benchmarks/bench_checkpoint_store.py [--items 200000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

from osiiso_mp._checkpoint import Checkpoint

NS = "bench"
CHUNK = 4096


def _write(path: str, keys: list[str], many: bool) -> float:
    """Seconds to record every key (one by one, or by chunks) and flush."""
    with Checkpoint(path) as ck:
        start = time.perf_counter()
        if many:
            for at in range(0, len(keys), CHUNK):
                chunk = keys[at : at + CHUNK]
                ck.record_many(zip(chunk, range(at, at + len(chunk)), strict=True), NS, flush=False)
        else:
            for i, key in enumerate(keys):
                ck.record(key, i, namespace=NS, name="bench")
        ck.flush()
        return time.perf_counter() - start


def _read(path: str, keys: list[str]) -> tuple[float, float, float]:
    """Seconds for a resume read by a fresh checkpoint, again by the same one, and for
    lookup_many of every key."""
    with Checkpoint(path) as ck:
        timings = []
        for _ in range(2):
            asked = [Checkpoint.key_of(int(k)) for k in keys]  # fresh str, as a map makes
            start = time.perf_counter()
            found = dict(ck._found(asked, NS))
            timings.append(time.perf_counter() - start)
            assert len(found) == len(keys)
        start = time.perf_counter()
        assert len(ck.lookup_many(keys, NS)) == len(keys)
        return timings[0], timings[1], time.perf_counter() - start


def _per_call(fn: Callable[[], object], calls: int) -> float:
    """Microseconds per call of ``fn()``."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n = args.items
    keys = [Checkpoint.key_of(i) for i in range(n)]
    figures: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            figures.setdefault("record", []).append(
                _write(os.path.join(tmp, f"one{r}.sqlite"), keys, many=False)
            )
            path = os.path.join(tmp, f"many{r}.sqlite")
            figures.setdefault("record_many", []).append(_write(path, keys, many=True))
            cold, warm, records = _read(path, keys)
            figures.setdefault("cold", []).append(cold)
            figures.setdefault("warm", []).append(warm)
            figures.setdefault("lookup_many", []).append(records)
        with Checkpoint(path) as ck:
            probe = iter(keys * 10)
            ck.lookup(keys[0], namespace=NS)
            one = statistics.median(
                _per_call(lambda: ck.lookup(next(probe), namespace=NS), 2_000)
                for _ in range(args.repeats)
            )
            done = statistics.median(
                _per_call(lambda: ck.is_done(next(probe), namespace=NS), 10_000)
                for _ in range(args.repeats)
            )
        with Checkpoint(os.path.join(tmp, "flush.sqlite")) as ck:
            ck.record("warm", 0)
            ck.flush()
            idle = statistics.median(_per_call(ck.flush, 100_000) for _ in range(args.repeats))
            counter = iter(range(10**9))

            def one_record() -> None:
                ck.record(str(next(counter)), 0)
                ck.flush()

            commit = statistics.median(_per_call(one_record, 2_000) for _ in range(args.repeats))
    key_us = _per_call(lambda: Checkpoint.key_of(123456), 100_000)
    med = {name: statistics.median(values) for name, values in figures.items()}
    for label, name in (
        ("record + commit     ", "record"),
        ("record_many + commit", "record_many"),
        ("resume read, fresh  ", "cold"),
        ("resume read, again  ", "warm"),
        ("lookup_many         ", "lookup_many"),
    ):
        print(f"{label}: {n:,} records in {med[name]:.3f}s = {n / med[name]:,.0f}/s")
    print(f"lookup, one key     : {one:.1f} us")
    print(f"is_done, one key    : {done:.1f} us")
    print(f"flush, idle         : {idle:.3f} us")
    print(f"flush, one record   : {commit:.1f} us (record + a one-record commit)")
    print(f"key_of(int)         : {key_us:.3f} us")


if __name__ == "__main__":
    main()
