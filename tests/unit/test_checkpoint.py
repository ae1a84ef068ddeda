"""The checkpoint store (``osiiso_mp._checkpoint``): keys and namespaces, values and their
codecs, the batched writer and what ``flush`` guarantees, files shared by several objects.

The map/group wiring is tested elsewhere; here the store is driven directly, with a second
plain ``sqlite3`` connection as the outside observer of what is committed (one row per
batch of records, its keys packed: see ``osiiso_mp._checkpoint_schema``).
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import pathlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import numpy as np
import pytest

from osiiso_mp._checkpoint import Checkpoint, CheckpointError, CheckpointRecord
from osiiso_mp._checkpoint_batch import MAX_BATCH, ROW_BYTES, unpack_keys
from osiiso_mp._checkpoint_schema import SCHEMA_VERSION

NS = "tests.score"


@pytest.fixture
def path(tmp_path: pathlib.Path) -> str:
    return str(tmp_path / "ck.sqlite")


@pytest.fixture
def ck(path: str) -> Iterator[Checkpoint]:
    with Checkpoint(path) as checkpoint:
        yield checkpoint


def batches(path: str, namespace: str | None = None) -> list[tuple[list[str], str | None, Any]]:
    """The ``(keys, codec, value)`` of the batches (of ``namespace``) that another
    connection sees, in order."""
    sql = "SELECT namespace, keys, codec, value FROM records ORDER BY id"
    with closing(sqlite3.connect(path)) as other, other:
        rows = other.execute(sql).fetchall()
    return [(unpack_keys(k), c, v) for ns, k, c, v in rows if namespace in (None, ns)]


def committed(path: str, namespace: str = NS) -> set[str]:
    """The keys of ``namespace`` that another connection sees (what is committed)."""
    return {key for keys, _, _ in batches(path, namespace) for key in keys}


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def score(x: int) -> int:
    return x


class Scorer:
    def __call__(self, x: int) -> int:
        return x

    def method(self, x: int) -> int:
        return x


# -- keys and namespaces ---------------------------------------------------------------


@pytest.mark.parametrize(
    "item",
    ["a", "é/\"x'", 5, -3, 10**30, 2.5, True, None, (1, "a"), [1, [2, 3]], {"b": 1, "a": (2,)}],
)
def test_the_default_key_is_the_canonical_json_of_the_input(item: Any) -> None:
    assert Checkpoint.key_of(item) == json.dumps(item, sort_keys=True, separators=(",", ":"))


def test_equal_inputs_have_equal_keys_whatever_their_dict_order_or_tuple_type() -> None:
    assert Checkpoint.key_of({"a": 1, "b": 2}) == Checkpoint.key_of({"b": 2, "a": 1})
    assert Checkpoint.key_of((1, 2)) == Checkpoint.key_of([1, 2]) == "[1,2]"


def test_an_input_without_json_asks_for_key() -> None:
    with pytest.raises(TypeError, match=r"pass key=, a callable that maps an input to a str"):
        Checkpoint.key_of({1, 2})
    with pytest.raises(TypeError, match=r"Scorer"):
        Checkpoint.key_of(Scorer())


def test_a_key_callable_names_the_input() -> None:
    assert Checkpoint.key_of({1, 2}, key=lambda s: ",".join(map(str, sorted(s)))) == "1,2"
    with pytest.raises(TypeError, match=r"must return a str; it returned int"):
        Checkpoint.key_of("a", key=len)  # type: ignore[arg-type]


def test_the_default_namespace_is_the_module_and_qualified_name() -> None:
    assert Checkpoint.namespace_of(score) == f"{__name__}.score"
    assert Checkpoint.namespace_of(functools.partial(score, 1)) == f"{__name__}.score"
    assert Checkpoint.namespace_of(Scorer().method) == f"{__name__}.Scorer.method"
    assert Checkpoint.namespace_of(Scorer()) == f"{__name__}.Scorer"
    assert Checkpoint.namespace_of(len) == "builtins.len"
    assert Checkpoint.namespace_of(score, "mine") == "mine"


def test_a_lambda_needs_a_namespace() -> None:
    with pytest.raises(TypeError, match=r"pass namespace="):
        Checkpoint.namespace_of(lambda x: x)
    assert Checkpoint.namespace_of(lambda x: x, "doubled") == "doubled"
    with pytest.raises(ValueError, match=r"non-empty str"):
        Checkpoint.namespace_of(score, "")


def test_keys_and_namespaces_must_be_str(ck: Checkpoint) -> None:
    with pytest.raises(TypeError, match=r"key is a str \(see Checkpoint.key_of\)"):
        ck.record(5, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"namespace is a str"):
        ck.record("5", 1, namespace=None)  # type: ignore[arg-type]


# -- values ----------------------------------------------------------------------------

VALUES: list[Any] = [
    0,
    -7,
    10**40,
    2.5,
    "text",
    None,
    b"small",
    b"\x00" * 200_000,
    {"a": [1, 2, {"b": None}], "c": (3, 4)},
    [1, "two", 3.0],
]


def test_values_round_trip(path: str) -> None:
    with Checkpoint(path) as ck:
        for i, value in enumerate(VALUES):
            assert ck.record(str(i), value, namespace=NS, name="score")
        for i, value in enumerate(VALUES):
            found = ck.lookup(str(i), namespace=NS)
            assert found is not None and found.value == value and found.has_value
            assert type(found.value) is type(value)
            assert found.name == "score"


def test_a_numpy_array_round_trips_writable_and_is_stored_compactly(path: str) -> None:
    big = np.arange(250_000, dtype=np.float64)  # 2 MB: its buffer goes beside the pickle
    small = np.arange(10, dtype=np.int32)
    with Checkpoint(path) as ck:
        ck.record("big", big, namespace=NS)
        ck.record("small", small, namespace=NS)
        big[0] = -1.0  # after the record: a snapshot was taken
        found = ck.lookup("big", namespace=NS)
        assert found is not None
        assert found.value.dtype == np.float64 and found.value[0] == 0.0
        np.testing.assert_array_equal(found.value[1:], big[1:])
        assert found.value.flags.writeable
        found.value[1] = 5.0  # it is the caller's own copy
        little = ck.lookup("small", namespace=NS)
        assert little is not None
        np.testing.assert_array_equal(little.value, small)
    # recorded one by one: one batch of the two, each value encoded on its own
    [(keys, codec, stored)] = batches(path)
    assert keys == ["big", "small"] and codec == "each"
    assert big.nbytes < len(stored) < big.nbytes + 1024
    mid = big[:100_000]  # 800 kB
    with Checkpoint(path) as ck:  # recorded together: one pickle, the buffers beside it
        ints = [(str(i), i) for i in range(14)]
        ck.record_many([("mid", mid), ("small2", small), *ints], NS)  # 16: a batch
        found = ck.lookup("mid", namespace=NS)
        assert found is not None and found.value.flags.writeable
        np.testing.assert_array_equal(found.value, mid)
    keys, codec, stored = batches(path)[1]
    assert keys == ["mid", "small2", *(k for k, _ in ints)] and codec == "pickle+buffers"
    assert mid.nbytes < len(stored) < mid.nbytes + 1024


def test_large_bytes_are_stored_beside_the_pickle(ck: Checkpoint, path: str) -> None:
    data = bytes(range(256)) * 400  # 100 kB
    ck.record("b", data, namespace=NS)
    ck.record_many([("c", data), ("d", b"small")] * 8, NS)  # 16: a batch
    found = ck.lookup_many("bcd", NS)
    assert [found[k].value for k in "bcd"] == [data, data, b"small"]
    assert type(found["b"].value) is bytes and type(found["c"].value) is bytes
    (_, codec, one), (_, codec_many, many) = batches(path)
    assert codec == "each" and len(data) < len(one) < len(data) + 1024
    assert codec_many == "pickle+buffers" and 8 * len(data) < len(many) < 8 * len(data) + 1024


def test_a_value_only_cloudpickle_can_pickle_is_stored(ck: Checkpoint) -> None:
    assert ck.record("f", lambda: 42, namespace=NS)
    found = ck.lookup("f", namespace=NS)
    assert found is not None and found.value() == 42


def test_json_values(path: str) -> None:
    with Checkpoint(path, serializer="json") as ck:
        assert ck.record("a", {"b": (1, 2), "c": "d"}, namespace=NS)
        found = ck.lookup("a", namespace=NS)
        assert found is not None and found.value == {"b": [1, 2], "c": "d"}  # tuples: lists
    # one JSON array per batch, readable with the sqlite3 shell
    assert [(codec, value) for _, codec, value in batches(path)] == [
        ("json", '[{"b":[1,2],"c":"d"}]')
    ]
    with Checkpoint(path, serializer="json") as ck:
        ck.record_many([("x", [1]), ("y", None)], NS)
        assert ck.lookup_many(["a", "x", "y"], NS)["x"].value == [1]
    assert batches(path)[1][1:] == ("json", "[[1],null]")


def test_custom_encoder_and_decoder(path: str) -> None:
    seen: list[Any] = []

    def decode(stored: Any) -> Any:
        seen.append(stored)
        return int(stored.decode()) * 2

    with Checkpoint(path, encoder=lambda v: str(v).encode(), decoder=decode) as ck:
        assert ck.record("a", 21, namespace=NS)
        found = ck.lookup("a", namespace=NS)
        assert found is not None and found.value == 42
    assert seen == [b"21"]
    with pytest.raises(ValueError, match=r"give both or neither"):
        Checkpoint(encoder=str)
    with pytest.raises(ValueError, match=r"'pickle' or 'json'"):
        Checkpoint(serializer="yaml")  # type: ignore[arg-type]


def test_each_record_is_read_with_the_codec_it_was_written_with(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Checkpoint(path) as ck:
        ck.record("pickled", (1, 2), namespace=NS)
    with Checkpoint(path, encoder=lambda v: json.dumps(v), decoder=json.loads) as ck:
        ck.record("custom", [3], namespace=NS)
    with Checkpoint(path, serializer="json") as ck:
        ck.record("json", {"x": 1}, namespace=NS)
        found = ck.lookup_many(["pickled", "json", "custom"], NS)
    # the custom record needs its decoder: left out (its input runs again), with a warning
    assert {k: r.value for k, r in found.items()} == {"pickled": (1, 2), "json": {"x": 1}}
    assert "open the checkpoint with decoder=" in caplog.text


def test_store_values_false_records_only_that_an_input_is_done(path: str) -> None:
    with Checkpoint(path, store_values=False) as ck:
        assert ck.record("a", object(), namespace=NS, name="score")  # not even encoded
        assert ck.is_done("a", namespace=NS)
        found = ck.lookup("a", namespace=NS)
        assert found is not None
        assert (found.value, found.name, found.has_value) == (None, "score", False)
    with Checkpoint(path) as ck:
        ck.record("b", 5, namespace=NS)
    with Checkpoint(path, store_values=False) as ck:
        ck.record("b", 6, namespace=NS)  # a record without a value keeps the stored one
        found = ck.lookup("b", namespace=NS)
    assert found is not None and found.value == 5 and found.has_value


def test_an_unencodable_value_is_not_recorded_and_warned_about_once_per_namespace(
    ck: Checkpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="osiiso_mp")
    lock = threading.Lock()
    assert ck.record("a", lock, namespace=NS) is False
    assert ck.record("b", lock, namespace=NS) is False
    assert ck.record("c", 3, namespace=NS) is True
    assert ck.record_many([("d", lock), ("e", 5)], NS) == 1
    assert ck.record("a", lock, namespace="other") is False
    warnings = [r for r in caplog.records if "cannot be stored" in r.getMessage()]
    assert [r.name for r in warnings] == ["osiiso_mp", "osiiso_mp"]
    assert "'tests.score'" in warnings[0].getMessage()
    assert "runs again next time" in warnings[0].getMessage()
    assert "'other'" in warnings[1].getMessage()
    assert sorted(ck.lookup_many("abcde", NS)) == ["c", "e"]
    assert not ck.is_done("a", namespace=NS)


def test_json_mode_does_not_record_a_value_without_json(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Checkpoint(path, serializer="json") as ck:
        assert ck.record("a", {1, 2}, namespace=NS) is False
        assert ck.record("b", float("nan"), namespace=NS) is True  # as json.dumps allows
        assert ck.count() == 1
    assert "cannot be stored (TypeError" in caplog.text


# -- records ---------------------------------------------------------------------------


def test_a_record_keeps_its_first_time_and_takes_the_latest_value(ck: Checkpoint) -> None:
    ck.record("a", 1, namespace=NS, name="first")
    first = ck.lookup("a", namespace=NS)
    assert first is not None
    assert abs(first.recorded_at - time.time()) < 60
    time.sleep(0.02)
    ck.record("a", 2, namespace=NS, name="second")
    again = ck.lookup("a", namespace=NS)
    assert again == CheckpointRecord(2, "second", first.recorded_at, True)


def test_namespaces_keep_keys_apart(ck: Checkpoint) -> None:
    ck.record("k", "one", namespace="f")
    ck.record("k", "two", namespace="g")
    ck.record("k", "three")  # the default namespace
    assert [ck.lookup("k", namespace=n).value for n in ("f", "g", "default")] == [  # type: ignore[union-attr]
        "one",
        "two",
        "three",
    ]
    assert ck.lookup("k", namespace="h") is None
    assert not ck.is_done("k", namespace="h")


def test_a_later_batch_overrides_an_earlier_one_and_keys_keep_their_first_time(
    ck: Checkpoint, path: str
) -> None:
    ck.record_many([(str(i), i) for i in range(20)], NS, name="one")
    one = ck.lookup("3", namespace=NS)
    assert one is not None
    time.sleep(0.02)
    ck.record_many([(str(i), -i) for i in range(10, 30)], NS, name="two")
    two = ck.lookup("25", namespace=NS)
    assert two is not None and two.recorded_at > one.recorded_at
    found = ck.lookup_many([str(i) for i in range(30)], NS)
    assert [found[str(i)].value for i in range(30)] == [*range(10), *(-i for i in range(10, 30))]
    assert [found[str(i)].name for i in (0, 9, 10, 19, 20)] == ["one"] * 2 + ["two"] * 3
    # re-recorded keys: the value and name of the later batch, the time of the first
    assert {found[str(i)].recorded_at for i in range(20)} == {one.recorded_at}
    assert {found[str(i)].recorded_at for i in range(20, 30)} == {two.recorded_at}
    assert ck.count(NS) == 30  # keys, not records
    # within a batch, the later pair wins
    ck.record_many([("dup", 1), *((f"x{i}", i) for i in range(16)), ("dup", 2)], "dups")
    assert ck.lookup("dup", namespace="dups") == CheckpointRecord(2, None, ANY_TIME, True)
    assert ck.count("dups") == 17
    # records made one by one are joined into a row, each keeping its time
    ck.record("s1", 1, namespace="singles")
    time.sleep(0.02)
    ck.record("s2", 2, namespace="singles")
    ck.record("s1", 3, namespace="singles")
    ck.flush()
    assert [keys for keys, _, _ in batches(path, "singles")] == [["s1", "s2", "s1"]]
    s1, s2 = (ck.lookup(k, namespace="singles") for k in ("s1", "s2"))
    assert s1 is not None and s2 is not None
    assert (s1.value, s2.value) == (3, 2)
    assert s2.recorded_at - s1.recorded_at >= 0.02


class _AnyTime(float):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, float) and abs(other - time.time()) < 60

    __hash__ = float.__hash__


ANY_TIME = _AnyTime()


def test_reads_see_the_batches_another_object_adds_and_clears(path: str) -> None:
    with Checkpoint(path) as a, Checkpoint(path) as b:
        a.record_many([(str(i), i) for i in range(20)], NS)
        assert b.count(NS) == 20
        index = b._store._indexes._by_namespace[NS]
        a.record_many([(str(i), i * 10) for i in range(15, 35)], NS)
        a.record("single", "s", namespace=NS)
        a.flush()
        found = b.lookup_many(["3", "15", "34", "single"], NS)
        assert {k: r.value for k, r in found.items()} == {
            "3": 3,
            "15": 150,
            "34": 340,
            "single": "s",
        }
        assert b.count(NS) == 36 and b.namespaces() == [NS]
        assert (
            b._store._indexes._by_namespace[NS] is index and len(index.ids) == 3
        )  # read what was new
        # a clear, then as many batches again: b reads them afresh, not on top of the old
        assert a.clear(NS) == 36
        for prefix in "nmo":
            a.record_many([(f"{prefix}{i}", i) for i in range(16)], NS)
        assert b.count(NS) == 48 and not b.is_done("3", namespace=NS)
        again = b._store._indexes._by_namespace[NS]
        assert again is not index and again.ids == index.ids  # (the same ids, used again)
        found_n3 = b.lookup("n3", namespace=NS)
        assert found_n3 is not None and found_n3.value == 3
        assert b.clear() == 48
        assert a.count() == 0 and a.namespaces() == [] and a.lookup("n3", namespace=NS) is None


def test_an_unencodable_value_in_a_batch_leaves_out_that_input_only(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="osiiso_mp")
    lock = threading.Lock()
    pairs: list[tuple[str, Any]] = [(str(i), lock if i in (3, 17) else i) for i in range(40)]
    with Checkpoint(path) as ck:
        assert ck.record_many(pairs, NS) == 38
        found = ck.lookup_many([k for k, _ in pairs], NS)
        assert sorted(found, key=int) == [str(i) for i in range(40) if i not in (3, 17)]
        assert all(found[str(i)].value == i for i in range(40) if i not in (3, 17))
        # a value only cloudpickle can pickle does not split a batch
        assert ck.record_many([(f"f{i}", lambda i=i: i) for i in range(20)], "fns") == 20
        fn = ck.lookup("f7", namespace="fns")
        assert fn is not None and fn.value() == 7
    warnings = [r.getMessage() for r in caplog.records if "cannot be stored" in r.getMessage()]
    assert len(warnings) == 1 and "key 3" in warnings[0]  # once per namespace
    (keys, codec, _), (_, fn_codec, _) = batches(path)
    assert len(keys) == 38 and codec == "each" and fn_codec == "pickle"
    with Checkpoint(path, serializer="json") as ck:
        json_pairs: list[tuple[str, Any]] = [(f"j{i}", {i} if i == 5 else [i]) for i in range(20)]
        assert ck.record_many(json_pairs, "json") == 19
        assert not ck.is_done("j5", namespace="json")
    assert batches(path, "json")[0][1:] == (
        "json",
        f"[{','.join(f'[{i}]' for i in range(20) if i != 5)}]",
    )

    def encode(value: int) -> bytes:
        if value == 5:
            raise ValueError("not five")
        return str(value).encode()

    with Checkpoint(path, encoder=encode, decoder=lambda b: int(b)) as ck:
        assert ck.record_many([(f"c{i}", i) for i in range(20)], "custom") == 19
        assert ck.lookup("c7", namespace="custom") == CheckpointRecord(7, None, ANY_TIME, True)
        assert ck.lookup("c5", namespace="custom") is None


class Vanishing:
    """A class whose instances cannot be read back once it is gone from this module."""


def test_a_value_that_cannot_be_read_back_leaves_out_its_batch_or_itself(
    path: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with Checkpoint(path) as ck:
        # values pickled together: one that cannot be read back takes its batch with it
        ck.record_many([(str(i), Vanishing() if i == 5 else i) for i in range(20)], NS)
        ck.record_many([(str(i), i) for i in range(20, 40)], NS)
        # values pickled one by one (records made one at a time): only itself
        ck.record("gone", Vanishing(), namespace="one")
        ck.record("kept", 2, namespace="one")
        monkeypatch.delattr(f"{__name__}.Vanishing")
        found = ck.lookup_many([str(i) for i in range(40)], NS)
        assert sorted(found, key=int) == [str(i) for i in range(20, 40)]
        assert ck.is_done("5", namespace=NS)  # recorded, only not readable
        assert ck.lookup_many(["gone", "kept"], "one") == {
            "kept": CheckpointRecord(2, None, ANY_TIME, True)
        }
    warnings = [r.getMessage() for r in caplog.records if "cannot be read back" in r.getMessage()]
    assert len(warnings) == 2 and "AttributeError" in warnings[0]


def test_keys_of_any_text_are_packed_and_read_back(ck: Checkpoint, path: str) -> None:
    plain = ["", "é", "\ud800", "a b", *(str(i) for i in range(16))]
    ck.record_many([(k, i) for i, k in enumerate(plain)], "plain")
    odd = ["a\0b", "\0", *plain]  # a NUL in a key: packed another way
    ck.record_many([(k, i) for i, k in enumerate(odd)], "odd")
    for namespace, keys in (("plain", plain), ("odd", odd)):
        found = ck.lookup_many(keys, namespace)
        assert [found[k].value for k in keys] == list(range(len(keys)))
        assert [k for k, _, _ in batches(path, namespace)] == [keys]
    with closing(sqlite3.connect(path)) as other, other:
        packed = [row[0] for row in other.execute("SELECT keys FROM records ORDER BY id")]
    assert packed[0] == "\0".join(plain).encode("utf-8", "surrogatepass")
    assert packed[1][:1] == b"\x80"


def test_record_many_takes_any_iterable_of_pairs(ck: Checkpoint) -> None:
    assert ck.record_many(((str(i), i) for i in range(20)), NS) == 20
    assert ck.record_many([[str(i), -i] for i in range(20)], NS) == 20  # type: ignore[misc]
    assert ck.record_many((iter((str(i), i * 2)) for i in range(3)), NS) == 3  # type: ignore[misc]
    assert ck.lookup_many(["1", "5", "19"], NS)["1"].value == 2
    assert ck.record_many([], NS) == 0
    with pytest.raises(ValueError, match=r"\(key, value\) pairs"):
        ck.record_many([("a", 1, 2)], NS)  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"key is a str"):
        ck.record_many([(str(i), i) for i in range(19)] + [(5, 5)], NS)  # type: ignore[list-item]


def test_count_namespaces_and_clear(ck: Checkpoint) -> None:
    assert ck.count() == 0 and ck.namespaces() == []
    ck.record_many([(str(i), i) for i in range(5)], "b")
    ck.record_many([(str(i), i) for i in range(3)], "a")
    assert ck.count() == 8 and ck.count("a") == 3 and ck.count("none") == 0
    assert ck.namespaces() == ["a", "b"]
    assert ck.clear("a") == 3
    assert ck.namespaces() == ["b"] and ck.count() == 5
    assert ck.clear() == 5
    assert ck.count() == 0


def test_reopening_a_file_finds_everything(path: str) -> None:
    arr = np.arange(100_000)
    with Checkpoint(path) as ck:
        for i in range(100):
            ck.record(Checkpoint.key_of(i), {"i": i}, namespace=NS, name="score")
        ck.record("arr", arr, namespace="arrays")
        before = ck.lookup_many([Checkpoint.key_of(i) for i in range(100)], NS)
    with Checkpoint(path) as ck:
        assert ck.count() == 101
        assert ck.namespaces() == ["arrays", NS]
        after = ck.lookup_many([Checkpoint.key_of(i) for i in range(100)], NS)
        found = ck.lookup("arr", namespace="arrays")
    assert after == before and len(after) == 100
    assert after["7"].value == {"i": 7} and after["7"].name == "score"
    assert found is not None
    np.testing.assert_array_equal(found.value, arr)


def test_a_checkpoint_in_memory() -> None:
    with Checkpoint() as ck:
        assert ck.path == ":memory:"
        ck.record("a", 1)
        assert ck.is_done("a") and ck.count() == 1
        assert ck.lookup_many(["a", "b"]) == {"a": ck.lookup("a")}


def test_a_batch_of_large_values_is_cut_into_rows_of_about_row_bytes(
    ck: Checkpoint, path: str
) -> None:
    arrays = [np.full(25_000, i, dtype=np.float64) for i in range(40)]  # 200 kB each
    assert ck.record_many([(str(i), a) for i, a in enumerate(arrays)], NS) == 40
    rows = batches(path)
    assert [key for keys, _, _ in rows for key in keys] == [str(i) for i in range(40)]
    assert 8 <= len(rows) <= 12
    assert all(len(stored) <= ROW_BYTES + 4096 for _, _, stored in rows)
    found = ck.lookup("33", namespace=NS)
    assert found is not None
    np.testing.assert_array_equal(found.value, arrays[33])
    one = np.zeros(300_000)  # bigger than a row: a row of its own
    assert ck.record_many([("one", one), *((f"s{i}", i) for i in range(20))], "big") == 21
    assert [len(keys) for keys, _, _ in batches(path, "big")] == [1, 20]


def test_a_batch_is_one_row_and_a_read_decodes_only_the_batches_it_needs(
    ck: Checkpoint, path: str
) -> None:
    keys = [Checkpoint.key_of(i) for i in range(40_000)]
    ck.record_many([(k, i) for i, k in enumerate(keys)], NS)
    rows = batches(path)  # a big record_many: rows of at most MAX_BATCH records, in order
    assert [len(k) for k, _, _ in rows] == [MAX_BATCH] * (40_000 // MAX_BATCH) + [
        40_000 % MAX_BATCH
    ]
    assert [key for k, _, _ in rows for key in k] == keys
    assert {codec for _, codec, _ in rows} == {"pickle"}
    conn = ck._store._conn
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)  # as SQLite before 3.32
    reads: list[str] = []
    conn.set_trace_callback(lambda sql: reads.append(sql) if "codec, value" in sql else None)
    # a good part of the namespace: its batches are read in one SELECT, decoded, filtered
    asked = [*keys[:30_000], *(Checkpoint.key_of(-i) for i in range(1, 1001))]
    found = ck.lookup_many(asked, NS)
    assert len(found) == 30_000 and len(reads) == 1
    assert all(found[k].value == i for i, k in enumerate(keys[:30_000]))
    reads.clear()
    # a few keys: only the batches holding them
    found = ck.lookup_many([keys[5], keys[9], keys[-1], "missing"], NS)
    assert {k: r.value for k, r in found.items()} == {keys[5]: 5, keys[9]: 9, keys[-1]: 39_999}
    assert len(reads) == 1 and reads[0].count(",") == 3  # (id, codec, value FROM ... IN (?,?))
    reads.clear()
    assert ck.lookup_many(asked, "empty") == {} and reads == []
    assert not ck.is_done(keys[0], namespace="empty") and reads == []  # keys only
    conn.set_trace_callback(None)
    # a thousand small batches in one commit: INSERTs of as many rows as the limit allows
    with Checkpoint(path, batch_rows=100_000, batch_seconds=60) as writer:
        conn = writer._store._conn
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)  # 142 rows of 7 columns
        inserts: list[str] = []
        conn.set_trace_callback(inserts.append)
        for start in range(0, 20_000, 20):
            writer.record_many([(k, 1) for k in keys[start : start + 20]], "written", flush=False)
        writer.flush()
        conn.set_trace_callback(None)
    assert [sql.split()[0] for sql in inserts] == ["BEGIN", *["INSERT"] * 8, "COMMIT"]
    assert ck.count("written") == 20_000 == len(committed(path, "written"))


# -- the batched writer ----------------------------------------------------------------


def test_records_are_committed_by_flush_not_before(path: str) -> None:
    with Checkpoint(path, batch_rows=10_000, batch_seconds=60) as ck:
        for i in range(100):
            assert ck.record(str(i), i, namespace=NS)
        assert committed(path) == set()  # queued, not written
        ck.flush()
        assert committed(path) == {str(i) for i in range(100)}


def test_close_commits_what_is_queued(path: str) -> None:
    ck = Checkpoint(path, batch_rows=10_000, batch_seconds=60)
    ck.record("a", 1, namespace=NS)
    ck.close()
    assert committed(path) == {"a"}
    assert ck.closed and "closed" in repr(ck)
    ck.close()  # again: nothing
    with pytest.raises(CheckpointError, match=r"is closed"):
        ck.record("b", 2, namespace=NS)
    with pytest.raises(CheckpointError, match=r"is closed"):
        ck.flush()
    with pytest.raises(CheckpointError, match=r"is closed"):
        ck.count()


def test_the_writer_commits_a_full_batch_or_an_old_one_by_itself(path: str) -> None:
    with Checkpoint(path, batch_rows=50, batch_seconds=60) as ck:
        for i in range(50):
            ck.record(str(i), i, namespace=NS)
        assert wait_for(lambda: len(committed(path)) == 50)
    with Checkpoint(path, batch_rows=10_000, batch_seconds=0.05) as ck:
        ck.record("late", 1, namespace=NS)
        assert wait_for(lambda: "late" in committed(path))


def test_reads_see_this_objects_own_queued_records(path: str) -> None:
    with Checkpoint(path, batch_rows=10_000, batch_seconds=60) as ck:
        ck.record("a", 1, namespace=NS)
        assert ck.is_done("a", namespace=NS)
        assert ck.count(NS) == 1


def test_record_many_commits_at_once_or_queues(path: str) -> None:
    with Checkpoint(path, batch_rows=10_000, batch_seconds=60) as ck:
        ck.record("queued", 0, namespace=NS)
        assert ck.record_many([("a", 1), ("b", 2)], NS, name="score") == 2
        assert committed(path) == {"queued", "a", "b"}  # with what was queued before
        assert ck.record_many([("c", 3)], NS, flush=False) == 1
        assert "c" not in committed(path)
        ck.flush()
        assert "c" in committed(path)


def test_flush_with_nothing_queued_does_no_io(ck: Checkpoint) -> None:
    ck.record("a", 1, namespace=NS)
    ck.flush()
    statements: list[str] = []
    ck._store._conn.set_trace_callback(statements.append)
    start = time.perf_counter()
    for _ in range(10_000):
        ck.flush()
    took = time.perf_counter() - start
    ck._store._conn.set_trace_callback(None)
    assert statements == []
    assert took < 0.5  # about 0.3 us each on a 2-core VM


def writer_of(ck: Checkpoint) -> threading.Thread | None:
    """The checkpoint's writer thread, if one runs."""
    return ck._store._writer


