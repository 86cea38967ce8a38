"""Derived arrays kept on disk between processes (``modyn_store.core._kept``): a fresh process
reads the tombstoned keys of a version from one small file instead of the tombstone table, and
must answer exactly as a read of the table would, after every kind of change, with damaged or
forged entries, and with keeping turned off."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from unittest import mock

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core import _derived, _kept, _writes, integrity
from modyn_store.core.snapshot import Snapshot
from modyn_store.core.verify import verify


def _rows(keys: np.ndarray | list[int]) -> pa.Table:
    k = np.asarray(keys, dtype=np.int64)
    return pa.table({"key": k, "ts": k * 10, "x": k.astype(np.float64)})


def _entries(uri: str, table: str = "tombstones") -> list[Path]:
    sub = _kept.table_folder(Path(uri) / f"{table}.lance")
    assert sub is not None
    return sorted(sub.glob("*.kept"))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(_kept.ENV, str(folder))
    return folder


@pytest.fixture
def table_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the reads of the tombstone table (the process's own memory emptied first, as in a
    fresh process)."""
    _derived.DERIVED.clear()
    calls: list[int] = []
    real = Snapshot._read_tombstones

    def counted(self: Snapshot, ds: object, upto: int | None = None) -> tuple[np.ndarray, ...]:
        calls.append(self.version)
        return real(self, ds, upto)

    monkeypatch.setattr(Snapshot, "_read_tombstones", counted)
    return calls


def _fresh_keys(uri: str, version: int | None = None) -> list[int]:
    _derived.DERIVED.clear()  # nothing kept in memory: what a new process starts with
    return Store.open(uri).as_of(version).keys().tolist()


def _store(uri: str) -> Store:
    s = Store.open(uri, create=True)
    s.append(_rows(np.arange(100)))
    s.delete(keys=[3, 5, 7])
    return s


def test_a_fresh_process_reads_the_kept_entry_not_the_table(tmp_path: Path, cache: Path, table_reads: list[int]) -> None:
    uri = str(tmp_path / "s")
    _store(uri)
    want = sorted(set(range(100)) - {3, 5, 7})
    assert _fresh_keys(uri) == want
    assert table_reads == [2] and len(_entries(uri)) == 1
    assert _fresh_keys(uri) == want
    assert table_reads == [2]  # the second fresh read took the entry
    assert _fresh_keys(uri, 1) == list(range(100))  # no delete at version 1: nothing to read


def test_turned_off_nothing_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table_reads: list[int]) -> None:
    folder = tmp_path / "cache"
    monkeypatch.setenv(_kept.ENV, "off")
    uri = str(tmp_path / "s")
    _store(uri)
    for _ in range(2):
        assert len(_fresh_keys(uri)) == 97
    assert table_reads == [2, 2] and not folder.exists()
    assert _kept.folder() is None
    monkeypatch.setenv(_kept.ENV, str(folder))
    assert _kept.folder() == folder


def test_entries_follow_every_change_of_the_tombstones(tmp_path: Path, cache: Path) -> None:
    uri = str(tmp_path / "s")
    s = _store(uri)
    truth = {2: set(range(100)) - {3, 5, 7}}
    assert _fresh_keys(uri) == sorted(truth[2])
    s.delete(keys=[10, 11])
    truth[3] = truth[2] - {10, 11}
    s.append(_rows(np.arange(100, 120)))
    truth[4] = truth[3] | set(range(100, 120))
    s.delete(keys=[100])
    truth[5] = truth[4] - {100}
    for v, keys in truth.items():
        assert _fresh_keys(uri, v) == sorted(keys), v
        assert _fresh_keys(uri, v) == sorted(keys), v  # from the entry now
    s.erase([11, 50], reason="test")
    s.compact()
    s.vacuum(keep_versions=1, dry_run=False)
    latest = sorted(truth[5] - {50})
    assert _fresh_keys(uri) == latest
    assert _fresh_keys(uri) == latest


