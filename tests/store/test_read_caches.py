"""Reads that reuse what the process already read (Lance's shared session, the snapshot's log
records, dead-key sets) must answer exactly as a fresh process would: after another process
commits, after maintenance rewrites files, and after a store is removed and made again at the
same path."""

from __future__ import annotations

import multiprocessing as mp
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core import _derived


def _rows(keys: np.ndarray | list[int], shift: float = 0.0) -> pa.Table:
    k = np.asarray(keys, dtype=np.int64)
    return pa.table({"key": k, "ts": k * 10, "x": k.astype(np.float64) + shift})


def _all(store: Store, version: int | None = None) -> dict[str, list[int]]:
    """Every read of a version, from this Store object."""
    snap = store.as_of(version)
    return {
        "keys": snap.keys().tolist(),
        "iter_keys": sorted(int(k) for a in snap.iter_keys() for k in a),
        "to_batches": sorted(int(k) for b in snap.to_batches(["key"]) for k in b.column(0).to_pylist()),
    }


def _fresh(uri: str, version: int | None = None) -> dict[str, list[int]]:
    return _all(Store.open(uri), version)


def _other_process(uri: str, op: str, keys: list[int]) -> None:
    store = Store.open(uri)
    if op == "append+delete":
        store.append(_rows(np.arange(100, 150)))
        store.delete(keys=[101, 3])
    elif op == "erase":
        store.erase(keys, reason="test")
    elif op == "compact":
        store.compact()
    elif op == "vacuum":
        store.vacuum(keep_versions=1, dry_run=False)


def _run(uri: str, op: str, keys: list[int] | None = None) -> None:
    p = mp.get_context("spawn").Process(target=_other_process, args=(uri, op, keys or []))
    p.start()
    p.join(120)
    assert p.exitcode == 0


def test_the_process_shares_one_lance_session() -> None:
    assert _derived.session() is _derived.session()


def test_fresh_opens_see_every_commit_of_another_process(tmp_path: Path) -> None:
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    for i in range(4):
        store.append(_rows(np.arange(i * 25, (i + 1) * 25)))
    store.delete(keys=[0, 30])
    want = sorted(set(range(100)) - {0, 30})
    assert _fresh(uri) == {k: want for k in ("keys", "iter_keys", "to_batches")}  # read: now cached

    _run(uri, "append+delete")
    want = sorted((set(range(100)) | set(range(100, 150))) - {0, 30, 101, 3})
    assert _fresh(uri) == {k: want for k in ("keys", "iter_keys", "to_batches")}
    assert _fresh(uri, 5) == {k: sorted(set(range(100)) - {0, 30}) for k in ("keys", "iter_keys", "to_batches")}
    assert _fresh(uri, 4)["keys"] == list(range(100))  # before any delete: no tombstone applies

    _run(uri, "erase", [4, 120])
    want = sorted(set(want) - {4, 120})
    assert _fresh(uri) == {k: want for k in ("keys", "iter_keys", "to_batches")}
    assert 4 not in _fresh(uri, 4)["keys"]  # erasure applies to every version

    _run(uri, "compact")  # rewrites the data files the session has cached metadata of
    assert _fresh(uri) == {k: want for k in ("keys", "iter_keys", "to_batches")}
    assert _fresh(uri, 4)["keys"] == sorted(set(range(100)) - {4})

    _run(uri, "vacuum")  # purges the deleted rows: old versions list them as unavailable
    snap = Store.open(uri).as_of(4)
    assert snap.keys().tolist() == sorted(set(range(100)) - {4})
    assert snap.unavailable().tolist() == [0, 3, 30]
    assert Store.open(uri).as_of().keys().tolist() == want


def test_a_snapshot_held_across_another_process_erasing(tmp_path: Path) -> None:
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    store.append(_rows(np.arange(10)))
    store.delete(keys=[1])
    store.append(_rows(np.arange(10, 20)))
    snap = store.as_of(2)
    assert snap.keys().tolist() == [0, *range(2, 10)]
    _run(uri, "erase", [4])
    assert snap.keys().tolist() == [0, 2, 3, *range(5, 10)]
    assert [int(k) for a in snap.iter_keys() for k in a] == [0, 2, 3, *range(5, 10)]