def test_the_writer_thread_starts_on_the_first_record_and_ends_with_close(path: str) -> None:
    ck = Checkpoint(path, batch_seconds=0.05)
    assert writer_of(ck) is None  # opening starts nothing
    ck.record("a", 1, namespace=NS)
    writer = writer_of(ck)
    assert writer is not None and writer.is_alive() and writer.daemon
    assert wait_for(lambda: writer_of(ck) is None)  # idle: it ends
    ck.record("b", 2, namespace=NS)  # and the next record starts another
    writer = writer_of(ck)
    assert writer is not None
    ck.close()
    assert not writer.is_alive()
    assert committed(path) == {"a", "b"}


def test_a_dropped_unclosed_checkpoint_commits_its_records(path: str) -> None:
    ck = Checkpoint(path, batch_rows=10_000, batch_seconds=60)
    ck.record("a", 1, namespace=NS)
    writer = writer_of(ck)
    del ck  # no cycle holds it: committed at once, not at the next collection
    assert committed(path) == {"a"}
    assert writer is not None and not writer.is_alive()
    ck = Checkpoint(path, batch_rows=10_000, batch_seconds=60)
    ck.record("b", 2, namespace=NS)
    gc.disable()
    try:
        del ck
        assert committed(path) == {"a", "b"}
    finally:
        gc.enable()


