"""Appends and deletes: what a write reads under the writer lock, and what it returns."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import DuplicateKeyError, InvalidFilterError, Store, UnknownKeyError


def _rows(lo: int, hi: int) -> pa.Table:
    keys = np.arange(lo, hi, dtype=np.int64)
    return pa.table({"key": keys, "ts": keys * 10, "x": keys.astype(np.float32)})


def test_writers_on_two_store_objects_see_each_others_versions(store_uri: str) -> None:
    # A keeps datasets and fragment ranges in memory between its writes; B writes in between.
    a = Store.open(store_uri, create=True)
    b = Store.open(store_uri)
    a.append(_rows(0, 10))
    assert b.append(_rows(10, 20)).version == 2
    assert a.append(_rows(20, 30)).version == 3
    assert a.delete(keys=[15]).version == 4
    assert b.delete(keys=[25]).version == 5
    fresh = Store.open(store_uri)
    # version 2's rows (B's) must be read as version 2, not as A's version 3
    assert fresh.as_of(1).keys().tolist() == list(range(10))
    assert fresh.as_of(2).keys().tolist() == list(range(20))
    assert fresh.as_of(3).count() == 30
    assert fresh.as_of(5).count() == 28
    assert [r.version for r in fresh.log()] == [1, 2, 3, 4, 5]


def test_delete_where_counts_only_live_matches(store_uri: str) -> None:
    store = Store.open(store_uri, create=True)
    store.append(_rows(0, 50))
    store.append(_rows(50, 100))
    store.delete(keys=[0, 10, 55])
    store.erase([20, 65], reason="test")
    rec = store.delete(where="key % 5 = 0")
    # 20 multiples of 5 below 100; 3 already deleted, 2 erased
    assert rec.deleted == 15
    live = store.as_of().keys()
    assert not np.any(live % 5 == 0)
    assert live.size == 100 - 3 - 2 - 15
    assert store.as_of(rec.version - 1).count() == 100 - 3 - 2
    # nothing matches any more: an empty version, nothing deleted
    assert store.delete(where="key % 5 = 0").deleted == 0


def test_delete_where_with_a_bad_filter_leaves_the_store_unchanged(store_uri: str) -> None:
    store = Store.open(store_uri, create=True)
    store.append(_rows(0, 10))
    for bad in ("nope = 1", "key >>> 3", "key = 1) OR (true"):
        with pytest.raises(InvalidFilterError):
            store.delete(where=bad)
    assert store.version == 1
    assert store.as_of().count() == 10


def test_delete_keys_tells_live_from_dead_unknown_and_erased(store_uri: str) -> None:
    store = Store.open(store_uri, create=True)
    store.append(_rows(0, 10))
    store.append(_rows(10, 20))
    store.delete(keys=[3])
    store.erase([4], reason="test")
    for dead in (3, 4, 99, -1):
        with pytest.raises(UnknownKeyError):
            store.delete(keys=[dead, 5])
    assert store.version == 4
    rec = store.delete(keys=[3, 4, 5, 15, 99], missing="ignore")
    assert (rec.deleted, rec.details["ignored"]) == (2, 3)
    assert store.as_of().keys().tolist() == [k for k in range(20) if k not in (3, 4, 5, 15)]


def test_a_write_returns_its_own_record(store_uri: str) -> None:
    store = Store.open(store_uri, create=True)
    first = store.append(_rows(0, 4), message="one")
    second = store.delete(keys=[1], message="two")
    tag = store.tag("t", 1)
    assert (first.version, first.op, first.message, first.inserted) == (1, "append", "one", 4)
    assert (second.version, second.op, second.deleted, second.live) == (2, "delete", 1, 3)
    assert (tag.version, tag.op) == (3, "tag")
    assert store.log() == [first, second, tag]


def test_a_streamed_append_holds_no_key_buffers_of_batches_written(store_uri: str) -> None:
    """Arrow memory stays flat across a streamed append of 200 batches: the key checks keep
    no view of a written batch (one would keep 8 bytes a row: 8 GB at 10^9 rows)."""
    import pyarrow.compute as pc

    store = Store.open(store_uri, create=True)
    allocated: list[int] = []

    def batches() -> Iterator[pa.RecordBatch]:
        for i in range(200):
            keys = pc.add(pa.array(np.arange(i * 1000, (i + 1) * 1000, dtype=np.int64)), 0)  # Arrow's pool
            allocated.append(pa.total_allocated_bytes())
            yield pa.record_batch({"key": keys, "ts": keys})

    schema = pa.schema([("key", pa.int64()), ("ts", pa.int64())])
    assert store.append(pa.RecordBatchReader.from_batches(schema, batches())).inserted == 200_000
    assert allocated[-1] - allocated[10] < 100_000  # 190 batches of 8,000 key bytes each: 1.5 MB if held
    assert store.as_of(None).count() == 200_000


@pytest.mark.parametrize("order", ["shuffled", "below"])
def test_a_streamed_append_of_unordered_keys_checks_them_read_back(store_uri: str, order: str) -> None:
    """Keys that are not increasing, or lie below the store's largest key, are checked after a
    streamed write from the rows written: a clash inside the append or with a stored key is
    refused and the store keeps its version."""
    store = Store.open(store_uri, create=True)
    store.append(_rows(100, 110))
    keys = np.random.default_rng(0).permutation(np.arange(200, 260)) if order == "shuffled" else np.arange(0, 60)
    schema = _rows(0, 1).schema

    def reader(k: np.ndarray) -> pa.RecordBatchReader:
        rows = pa.table({"key": k, "ts": k * 10, "x": k.astype(np.float32)}, schema=schema)
        return pa.RecordBatchReader.from_batches(schema, rows.to_batches(max_chunksize=7))

    clash = np.concatenate([keys, keys[3:4]]) if order == "shuffled" else np.concatenate([keys, [105]])
    with pytest.raises(DuplicateKeyError):
        store.append(reader(clash))
    assert store.version == 1 and store.as_of(None).count() == 10
    assert store.append(reader(keys)).inserted == 60
    assert np.array_equal(store.as_of(None).keys(), np.sort(np.concatenate([np.arange(100, 110), keys])))
