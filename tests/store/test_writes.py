"""Appends and deletes: what a write reads under the writer lock, and what it returns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import InvalidFilterError, Store, UnknownKeyError


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
