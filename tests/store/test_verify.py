"""Damage is detected, on read where cheap and by ``modyn-store verify``, and never repaired silently."""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import CorruptionError, Store
from modyn_store.app.cli.main import main
from modyn_store.core.verify import verify


def _store(tmp_path: Path) -> tuple[Store, np.ndarray, np.ndarray]:
    """Two appends of random int64 keys (190, then 100 rows), a delete, an erase, a vacuum."""
    rng = np.random.default_rng(7)
    keys = np.unique(rng.integers(1, 2**62, size=400, dtype=np.int64))[:290]
    rng.shuffle(keys)
    store = Store.open(str(tmp_path / "s"), create=True)
    first, second = keys[:190], keys[190:]
    for part in (first, second):
        store.append(pa.table({"key": part, "ts": np.arange(part.size), "x": part.astype(np.float64)}))
    return store, first, second


def _files(store: Store, table: str, version_of: int | None = None) -> list[str]:
    return sorted(glob.glob(store.path(f"{table}.lance/data/*.lance")), key=os.path.getmtime)


def _verify_cli(uri: str, *flags: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    code = main(["verify", uri, "--json", *flags])
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_healthy_store_verifies_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, first, second = _store(tmp_path)
    store.delete(keys=first[:5])
    store.erase(second[:3], reason="r")
    store.tag("t")
    store.delete(keys=first[5:8])
    store.vacuum(keep_versions=1, dry_run=False)
    store.compact()
    for deep in ([], ["--deep"]):
        code, report = _verify_cli(store.uri, *deep, capsys=capsys)
        assert code == 0 and report["ok"], report
    assert store.as_of(2).count() == 287  # erased keys leave every version
    assert store.as_of().count() == 290 - 5 - 3 - 3


@pytest.mark.parametrize("offset", [0, 64, 600])
def test_overwritten_bytes_in_a_data_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], offset: int) -> None:
    store, first, _ = _store(tmp_path)
    path = _files(store, "samples")[0]  # the first append's file: its keys come first
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(bytes(range(256)) + bytes(44))  # 300 bytes
    with pytest.raises(CorruptionError):
        store.as_of(1).keys()
    code, report = _verify_cli(store.uri, "--deep", capsys=capsys)
    assert code == 1 and not report["ok"]
    assert any("version 1" in f["what"] or os.path.basename(path) in f["what"] for f in report["findings"]), report


def test_a_deleted_samples_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, _, _ = _store(tmp_path)
    manifests = sorted(glob.glob(store.path("samples.lance/_versions/*.manifest")), key=os.path.getmtime)
    os.remove(manifests[-1])
    hint = store.path("samples.lance/_versions/latest_version_hint.json")
    if os.path.exists(hint):
        os.remove(hint)
    # the head recorded the samples table's Lance version: the older manifest is not read
    with pytest.raises(CorruptionError, match="samples.* latest manifests were lost"):
        Store.open(store.uri).as_of().count()
    code, report = _verify_cli(store.uri, capsys=capsys)
    assert code == 1 and any("latest manifests were lost" in f["what"] for f in report["findings"]), report


@pytest.mark.parametrize("lost", ["record object", "checkpoint manifest", "checkpointed record object"])
def test_a_lost_version_log_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, lost: str
) -> None:
    from modyn_store.core import _log

    monkeypatch.setattr(_log, "CHECKPOINT_EVERY", 2)
    store, _, _ = _store(tmp_path)  # versions 1 and 2: folded into the log's table
    store.append(pa.table({"key": [1], "ts": [0], "x": [0.0]}))  # version 3: a record object
    if lost == "record object":  # the last version's record
        os.remove(store.path("_log/000000000003.json"))
    else:  # the log's table goes back to before its checkpoint
        manifests = sorted(glob.glob(store.path("versions.lance/_versions/*.manifest")), key=os.path.getmtime)
        os.remove(manifests[-1])
        hint = store.path("versions.lance/_versions/latest_version_hint.json")
        if os.path.exists(hint):
            os.remove(hint)
        if lost == "checkpointed record object":
            os.remove(store.path("_log/000000000003.json"))
    with pytest.raises(CorruptionError, match="lost versions"):
        Store.open(store.uri)
    with pytest.raises(CorruptionError):  # and no write resurrects the lost rows
        store.append(pa.table({"key": [2], "ts": [0], "x": [0.0]}))
    code, report = _verify_cli(store.uri, capsys=capsys)
    assert code == 1 and any("lost versions" in f["what"] for f in report["findings"]), report