def test_the_writer_keeps_up_beside_a_thread_running_python(path: str) -> None:
    # sqlite3 lets the GIL go at each step, and beside a thread running Python taking it
    # back may cost a switch interval (5 ms). One step a record (executemany of a row per
    # record) took from 0.03 to 10 s for 4,096 records, depending on scheduling; records go
    # a batch to a row and rows many to a statement instead, so that these 5,000 records
    # take a step or two whatever the scheduling.
    with Checkpoint(path, batch_rows=1_000, batch_seconds=60) as ck:
        ck.record_many([(str(i), i) for i in range(5_000)], NS, flush=False)
        store = ck._store
        deadline = time.monotonic() + 3.0
        x = 0
        while store._committed < 5_000 and time.monotonic() < deadline:
            for i in range(1_000):  # pure Python: the GIL is let go only at switches
                x += i
        assert store._committed == 5_000
    assert len(committed(path)) == 5_000


def test_a_failed_commit_keeps_the_records_queued(path: str) -> None:
    with Checkpoint(path, batch_rows=10_000, batch_seconds=60, timeout=0.05) as ck:
        ck.record("a", 1, namespace=NS)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # holds the write lock
        with pytest.raises(sqlite3.OperationalError, match=r"locked"):
            ck.flush()
        ck.record("b", 2, namespace=NS)
        other.execute("ROLLBACK")
        other.close()
        ck.flush()
        assert committed(path) == {"a", "b"}


