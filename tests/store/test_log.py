"""The version log: one record object per version, checkpoints into the log's table, format 1."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import ConflictError, Store
from modyn_store.core import _log


def _rows(lo: int, hi: int) -> pa.Table:
    keys = np.arange(lo, hi, dtype=np.int64)
    return pa.table({"key": keys, "ts": keys, "x": keys.astype(np.float32)})


def _objects(store: Store) -> list[int]:
    folder = store.path("_log")
    return sorted(int(n[:-5]) for n in os.listdir(folder) if n.endswith(".json")) if os.path.isdir(folder) else []


def test_a_version_commits_as_one_record_object_and_checkpoints_fold_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_log, "CHECKPOINT_EVERY", 3)
    store = Store.open(str(tmp_path / "s"), create=True)
    written = []
    for i in range(8):
        written.append(store.append(_rows(10 * i, 10 * i + 10), message=f"m{i}"))
        # at most CHECKPOINT_EVERY - 1 objects wait; the others are rows of the log's table
        table = store._tables.open("versions")
        base = table.count_rows() if table is not None else 0
        assert _objects(store) == list(range(base + 1, i + 2)) and len(_objects(store)) < 3
    assert store._tables.open("versions").count_rows() == 6
    for reader in (store, Store.open(str(tmp_path / "s"))):
        assert reader.version == 8
        assert reader.log() == written
        assert reader.as_of(5).count() == 50


def test_only_one_record_per_version(store_uri: str) -> None:
    store = Store.open(store_uri, create=True)
    first = store.append(_rows(0, 3))
    with pytest.raises(ConflictError, match="committed store version 1"):
        store._log.commit(dataclasses.replace(first, message="forged"))
    assert [r.message for r in Store.open(store_uri).log()] == [""]


def test_readers_see_a_gapless_log_while_checkpoints_remove_objects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_log, "CHECKPOINT_EVERY", 2)
    uri = str(tmp_path / "s")
    writer = Store.open(uri, create=True)
    done = threading.Event()
    errors: list[BaseException] = []
    reads: list[int] = []

    def read() -> None:
        reader = Store.open(uri)
        last = 0
        try:
            while not done.is_set():
                records = reader.log()
                # never a gap, never a version lost while objects are folded into the table
                assert [r.version for r in records] == list(range(1, len(records) + 1))
                assert len(records) >= last
                last = reader.version
                assert last >= len(records)
                reads.append(last)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(30):
            writer.append(_rows(i, i + 1))
    finally:
        done.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    assert len(reads) > 10
    assert Store.open(uri).version == 30


def test_a_format_1_store_reads_and_is_upgraded_by_its_next_writer(tmp_path: Path) -> None:
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    old = [store.append(_rows(0, 5)), store.delete(keys=[1])]
    # the format-1 layout: every record a row of the versions table, no record objects
    assert store._log.checkpoint(every=1)
    assert _objects(store) == []
    marker = Path(uri) / "_modyn_store.json"
    marker.write_text(json.dumps({"format": "modyn-store", "format_version": 1}))
    legacy = Store.open(uri)
    assert legacy.log() == old and legacy.as_of().count() == 4
    assert json.loads(marker.read_text())["format_version"] == 1  # reading changes nothing
    legacy.append(_rows(5, 7))
    assert json.loads(marker.read_text())["format_version"] == 2
    assert _objects(legacy) == [3]
    assert [r.version for r in Store.open(uri).log()] == [1, 2, 3]
