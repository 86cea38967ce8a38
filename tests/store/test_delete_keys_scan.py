"""A delete by keys finds which of them are stored in one streamed pass over the key column:
the right answer for keys in order and in no order, and memory that does not grow with the
store (it never gathers the key column)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store, UnknownKeyError


def _keyed(keys: np.ndarray) -> pa.Table:
    keys = np.asarray(keys, dtype=np.int64)
    return pa.table({"key": keys, "ts": np.arange(keys.size, dtype=np.int64)})


@pytest.mark.parametrize("order", ["sorted", "shuffled", "spread"])
def test_delete_marks_exactly_the_live_keys_it_is_given(store_uri: str, order: str) -> None:
    rng = np.random.default_rng(3)
    if order == "spread":  # hashed ids over the whole int64 range
        pool = np.unique(rng.integers(-(2**62), 2**62, 30_000, dtype=np.int64))
    else:
        pool = np.arange(0, 60_000, 2, dtype=np.int64)  # gaps: the odd keys were never stored
    chunks = np.array_split(pool if order == "sorted" else rng.permutation(pool), 4)
    store = Store.open(store_uri, create=True)
    for chunk in chunks:
        store.append(_keyed(chunk))
    dead = rng.choice(pool, 500, replace=False)
    store.delete(keys=dead)
    live = np.setdiff1d(pool, dead)
    # asked: live keys, deleted keys, keys never stored (between and beyond the stored ones)
    never = np.setdiff1d(np.concatenate([pool + 1, [pool.min() - 5, pool.max() + 5, 2**63 - 1]]), pool)
    want = np.concatenate([rng.choice(live, 700, replace=False), rng.choice(dead, 50, replace=False),
                           rng.choice(never, 50, replace=False)])
    with pytest.raises(UnknownKeyError, match="100 keys are not live"):
        store.delete(keys=want)
    assert store.as_of().count() == live.size  # the refused delete left the store as it was
    record = store.delete(keys=want, missing="ignore")
    assert record.deleted == 700
    assert np.array_equal(store.as_of().keys(), np.setdiff1d(live, want))


def test_delete_of_a_few_keys_does_not_gather_the_key_column(store_uri: str) -> None:
    n = 2_000_000
    store = Store.open(store_uri, create=True)
    store.append(pa.table({"ts": np.arange(n, dtype=np.int64)}))  # keys 0 .. n - 1
    store.delete(keys=[7])  # the tombstone table exists: the delete below only reads
    tracemalloc.start()
    try:
        record = store.delete(keys=[0, n // 2, n - 1])  # a range that spans every row
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert record.deleted == 3
    # the key column alone is 16 MB; gathering and sorting it took 32 MB (NumPy's allocations)
    assert peak < 8 << 20, peak


def test_erase_of_a_few_keys_does_not_gather_their_key_range(store_uri: str) -> None:
    n = 2_000_000
    store = Store.open(store_uri, create=True)
    store.append(pa.table({"key": np.arange(0, 2 * n, 2, dtype=np.int64), "ts": np.arange(n, dtype=np.int64)}))
    store.delete(keys=[2, n])
    tracemalloc.start()
    try:
        report = store.erase([0, n, 2 * n - 2], reason="test")  # one of them deleted before
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.keys.tolist() == [0, n, 2 * n - 2]
    assert store.as_of().count() == n - 4
    # what each key was (inserted at version 1, deleted at 2 or never) is in the log's record
    spans = sorted(store.log()[-1].details["spans"])
    assert [s[:3] for s in spans] == [[1, -1, 2], [1, 2, 1]]
    assert peak < 8 << 20, peak


def test_delete_reads_only_the_tombstones_of_the_keys_it_is_given(store_uri: str) -> None:
    n = 2_000_000
    store = Store.open(store_uri, create=True)
    store.append(pa.table({"ts": np.arange(n, dtype=np.int64)}))
    store.delete(keys=np.arange(1, n - 1, 2))  # a million tombstones between the keys below
    tracemalloc.start()
    try:
        with pytest.raises(UnknownKeyError, match="1 keys are not live"):
            store.delete(keys=[0, 3, n - 2])  # 3 was deleted
        record = store.delete(keys=[0, 3, n - 2], missing="ignore")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert record.deleted == 2
    assert store.as_of().count() == n - (n // 2 - 1) - 2  # the odd keys but n - 1 were deleted
    assert peak < 4 << 20, peak  # the tombstones' keys alone are 8 MB
