"""Maintenance (compact, erase, vacuum, index_keys) at its edges: answers and verify stay exact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.verify import verify


def test_a_key_index_of_no_rows_verifies_clean(tmp_path: Path) -> None:
    """Every key erased, then compact: the key index build holds no rows, which is not damage."""
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    store.append(pa.table({"key": [0], "ts": [0], "text": ["a"]}))
    store.erase([0], reason="test")
    store.compact()
    assert store.as_of(None).keys().tolist() == []
    report = verify(uri, deep=True)
    assert report.ok, str(report)
    assert verify(uri).ok


def test_a_vacuum_that_another_vacuum_overtook_commits_no_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modyn_store.core import maintenance

    path = str(tmp_path / "s")
    store = Store.open(path, create=True)
    store.append(pa.table({"ts": list(range(10))}))
    store.delete(keys=[1, 2])
    store.append(pa.table({"ts": [10]}))
    other = Store.open(path)
    found = maintenance._purgeable
    raced: list[Any] = []

    def overtaken(s: Store, cutoff: int) -> pa.Table:
        rows = found(s, cutoff)
        if not raced:  # the look before the writer lock: another process's vacuum commits now
            raced.append(None)
            raced[0] = other.vacuum(keep_versions=1, dry_run=False)
        return rows

    monkeypatch.setattr(maintenance, "_purgeable", overtaken)
    report = store.vacuum(keep_versions=1, dry_run=False)
    # the rows it found were purged by the other vacuum: it purges nothing and writes no version
    assert raced[0].version == 4 and raced[0].keys.tolist() == [1, 2]
    assert report.version is None and report.keys.tolist() == [] and not report.dry_run
    assert [(r.version, r.op) for r in store.log()] == [(1, "append"), (2, "delete"), (3, "append"), (4, "vacuum")]
    assert verify(path, deep=True).ok
