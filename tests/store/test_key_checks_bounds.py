"""Scans for the rows of some keys go by the key bounds recorded for each samples fragment
(``Tables.fragments_holding``), as point reads and deletes by key do: an append's check that
keys below the store's highest are new, vacuum's read of the tombstoned rows and erase's check
that its keys were stored (its purge then reads every fragment anyway) read only the fragments
whose bounds hold one of the keys, and every fragment without bounds.

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