# -- files -----------------------------------------------------------------------------


def test_a_file_of_an_unknown_schema_version_is_refused(path: str) -> None:
    Checkpoint(path).close()
    with closing(sqlite3.connect(path)) as other, other:
        other.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(CheckpointError, match=r"schema version 3; this osiiso_mp reads version 2"):
        Checkpoint(path)


def test_a_version_1_file_is_refused_saying_what_to_do(path: str) -> None:
    with closing(sqlite3.connect(path)) as old, old:  # the layout of version 1: a row per record
        old.execute(
            "CREATE TABLE records (namespace TEXT NOT NULL, key TEXT NOT NULL, name TEXT, "
            "recorded_at REAL NOT NULL, codec TEXT, value BLOB, PRIMARY KEY (namespace, key))"
        )
        old.execute("INSERT INTO records VALUES ('ns', 'k', NULL, 0.0, 'json', '1')")
        old.execute("PRAGMA user_version = 1")
    with pytest.raises(
        CheckpointError, match=r"schema version 1 .*delete it \(its inputs then run"
    ):
        Checkpoint(path)
    with closing(sqlite3.connect(path)) as old, old:  # left as it was
        assert old.execute("SELECT key, value FROM records").fetchall() == [("k", "1")]


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path: pathlib.Path) -> None:
    other_db = tmp_path / "app.sqlite"
    with closing(sqlite3.connect(other_db)) as other, other:
        other.execute("CREATE TABLE users (id INTEGER)")
    with pytest.raises(CheckpointError, match=r"not an osiiso_mp checkpoint .*'users'"):
        Checkpoint(other_db)
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a database at all" * 100)
    with pytest.raises(CheckpointError, match=r"cannot open the checkpoint file"):
        Checkpoint(text)
    with pytest.raises(CheckpointError, match=r"cannot open"):
        Checkpoint(tmp_path / "missing" / "dir" / "ck.sqlite")


