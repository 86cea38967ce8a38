"""Scans for the rows of some keys go by the key bounds recorded for each samples fragment
(``Tables.fragments_holding``), as point reads and deletes by key do: an append's check that
keys below the store's highest are new, vacuum's read of the tombstoned rows and erase's check
that its keys were stored (its purge then reads every fragment anyway) read only the fragments
whose bounds hold one of the keys, and every fragment without bounds. Where the key index is
built, the append's and erase's checks probe its sorted runs instead and scan only the fragments
written since its build; a streamed append reads its own keys back from its own fragments only.

As in ``test_delete_key_bounds.py``, removing a fragment's data file shows which fragments a
write reads: a read of a removed file fails.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import CorruptionError, DuplicateKeyError, Store
from tests.store.test_delete_key_bounds import _bounds, _keyed, _remove_data, _three_fragments, _without_bounds


def test_an_append_below_the_highest_key_reads_only_fragments_that_may_hold_its_keys(tmp_path: Path) -> None:
    store = _three_fragments(str(tmp_path / "s"))  # keys 0..9 | 20, 22 .. 28 | 40..44
    _remove_data(store, 0)
    _remove_data(store, 2)
    assert store.append(_keyed([21, 23])).inserted == 2  # in fragment 1's bounds: read, no clash
    assert store.append(_keyed([15, 35])).inserted == 2  # in no fragment's bounds: nothing read
    with pytest.raises(DuplicateKeyError, match="1 keys already exist.*26"):
        store.append(_keyed([26, 27]))
    assert store.as_of().contains([21, 23, 15, 35, 27]).tolist() == [True, True, True, True, False]
    with pytest.raises(CorruptionError, match="missing|not found|No such file"):
        store.append(_keyed([5, 6]))  # fragment 0's bounds hold them: it is read


def test_an_append_reads_fragments_without_bounds(tmp_path: Path) -> None:
    old = _without_bounds(str(tmp_path / "s"))
    with pytest.raises(DuplicateKeyError):
        old.append(_keyed([15, 42]))  # 42 is stored, in a fragment without bounds
    _remove_data(old, 0)
    with pytest.raises(CorruptionError, match="missing|not found|No such file"):
        old.append(_keyed([15, 35]))  # no bounds: fragment 0 is read too


@pytest.mark.parametrize("by", ["append", "erase"])
def test_checks_by_bounds_answer_as_a_full_scan(store_uri: str, by: str) -> None:
    rng = np.random.default_rng(3)
    store = Store.open(store_uri, create=True)
    parts = [np.arange(0, 1000, 2), rng.permutation(np.arange(2000, 2600)), np.arange(5000, 5100),
             np.arange(-300, -100, 5)]
    for p in parts:
        store.append(_keyed(p))
    stored = np.concatenate(parts)
    for _ in range(5):
        asked = np.unique(rng.integers(-400, 5200, 12))
        clash = np.isin(asked, stored)
        if by == "append":
            if clash.any():
                with pytest.raises(DuplicateKeyError, match=f"{int(clash.sum())} keys already exist"):
                    store.append(_keyed(asked))
            else:
                store.append(_keyed(asked))
                stored = np.concatenate([stored, asked])
        else:
            report = store.erase(asked, reason="test", missing="ignore") if clash.any() else None
            if report is not None:
                assert report.keys.size == int(clash.sum())
                stored = np.setdiff1d(stored, asked)
    assert np.array_equal(store.as_of().keys(), np.sort(stored))


def test_a_streamed_append_below_the_highest_key_records_its_bounds(store_uri: str) -> None:
    # its rows are written before its keys are checked: the check must not take their
    # fragment for one without bounds
    store = Store.open(store_uri, create=True)
    store.append(_keyed(np.arange(0, 20, 2)))
    table = _keyed([3, 1, 5, 7])
    store.append(pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=2)))
    assert _bounds(store) == {0: (0, 18), 1: (1, 7)}
    assert _bounds(Store.open(store_uri)) == {0: (0, 18), 1: (1, 7)}


def test_vacuum_reads_the_tombstoned_rows_in_the_fragments_that_may_hold_them(tmp_path: Path) -> None:
    store = _three_fragments(str(tmp_path / "s"))
    store.delete(keys=[22, 24])
    _remove_data(store, 0)
    _remove_data(store, 2)
    report = store.vacuum(keep_versions=1, dry_run=True)  # (the purge itself rewrites every fragment)
    assert report.keys.tolist() == [22, 24]


def _indexed_spread(uri: str) -> Store:
    """Three fragments of even keys interleaved over one range (every fragment's bounds hold
    every odd key between 0 and 58), then the key index."""
    store = Store.open(uri, create=True)
    for first in range(3):
        store.append(_keyed(np.arange(2 * first, 60, 6)))
    store.index_keys()
    return store


def test_with_the_key_index_a_late_append_of_spread_keys_reads_no_indexed_fragment(tmp_path: Path) -> None:
    store = _indexed_spread(str(tmp_path / "s"))
    for f in range(3):
        _remove_data(store, f)  # every fragment's bounds hold the keys below: none may be read
    assert store.append(_keyed([1, 31, 57])).inserted == 3
    assert store.append(_keyed([3, 33])).inserted == 2  # the fragment written since the index is scanned
    with pytest.raises(DuplicateKeyError, match="1 keys already exist.*31"):
        store.append(_keyed([5, 31]))  # stored since the index: found by the scan of fresh fragments
    # streamed: its rows are written before the check, which must not take them for stored ones
    table = _keyed([35, 37, 39])
    assert store.append(pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=2))).inserted == 3
    assert store.as_of().contains([1, 3, 5, 31, 33, 35, 39]).tolist() == [True, True, False, True, True, True, True]


def test_with_the_key_index_erase_checks_its_keys_without_reading_indexed_fragments(tmp_path: Path) -> None:
    from modyn_store.core import maintenance

    store = _indexed_spread(str(tmp_path / "s"))
    store.append(_keyed([31]))  # after the index: scanned flat
    _remove_data(store, 1)  # keys 2, 8 .. 56: their bounds hold every key asked, none of them is
    _remove_data(store, 2)  # keys 4, 10 .. 58 (fragment 0, keys 0, 6 .. 54, holds those found)
    asked = np.array([1, 12, 30, 31, 33, 54, 57])
    assert maintenance._stored_keys(store, asked).tolist() == [False, True, True, True, False, True, False]


def test_with_the_key_index_a_clash_with_any_stored_key_is_found(store_uri: str) -> None:
    store = _indexed_spread(store_uri)
    store.delete(keys=[12])
    store.erase([18], reason="test")
    with pytest.raises(DuplicateKeyError, match="1 keys already exist.*30"):
        store.append(_keyed([7, 30]))  # in the index's runs
    with pytest.raises(DuplicateKeyError, match="1 keys already exist.*12"):
        store.append(_keyed([9, 12]))  # deleted: still taken
    with pytest.raises(DuplicateKeyError, match="1 keys already exist.*18"):
        store.append(_keyed([11, 18]))  # erased: its row is gone, the erasures name it
    assert store.append(_keyed([7, 9, 11])).inserted == 3
    assert store.erase([7, 30], reason="test").keys.tolist() == [7, 30]  # erase's check by the index
    assert store.erase([13], reason="test", missing="ignore").keys.size == 0  # never stored


@pytest.mark.parametrize("by", ["append", "erase"])
def test_checks_by_the_key_index_answer_as_a_full_scan(store_uri: str, by: str) -> None:
    rng = np.random.default_rng(5)
    store = Store.open(store_uri, create=True)
    taken = np.empty(0, np.int64)  # every key ever stored
    live = np.empty(0, np.int64)
    for step in range(12):
        if step % 4 == 1:
            store.index_keys()  # the runs, then appends after them scanned flat
        fresh = np.setdiff1d(np.unique(rng.integers(-500, 5000, 40)), taken)
        store.append(_keyed(rng.permutation(fresh)))
        taken, live = np.union1d(taken, fresh), np.union1d(live, fresh)
        asked = np.unique(rng.integers(-600, 5100, 15))
        if by == "append":
            clash = np.isin(asked, taken)
            if clash.any():
                with pytest.raises(DuplicateKeyError, match=f"{int(clash.sum())} keys already exist"):
                    store.append(_keyed(asked))
            else:
                store.append(_keyed(asked))
                taken, live = np.union1d(taken, asked), np.union1d(live, asked)
        elif np.isin(asked, live).any():
            report = store.erase(asked, reason="test", missing="ignore")
            erased = asked[np.isin(asked, live)]
            assert report.keys.tolist() == erased.tolist()
            live = np.setdiff1d(live, erased)
            with pytest.raises(DuplicateKeyError):
                store.append(_keyed(erased[:1]))  # erased keys stay taken
    assert np.array_equal(store.as_of().keys(), live)
