"""A write answers its lookups of which tables the log says were written from the records it
read under the writer lock (:class:`modyn_store.core._written.WrittenTables`): no other version
commits while it holds the lock, so the log is read once a write. Once the lock is let go,
lookups read the log again and see other writers' commits."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import CorruptionError, Store, UnknownKeyError


def _store(uri: str) -> Store:
    store = Store.open(uri, create=True)
    store.append(pa.table({"ts": np.arange(100)}))
    return store


def test_a_delete_reads_the_log_once(store_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(store_uri)
    store.delete(keys=[1])
    reads = []
    records = store._log.records
    monkeypatch.setattr(store._log, "records", lambda: reads.append(1) or records())
    for k in range(2, 12):  # (no erasures table: every delete looks it up)
        store.delete(keys=[k])
    assert len(reads) == 10
    assert store.as_of().count() == 89


def test_after_the_write_lookups_see_other_writers_commits(tmp_path: Path) -> None:
    a = _store(str(tmp_path / "s"))
    a.delete(keys=[1])
    b = Store.open(a.uri)
    record = b.erase([2], reason="request")  # b writes the erasures table
    assert a._written("erasures") == record.version
    shutil.rmtree(a.path("erasures.lance"))  # its manifests lost: damage, not "no erasures"
    with pytest.raises(CorruptionError, match=f"version {record.version} of the log wrote it"):
        a._tables.open("erasures")


def test_a_write_that_fails_lets_the_records_go(tmp_path: Path) -> None:
    a = _store(str(tmp_path / "s"))
    with pytest.raises(UnknownKeyError):
        a.delete(keys=[10**9])  # never stored: refused under the lock
    b = Store.open(a.uri)
    record = b.erase([2], reason="request")
    assert a._written("erasures") == record.version