@pytest.mark.parametrize("same_shape", [True, False])
def test_a_store_made_again_at_the_same_path_is_read_afresh(tmp_path: Path, same_shape: bool) -> None:
    """Same version numbers, same table versions, same row counts, other keys and data: nothing
    read from the first store may be served for the second."""
    uri = str(tmp_path / "s")
    first = Store.open(uri, create=True)
    first.append(_rows(np.arange(0, 50)))
    first.delete(keys=[7])
    assert _fresh(uri)["keys"] == sorted(set(range(50)) - {7})
    assert Store.open(uri).as_of().to_table().column("x").to_pylist()[:2] == [0.0, 1.0]
    shutil.rmtree(uri)

    second = Store.open(uri, create=True)
    base = 1000 if same_shape else 5000
    second.append(_rows(np.arange(base, base + (50 if same_shape else 70)), shift=0.5))
    second.delete(keys=[base + 9])
    want = sorted(set(range(base, base + (50 if same_shape else 70))) - {base + 9})
    assert _fresh(uri) == {k: want for k in ("keys", "iter_keys", "to_batches")}
    assert _fresh(uri, 1)["keys"] == list(range(base, base + (50 if same_shape else 70)))
    assert Store.open(uri).as_of().to_table().column("x").to_pylist()[:2] == [base + 0.5, base + 1.5]


# -- the process's map of derived sets ---------------------------------------------------------
def test_derived_values_are_keyed_by_the_tables_content(tmp_path: Path) -> None:
    import lance

    from modyn_store.core._derived import Derived

    cache = Derived()
    uri = str(tmp_path / "t.lance")
    ds = lance.write_dataset(pa.table({"key": [3, 1]}), uri)
    calls: list[int] = []

    def read(d: object) -> np.ndarray:
        calls.append(1)
        return np.sort(d.to_table().column("key").to_numpy())  # type: ignore[attr-defined]

    assert cache.get(ds, "k", read).tolist() == [1, 3]
    assert cache.get(lance.dataset(uri), "k", read).tolist() == [1, 3] and len(calls) == 1  # same content
    assert cache.get(ds, "other", read).tolist() == [1, 3] and len(calls) == 2  # another value
    with pytest.raises(ValueError):
        cache.get(ds, "k", read)[0] = 7  # shared values are read-only

    lance.write_dataset(pa.table({"key": [2]}), uri, mode="append")  # a commit: other content
    assert cache.get(lance.dataset(uri), "k", read).tolist() == [1, 2, 3]
    lance.dataset(uri).delete("key = 1")  # a deletion file only: other content too
    assert cache.get(lance.dataset(uri), "k", read).tolist() == [2, 3]
    assert cache.get(ds, "k", read).tolist() == [1, 3]  # the old manifest still names the old content

    shutil.rmtree(uri)  # made again: same path, same Lance version numbers, other rows
    lance.write_dataset(pa.table({"key": [9, 8]}), uri)
    assert lance.dataset(uri).version == ds.version
    assert cache.get(lance.dataset(uri), "k", read).tolist() == [8, 9]


def test_derived_values_stay_within_their_bound(tmp_path: Path) -> None:
    import lance

    from modyn_store.core._derived import Derived

    cache = Derived(max_bytes=3 * 8000)
    datasets = [lance.write_dataset(pa.table({"key": [i]}), str(tmp_path / f"t{i}.lance")) for i in range(5)]
    for ds in datasets:
        cache.get(ds, "big", lambda d: np.zeros(1000, np.int64))
    assert cache._bytes <= 3 * 8000 and len(cache._items) == 3
    misses = cache.misses
    cache.get(datasets[-1], "big", lambda d: np.zeros(1000, np.int64))  # the newest is kept
    assert cache.misses == misses
    cache.get(datasets[0], "big", lambda d: np.zeros(1000, np.int64))  # the oldest was evicted
    assert cache.misses == misses + 1


