"""Point reads (``take``, ``contains``, ``row_ids`` of a few keys) go by the key bounds recorded
for each samples fragment, as a delete by key does: a fragment whose bounds hold none of the
keys asked for is not read, with or without the key index (its fragments written since the
index are scanned flat, the others looked up in its runs). A fragment without bounds is read.

As in ``test_delete_key_bounds.py``, removing a fragment's data file shows which fragments a
read opens: a read of a removed file fails.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modyn_store import CorruptionError, Store
from tests.store.test_delete_key_bounds import _keyed, _remove_data, _three_fragments, _without_bounds


def test_point_reads_open_no_fragment_whose_bounds_leave_the_keys_out(tmp_path: Path) -> None:
    store = _three_fragments(str(tmp_path / "s"))
    store.delete(keys=[24])
    _remove_data(store, 0)
    _remove_data(store, 2)
    snap = Store.open(store.uri).as_of()
    assert snap.take([26, 22]).column("key").to_pylist() == [26, 22]
    assert snap.contains([20, 21, 24, 28, 99]).tolist() == [True, False, False, True, False]
    assert snap.row_ids([20]).size == 1
    for edge in (20, 28):  # a fragment's lowest and highest key, asked alone
        assert snap.contains([edge]).tolist() == [True]
        assert snap.take([edge]).column("key").to_pylist() == [edge]
    # (21: in fragment 1's bounds, never stored; 15, 99: in no fragment's bounds. A take of
    # keys that are not live decides its error on the whole key set, which reads every fragment)
    with pytest.raises(CorruptionError, match="missing|not found|No such file"):
        snap.take([3])  # fragment 0's bounds hold it: that fragment is read


def test_with_the_index_only_fresh_fragments_that_may_hold_the_keys_are_scanned(tmp_path: Path) -> None:
    store = _three_fragments(str(tmp_path / "s"))
    store.index_keys()
    store.append(_keyed(np.arange(100, 110)))  # fragments 3 and 4, written after the index
    store.append(_keyed(np.arange(200, 210)))
    _remove_data(store, 4)
    snap = Store.open(store.uri).as_of()
    got = snap.take([105, 3, 42, 22])
    assert got.column("key").to_pylist() == [105, 3, 42, 22]
    assert got.column("ts").to_pylist() == [5, 3, 4, 1]
    assert snap.contains([3, 101, 150, 43]).tolist() == [True, True, False, True]
    with pytest.raises(CorruptionError, match="missing|not found|No such file"):
        snap.take([205])


def test_fragments_without_bounds_are_read(tmp_path: Path) -> None:
    old = _without_bounds(str(tmp_path / "s"))
    assert old.as_of().take([5, 26]).column("key").to_pylist() == [5, 26]
    _remove_data(old, 0)
    with pytest.raises(CorruptionError, match="missing|not found|No such file"):
        Store.open(old.uri).as_of().take([42])  # no bounds: fragment 0 is read too


@pytest.mark.parametrize("indexed", [False, True])
def test_point_reads_by_bounds_match_the_key_set(store_uri: str, indexed: bool) -> None:
    rng = np.random.default_rng(11)
    store = Store.open(store_uri, create=True)
    parts = [np.arange(0, 1000), np.arange(1000, 3000, 3), rng.permutation(np.arange(3000, 3500)),
             np.arange(5000, 5100), rng.permutation(np.arange(-400, -100, 7))]
    for i, p in enumerate(parts):
        store.append(_keyed(p))
        if indexed and i == 2:
            store.index_keys()
    stored = np.concatenate(parts)
    store.delete(keys=rng.choice(stored, 40, replace=False))
    store.erase(rng.choice(store.as_of().keys(), 5, replace=False), reason="test")
    snap = Store.open(store_uri).as_of()
    live = snap.keys()
    asked = np.unique(np.concatenate([rng.choice(stored, 30, replace=False), rng.integers(-500, 6000, 30)]))
    assert np.array_equal(snap.contains(asked), np.isin(asked, live))
    some = rng.choice(live, 25, replace=False)
    got = snap.take(some)
    assert np.array_equal(got.column("key").to_numpy(), some)
