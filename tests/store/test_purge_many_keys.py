"""Erase and vacuum of many keys: one delete a table, one scan a lookup, whatever their number.

The rows of the keys to purge were deleted and looked up by ``key IN (...)`` predicates of
4,096 keys each: a Lance delete (a version) and a scan per chunk. These tests purge more keys
than a chunk held, from tables with null keys and with more rows than a scanned batch.
"""

from __future__ import annotations

from pathlib import Path

import lance
import numpy as np
import pyarrow as pa

from modyn_store import Store, TrainSet
from modyn_store.core.trainings import Catalog

ROWS = 20_000


def _store(root: Path) -> Store:
    """ROWS samples in two appends, a score of every key, a table of notes (int64 ``key``, nulls
    among them) and two recorded trainings: ``low`` of keys below 4,096, ``high`` of the rest."""
    store = Store.open(str(root), create=True)
    for lo in (0, ROWS // 2):
        store.append(pa.table({"ts": np.arange(lo, lo + ROWS // 2), "x": np.arange(ROWS // 2, dtype=np.float32)}))
    keys = store.as_of().keys()
    store.scores.write("loss", keys, keys / ROWS)
    notes = pa.array(np.concatenate([keys, keys]).tolist() + [None] * 3, pa.int64())  # 2 rows a key: two scan batches
    with store.transaction("annotate") as txn:
        txn.append("notes", pa.table({"key": notes, "n": np.arange(len(notes))}))
    catalog = Catalog(store)
    catalog.record_training("low", TrainSet.uniform(keys[keys < 4096], version=store.version))
    catalog.record_training("high", TrainSet.uniform(keys[keys >= 4096], version=store.version))
    return store


def _lance_versions(root: Path, table: str) -> int:
    """The latest Lance version of ``table``: how many commits it has had (old ones are cleaned up)."""
    return int(lance.dataset(str(root / f"{table}.lance")).version)


def _every_version_keys(root: Path, table: str) -> np.ndarray:
    """The keys of every row that any Lance version of ``table`` still holds."""
    uri = str(root / f"{table}.lance")
    return np.concatenate([lance.dataset(uri, version=v["version"]).to_table(columns=["key"]).column("key")
                           .drop_null().to_numpy() for v in lance.dataset(uri).versions()])


def test_erasing_many_keys_deletes_once_per_table_and_finds_every_use(tmp_path: Path) -> None:
    one, many = _store(tmp_path / "one"), _store(tmp_path / "many")
    before = {t: _lance_versions(tmp_path / "many", t) for t in ("samples", "scores/loss", "notes")}
    assert before == {t: _lance_versions(tmp_path / "one", t) for t in before}
    one.erase([ROWS - 1], reason="r")
    erased = np.arange(7, ROWS, 2)  # 9,997 keys: three chunks of a predicate, the last one's keys in "high" only
    report = many.erase(erased[::-1], reason="r")  # (in no order)
    assert report.keys.tolist() == erased.tolist()
    assert report.trainings == ("high", "low")
    # one delete of each table, as for one key: the same number of new Lance versions
    assert {t: _lance_versions(tmp_path / "many", t) for t in before} == {t: _lance_versions(tmp_path / "one", t) for t in before}
    for table in ("samples", "scores/loss", "notes"):
        left = _every_version_keys(tmp_path / "many", table)
        assert not np.isin(left, erased).any(), table
    assert many.as_of().keys().tolist() == np.setdiff1d(np.arange(ROWS), erased).tolist()
    notes = many.read_table("notes").column("key")
    assert notes.null_count == 3  # a null key names no key: its rows stay
    assert sorted(notes.drop_null().to_pylist()) == sorted(2 * np.setdiff1d(np.arange(ROWS), erased).tolist())


def test_erase_finds_keys_only_an_extension_table_holds_among_many(tmp_path: Path) -> None:
    store = _store(tmp_path / "s")
    only_notes = np.arange(ROWS + 10, ROWS + 5_010)  # 5,000 keys no sample ever had
    with store.transaction("annotate") as txn:
        txn.append("notes", pa.table({"key": pa.array(only_notes, pa.int64()), "n": np.zeros(only_notes.size, np.int64)}))
    want = np.concatenate([np.arange(0, 6_000, 3), only_notes])
    report = store.erase(want, reason="r")
    assert report.keys.tolist() == want.tolist()
    assert report.trainings == ("high", "low")
    assert not np.isin(_every_version_keys(tmp_path / "s", "notes"), want).any()


def test_vacuum_of_many_keys_purges_them_once_and_names_the_trainings(tmp_path: Path) -> None:
    store = _store(tmp_path / "s")
    deleted = np.arange(4_500, ROWS, 3)  # above every key of "low"
    store.delete(keys=deleted)
    before = _lance_versions(tmp_path / "s", "samples")
    report = store.vacuum(keep_versions=1, dry_run=False)
    assert sorted(report.keys.tolist()) == deleted.tolist()
    assert report.trainings == ("high",)
    # the delete of the rows (one version) and their files' rewrite, as for any number of keys
    twin = _store(tmp_path / "twin")
    twin.delete(keys=[ROWS - 1])
    twin_before = _lance_versions(tmp_path / "twin", "samples")
    twin.vacuum(keep_versions=1, dry_run=False)
    assert _lance_versions(tmp_path / "s", "samples") - before == _lance_versions(tmp_path / "twin", "samples") - twin_before
    for table in ("samples", "scores/loss"):
        assert not np.isin(_every_version_keys(tmp_path / "s", table), deleted).any(), table
    assert store.read_table("notes").num_rows == 2 * ROWS + 3  # vacuum leaves extension tables as they are