@pytest.mark.parametrize("damage", ["truncate", "remove"])
def test_a_truncated_or_missing_data_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str) -> None:
    store, _, _ = _store(tmp_path)
    path = _files(store, "samples")[-1]
    if damage == "truncate":
        with open(path, "r+b") as fh:
            fh.truncate(os.path.getsize(path) // 2)
    else:
        os.remove(path)
    code, report = _verify_cli(store.uri, capsys=capsys)
    assert code == 1
    assert any(os.path.basename(path) in f["what"] for f in report["findings"]), report
    with pytest.raises(CorruptionError, match=os.path.basename(path)):
        store.as_of().to_table()


def test_verify_reports_and_repairs_nothing(tmp_path: Path) -> None:
    store, _, _ = _store(tmp_path)
    # an interrupted append: rows of version 3 and an intent
    store._tables.append("samples", pa.table({"key": [5], "ts": [0], "x": [0.0], "_version": [3]}))
    with open(store.path("_txn/intent.json"), "w") as fh:
        json.dump({"version": 3, "op": "append"}, fh)
    before = sorted(glob.glob(store.path("**"), recursive=True))
    report = verify(store.uri, deep=True)
    assert report.ok and any("interrupted" in f.what for f in report.findings)
    assert sorted(glob.glob(store.path("**"), recursive=True)) == before
    assert os.path.exists(store.path("_txn/intent.json"))


@pytest.mark.parametrize("order", ["ascending", "random"])
def test_a_key_replaced_in_the_files_is_caught_at_every_version(tmp_path: Path, order: str) -> None:
    # same row count, one key swapped for another: only the key checksum can tell, and it must
    # do so on the one-pass scan that drops deleted keys (sorted batches) and on unsorted files
    import lance

    keys = np.arange(1, 1001, dtype=np.int64)
    if order == "random":
        keys = np.random.default_rng(5).permutation(keys)
    store = Store.open(str(tmp_path / "s"), create=True)
    for part in (keys[:600], keys[600:]):
        store.append(pa.table({"key": part, "ts": np.arange(part.size), "x": part.astype(np.float64)}))
    store.delete(keys=keys[::100])
    want = {v: store.as_of(v).keys() for v in (1, 2, 3)}
    victim = int(keys[1])  # inserted by version 1, never deleted
    uri = store._tables.uri("samples")
    lance.dataset(uri).delete(f"key = {victim}")
    schema = lance.dataset(uri).schema
    lance.write_dataset(
        pa.table({"key": [10**9], "ts": [0], "x": [0.0], "_version": [1]}, schema=schema), uri, mode="append"
    )
    for v in want:
        with pytest.raises(CorruptionError, match="other keys than"):
            Store.open(store.uri).as_of(v).keys()
    assert all(v.size for v in want.values())


def test_a_tombstoned_key_replaced_in_the_files_is_caught(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One key of the tombstone table swapped for another live key: same counts everywhere, but
    the other key is now dead and the deleted one live. Each delete records its tombstoned keys'
    checksum, so reads and ``verify --deep`` compare the table with the log, not with itself."""
    import lance

    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"key": np.arange(1000, 2000), "ts": np.arange(1000), "x": np.arange(1000) * 1.0}))
    store.delete(keys=[1567, 1600])
    store.append(pa.table({"key": np.arange(3000, 3010), "ts": np.arange(10), "x": np.zeros(10)}))
    uri = store._tables.uri("tombstones")
    schema = lance.dataset(uri).schema
    lance.dataset(uri).delete("key = 1567")  # the damage: 1567 tombstoned no more, 1999 instead
    lance.write_dataset(pa.table({"key": [1999], "_version": [2]}, schema=schema), uri, mode="append")
    for v in (2, 3):
        with pytest.raises(CorruptionError, match="other keys than"):
            Store.open(store.uri).as_of(v).keys()
    code, report = _verify_cli(store.uri, "--deep", capsys=capsys)
    assert code != 0
    assert any("version 2 (delete)" in f["what"] and "checksum" in f["what"] for f in report["findings"])
