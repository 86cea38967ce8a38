"""``store.delta(a, b)`` at its boundaries: every pair of versions against a model of the writes.

The delta reads only the fragments whose version range meets ``(a, b]``; these tests hold its
answer to what was written, through compaction that merges fragments of several versions,
deletes, erasure (which rewrites fragments) and vacuum.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import DataUnavailableError, Store


@pytest.fixture
def store(store_uri: str) -> Store:
    return Store.open(store_uri, create=True)


def _batch(keys: np.ndarray, ts: np.ndarray) -> pa.Table:
    return pa.table({"key": pa.array(keys, pa.int64()), "ts": pa.array(ts, pa.int64()),
                     "label": pa.array(keys % 2, pa.int64()), "x": pa.array(keys * 0.5, pa.float64())})


class _Model:
    """What each version inserted (key, ts), and what is deleted or erased."""

    def __init__(self) -> None:
        self.rows: dict[int, list[tuple[int, int]]] = {}
        self.erased: set[int] = set()
        self.deleted: dict[int, list[int]] = {}
        self.erased_at: dict[int, list[int]] = {}

    def expected(self, a: int, b: int) -> list[tuple[int, int, int]]:
        out = [(v, ts, k) for v, rows in self.rows.items() if a < v <= b for k, ts in rows if k not in self.erased]
        return sorted(out)


def _append(store: Store, model: _Model, keys: np.ndarray, ts: np.ndarray, *, batches: int = 1) -> None:
    t = _batch(keys, ts)
    if batches > 1:
        reader = pa.RecordBatchReader.from_batches(t.schema, t.to_batches(max_chunksize=max(1, len(keys) // batches)))
        v = store.append(reader).version
    else:
        v = store.append(t).version
    model.rows[v] = list(zip(keys.tolist(), ts.tolist()))


def _check_all_pairs(store: Store, model: _Model) -> None:
    for a in range(store.version + 1):
        for b in range(a, store.version + 1):
            d = store.delta(a, b, columns=["x"])
            got = list(zip(d.inserted.column("version").to_pylist(), d.inserted.column("ts").to_pylist(),
                           d.inserted.column("key").to_pylist()))
            assert got == model.expected(a, b), (a, b)
            if d.inserted.num_rows:
                assert d.inserted.column_names == ["key", "ts", "label", "x", "version"]
                k = d.inserted.column("key").to_numpy()
                assert np.array_equal(d.inserted.column("x").to_numpy(), k * 0.5)  # each row's own payload
            want_del = sorted(k for v, ks in model.deleted.items() if a < v <= b for k in ks)
            want_er = sorted(k for v, ks in model.erased_at.items() if a < v <= b for k in ks)
            assert d.deleted.tolist() == want_del, (a, b)
            assert d.erased.tolist() == want_er, (a, b)


def _fill(store: Store, model: _Model, rng: np.random.Generator) -> None:
    key = 0
    for i in range(6):
        n = int(rng.integers(1, 40))
        keys = np.arange(key, key + n)
        key += n
        # even versions arrive out of time order (the delta must sort them), odd ones in order
        ts = rng.integers(0, 20, n) if i % 2 == 0 else np.sort(rng.integers(0, 20, n))
        _append(store, model, keys, ts, batches=3 if i == 2 else 1)


def test_delta_of_every_version_pair(store: Store) -> None:
    model = _Model()
    _fill(store, model, np.random.default_rng(1))
    _check_all_pairs(store, model)


def test_delta_after_compaction_merges_fragments_of_several_versions(store: Store) -> None:
    model = _Model()
    _fill(store, model, np.random.default_rng(2))
    before = len(store._tables.open("samples").get_fragments())
    store.compact()
    after = len(store._tables.open("samples").get_fragments())
    assert after < before  # fragments now straddle several versions
    _check_all_pairs(store, model)
    # appends after the compaction: new fragments next to a merged one
    _append(store, model, np.arange(1000, 1010), np.arange(10)[::-1].copy())
    _check_all_pairs(store, model)


def test_delta_with_deletes_erasure_and_vacuum(store: Store) -> None:
    model = _Model()
    _fill(store, model, np.random.default_rng(3))
    v = store.delete(keys=[1, 2]).version
    model.deleted[v] = [1, 2]
    _check_all_pairs(store, model)  # soft-deleted rows stay in the versions that inserted them
    rep = store.erase([3, 40], reason="test")
    model.erased |= {3, 40}
    model.erased_at[rep.version] = [3, 40]
    _check_all_pairs(store, model)  # erasure rewrote fragments: their ranges still bound the rows
    store.compact()
    _check_all_pairs(store, model)
    _append(store, model, np.arange(2000, 2005), np.arange(5))
    appended = store.version
    store.vacuum(keep_versions=1, dry_run=False)
    # keys 1 and 2 were purged: versions that inserted them refuse, the rest answer
    d = store.delta(0, store.version, on_unavailable="skip")
    assert 1 not in d.inserted.column("key").to_pylist() and 2000 in d.inserted.column("key").to_pylist()
    with pytest.raises(DataUnavailableError):
        store.delta(0, 1)
    d = store.delta(appended - 1, store.version)
    assert d.inserted.column("key").to_pylist() == [2000, 2001, 2002, 2003, 2004]


def test_delta_of_a_range_without_inserts(store: Store) -> None:
    model = _Model()
    _fill(store, model, np.random.default_rng(4))
    v = store.delete(keys=[5]).version
    d = store.delta(v - 1, v, columns=["x"])
    assert len(d) == 0 and d.deleted.tolist() == [5]
    assert d.inserted.column_names == ["key", "ts", "label", "x", "version"]
    assert len(store.delta(v, v)) == 0


def test_delta_sorts_ties_in_time_by_key(store: Store) -> None:
    model = _Model()
    _append(store, model, np.array([9, 3, 7, 1]), np.array([5, 5, 1, 5]))
    assert store.delta(0, 1).inserted.column("key").to_pylist() == [7, 1, 3, 9]


def test_a_key_deleted_in_the_range_and_erased_later_is_not_in_deleted(store: Store) -> None:
    # an erased key is erased at every version: it was never live at a, so delta and diff
    # agree that it left nothing in (a, b]; the delta of its erase lists it in erased
    store.append(_batch(np.arange(10), np.arange(10)))
    deleted_at = store.delete(keys=[5, 6]).version
    store.delete(keys=[7])
    erased_at = store.erase([5, 7], reason="test").version
    d = store.delta(1, deleted_at)
    assert d.deleted.tolist() == [6] and d.erased.tolist() == []
    assert store.diff(1, deleted_at).deleted.tolist() == [6]
    assert store.delta(1, erased_at - 1).deleted.tolist() == store.diff(1, erased_at - 1).deleted.tolist() == [6]
    whole = store.delta(1, erased_at)
    assert whole.deleted.tolist() == [6] and whole.erased.tolist() == [5, 7]
    assert store.delta(erased_at - 1, erased_at).erased.tolist() == [5, 7]
