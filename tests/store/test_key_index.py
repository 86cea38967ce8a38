"""Point lookups by key (``take``/``row_ids``/``contains`` of a few keys) and the key index:
the answers must be the full key set's answers, whatever the index covers."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from modyn_store import (
    CorruptionError,
    DataUnavailableError,
    DuplicateKeyError,
    Store,
    UnknownKeyError,
)
from modyn_store.core import _txn, keyindex, snapshot
from modyn_store.core._tables import with_version


@pytest.fixture
def store(store_uri: str) -> Store:
    return Store.open(store_uri, create=True)


def _rows(keys: list[int] | np.ndarray) -> pa.Table:
    k = np.asarray(keys, dtype=np.int64)
    return pa.table({"key": k, "ts": k * 10, "x": k * 1.5})


@pytest.fixture(autouse=True)
def point_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small stores answer every request here by point lookups (the share that pays for them
    at scale would send the requests of these tests to the key set)."""
    monkeypatch.setattr(snapshot, "POINT_SHARE", 1.0)


def _index(store: Store, name: str = "samples") -> keyindex.TableIndex | None:
    return keyindex.table_index(store, name)


def _point_only(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count full key-set reads: a point lookup must not make any."""
    calls: list[int] = []
    full = snapshot.Snapshot._collect_live

    def counted(self: snapshot.Snapshot, ds: object) -> tuple[np.ndarray, int]:
        calls.append(1)
        return full(self, ds)

    monkeypatch.setattr(snapshot.Snapshot, "_collect_live", counted)
    return calls


# -- the index: who builds it, what it covers ----------------------------------------------------
def test_index_keys_builds_the_index_and_folds_new_fragments_in(store: Store) -> None:
    store.append(_rows(range(100)))
    store.delete(keys=[5])
    assert _index(store) is None  # readers and appends never build it
    report = store.index_keys()
    assert report.tables["samples"].indexed_rows == 100 and report.tables["samples"].unindexed_rows == 0
    assert report.tables["samples"].bytes >= 1600 and "tombstones" in report.tables
    store.append(_rows(range(100, 150)))
    assert _index(store).unindexed_rows == 50  # type: ignore[union-attr]
    snap = store.as_of()
    # a key of the unindexed fragment and one of the indexed: both found, exactly
    assert snap.take([120, 7], ["x"]).column("x").to_pylist() == [180.0, 10.5]
    store.index_keys()
    assert _index(store).unindexed_rows == 0  # type: ignore[union-attr]
    assert _index(store).indexed_rows == 150  # type: ignore[union-attr]


def test_compact_builds_the_index(store: Store) -> None:
    for start in range(0, 60, 20):
        store.append(_rows(range(start, start + 20)))
    store.compact()
    got = _index(store)
    assert got is not None and got.unindexed_rows == 0 and got.indexed_rows == 60


def test_the_index_is_used(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.append(_rows(range(1000)))
    store.delete(keys=[1])
    flat: list[str] = []
    real = keyindex.lookup

    def recorded(ds: object, keys: np.ndarray, columns: list[str], fragments: list | None = None) -> pa.Table:
        flat.append(str(ds.uri))  # type: ignore[attr-defined]
        return real(ds, keys, columns, fragments)

    monkeypatch.setattr(keyindex, "lookup", recorded)
    assert store.as_of().contains([1, 2]).tolist() == [False, True]
    assert any("samples" in u for u in flat)  # no runs yet: the key column is scanned
    store.index_keys()
    flat.clear()
    assert store.as_of().contains([1, 2]).tolist() == [False, True]
    assert not any("samples" in u for u in flat)  # answered by the sorted runs
    plan = store._tables.open("tombstones").scanner(  # type: ignore[union-attr]
        columns=["key", "_version"], filter=pc.field("key").isin(pa.array([3, 4])), late_materialization=True
    ).explain_plan()
    assert "ScalarIndexQuery" in plan and keyindex.INDEX_NAME in plan


def test_a_few_keys_do_not_read_the_key_set(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.append(_rows(range(1000)))
    store.delete(keys=[3])
    store.index_keys()
    calls = _point_only(monkeypatch)
    snap = store.as_of()
    assert snap.take([9, 2], ["x"]).column("x").to_pylist() == [13.5, 3.0]
    assert snap.contains([3, 4, 5000]).tolist() == [False, True, False]
    assert snap.row_ids([4]).size == 1
    assert calls == []
    with pytest.raises(UnknownKeyError, match="3"):  # errors are decided on the full key set
        snap.take([3])


def test_many_keys_use_the_key_set(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.append(_rows(range(1000)))
    monkeypatch.setattr(snapshot, "POINT_SHARE", 1 / 32)
    calls = _point_only(monkeypatch)
    few = [999, 3, 500]
    assert store.as_of().take(few, ["key"]).column("key").to_pylist() == few
    assert calls == []
    many = list(range(999, 899, -1))  # more than 64 keys and 1/32 of the rows
    assert store.as_of().take(many, ["key"]).column("key").to_pylist() == many
    assert len(calls) == 1


# -- attacks: every path answers as the full key set does ------------------------------------------
def _both(snap_of: object, keys: list[int]) -> tuple[list[bool], list[bool]]:
    """``contains`` by point lookups (fresh snapshot) and by the key set (cached)."""
    point = snap_of().contains(keys).tolist()  # type: ignore[operator]
    full = snap_of()  # type: ignore[operator]
    full.keys()
    return point, full.contains(keys).tolist()


@pytest.mark.parametrize("indexed", [False, True])
def test_a_key_appended_after_the_version_is_not_live(store: Store, indexed: bool) -> None:
    store.append(_rows([0, 1, 2]))
    if indexed:
        store.index_keys()
    store.append(_rows([3, 4]))
    if indexed:
        store.index_keys()  # the later rows are in the index too: the version must still bound them
    old = store.as_of(1)
    with pytest.raises(UnknownKeyError, match="3"):
        old.take([0, 3])
    with pytest.raises(UnknownKeyError):
        store.as_of(1).row_ids([4])
    point, full = _both(lambda: store.as_of(1), [0, 3, 4, 2])
    assert point == full == [True, False, False, True]


def test_a_deleted_key_cannot_come_back(store: Store) -> None:
    store.append(_rows([0, 1, 2]))
    store.delete(keys=[1])
    store.index_keys()
    with pytest.raises(DuplicateKeyError):
        store.append(_rows([1]))
    assert store.as_of(1).take([1], ["x"]).column("x").to_pylist() == [1.5]  # before the delete
    with pytest.raises(UnknownKeyError, match="1"):
        store.as_of().take([1])
    point, full = _both(lambda: store.as_of(), [1, 2])
    assert point == full == [False, True]


def test_duplicate_keys_in_the_request(store: Store) -> None:
    store.append(_rows(range(10)))
    store.index_keys()
    snap = store.as_of()
    t = snap.take([4, 4, 1, 4, 1], ["key", "x"])
    assert t.column("key").to_pylist() == [4, 4, 1, 4, 1]
    assert t.column("x").to_pylist() == [6.0, 6.0, 1.5, 6.0, 1.5]
    rid = store.as_of().row_ids([7, 2, 7])
    assert rid[0] == rid[2] != rid[1]
    assert store.as_of().contains([3, 3, 42, 3]).tolist() == [True, True, False, True]


@pytest.mark.parametrize("reuse", ["erase", "vacuum", "compact"])
def test_an_index_built_before_maintenance_and_a_snapshot_kept_across_it(store: Store, reuse: str) -> None:
    for start in range(0, 40, 10):
        store.append(_rows(range(start, start + 10)))
    store.delete(keys=[3])
    store.index_keys()  # built before the maintenance below
    old = store.as_of(4)  # before the delete; nothing cached
    recent = store.as_of()
    assert old.take([3], ["x"]).column("x").to_pylist() == [4.5]
    if reuse == "erase":
        store.erase([25, 3], reason="r")
        for snap in (old, recent):
            with pytest.raises(UnknownKeyError, match="25"):
                snap.take([24, 25])
            assert snap.contains([25, 3, 24]).tolist() == [False, False, True]
        assert old.take([26, 24], ["x"]).column("x").to_pylist() == [39.0, 36.0]
    elif reuse == "vacuum":
        store.vacuum(keep_versions=1, dry_run=False)
        with pytest.raises(DataUnavailableError) as info:
            old.take([2, 3])
        assert info.value.keys.tolist() == [3]
        assert old.contains([3]).tolist() == [True]  # live at that version, its row is purged
        with pytest.raises(UnknownKeyError):
            recent.take([3])
        assert old.take([2], ["x"]).column("x").to_pylist() == [3.0]
    else:
        store.compact()
        assert _index(store).unindexed_rows == 0  # type: ignore[union-attr]
        assert old.take([3, 39, 0], ["x"]).column("x").to_pylist() == [4.5, 58.5, 0.0]
        with pytest.raises(UnknownKeyError):
            recent.take([3])
    # whatever the maintenance, the point answers are the key set's
    for version in (4, store.version):
        point, full = _both(lambda: store.as_of(version), list(range(-1, 41)))
        assert point == full


def test_rows_of_an_interrupted_write_are_never_returned(tmp_path: object) -> None:
    uri = str(tmp_path / "s")  # type: ignore[operator]
    store = Store.open(uri, create=True)
    store.append(_rows([0, 1, 2]))
    store.index_keys()
    # a writer killed after writing rows of version 2, before committing it
    _txn._write_json(store, _txn.INTENT, {"version": 2, "op": "append"})
    store._tables.append("samples", with_version(_rows([7, 8]), 2))
    reader = Store.open(uri)  # recovers on open (no writer is active)
    for s in (store, reader):
        assert s.version == 1
        with pytest.raises(UnknownKeyError):
            s.as_of().take([7])
        assert s.as_of().contains([7, 0]).tolist() == [False, True]
    store.index_keys()
    store.append(_rows([7]))  # the key was never committed: it is free
    assert store.as_of().take([7], ["x"]).column("x").to_pylist() == [10.5]
    assert store.as_of().contains([8]).tolist() == [False]


def test_a_lost_append_is_damage_not_an_unknown_key(tmp_path: object) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)  # type: ignore[operator]
    store.append(_rows(range(10)))
    store.append(_rows(range(10, 20)))
    store.index_keys()
    manifests = sorted(glob.glob(store.path("samples.lance/_versions/*.manifest")), key=os.path.getmtime)
    os.remove(manifests[-1])  # the second append's: its rows are gone, the key runs still name them
    hint = store.path("samples.lance/_versions/latest_version_hint.json")
    if os.path.exists(hint):
        os.remove(hint)
    snap = Store.open(store.uri).as_of()
    # the head recorded the samples table's Lance version: no key is read from the older state
    for keys in ([15], [3]):
        with pytest.raises(CorruptionError, match="latest manifests were lost"):
            snap.take(keys)


def test_random_histories_point_answers_equal_the_key_set(store: Store) -> None:
    rng = np.random.default_rng(7)
    next_key = 0
    for step in range(14):
        op = rng.choice(["append", "append", "delete", "erase", "vacuum", "compact", "index"])
        live = store.as_of().keys()
        if op == "append" or live.size < 5:
            n = int(rng.integers(5, 40))
            store.append(_rows(np.arange(next_key, next_key + n)))
            next_key += n
        elif op == "delete":
            store.delete(keys=rng.choice(live, 3, replace=False))
        elif op == "erase":
            store.erase(rng.choice(live, 2, replace=False), reason="r")
        elif op == "vacuum":
            store.vacuum(keep_versions=int(rng.integers(1, 4)), dry_run=False)
        elif op == "compact":
            store.compact()
        else:
            store.index_keys()
    probe = list(range(-2, next_key + 2))
    for version in range(1, store.version + 1):
        point, full = _both(lambda: store.as_of(version), probe)
        assert point == full, version
        snap = store.as_of(version)
        keys = snap.keys()
        avail = keys[~np.isin(keys, snap.unavailable())]
        pick = rng.permutation(avail)[:20]
        t = store.as_of(version).take(pick, ["key", "x"])
        assert t.column("key").to_numpy().tolist() == pick.tolist()
        assert np.array_equal(t.column("x").to_numpy(), pick * 1.5)


@pytest.mark.parametrize("op", ["erase", "vacuum"])
def test_a_purge_committed_but_not_yet_applied(store: Store, monkeypatch: pytest.MonkeyPatch, op: str) -> None:
    """A writer killed between committing an erase/vacuum and removing the rows: the rows are
    still stored, and the log alone must keep them from being returned."""
    from modyn_store.core import maintenance

    store.append(_rows(range(10)))
    store.delete(keys=[6])
    store.index_keys()
    monkeypatch.setattr(maintenance, "finish_purge", lambda *a, **k: 0)
    if op == "erase":
        store.erase([4], reason="r")
    else:
        store.vacuum(keep_versions=1, dry_run=False)
    stored = store.samples_dataset().to_table(columns=["key"]).column("key").to_pylist()
    assert 4 in stored and 6 in stored  # the bytes are still there
    if op == "erase":
        with pytest.raises(UnknownKeyError, match="4"):
            store.as_of(1).take([5, 4])
        assert store.as_of(1).contains([4, 5]).tolist() == [False, True]
    else:
        with pytest.raises(DataUnavailableError) as info:
            store.as_of(1).take([5, 6])
        assert info.value.keys.tolist() == [6]
        assert store.as_of(1).contains([6]).tolist() == [True]


@pytest.mark.s3
def test_the_key_index_on_s3(s3_store: tuple[str, dict[str, str]]) -> None:
    uri, options = s3_store
    store = Store.open(uri, create=True, storage_options=options)
    store.append(_rows(range(50)))
    store.delete(keys=[7])
    report = store.index_keys()
    assert report.tables["samples"].indexed_rows == 50 and report.tables["samples"].bytes > 0
    store.append(_rows(range(50, 60)))
    reader = Store.open(uri, storage_options=options)
    assert reader.as_of().take([55, 8], ["x"]).column("x").to_pylist() == [82.5, 12.0]
    assert reader.as_of().contains([7, 8, 60]).tolist() == [False, True, False]
    store.erase([8], reason="r")
    store.compact()
    assert keyindex.table_index(store, "samples").unindexed_rows == 0  # type: ignore[union-attr]
    with pytest.raises(UnknownKeyError):
        reader.as_of(1).take([8])
    assert reader.as_of(1).take([7, 55 - 50], ["x"]).column("x").to_pylist() == [10.5, 7.5]


def _runs_folder(store: Store) -> str:
    import json

    with store.fs.open(store._location.path(keyindex.RUNS_POINTER), "r") as fh:
        return str(json.load(fh)["dir"])


def test_the_runs_are_rewritten_only_when_samples_change(store: Store) -> None:
    store.append(_rows(range(20)))
    store.index_keys()
    first = _runs_folder(store)
    store.tag("t")
    store.delete(keys=[3])  # tombstones, not samples rows
    store.index_keys()
    assert _runs_folder(store) == first
    store.append(_rows(range(20, 30)))
    store.index_keys()
    second = _runs_folder(store)
    assert second != first
    store.erase([25], reason="r")
    store.index_keys()
    assert _runs_folder(store) != second
    assert [p.rstrip("/").rsplit("/", 1)[-1] for p in store.fs.ls(store._location.path(keyindex.RUNS_DIR))] == [
        _runs_folder(store)
    ]  # old builds are removed
    assert keyindex.table_index(store, "samples").indexed_rows == 29  # type: ignore[union-attr]


def test_a_fragment_that_straddles_the_runs_version(store: Store) -> None:
    """Compaction without an index update merges rows the runs cover with rows they do not:
    both are found, once each."""
    for start in range(0, 30, 10):
        store.append(_rows(range(start, start + 10)))
    store.index_keys()
    store.append(_rows(range(30, 40)))
    store._tables.compact("samples")  # what a write does past 64 fragments; the runs stay as they were
    assert len(store.samples_dataset().get_fragments()) == 1
    snap = store.as_of()
    t = snap.take([35, 5, 35, 39], ["key", "x"])
    assert t.column("key").to_pylist() == [35, 5, 35, 39] and t.column("x").to_pylist() == [52.5, 7.5, 52.5, 58.5]
    assert snap.row_ids([5, 35]).size == 2
    with pytest.raises(UnknownKeyError):
        store.as_of(3).take([35])
    point, full = _both(lambda: store.as_of(), list(range(-1, 42)))
    assert point == full


def test_a_tombstone_manifest_removed_under_a_point_read_is_read_again(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cleanup that removes the manifest a tombstone lookup was opened at makes Lance raise
    ``ValueError("Not found: ...")``; the lookup reads again from the latest manifest. Other
    ValueErrors are not retried."""
    store.append(_rows(np.arange(20)))
    store.delete(keys=[3, 7])
    store.index_keys()
    real = keyindex.lookup
    calls: list[str] = []

    def vanishing(ds: object, keys: np.ndarray, columns: list[str]) -> pa.Table:
        calls.append(str(getattr(ds, "uri", "")))
        if len(calls) == 1 and "tombstones" in calls[-1]:
            raise ValueError("Not found: tombstones.lance/_versions/18446744073709551614.manifest")
        return real(ds, keys, columns)

    monkeypatch.setattr(keyindex, "lookup", vanishing)
    point, full = _both(lambda: store.as_of(), [3, 4, 7])
    assert point == full == [False, True, False]
    assert sum("tombstones" in c for c in calls) >= 2  # read again after the vanished manifest

    def broken(ds: object, keys: np.ndarray, columns: list[str]) -> pa.Table:
        raise ValueError("no such column")

    monkeypatch.setattr(keyindex, "lookup", broken)
    with pytest.raises(ValueError, match="no such column"):
        store._tables.lookup("tombstones", np.array([3]), ["key", "_version"])


@pytest.mark.parametrize("kind", [pa.duration("s"), pa.time64("us")])
def test_take_of_a_store_with_a_duration_column(tmp_path: Path, kind: pa.DataType) -> None:
    """The key filter is an Arrow expression that Lance converts through Substrait with the
    whole schema, which has no name for ``duration`` or ``time64``: every ``take`` raised
    ``CorruptionError`` calling the table damaged."""
    def rows(a: int, b: int) -> pa.Table:
        return pa.table({"ts": np.arange(a, b), "d": pa.array(np.arange(a, b), pa.int64()).cast(kind)})

    def values(t: pa.Table) -> list[int]:
        return t.column("d").cast(pa.int64()).to_pylist()

    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(rows(0, 5))
    assert values(store.as_of().take([1, 3], ["d"])) == [1, 3]
    store.index_keys()
    store.append(rows(5, 8))
    snap = store.as_of()  # an indexed fragment and one appended since (scanned flat)
    assert values(snap.take([1, 6], ["d"])) == [1, 6]
    assert snap.contains([1, 6, 99]).tolist() == [True, True, False]