def test_dead_sets_follow_deletes_and_erasures_in_one_process(store_uri: str) -> None:
    """Other Store objects of the same process write: fresh reads must see each commit."""
    store = Store.open(store_uri, create=True)
    store.append(_rows(np.arange(20)))
    store.delete(keys=[1, 2])
    assert Store.open(store_uri).as_of().keys().tolist() == [0, *range(3, 20)]
    Store.open(store_uri).delete(keys=[5])
    assert Store.open(store_uri).as_of().keys().tolist() == [0, 3, 4, *range(6, 20)]
    assert Store.open(store_uri).as_of(2).keys().tolist() == [0, *range(3, 20)]
    Store.open(store_uri).erase([2, 7], reason="test")  # 2 was deleted, 7 live: both erased
    assert Store.open(store_uri).as_of().keys().tolist() == [0, 3, 4, 6, *range(8, 20)]
    assert Store.open(store_uri).as_of(1).keys().tolist() == [0, 1, 3, 4, 5, 6, *range(8, 20)]
    Store.open(store_uri).compact()
    assert Store.open(store_uri).as_of(2).keys().tolist() == [0, 3, 4, 5, 6, *range(8, 20)]
    assert sorted(int(k) for a in Store.open(store_uri).as_of().iter_keys() for k in a) == [0, 3, 4, 6, *range(8, 20)]


def test_without_a_manifest_to_key_by_nothing_is_kept(tmp_path: Path) -> None:
    """A Lance build that cannot serialize its manifest gets every value computed afresh."""
    import lance

    from modyn_store.core._derived import Derived

    class Opaque:  # a dataset whose binding has no serialized_manifest
        def __init__(self, ds: object) -> None:
            self.uri, self._ds, self.inner = ds.uri, object(), ds  # type: ignore[attr-defined]

    cache = Derived()
    ds = Opaque(lance.write_dataset(pa.table({"key": [1]}), str(tmp_path / "t.lance")))
    calls: list[int] = []
    for _ in range(2):
        cache.get(ds, "k", lambda d: calls.append(1) or np.zeros(1))
    assert len(calls) == 2 and not cache._items


def test_records_handed_out_by_log_are_the_callers_own(tmp_path: Path) -> None:
    # Decoded log records are shared by every Store of the process: a caller changing the
    # details of a record from log() must change nothing another open reads or checks.
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    store.append(_rows(np.arange(100)))
    store.append(_rows(np.arange(100, 200)))
    for _ in range(2):  # the second open decodes nothing: its records come from the process
        mine = Store.open(uri).log()
        for rec in mine:
            rec.details["checksum"] = "0000000000000001"  # another checksum than the keys'
    assert Store.open(uri).as_of(2).keys().tolist() == list(range(200))
    assert all(rec.details["checksum"] != "0000000000000001" for rec in Store.open(uri).log())
    from modyn_store.core.verify import verify

    report = verify(uri, deep=True)
    assert report.ok and not report.findings, report


def test_log_since_hands_out_only_the_newer_records_as_copies(tmp_path: Path) -> None:
    from modyn_store import InvalidArgumentError

    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    for i in range(4):
        store.append(_rows(np.arange(i * 10, i * 10 + 10)))
    store.delete(keys=[0, 11])
    assert [r.version for r in store.log(since=3)] == [4, 5]
    assert [r.version for r in store.log(since=5)] == []
    assert [r.version for r in store.log(since=0)] == [r.version for r in store.log()] == [1, 2, 3, 4, 5]
    assert store.log(since=3)[-1].op == "delete"
    newer = Store.open(uri).log(since=4)
    newer[0].details["spans"] = "changed"  # a copy: what the store reads is unchanged
    assert Store.open(uri).log(since=4)[0].details != newer[0].details
    assert Store.open(uri).as_of(5).count() == 38
    for bad in (-1, 1.5, "2", True, None):
        with pytest.raises(InvalidArgumentError, match="since"):
            store.log(since=bad)  # type: ignore[arg-type]
