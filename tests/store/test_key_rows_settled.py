"""Scans for the samples rows of some keys written at or before a version (an append's check that
its keys below the highest are new, erase's check that its keys were stored) read the fragments
recorded to hold no later row without the version filter: only their ``key`` column, where the
filter would read ``_version`` too. Fragments holding later rows, a merge of several versions, a
and fragments whose ranges are unknown (a damaged journal
line) keep the filter. A scanned batch whose keys ascend is searched for the few asked keys in
its range instead of hashing each of its keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lance
import numpy as np
import pytest

from engine._search import HashedKeys
from modyn_store import DuplicateKeyError, Store
from modyn_store.core._key_rows import found_keys, rows_naming
from tests.store.test_delete_key_bounds import _keyed


def _scans(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str | None, list[int] | None]]:
    """Record each samples scan's filter and fragment ids (``None``: every fragment)."""
    seen: list[tuple[str | None, list[int] | None]] = []
    real = lance.LanceDataset.scanner

    def scanner(self: lance.LanceDataset, *args: Any, **kwargs: Any) -> Any:
        if self.uri.rstrip("/").endswith("samples.lance"):
            frags = kwargs.get("fragments")
            seen.append((kwargs.get("filter"), None if frags is None else sorted(f.fragment_id for f in frags)))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(lance.LanceDataset, "scanner", scanner)
    return seen


def _fragments(store: Store) -> list[int]:
    ds = store._tables.open("samples")
    assert ds is not None
    return [f.fragment_id for f in ds.get_fragments()]


def test_a_late_append_reads_settled_fragments_without_the_version_filter(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    for i in range(3):
        store.append(_keyed(np.arange(100 * i, 100 * i + 100, 2)))  # even keys, one fragment each
    old = _fragments(store)
    seen = _scans(monkeypatch)
    store.append(_keyed([1, 101, 201]))  # odd keys below the highest: new
    assert seen == [(None, old)]  # every committed fragment settled: their keys only, no filter read
    with pytest.raises(DuplicateKeyError, match="1 keys already exist.*102"):
        store.append(_keyed([3, 102]))
    assert store.as_of().contains([1, 101, 201, 3, 102]).tolist() == [True, True, True, False, True]


def test_fragments_with_later_rows_keep_the_version_filter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    for i in range(4):
        store.append(_keyed(np.arange(10 * i, 10 * i + 10)))  # versions 1..4, one fragment each
    frags = _fragments(store)
    seen = _scans(monkeypatch)
    got = found_keys(store._tables, np.arange(-5, 45, 3), ("samples",), 2)
    assert got.tolist() == [k for k in range(-5, 45, 3) if 0 <= k < 20]  # rows of versions 1 and 2 only
    assert (None, frags[:2]) in seen
    assert any(flt is not None and "_version <= 2" in flt and ids == frags[2:] for flt, ids in seen)


def test_a_merged_fragment_of_several_versions_keeps_the_version_filter(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    for i in range(4):
        store.append(_keyed(np.arange(10 * i, 10 * i + 10)))
    store.compact()  # one fragment holding versions 1..4
    assert len(_fragments(store)) == 1
    seen = _scans(monkeypatch)
    assert found_keys(store._tables, np.array([5, 15, 25, 35]), ("samples",), 2).tolist() == [5, 15]
    assert all(flt is not None for flt, _ in seen)  # nothing settled at version 2: every scan filtered
    assert found_keys(store._tables, np.array([5, 15, 25, 35]), ("samples",), store.version).tolist() == [5, 15, 25, 35]


def test_fragments_whose_journal_line_is_damaged_keep_the_version_filter(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    for i in range(3):
        store.append(_keyed(np.arange(10 * i, 10 * i + 10)))
    journal = tmp_path / "s" / "_meta" / "samples.fragments.jsonl"
    text = journal.read_bytes()
    assert text.count(b'"0": [1, 1, 10,') == 1
    journal.write_bytes(text.replace(b'"0": [1, 1, 10,', b'"0": [0, 1, 10,'))  # no longer its digest's line
    fresh = Store.open(uri)  # nothing in memory: the journal is all it knows
    frags = _fragments(fresh)
    seen = _scans(monkeypatch)
    assert found_keys(fresh._tables, np.array([3, 13, 23]), ("samples",), 3).tolist() == [3, 13, 23]
    unfiltered = [ids for flt, ids in seen if flt is None]
    assert unfiltered and unfiltered[0] is not None and frags[0] not in unfiltered[0]


def test_settled_reads_answer_as_a_full_scan(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    store = Store.open(str(tmp_path / "s"), create=True)
    written: list[tuple[int, np.ndarray]] = []  # (version, keys)
    taken = np.empty(0, np.int64)
    for step in range(10):
        fresh = np.setdiff1d(np.unique(rng.integers(0, 4000, 300)), taken)
        keys = fresh if step % 2 else rng.permutation(fresh)  # ascending batches and keys in no order
        store.append(_keyed(keys))
        written.append((store.version, fresh))
        taken = np.union1d(taken, fresh)
        if step == 6:
            store.compact()
    for committed in range(1, store.version + 1):
        held = np.unique(np.concatenate([k for v, k in written if v <= committed] or [np.empty(0, np.int64)]))
        for size in (3, 60, 2000):  # few keys in a batch's range (searched) and many (hashed)
            asked = np.unique(rng.integers(-10, 4010, size))
            assert found_keys(store._tables, asked, ("samples",), committed).tolist() == np.intersect1d(asked, held).tolist()


def test_ascending_batches_with_few_asked_keys_are_searched_not_hashed(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(_keyed(np.arange(0, 20000, 2)))

    def no_table(*args: Any, **kwargs: Any) -> HashedKeys:
        raise AssertionError("a table was built for an ascending batch")

    monkeypatch.setattr(HashedKeys, "for_stream", no_table)
    rows = rows_naming(store._tables, "samples", np.array([4, 5, 19998, 7000, 30000]), ["key", "ts"])
    assert rows is not None
    assert sorted(rows.column("key").to_pylist()) == [4, 7000, 19998]
    with pytest.raises(AssertionError, match="a table was built"):  # many asked keys: hashed
        rows_naming(store._tables, "samples", np.arange(0, 20000, 3), ["key"])
