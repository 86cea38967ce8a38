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


def _reader_beside_a_killed_vacuum(path: str, vacuum: str) -> Store:
    """A store of keys 0-29 in three appends with 0-4 deleted, a reader opened on it, then the
    script ``vacuum`` run (and SIGKILLed) in another process: the reader, which did not recover."""
    import json
    import os
    import signal
    import subprocess
    import sys

    import numpy as np

    store = Store.open(path, create=True)
    for start in (0, 10, 20):
        store.append({"key": np.arange(start, start + 10), "ts": np.arange(10)})
    store.delete(keys=[0, 1, 2, 3, 4])
    reader = Store.open(path)
    env = dict(os.environ, MODYN_TEST_STORAGE_OPTIONS=json.dumps(None),
               PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", vacuum, path], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return reader


def test_a_reader_of_an_older_version_between_a_vacuums_commit_and_its_purge(tmp_path: Path) -> None:
    """The local counterpart of the object-store case in ``test_s3.py``: a reader that opened the
    store before another process's vacuum committed (and was killed before its purge) reads the
    older version as after the purge; opening the store again finishes the purge."""
    import numpy as np

    from modyn_store import DataUnavailableError
    from tests.store.test_s3 import _VACUUM_KILLED_BEFORE_PURGE

    path = str(tmp_path / "s")
    reader = _reader_beside_a_killed_vacuum(path, _VACUUM_KILLED_BEFORE_PURGE)
    for opened in (lambda: reader, lambda: Store.open(path)):  # before and after the recovery
        snap = opened().as_of(3)
        assert snap.keys().tolist() == list(range(30)) and snap.unavailable().tolist() == [0, 1, 2, 3, 4]
        assert sorted(np.concatenate(list(snap.iter_keys(batch_size=7))).tolist()) == list(range(5, 30))
        assert sorted(snap.to_table(["key"], on_unavailable="skip").column("key").to_pylist()) == list(range(5, 30))
        with pytest.raises(DataUnavailableError):
            snap.to_table(["key"])
        assert opened().delta(0, 3, on_unavailable="skip").inserted.column("key").to_pylist() == list(range(5, 30))
        # the rows a loader would read: a purged key is not live, whether its row is still stored or not
        assert snap.locate([2, 3, 7])[1].tolist()[:2] == [-1, -1] and snap.locate([7])[1][0] >= 0
    assert verify(path, deep=True).ok


_VACUUM_KILLED_BEFORE_COMMIT = """
import os, signal, sys
from modyn_store import Store
from modyn_store.core import _txn

real = _txn.Transaction._write

def write(self, table, data):
    real(self, table, data)
    if table == "purged":
        os.kill(os.getpid(), signal.SIGKILL)  # the purged rows written; the version never committed

_txn.Transaction._write = write
Store.open(sys.argv[1]).vacuum(keep_versions=1, dry_run=False)
"""


def test_a_delta_beside_a_vacuum_that_never_committed_returns_every_row(tmp_path: Path) -> None:
    """A vacuum killed after it wrote its purged rows and before its commit purged nothing: a
    reader that finds its table (before a writer rolls it back) reads every inserted row of a
    delta, in both modes, as ``to_table`` does."""
    import os

    path = str(tmp_path / "s")
    reader = _reader_beside_a_killed_vacuum(path, _VACUUM_KILLED_BEFORE_COMMIT)
    assert reader.version == 4 and os.path.isdir(os.path.join(path, "purged.lance"))
    assert reader.as_of(3).to_table(["key"]).num_rows == 30
    for mode in ("skip", "error"):
        assert reader.delta(0, 3, on_unavailable=mode).inserted.column("key").to_pylist() == list(range(30))


def test_vacuum_finds_its_rows_batch_by_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The purge candidates come from a batch-wise scan of the samples that keeps only
    tombstoned rows: no read of the whole key and version columns (10^9 rows: 16 GB)."""
    import lance
    import numpy as np

    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(1000)}))
    store.delete(keys=[5, 500, 999])
    store.append(pa.table({"ts": [1]}))
    whole = lance.LanceDataset.to_table

    def no_whole_samples(ds: Any, *args: Any, **kwargs: Any) -> pa.Table:
        assert not ds.uri.rstrip("/").endswith("samples.lance"), "the whole samples table was read"
        return whole(ds, *args, **kwargs)

    monkeypatch.setattr(lance.LanceDataset, "to_table", no_whole_samples)
    assert store.vacuum(keep_versions=1).keys.tolist() == [5, 500, 999]
    report = store.vacuum(keep_versions=1, dry_run=False)
    assert report.keys.tolist() == [5, 500, 999]
    monkeypatch.undo()
    assert store.as_of(1).unavailable().tolist() == [5, 500, 999]
    assert store.as_of(None).count() == 998
