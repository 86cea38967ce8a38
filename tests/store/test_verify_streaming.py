"""``verify`` streams the samples in batches (``_verify_samples``); with batches of a few rows
and sorts of a few runs it still finds every kind of damage, and its per-version live counts
and checksums are those of the snapshots' own key scans."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core import _verify_samples, integrity
from modyn_store.core.verify import verify


@pytest.fixture(autouse=True)
def _small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_verify_samples, "SCAN_ROWS", 7)
    monkeypatch.setattr(_verify_samples, "SORT_ROWS", 50)
    monkeypatch.setattr(_verify_samples, "_READ_ROWS", 16)


def _store(tmp_path: Path, order: str = "ascending") -> tuple[Store, np.ndarray]:
    """Appends of 120, 100 and 80 keys with deletes between them (ascending or shuffled keys)."""
    keys = np.arange(1, 301, dtype=np.int64)
    if order == "random":
        keys = np.random.default_rng(3).permutation(keys)
    store = Store.open(str(tmp_path / "s"), create=True)
    for i, part in enumerate((keys[:120], keys[120:220], keys[220:])):
        store.append(pa.table({"key": part, "ts": np.arange(part.size), "x": part.astype(np.float64)}))
        if i < 2:
            store.delete(keys=part[::10])
    return store, keys


def _errors(uri: str, deep: bool) -> list[str]:
    return [f.what for f in verify(uri, deep=deep).errors]


def _append_raw(store: Store, key: int, version: int) -> None:
    import lance

    uri = store._tables.uri("samples")
    schema = lance.dataset(uri).schema
    lance.write_dataset(pa.table({"key": [key], "ts": [0], "x": [0.0], "_version": [version]}, schema=schema), uri,
                        mode="append")


@pytest.mark.parametrize("order", ["ascending", "random"])
def test_live_counts_and_checksums_of_every_version_are_the_snapshots(tmp_path: Path, order: str) -> None:
    store, keys = _store(tmp_path, order)
    store.erase(keys[[3, 150, 10]], reason="test")  # live, live, deleted
    store.vacuum(keep_versions=1, dry_run=False)
    store.erase(keys[[20]], reason="test")  # deleted, then purged
    store.append(pa.table({"key": [10_000, 10_001], "ts": [0, 1], "x": [0.0, 1.0]}))
    purged = store._tables.scan("purged", ["key"])
    assert purged is not None and purged.num_rows > 0
    committed = store.version
    records = store._read_records()
    found = _verify_samples.tally(store, committed, _verify_samples.dead_keys(store, committed, records))
    assert found.ordered == (order == "ascending")
    count, total = _verify_samples.live_by_version(store, found)
    for v in range(1, committed + 1):
        live = store.as_of(v).keys()
        assert int(count[v]) == live.size, v
        assert int(total[v]) == integrity.key_checksum(live), v
    assert _errors(store.uri, deep=False) == []
    assert _errors(store.uri, deep=True) == []


@pytest.mark.parametrize("order", ["ascending", "random"])
def test_a_duplicated_key_is_found(tmp_path: Path, order: str) -> None:
    store, keys = _store(tmp_path, order)
    _append_raw(store, int(keys[57]), 2)  # a second row of a key version 1 inserted
    for deep in (False, True):
        assert "samples hold a key more than once" in _errors(store.uri, deep)


def test_distinct_keys_sorted_in_several_runs(tmp_path: Path) -> None:
    store, keys = _store(tmp_path, "random")
    assert _verify_samples.distinct_keys(store, store.version)
    # a repeated key in a row above the log's last version is left to the check of such rows
    _append_raw(store, int(keys[-1]), store.version + 1)
    assert _verify_samples.distinct_keys(store, store.version)
    _append_raw(store, int(keys[-1]), 1)
    assert not _verify_samples.distinct_keys(store, store.version)


def test_a_lost_tombstone_is_found(tmp_path: Path) -> None:
    import lance

    store, keys = _store(tmp_path)
    lance.dataset(store._tables.uri("tombstones")).delete(f"key = {int(keys[10])}")
    errors = _errors(store.uri, deep=False)
    assert any(e.startswith(f"version {store.version}: ") and "live keys in the files" in e for e in errors), errors
    assert any("(delete): " in e and "tombstones" in e for e in _errors(store.uri, deep=True))


def test_a_row_of_a_version_above_the_log_is_found(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    _append_raw(store, 99_999, store.version + 3)
    want = f"samples hold 1 rows of versions above the log's last ({store.version})"
    assert any(e.startswith(want) for e in _errors(store.uri, deep=False))


def test_a_wrong_live_count_of_an_old_version_is_found_by_deep_only(tmp_path: Path) -> None:
    import lance

    store, keys = _store(tmp_path)
    # a row of version 1 that version 2 deleted is gone: only versions 1 (and its append) miss it
    lance.dataset(store._tables.uri("samples")).delete(f"key = {int(keys[0])}")
    assert _errors(store.uri, deep=False) == []
    errors = _errors(store.uri, deep=True)
    assert "version 1: 119 live keys in the files, the version log records 120" in errors
    assert "version 1: 119 rows found, the log records 120 inserted" in errors
    assert not any(e.startswith(f"version {store.version}: ") for e in errors)


def test_a_key_changed_in_an_old_version_only_is_found_by_its_checksum(tmp_path: Path) -> None:
    import lance

    store, keys = _store(tmp_path)
    # same counts everywhere: a deleted row of version 1 holds another (new) key
    uri = store._tables.uri("samples")
    lance.dataset(uri).delete(f"key = {int(keys[0])}")
    _append_raw(store, 5_000, 1)
    tomb = store._tables.scan("tombstones", ["key"])
    assert tomb is not None and int(keys[0]) in tomb.column("key").to_numpy()
    errors = _errors(store.uri, deep=True)
    assert any(e.startswith("version 1: the live keys in the files differ") for e in errors), errors


def test_deletes_recorded_before_checksums_are_checked_against_the_tombstones(tmp_path: Path) -> None:
    import json
    import os

    import lance

    store, keys = _store(tmp_path)
    path = os.path.join(store.uri, "_log", f"{2:012d}.json")
    with open(path) as fh:
        row = json.load(fh)
    assert row["op"] == "delete"
    del row["digest"]  # a record of an earlier release: no digest, no checksum of the tombstones
    details = json.loads(row["details"])
    del details["checksum"]
    row["details"] = json.dumps(details)
    with open(path, "w") as fh:
        json.dump(row, fh)
    assert _errors(store.uri, deep=True) == []
    lance.dataset(store._tables.uri("tombstones")).delete(f"key = {int(keys[10])}")
    assert "version 2: 109 live keys in the files, the version log records 108" in _errors(store.uri, deep=True)


def test_samples_rows_missing_from_the_key_index_are_found_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lance

    from modyn_store.core import _verify_index

    monkeypatch.setattr(_verify_index, "SCAN_BATCH", 7)
    store, _ = _store(tmp_path)
    store.index_keys()
    assert _errors(store.uri, deep=True) == []
    uri = store._tables.uri("samples")
    extra = np.arange(10**6, 10**6 + 9, dtype=np.int64)  # rows of version 1 written beside the index
    schema = lance.dataset(uri).schema
    rows = {"key": extra, "ts": np.zeros(9, np.int64), "x": np.zeros(9), "_version": np.ones(9, np.int64)}
    lance.write_dataset(pa.table(rows, schema=schema), uri, mode="append")
    want = f"key index: samples rows of keys {extra[:5].tolist()} are not in the key index under their row ids"
    assert want in _errors(store.uri, deep=True)
    assert want not in _errors(store.uri, deep=False)


@pytest.mark.parametrize("seed", range(4))
def test_purged_keys_live_at_each_version_when_a_key_is_purged_more_than_once(seed: int) -> None:
    """A key purged more than once (damage or an old store) counts once at each version any
    of its spans holds it, as a snapshot's ``unavailable()`` (distinct keys) counts it."""
    from types import SimpleNamespace

    rng = np.random.default_rng(seed)
    committed, rows = 40, 300
    k = rng.integers(0, 60, rows)
    ins = rng.integers(-2, committed + 3, rows)
    dele = ins + rng.integers(-1, 15, rows)
    erased = np.array([7, 11], np.int64)
    purged = pa.table({"key": k, "inserted": ins, "deleted": dele, "_version": np.ones(rows, np.int64)})
    store = SimpleNamespace(
        _tables=SimpleNamespace(scan=lambda *a, **kw: purged), _erased_keys=lambda committed: erased,
    )
    count, total = _verify_samples._purged_live(store, committed)  # type: ignore[arg-type]
    for v in range(committed + 1):
        live = np.unique(k[(ins <= v) & (dele > v) & ~np.isin(k, erased)])
        assert int(count[v]) == live.size, v
        assert int(total[v]) == integrity.key_checksum(live), v