def test_a_store_made_again_at_the_same_path_misses(tmp_path: Path, cache: Path) -> None:
    uri = str(tmp_path / "s")
    _store(uri)
    assert _fresh_keys(uri) == sorted(set(range(100)) - {3, 5, 7})
    shutil.rmtree(uri)
    s = Store.open(uri, create=True)
    s.append(_rows(np.arange(100)))
    s.delete(keys=[4, 6, 8])  # the same version numbers, the same sizes, other keys
    assert _fresh_keys(uri) == sorted(set(range(100)) - {4, 6, 8})


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "swap"])
def test_a_damaged_entry_is_a_miss_and_is_written_again(
    tmp_path: Path, cache: Path, table_reads: list[int], damage: str
) -> None:
    uri = str(tmp_path / "s")
    s = _store(uri)
    s.delete(keys=[20])
    want = {2: sorted(set(range(100)) - {3, 5, 7}), 3: sorted(set(range(100)) - {3, 5, 7, 20})}
    for v in (2, 3):
        assert _fresh_keys(uri, v) == want[v]
    first, second = _entries(uri)
    data = first.read_bytes()
    if damage == "flip":
        first.write_bytes(data[:40] + bytes([data[40] ^ 1]) + data[41:])
    elif damage == "truncate":
        first.write_bytes(data[:-9])
    elif damage == "empty":
        first.write_bytes(b"")
    else:  # each entry under the other's name: its digest covers its key
        other = second.read_bytes()
        first.write_bytes(other)
        second.write_bytes(data)
    reads = len(table_reads)
    for v in (2, 3):
        assert _fresh_keys(uri, v) == want[v]
    assert len(table_reads) > reads
    reads = len(table_reads)
    for v in (2, 3):
        assert _fresh_keys(uri, v) == want[v]
    assert len(table_reads) == reads  # written again, read from disk now


def test_a_forged_entry_that_disagrees_with_the_log_is_not_an_answer(tmp_path: Path, cache: Path) -> None:
    uri = str(tmp_path / "s")
    _store(uri)
    want = sorted(set(range(100)) - {3, 5, 7})
    assert _fresh_keys(uri) == want
    table = Path(uri) / "tombstones.lance"
    what = "tombstoned/1/at-or-before/2"

    def forge(keys: list[int]) -> None:  # a well-formed entry with other keys, under the right name
        _kept.save(table, _kept.latest_manifest(table), what, (np.array(keys, np.int64),))

    forge([3, 5])  # one deleted key missing: the live count disagrees with the log
    assert _fresh_keys(uri) == want  # the read took the table's keys, not the entry's
    fixed = _kept.load(table, _kept.latest_manifest(table), what)
    assert fixed is not None and fixed[0].tolist() == [3, 5, 7]  # and wrote the entry again
    forge([3, 5])
    assert Store.open(uri).as_of().keys().tolist() == want  # the process keeps what it derived
    _derived.DERIVED.clear()
    assert verify(uri, deep=True).ok  # verify reads the tables' files, never kept entries
    forge([3, 5, 9])  # the same count, other keys: the delete's recorded checksum disagrees
    assert _fresh_keys(uri) == want  # so the read took the table's keys again
    forge([3, 5, 9])
    _derived.DERIVED.clear()
    assert verify(uri, deep=True).ok  # verify is not fooled into reporting damage
    forge([3, 5])
    _derived.DERIVED.clear()
    assert verify(uri, deep=True).ok


def test_an_unwritable_folder_only_costs_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv(_kept.ENV, str(blocker / "reads"))
    uri = str(tmp_path / "s")
    _store(uri)
    assert len(_fresh_keys(uri)) == 97


def test_each_table_keeps_a_bounded_number_of_entries(tmp_path: Path, cache: Path) -> None:
    uri = str(tmp_path / "s")
    s = _store(uri)
    for k in range(20, 20 + _kept.ENTRIES_PER_TABLE + 3):
        s.delete(keys=[k])
        assert k not in _fresh_keys(uri)
    assert len(_entries(uri)) == _kept.ENTRIES_PER_TABLE
    leftover = _entries(uri)[0].parent / ".tmp-killed"  # a writer killed before its rename
    leftover.write_bytes(b"x")
    os.utime(leftover, (1, 1))
    s.delete(keys=[90])
    assert 90 not in _fresh_keys(uri)
    assert not leftover.exists()


def test_tables_with_other_manifest_names_are_not_kept(tmp_path: Path) -> None:
    table = tmp_path / "t.lance"
    (table / "_versions").mkdir(parents=True)
    (table / "_versions" / "3.manifest").write_bytes(b"m")
    assert _kept.latest_manifest(table) is None
    assert _kept.latest_manifest(tmp_path / "missing.lance") is None
    assert _kept.load(table, None, "x") is None