def test_the_file_is_in_wal_mode(ck: Checkpoint, path: str) -> None:
    with closing(sqlite3.connect(path)) as other, other:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert other.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_two_objects_on_one_file_written_from_threads(path: str) -> None:
    first, second = Checkpoint(path, batch_rows=64), Checkpoint(path, batch_rows=64)
    errors: list[BaseException] = []

    def write(ck: Checkpoint, tag: str) -> None:
        try:
            for i in range(1500):
                ck.record(f"{tag}-{i}", {"i": i}, namespace=NS)
                if i % 500 == 0:
                    ck.flush()
                    ck.lookup_many([f"{tag}-{j}" for j in range(i)], NS)
            ck.record_many([(f"{tag}-many-{i}", i) for i in range(200)], NS)
            ck.flush()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(ck, f"{n}{t}"))
        for n, ck in (("a", first), ("b", second))
        for t in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    first.close()
    second.close()
    assert errors == []
    assert len(committed(path)) == 4 * 1700
    with closing(sqlite3.connect(path)) as other, other:
        assert other.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with Checkpoint(path) as ck:
        found = ck.lookup("b1-1499", namespace=NS)
    assert found is not None and found.value == {"i": 1499}


def test_repr() -> None:
    with Checkpoint() as ck:
        assert repr(ck) == "Checkpoint(':memory:', serializer='pickle')"
    with Checkpoint(store_values=False) as ck:
        assert repr(ck) == "Checkpoint(':memory:', store_values=False)"


