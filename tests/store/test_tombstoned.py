"""The tombstone table as a deleting process keeps it (``modyn_store.core._tombstoned``): deletes
in a row read it once, every answer stays what a scan of the table gives, the kept content is
carried over a delete's own append only, and the first read of the version a delete wrote finds
its tombstones kept, in the process and in the per-user folder."""

from __future__ import annotations

import tempfile
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core import _derived, _kept, _tombstoned
from modyn_store.core._key_rows import found_keys
from modyn_store.core.errors import UnknownKeyError
from modyn_store.core.snapshot import Snapshot


def _store(uri: str, n: int = 100) -> Store:
    s = Store.open(uri, create=True)
    s.append(pa.table({"ts": np.arange(n, dtype=np.int64)}))
    return s


@pytest.fixture
def table_scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the deletes' reads of the whole tombstone table (the process's memory emptied)."""
    _derived.DERIVED.clear()
    calls: list[int] = []
    real = _tombstoned.first_versions

    def counted(ds: lance.LanceDataset) -> tuple[np.ndarray, ...]:
        calls.append(ds.version)
        return real(ds)

    monkeypatch.setattr(_tombstoned, "first_versions", counted)
    return calls


def test_first_versions_keeps_each_keys_first_version(tmp_path: Path) -> None:
    rows = pa.table({"key": np.array([9, 4, 9, 1, 4], np.int64), "_version": np.array([7, 3, 2, 5, 3], np.int64)})
    ds = lance.write_dataset(rows, str(tmp_path / "t.lance"))
    keys, first, count = _tombstoned.first_versions(ds)
    assert keys.tolist() == [1, 4, 9] and first.tolist() == [5, 3, 2] and count.tolist() == [5]


def test_deletes_in_a_row_read_the_tombstones_once(store_uri: str, table_scans: list[int]) -> None:
    s = _store(store_uri)
    s.delete(keys=[0])  # creates the table: nothing kept before it
    for k in (10, 20, 30, 40, 50):
        s.delete(keys=[k])
    assert len(table_scans) == 1  # the second delete read the table; the others carried it over
    for k in (0, 30, 50):
        with pytest.raises(UnknownKeyError, match=rf"\[{k}\]"):
            s.delete(keys=[k])
    assert s.delete(keys=[20, 60], missing="ignore").deleted == 1
    assert s.delete(keys=np.arange(100), missing="ignore").deleted == 93
    assert s.as_of().count() == 0 and len(table_scans) == 1
    # every version's answer is what a scan of the table gives
    for v in range(1, s.version + 1):
        scanned = found_keys(s._tables, np.arange(100), ("tombstones",), v)
        assert _tombstoned.tombstoned(s._tables, np.arange(100), v).tolist() == scanned.tolist(), v


def test_two_handles_deleting_in_turn_see_each_others_deletes(store_uri: str, table_scans: list[int]) -> None:
    a = _store(store_uri)
    b = Store.open(store_uri)
    a.delete(keys=[1])
    for k in range(2, 12, 2):
        a.delete(keys=[k])
        b.delete(keys=[k + 1])
    for handle, k in ((a, 3), (b, 2), (a, 11), (b, 10)):
        with pytest.raises(UnknownKeyError):
            handle.delete(keys=[k])
    assert a.as_of().keys().tolist() == [0, *range(12, 100)] == b.as_of().keys().tolist()


def test_a_merge_of_the_tombstone_table_reads_it_again_and_stays_right(tmp_path: Path, table_scans: list[int]) -> None:
    s = _store(str(tmp_path / "s"))
    for k in range(40):  # past the 16 fragments that make a write merge the table
        s.delete(keys=[k])
    assert 2 <= len(table_scans) <= 5  # once at the start, once after each merge
    for k in (0, 17, 39):
        with pytest.raises(UnknownKeyError):
            s.delete(keys=[k])
    assert s.as_of().keys().tolist() == list(range(40, 100))


def _rows(keys: list[int], version: int) -> pa.Table:
    return pa.table({"key": np.array(keys, np.int64), "_version": np.full(len(keys), version, np.int64)})


def _keep(ds: lance.LanceDataset) -> None:
    """Keep the content of ``ds`` as a delete that read it would."""
    ident = _derived.identity(ds)
    assert ident is not None
    _derived.DERIVED.put((ident, _tombstoned.WHAT, None), _tombstoned.first_versions(ds), replace=True)


def _written(s: Store, keys: list[int]) -> tuple[lance.LanceDataset, lance.LanceDataset, np.ndarray]:
    """(the tombstone table before, after) a delete of ``keys`` by ``s``, its content kept."""
    before = s._tables.open("tombstones")
    s.delete(keys=keys)
    after = s._tables.open("tombstones")
    assert before is not None and after is not None
    return before, after, np.array(keys, np.int64)


def test_the_content_is_carried_over_only_a_provable_append(tmp_path: Path, table_scans: list[int]) -> None:
    s = _store(str(tmp_path / "s"))
    s.delete(keys=[0])
    s.delete(keys=[1])  # reads the table: its content is kept from here on
    before, after, added = _written(s, [2])
    # the delete carried the content over and dropped the state before it
    assert _derived.DERIVED.peek((_derived.identity(after), _tombstoned.WHAT, None)) is not None
    assert _derived.DERIVED.peek((_derived.identity(before), _tombstoned.WHAT, None)) is None
    _keep(before)
    assert _tombstoned.carry_over(before, after, added, s.version)
    _keep(before)  # (each refusal below is of a state before that is kept)
    # the same append, claimed with other rows: another fragment size
    assert not _tombstoned.carry_over(before, after, np.array([2, 3], np.int64), s.version)
    # another table
    assert not _tombstoned.carry_over(before, s._tables.open("samples"), added, s.version)
    # another writer appended after the delete: two new fragments
    uri = s._tables.uri("tombstones")
    lance.write_dataset(_rows([5], s.version), uri, mode="append")
    other = lance.dataset(uri)
    assert not _tombstoned.carry_over(before, other, added, s.version)
    _keep(other)  # (from here on each state before is kept, so only the check below refuses)
    # one commit of two fragments
    lance.write_dataset(_rows([6, 8], s.version), uri, mode="append", max_rows_per_file=1)
    two = lance.dataset(uri)
    assert two.version == other.version + 1 and len(two.get_fragments()) == len(other.get_fragments()) + 2
    assert not _tombstoned.carry_over(other, two, np.array([6, 8], np.int64), s.version)
    _keep(two)
    # a delete inside a kept fragment, beside an append (its deletion file changes the fragment)
    lance.dataset(uri).delete("key = 0")
    deleted = lance.dataset(uri)
    assert deleted.version == two.version + 1
    assert not _tombstoned.carry_over(two, deleted, np.empty(0, np.int64), s.version)
    _keep(deleted)
    appended = lance.write_dataset(_rows([9], s.version), uri, mode="append")
    assert _tombstoned.carry_over(deleted, appended, np.array([9], np.int64), s.version)  # (a plain append is)
    # a key appended twice (and one already there): the content is what a read of the table gives
    repeated = lance.write_dataset(_rows([11, 11, 9], s.version + 1), uri, mode="append")
    assert _tombstoned.carry_over(appended, repeated, np.array([11, 11, 9], np.int64), s.version + 1)
    ident = _derived.identity(repeated)
    kept = _derived.DERIVED.peek((ident, _tombstoned.WHAT, None))
    assert [a.tolist() for a in kept] == [a.tolist() for a in _tombstoned.first_versions(repeated)]
    # a table made again at the same path, as many versions long
    again = Path(tempfile.mkdtemp()) / "t.lance"
    for i in range(before.version + 1):
        lance.write_dataset(pa.table({"key": np.array([i], np.int64), "_version": np.array([1], np.int64)}),
                            str(again), mode="append" if i else "create")
    assert not _tombstoned.carry_over(before, lance.dataset(str(again)), added, s.version)


def test_nothing_is_carried_over_without_the_content_before(tmp_path: Path, table_scans: list[int]) -> None:
    s = _store(str(tmp_path / "s"))
    s.delete(keys=[0])
    _derived.DERIVED.clear()
    before, after, added = _written(s, [1])  # this delete read the table (it kept the state before)
    _derived.DERIVED.clear()
    assert not _tombstoned.carry_over(before, after, added, s.version)


def test_the_first_read_after_a_delete_finds_its_tombstones_kept(
    store_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table_scans: list[int]
) -> None:
    monkeypatch.setenv(_kept.ENV, str(tmp_path / "cache"))
    s = _store(store_uri)
    s.delete(keys=[3, 5])
    s.delete(keys=[7])  # kept by the delete: the next read needs no scan of the table
    reads: list[int] = []
    real = Snapshot._read_tombstones

    def counted(self: Snapshot, ds: lance.LanceDataset, upto: int | None = None) -> tuple[np.ndarray, ...]:
        reads.append(self.version)
        return real(self, ds, upto)

    monkeypatch.setattr(Snapshot, "_read_tombstones", counted)
    want = sorted(set(range(100)) - {3, 5, 7})
    assert s.as_of().keys().tolist() == want and reads == []  # in the process
    table = Path(store_uri) / "tombstones.lance"
    folder = _kept.table_folder(table)
    assert folder is not None and not folder.exists()  # a table's first entry is a read's to make
    assert Store.open(store_uri).as_of(s.version - 1).keys().tolist() == sorted(set(want) | {7})
    assert reads == [s.version - 1]  # an older version's read is not the delete's to keep
    if store_uri.startswith("memory://"):
        return  # (nothing on disk)
    assert folder.is_dir()  # that read kept the table's first entry
    _derived.DERIVED.clear()  # a fresh process
    assert Store.open(store_uri).as_of().keys().tolist() == want and reads == [s.version - 1, s.version]
    s.delete(keys=[9])
    entry = _kept.load(table, _kept.latest_manifest(table), _tombstoned.read_what(s.version))
    assert entry is not None and entry[0].tolist() == [3, 5, 7, 9]
    _derived.DERIVED.clear()  # a fresh process: the entry the delete wrote
    assert Store.open(store_uri).as_of().keys().tolist() == sorted(set(want) - {9})
    assert reads == [s.version - 2, s.version - 1]


def test_a_table_with_a_key_tombstoned_twice_is_left_to_the_read(tmp_path: Path) -> None:
    s = _store(str(tmp_path / "s"))
    s.delete(keys=[1])
    ds = s._tables.open("tombstones")
    ident = _derived.identity(ds)
    assert ident is not None
    twice = (np.array([1], np.int64), np.array([2], np.int64), np.array([2], np.int64))
    _derived.DERIVED.put((ident, _tombstoned.WHAT, None), twice, replace=True)
    assert not _tombstoned.keep_for_reads(s._tables, s.version)  # a read keeps the repeated rows
    later = (np.array([1], np.int64), np.array([s.version + 1], np.int64), np.array([1], np.int64))
    _derived.DERIVED.put((ident, _tombstoned.WHAT, None), later, replace=True)
    assert not _tombstoned.keep_for_reads(s._tables, s.version)  # rows of a later version
    _derived.DERIVED.put((ident, _tombstoned.WHAT, None), _tombstoned.first_versions(ds), replace=True)
    assert _tombstoned.keep_for_reads(s._tables, s.version)


@pytest.mark.parametrize("among", ["few", "all", "beyond"])
def test_the_kept_content_answers_as_the_scan_for_any_keys(tmp_path: Path, among: str) -> None:
    s = _store(str(tmp_path / "s"), 5000)
    s.delete(keys=np.arange(0, 5000, 7))
    for k in (1, 2, 4999):
        s.delete(keys=[k])
    s.delete(where="key >= 4000 AND key < 4100")
    ds = s._tables.open("tombstones")
    assert ds is not None and _derived.DERIVED.peek((_derived.identity(ds), _tombstoned.WHAT, None))
    want = {"few": np.array([1, 3, 7, 4050]), "all": np.arange(5000),
            "beyond": np.arange(-50, 20000, 3)}[among].astype(np.int64)
    for v in range(1, s.version + 1):
        scanned = found_keys(s._tables, want, ("tombstones",), v)
        assert _tombstoned.tombstoned(s._tables, want, v).tolist() == scanned.tolist(), v


def test_a_large_delete_scans_for_its_keys_where_nothing_is_kept(tmp_path: Path, table_scans: list[int]) -> None:
    s = _store(str(tmp_path / "s"), 5000)
    s.delete(keys=[0])
    _derived.DERIVED.clear()  # a fresh process
    record = s.delete(where=f"key < {_tombstoned.READ_FOR_KEYS + 10}")  # one more key than it may read for
    assert record.deleted == _tombstoned.READ_FOR_KEYS + 9 and table_scans == []
    s.delete(keys=[4000])  # a small one reads the table (and keeps it from here on)
    assert len(table_scans) == 1
    with pytest.raises(UnknownKeyError):
        s.delete(keys=[5])


def test_versions_after_a_delete_share_its_tombstones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Appends write no tombstone: every version up to the next delete reads (and keeps) the set
    of the last delete at or before it, so a consumer reading each new version of a store that
    appends reads the tombstone table no more."""
    monkeypatch.setenv(_kept.ENV, str(tmp_path / "cache"))
    s = _store(str(tmp_path / "s"))
    s.delete(keys=[3, 5])
    deleted_at = s.version
    reads: list[int] = []
    real = Snapshot._read_tombstones

    def counted(self: Snapshot, ds: lance.LanceDataset, upto: int | None = None) -> tuple[np.ndarray, ...]:
        reads.append(self.version if upto is None else upto)
        return real(self, ds, upto)

    monkeypatch.setattr(Snapshot, "_read_tombstones", counted)
    _derived.DERIVED.clear()
    live = set(range(100)) - {3, 5}
    for i in range(3):
        s.append(pa.table({"ts": np.arange(5, dtype=np.int64)}))
        live |= set(range(100 + 5 * i, 105 + 5 * i))
        assert s.as_of().keys().tolist() == sorted(live)
    assert reads == [deleted_at]  # read once, for the first of them; the others share it
    _derived.DERIVED.clear()  # a fresh process: the entry kept on disk
    assert Store.open(s.uri).as_of().keys().tolist() == sorted(live) and reads == [deleted_at]
    s.delete(keys=[100, 7])
    assert s.as_of().keys().tolist() == sorted(live - {100, 7})
    assert reads == [deleted_at]  # the delete kept the set of its version
    # the versions before it share the first delete's set, read once more from the table the
    # second delete changed (another manifest)
    for v in (s.version - 1, s.version - 2):  # (the appends were versions deleted_at + 1 ..)
        assert s.as_of(v).keys().tolist() == sorted(set(range(100 + 5 * (v - deleted_at))) - {3, 5})
    assert s.as_of(deleted_at - 1).keys().tolist() == list(range(100))  # before any delete: no read
    assert reads == [deleted_at, deleted_at]