def test_entries_hold_several_arrays_in_order(tmp_path: Path, cache: Path) -> None:
    table = tmp_path / "t.lance"
    arrays = (np.array([5, 1, 5], np.int64), np.array([1, 5], np.int64), np.empty(0, np.int64))
    _kept.save(table, b"manifest", "three", arrays)
    got = _kept.load(table, b"manifest", "three")
    assert got is not None and [a.tolist() for a in got] == [[5, 1, 5], [1, 5], []]
    assert _kept.load(table, b"manifest", "other") is None
    assert _kept.load(table, b"manifest2", "three") is None
    assert _kept.load(tmp_path / "u.lance", b"manifest", "three") is None
    big = np.zeros(_kept.MAX_ENTRY_BYTES // 8 + 1, np.int64)
    _kept.save(table, b"manifest", "big", (big,))
    assert _kept.load(table, b"manifest", "big") is None


def _new_process() -> None:
    """Forget what this process derived and mixed, as a new process starts."""
    _derived.DERIVED.clear()
    integrity.forget_runs()


@pytest.fixture
def mixes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The runs whose checksums the process computes."""
    calls: list[tuple[int, int]] = []
    real = integrity.Checksum.add_run

    def counted(self: integrity.Checksum, first: int, n: int) -> None:
        calls.append((int(first), int(n)))
        real(self, first, n)

    monkeypatch.setattr(integrity.Checksum, "add_run", counted)
    return calls


def _runs_store(uri: str) -> list[int]:
    """A store of three runs of 1000 keys whose records claim no run (as an earlier release
    wrote them): reads mix each run (with claims, see test_run_claims.py, they mix none)."""
    s = Store.open(uri, create=True)
    with mock.patch.object(_writes, "claim_of", lambda *args: None):
        for part in range(3):
            s.append(_rows(np.arange(1000 * part, 1000 * part + 1000)))
    assert not any("run" in r.details for r in s.log())
    s.delete(keys=[5, 1500])
    return sorted(set(range(3000)) - {5, 1500})


def test_run_checksums_are_kept_for_the_next_process(tmp_path: Path, cache: Path, mixes: list[tuple[int, int]]) -> None:
    uri = str(tmp_path / "s")
    want = _runs_store(uri)
    _new_process()
    assert Store.open(uri).as_of().keys().tolist() == want
    assert sorted(mixes) == [(0, 1000), (1000, 1000), (2000, 1000)]
    assert len(_entries(uri, "samples")) == 1
    _new_process()
    assert Store.open(uri).as_of().keys().tolist() == want
    assert Store.open(uri).as_of(2).keys().tolist() == list(range(2000))
    assert len(mixes) == 3  # none mixed again


def test_run_checksums_are_not_kept_when_turned_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mixes: list[tuple[int, int]]
) -> None:
    monkeypatch.setenv(_kept.ENV, "off")
    uri = str(tmp_path / "s")
    want = _runs_store(uri)
    for _ in range(2):
        _new_process()
        assert Store.open(uri).as_of().keys().tolist() == want
    assert len(mixes) == 6


def test_a_forged_run_checksum_is_not_taken_for_damage(tmp_path: Path, cache: Path, mixes: list[tuple[int, int]]) -> None:
    uri = str(tmp_path / "s")
    want = _runs_store(uri)
    _new_process()
    assert Store.open(uri).as_of().keys().tolist() == want
    table = Path(uri) / "samples.lance"
    got = _kept.load(table, integrity._RUNS_CONTENT, integrity._RUNS_ENTRY)
    assert got is not None
    first, n, value = (a.copy() for a in got)
    value[0] ^= 1
    _kept.save(table, integrity._RUNS_CONTENT, integrity._RUNS_ENTRY, (first, n, value))
    _new_process()
    assert Store.open(uri).as_of().keys().tolist() == want  # computed again, not reported as damage
    assert len(mixes) == 6
    _new_process()
    assert Store.open(uri).as_of().keys().tolist() == want
    assert len(mixes) == 6  # the entry was written again with the right values


def test_erased_and_purged_keys_are_kept_too(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modyn_store.core import store as store_module

    calls: list[str] = []
    real_erased, real_purged = store_module._erased_in, Snapshot._read_purged

    def erased(ds: object, version: int) -> np.ndarray:
        calls.append("erasures")
        return real_erased(ds, version)

    def purged(self: Snapshot, ds: object) -> tuple[np.ndarray]:
        calls.append("purged")
        return real_purged(self, ds)

    monkeypatch.setattr(store_module, "_erased_in", erased)
    monkeypatch.setattr(Snapshot, "_read_purged", purged)
    uri = str(tmp_path / "s")
    s = _store(uri)  # v2 deletes 3, 5, 7
    s.erase([40, 5], reason="test")  # v3
    s.vacuum(keep_versions=1, dry_run=False)  # v4: the rows of 3 and 7 leave the files
    live_at_1 = sorted(set(range(100)) - {40, 5})
    seen = []
    for _ in range(2):
        _new_process()
        calls.clear()
        snap = Store.open(uri).as_of(1)
        assert snap.keys().tolist() == live_at_1
        assert snap.unavailable().tolist() == [3, 7]
        assert _fresh_keys(uri) == sorted(set(range(100)) - {3, 5, 7, 40})
        seen.append(sorted(set(calls)))
    assert seen == [["erasures", "purged"], []]  # the second fresh process read neither table
    s.erase([3], reason="test")  # purged and now erased: unavailable no more
    _new_process()
    snap = Store.open(uri).as_of(1)
    assert snap.unavailable().tolist() == [7]
    assert 3 not in snap.keys().tolist()


def test_forged_erasures_neither_fool_a_read_nor_a_writer(tmp_path: Path, cache: Path) -> None:
    uri = str(tmp_path / "s")
    s = _store(uri)  # v2 deletes 3, 5, 7
    s.erase([40], reason="test")  # v3
    want = sorted(set(range(100)) - {3, 5, 7, 40})
    assert _fresh_keys(uri) == want
    table = Path(uri) / "erasures.lance"
    what = "erased/1/at-or-before/3"
    assert _kept.load(table, _kept.latest_manifest(table), what) is not None
    # a well-formed entry saying key 10 was erased too
    _kept.save(table, _kept.latest_manifest(table), what, (np.array([10, 40], np.int64),))
    assert _fresh_keys(uri) == want  # the count disagrees with the log: the tables decide
    _derived.DERIVED.clear()
    _kept.save(table, _kept.latest_manifest(table), what, (np.array([10, 40], np.int64),))
    writer = Store.open(uri)
    assert writer.delete(keys=[10]).deleted == 1  # a writer decides from the tables alone
    assert _fresh_keys(uri) == sorted(set(want) - {10})


def test_entries_of_removed_tables_go_and_the_tables_are_bounded(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uris = [str(tmp_path / f"s{i}") for i in range(4)]
    for uri in uris[:2]:
        _store(uri)
        assert len(_fresh_keys(uri)) == 97
    shutil.rmtree(uris[0])
    _store(uris[2])
    assert len(_fresh_keys(uris[2])) == 97  # its first entry: s0's folder goes
    gone = _kept.table_folder(Path(uris[0]) / "tombstones.lance")
    assert gone is not None and not gone.exists()
    assert _entries(uris[1]) and _entries(uris[2])
    monkeypatch.setattr(_kept, "MAX_TABLES", 2)
    _store(uris[3])
    assert len(_fresh_keys(uris[3])) == 97
    left = [p for p in cache.iterdir() if p.is_dir()]
    assert len(left) == 2 and _entries(uris[3])  # the newest table's folders, within the bound


def test_the_latest_manifest_is_found_without_listing_a_long_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lance

    uri = str(tmp_path / "t.lance")
    lance.write_dataset(pa.table({"key": [0]}), uri)
    for k in range(1, 40):
        lance.write_dataset(pa.table({"key": [k]}), uri, mode="append")
    versions = os.path.join(uri, "_versions")
    listed = _kept.latest_manifest(uri)  # (no version known yet: from the hint or the listing)
    assert listed == Path(_kept._v2_path(versions, 40)).read_bytes()
    for hint in ("kept", "stale hint", "no hint"):
        lance.write_dataset(pa.table({"key": [100]}), uri, mode="append")
        latest = lance.dataset(uri).version
        _kept._LAST.clear()
        if hint == "kept":
            _kept._LAST[versions] = 12  # an older version this process found
        elif hint == "stale hint":
            Path(versions, "latest_version_hint.json").write_text('{"version": 7}')
        else:
            Path(versions, "latest_version_hint.json").unlink(missing_ok=True)
        calls: list[str] = []
        real = os.listdir

        def listing(p: str) -> list[str]:
            calls.append(p)
            return real(p)

        monkeypatch.setattr(os, "listdir", listing)
        got = _kept.latest_manifest(uri)
        monkeypatch.setattr(os, "listdir", real)
        assert got == Path(_kept._v2_path(versions, latest)).read_bytes(), hint
        assert (calls != []) == (hint == "no hint"), hint
    lance.dataset(uri).cleanup_old_versions(older_than=__import__("datetime").timedelta(0))
    _kept._LAST[versions] = 3  # cleaned up since: the folder is listed
    assert _kept.latest_manifest(uri) == Path(_kept._v2_path(versions, lance.dataset(uri).version)).read_bytes()


def test_the_default_folder_follows_xdg_cache_home_then_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_kept.ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _kept.folder() == tmp_path / "xdg" / "modyn_store" / "reads"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _kept.folder() == tmp_path / "home" / ".cache" / "modyn_store" / "reads"
    for off in ("off", "OFF", ""):
        monkeypatch.setenv(_kept.ENV, off)
        assert _kept.folder() is None



def test_large_entries_keep_the_folder_within_its_byte_budget(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = [tmp_path / f"t{i}.lance" for i in range(5)]
    for t in tables:
        t.mkdir()  # (the folders of tables that no longer exist are removed)
    keys = np.arange(1000, dtype=np.int64)  # an entry of 8,056 bytes
    small = (np.arange(10, dtype=np.int64),)  # 136 bytes
    # the documented bounds: 1 GiB, enforced by entries of 1 MiB; the smaller ones 2 GiB at most
    assert (_kept.MAX_TOTAL_BYTES, _kept.LARGE_ENTRY_BYTES) == (1 << 30, 1 << 20)
    assert _kept.MAX_TABLES * _kept.ENTRIES_PER_TABLE * _kept.LARGE_ENTRY_BYTES <= 2 << 30
    monkeypatch.setattr(_kept, "LARGE_ENTRY_BYTES", 4096)
    monkeypatch.setattr(_kept, "MAX_TOTAL_BYTES", 3 * 8056 + 50)

    def save(table: Path, what: str, arrays: tuple[np.ndarray, ...], at: int) -> None:
        _kept.save(table, b"m", what, arrays)
        paths = _kept._paths(table, b"m", what)
        assert paths is not None and paths[1].exists()
        os.utime(paths[1], ns=(at * 10**9, at * 10**9))  # written in this order, whatever the clock's grain

    save(tables[0], "small", small, 1)
    for i, t in enumerate(tables):
        save(t, "sorted", (keys + i,), 2 + i)
        assert sum(p.stat().st_size for p in cache.glob("*/*.kept")) <= _kept.MAX_TOTAL_BYTES
    # the least recently written went first (a miss, not an answer); the newest stay and answer
    assert _kept.load(tables[0], b"m", "small") is None
    assert [_kept.load(t, b"m", "sorted") is not None for t in tables] == [False, False, True, True, True]
    got = _kept.load(tables[4], b"m", "sorted")
    assert got is not None and np.array_equal(got[0], keys + 4)
    # smaller entries do not list the folder (the per-table and table counts bound them)
    for i in range(3):
        save(tables[1], f"s{i}", small, 10 + i)
    assert sum(p.stat().st_size for p in cache.glob("*/*.kept")) > _kept.MAX_TOTAL_BYTES
    assert all(_kept.load(t, b"m", "sorted") is not None for t in tables[2:])


def test_the_folder_is_the_users_alone(tmp_path: Path, cache: Path) -> None:
    # the folder is per user (docs/RELIABILITY.md): every file it holds (the entries and the file
    # naming each table's path) is mode 0600 and every folder 0700, whatever the umask
    old = os.umask(0o022)
    try:
        uri = str(tmp_path / "s")
        _store(uri)
        assert _fresh_keys(uri) == sorted(set(range(100)) - {3, 5, 7})
    finally:
        os.umask(old)
    files = [p for p in cache.rglob("*") if p.is_file()]
    folders = [cache, *(p for p in cache.rglob("*") if p.is_dir())]
    assert any(p.name == "table" for p in files) and any(p.suffix == ".kept" for p in files)
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {oct(0o600)}
    assert {oct(p.stat().st_mode & 0o777) for p in folders} == {oct(0o700)}


def test_a_folder_an_earlier_release_left_open_is_made_the_users_alone(tmp_path: Path, cache: Path) -> None:
    # an earlier release made the folders and the file naming each table's path by the umask
    # (0755, 0644): the next entry kept for that table makes them the user's alone
    uri = str(tmp_path / "s")
    s = _store(uri)
    assert _fresh_keys(uri) == sorted(set(range(100)) - {3, 5, 7})
    opened = [*(p for p in cache.rglob("*") if p.is_dir()), *cache.rglob("table")]
    for p in [cache, *opened]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    s.delete(keys=[9])  # a new version: a new entry is kept in the same table's folder
    assert _fresh_keys(uri) == sorted(set(range(100)) - {3, 5, 7, 9})
    assert {oct(p.stat().st_mode & 0o777) for p in opened} == {oct(0o700), oct(0o600)}
    assert all(p.stat().st_mode & 0o077 == 0 for p in opened)
    # the cache folder itself is the user's choice (MODYN_STORE_READ_CACHE): left as it was
    assert cache.stat().st_mode & 0o777 == 0o755