def test_a_flush_while_the_writer_runs_has_the_writer_commit(path: str) -> None:
    # the SQLite work goes to the writer thread (without the GIL there), and flush()
    # returns once it is done: the rows are then visible to another connection
    with Checkpoint(path, batch_seconds=30.0) as ck:
        ck.record("warm", 0, namespace=NS)  # starts the writer, which waits 30 s to commit
        ck.flush()
        committers: list[str] = []
        ck._store._conn.set_trace_callback(
            lambda sql: (
                committers.append(threading.current_thread().name)
                if sql.startswith("INSERT")
                else None
            )
        )
        ck.record_many([(str(i), i) for i in range(1000)], NS, flush=False)
        started = time.monotonic()
        ck.flush()
        assert time.monotonic() - started < 10  # not the writer's 30 s
        assert committers == ["osiiso_mp-checkpoint-writer"]
        assert len(committed(path)) == 1001
        ck._store._conn.set_trace_callback(None)


def test_many_objects_opening_a_new_file_at_once_all_open_it(tmp_path: pathlib.Path) -> None:
    # switching a new file to WAL needs it to itself, and SQLite refuses at once (no busy
    # wait) while another connection opens it: the open retries within `timeout`
    failures: list[BaseException] = []
    for attempt in range(20):
        path = str(tmp_path / f"new-{attempt}.sqlite")
        start = threading.Barrier(6)

        def open_it(path: str = path, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                with Checkpoint(path, timeout=30) as ck:
                    ck.record("k", 1, namespace=NS)
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with Checkpoint(path) as ck:
            assert ck.count(NS) == 1
    assert failures == []
