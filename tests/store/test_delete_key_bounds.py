"""A delete by key goes by the key bounds recorded for each samples fragment
(:mod:`modyn_store.core._fragments`): it does not read a fragment whose bounds hold none of its
keys, and takes a fragment whose rows fill its bounds as holding each key in them. The bounds
come from the keys an append wrote, or from the fragment's own keys after a merge; where none
are recorded (earlier releases), the fragment is read. Wrong bounds are what ``verify`` reports.

The tests that remove a fragment's data file show which fragments a delete reads: a read of a
removed file fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pytest

from modyn_store import CorruptionError, Store, UnknownKeyError
from modyn_store.core import _writes
from modyn_store.core._fragments import _encode
from modyn_store.core.verify import verify


def _keyed(keys: list[int] | np.ndarray) -> pa.Table:
    k = np.asarray(keys, dtype=np.int64)
    return pa.table({"key": k, "ts": np.arange(k.size, dtype=np.int64)})


def _bounds(store: Store) -> dict[int, tuple[int, int]]:
    ds = store._tables.open("samples")
    assert ds is not None
    return store._tables.fragment_key_bounds("samples", ds)


def _remove_data(store: Store, fragment_id: int) -> None:
    """Remove the data file of one samples fragment (a read of it fails from here on)."""
    ds = store._tables.open("samples")
    assert ds is not None
    frag = ds.get_fragment(fragment_id)
    for f in frag.metadata.files:
        os.remove(os.path.join(store._tables.uri("samples"), "data", f.path))


def _three_fragments(uri: str) -> Store:
    """Fragment 0: keys 0..9 (dense), 1: 20, 22, .. 28 (gaps), 2: 40..44 in no order (dense)."""
    store = Store.open(uri, create=True)
    store.append(_keyed(np.arange(10)))
    store.append(_keyed(np.arange(20, 30, 2)))
    store.append(_keyed([43, 40, 44, 41, 42]))
    return store


def test_an_append_records_the_bounds_of_the_keys_it_wrote(store_uri: str) -> None:
    store = _three_fragments(store_uri)
    assert _bounds(store) == {0: (0, 9), 1: (20, 28), 2: (40, 44)}
    # a fresh handle reads them from the journal
    assert _bounds(Store.open(store_uri)) == {0: (0, 9), 1: (20, 28), 2: (40, 44)}


def test_a_streamed_append_records_its_bounds(store_uri: str) -> None:
    store = Store.open(store_uri, create=True)
    table = _keyed([7, 3, 5, 11])
    store.append(pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=2)))
    assert _bounds(store) == {0: (3, 11)}


def test_a_delete_reads_no_fragment_whose_bounds_leave_its_key_out(tmp_path: Path) -> None:
    store = _three_fragments(str(tmp_path / "s"))
    _remove_data(store, 0)
    _remove_data(store, 2)
    record = store.delete(keys=[22])  # only fragment 1 is read
    assert record.deleted == 1
    with pytest.raises(UnknownKeyError, match="1 keys are not live"):
        store.delete(keys=[21])  # in fragment 1's bounds, never stored: the read says so
    assert store.delete(keys=[21, 24], missing="ignore").deleted == 1


def test_a_fragment_whose_rows_fill_its_bounds_is_not_read(tmp_path: Path) -> None:
    store = _three_fragments(str(tmp_path / "s"))
    for fid in (0, 1, 2):
        _remove_data(store, fid)
    assert store.delete(keys=[3, 42]).deleted == 2  # fragments 0 and 2 answer from their bounds
    with pytest.raises(CorruptionError, match="missing"):
        store.delete(keys=[24])  # fragment 1 has gaps: it is read
    assert store.log()[-1].deleted == 2


@pytest.mark.parametrize("missing", ["error", "ignore"])
def test_answers_from_bounds_match_a_scan(store_uri: str, missing: str) -> None:
    rng = np.random.default_rng(5)
    store = Store.open(store_uri, create=True)
    parts = [np.arange(0, 1000), np.arange(1000, 3000, 3), rng.permutation(np.arange(3000, 3500)),
             np.arange(5000, 5100)]
    for p in parts:
        store.append(_keyed(p))
    stored = np.concatenate(parts)
    asked = np.unique(np.concatenate([rng.choice(stored, 60, replace=False), rng.integers(-10, 6000, 60)]))
    live = np.isin(asked, stored)
    if missing == "error" and not live.all():
        with pytest.raises(UnknownKeyError, match=f"{int((~live).sum())} keys are not live"):
            store.delete(keys=asked)
        assert store.as_of().count() == stored.size
        return
    record = store.delete(keys=asked, missing="ignore")
    assert record.deleted == int(live.sum())
    assert np.array_equal(store.as_of().keys(), np.setdiff1d(stored, asked))


def _without_bounds(uri: str) -> Store:
    """:func:`_three_fragments` with a journal as an earlier release wrote it (no key bounds),
    opened again."""
    store = _three_fragments(uri)
    ds = store._tables.open("samples")
    assert ds is not None
    with open(store.path("_meta/samples.fragments.jsonl"), "wb") as fh:
        fh.write(_encode({str(f.fragment_id): [v + 1, v + 1, f.physical_rows]
                          for v, f in enumerate(ds.get_fragments())}))
    old = Store.open(uri)
    assert _bounds(old) == {}
    return old


def test_lines_without_bounds_leave_every_fragment_to_the_read(tmp_path: Path) -> None:
    old = _without_bounds(str(tmp_path / "s"))
    assert old.delete(keys=[5, 26]).deleted == 2
    with pytest.raises(UnknownKeyError):
        old.delete(keys=[27])
    _remove_data(old, 0)
    with pytest.raises(CorruptionError, match="missing"):
        old.delete(keys=[42])  # no bounds: fragment 0 is read too


def test_a_merge_records_each_fragments_own_bounds(store_uri: str) -> None:
    store = Store.open(store_uri, create=True)
    for start in (0, 10, 30):
        store.append(_keyed(np.arange(start, start + 10)))
    store.compact()
    ds = store._tables.open("samples")
    assert ds is not None and len(ds.get_fragments()) == 1
    assert list(_bounds(store).values()) == [(0, 39)]  # read from the merged rows: 30 rows, not dense
    assert _bounds(Store.open(store_uri)) == _bounds(store)
    with pytest.raises(UnknownKeyError):
        store.delete(keys=[25])
    assert store.delete(keys=[35]).deleted == 1


def test_a_fragment_with_deleted_rows_or_of_a_later_version_is_not_answered_from_bounds(tmp_path: Path) -> None:
    store = _three_fragments(str(tmp_path / "s"))
    lance.dataset(store._tables.uri("samples")).delete("key = 4")  # a deletion file in fragment 0
    want = np.array([3, 4, 42])
    found = np.zeros(3, dtype=bool)
    # as of version 3, the latest: fragment 0 has a deletion file, fragment 2 is dense
    assert _writes._answered_by_bounds(Store.open(store.uri), 3, want, found) == {1, 2}
    assert found.tolist() == [False, False, True]
    # as of version 2, fragment 2 (version 3) is not answered from its bounds
    found = np.zeros(3, dtype=bool)
    assert _writes._answered_by_bounds(Store.open(store.uri), 2, want, found) == {1}
    assert not found.any()
    with pytest.raises(UnknownKeyError, match="e.g. \\[4\\]"):
        Store.open(store.uri).delete(keys=[3, 4])  # key 4's row is gone: not taken as stored


def test_two_handles_see_each_others_bounds(store_uri: str) -> None:
    a = Store.open(store_uri, create=True)
    a.append(_keyed(np.arange(10)))
    b = Store.open(store_uri)
    b.append(_keyed(np.arange(10, 20)))
    assert a.delete(keys=[15]).deleted == 1
    assert _bounds(a) == {0: (0, 9), 1: (10, 19)}
    assert b.delete(keys=[5]).deleted == 1


@pytest.mark.parametrize("deep", [False, True])
def test_verify_reports_bounds_that_leave_out_a_key(tmp_path: Path, deep: bool) -> None:
    store = _three_fragments(str(tmp_path / "s"))
    ds = store._tables.open("samples")
    assert ds is not None
    rows = {f.fragment_id: f.physical_rows for f in ds.get_fragments()}
    good = {"0": [1, 1, rows[0], 0, 9], "1": [2, 2, rows[1], 20, 28], "2": [3, 3, rows[2], 40, 44]}
    with open(store.path("_meta/samples.fragments.jsonl"), "wb") as fh:
        fh.write(_encode({**good, "1": [2, 2, rows[1], 20, 30]}))  # wider: fine
    assert verify(store.uri, deep=deep).ok
    with open(store.path("_meta/samples.fragments.jsonl"), "wb") as fh:
        fh.write(_encode({**good, "1": [2, 2, rows[1], 21, 28]}))  # key 20 left out
    # the wrong bound makes a delete miss a live key: what verify must report
    with pytest.raises(UnknownKeyError):
        Store.open(store.uri).delete(keys=[20])
    errors = [f.what for f in verify(store.uri, deep=deep).errors]
    assert len(errors) == 1
    assert "fragment 1: keys 21..28 recorded, its rows hold 20..28" in errors[0]


def test_an_entry_of_another_length_is_read_around(tmp_path: Path) -> None:
    store = _three_fragments(str(tmp_path / "s"))
    with open(store.path("_meta/samples.fragments.jsonl"), "wb") as fh:  # a valid digest, two numbers
        fh.write(_encode({"0": [1, 1]}) + b"\n" + _encode({"1": [2, 2, 5, 20, 28], "2": [3, 3, 5, 40, 44]}))
    fresh = Store.open(store.uri)
    assert _bounds(fresh) == {1: (20, 28), 2: (40, 44)}  # fragment 0 is read for its versions only
    assert fresh.delete(keys=[4]).deleted == 1  # and scanned for the key


def test_a_lost_journal_leaves_the_fragments_before_to_the_scan(tmp_path: Path) -> None:
    """Readers read a fragment's versions, not its keys; a write records the bounds of the keys
    it wrote, and reads no other fragment's keys (a store of an earlier release would otherwise
    have every key read by its next small write)."""
    store = _three_fragments(str(tmp_path / "s"))
    os.remove(store.path("_meta/samples.fragments.jsonl"))
    reader = Store.open(store.uri)
    assert reader.as_of(2).count() == 15  # reads the fragments' versions
    assert _bounds(reader) == {}
    writer = Store.open(store.uri)
    writer.append(_keyed([100, 101]))
    assert _bounds(writer) == {3: (100, 101)}
    assert _bounds(Store.open(store.uri)) == {3: (100, 101)}
    assert writer.delete(keys=[5, 100]).deleted == 2
