"""The version log: one record object per version, checkpoints into the log's table, format 1."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import struct
import threading
import time
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pytest

from modyn_store import ConflictError, CorruptionError, Store
from modyn_store.core import _kept, _log
from modyn_store.core._logdigest import micros
from modyn_store.core.records import VERSIONS_SCHEMA, VersionRecord
from modyn_store.core.verify import verify


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


def _three_versions(uri: str) -> list[VersionRecord]:
    store = Store.open(uri, create=True)
    for i in range(3):
        store.append(_rows(10 * i, 10 * i + 10))
        time.sleep(0.002)  # distinct commit times
    return store.log()


@pytest.mark.parametrize("field", ["time", "live", "op"])
def test_a_changed_field_of_a_record_object_is_damage_not_an_answer(tmp_path: Path, field: str) -> None:
    uri = str(tmp_path / "s")
    written = _three_versions(uri)
    path = Path(uri) / "_log" / f"{3:012d}.json"
    row = json.loads(path.read_bytes())
    # one field changed the way bit rot or a bad copy changes it: the record still parses
    old, new = {
        "time": (f'"time": {row["time"]}', f'"time": {row["time"] - 10**7}'),  # 10 s earlier
        "live": ('"live": 30', '"live": 20'),
        "op": ('"op": "append"', '"op": "vacuum"'),
    }[field]
    path.write_text(path.read_text().replace(old, new))
    damaged = Store.open(uri)
    with pytest.raises(CorruptionError, match=r"version 3 in .*000000000003\.json"):
        damaged.log()
    with pytest.raises(CorruptionError, match="version 3"):
        damaged.as_of(written[1].time)  # (with the old time: version 3, committed "before" 2)
    report = verify(uri, deep=True)
    assert not report.ok and "000000000003.json" in str(report.errors[0])


def test_a_changed_digit_in_a_row_of_the_log_table_is_damage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_log, "CHECKPOINT_EVERY", 3)
    uri = str(tmp_path / "s")
    written = _three_versions(uri)
    assert _objects(Store.open(uri)) == []  # every record is a row of the table
    # the commit time of version 3 made 10 s earlier in the bytes of the table's data file
    t3 = micros(written[2].time)
    hits = 0
    for name in glob.glob(os.path.join(uri, "versions.lance", "data", "*.lance")):
        data = Path(name).read_bytes()
        at = data.find(struct.pack("<q", t3))
        if at >= 0:
            Path(name).write_bytes(data[:at] + struct.pack("<q", t3 - 10**7) + data[at + 8 :])
            hits += 1
    assert hits == 1
    # a read that kept the checked records before (the first fresh read above) answers them as
    # written, not the changed time; verify reads the table's files and finds the damage
    assert Store.open(uri).log() == written
    assert not verify(uri).ok
    monkeypatch.setenv(_kept.ENV, "off")  # nothing kept: the table is read and checked
    with pytest.raises(CorruptionError, match=r"version 3 in .*versions\.lance"):
        Store.open(uri).as_of(written[1].time)


def test_a_duplicated_or_lost_row_of_the_log_table_is_damage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_log, "CHECKPOINT_EVERY", 3)
    uri = str(tmp_path / "s")
    written = _three_versions(uri)
    table = os.path.join(uri, "versions.lance")
    rows = lance.dataset(table).to_table()
    # version 2's row lost and version 3's twice: as many rows as versions, the last one right
    lance.write_dataset(rows.take([0, 2, 2]), table, mode="overwrite")
    damaged = Store.open(uri)
    with pytest.raises(CorruptionError, match="version 3 where version 2 belongs"):
        damaged.log()
    with pytest.raises(CorruptionError, match="version 2 belongs"):
        damaged.as_of(written[1].time)
    assert not verify(uri).ok


def test_records_of_earlier_releases_without_digests_are_read_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_log, "CHECKPOINT_EVERY", 3)
    uri = str(tmp_path / "s")
    written = _three_versions(uri)
    table = os.path.join(uri, "versions.lance")
    # an earlier release's table (no digest column) and record object (no digest key)
    lance.write_dataset(lance.dataset(table).to_table().select(VERSIONS_SCHEMA.names), table, mode="overwrite")
    store = Store.open(uri)
    written.append(store.append(_rows(30, 35)))
    path = Path(uri) / "_log" / f"{4:012d}.json"
    row = json.loads(path.read_bytes())
    del row["digest"]
    path.write_text(json.dumps(row, sort_keys=True))
    assert Store.open(uri).log() == written
    for i in range(2):  # the next checkpoint adds the column and seals what it folds
        written.append(store.append(_rows(40 + i, 41 + i)))
    digests = lance.dataset(table).to_table().column("digest").to_pylist()
    assert digests[:3] == [None] * 3 and all(digests[3:])
    # an earlier release's checkpoint appends rows without the column (Lance fills it with
    # nulls) and then removes the objects
    written.append(store.append(_rows(50, 51)))
    old = pa.Table.from_pylist([written[-1].to_row()], schema=VERSIONS_SCHEMA)
    lance.write_dataset(old, table, mode="append")
    os.unlink(Path(uri) / "_log" / f"{7:012d}.json")
    assert lance.dataset(table).to_table().column("digest").to_pylist()[6] is None
    assert Store.open(uri).log() == written
    assert verify(uri, deep=True).ok
