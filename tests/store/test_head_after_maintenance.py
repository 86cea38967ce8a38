"""Lance versions committed after a head write (compaction, the key index, a purge, the finish
of a write killed before its head) are recorded in the head too: their loss is damage, never
an older answer, and a process killed before it records them leaves a readable store."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import lance
import pyarrow as pa
import pytest

import modyn_store
from modyn_store import CorruptionError, Store
from modyn_store.core import _txn
from modyn_store.core.verify import verify

ROOT = str(Path(modyn_store.__file__).resolve().parent.parent)


def _manifests(uri: str, table: str) -> list[str]:
    """``table``'s manifests, newest first (Lance names them 2^64 - 1 - version)."""
    return sorted(glob.glob(f"{uri}/{table}.lance/_versions/*.manifest"), key=lambda p: int(Path(p).stem))


def _lose_newest(uri: str, table: str) -> None:
    os.remove(_manifests(uri, table)[0])


def _errors(uri: str) -> list[str]:
    return [f.what for f in verify(uri, deep=True).errors]


def _store(tmp_path: Path) -> str:
    uri = str(tmp_path / "s")
    s = Store.open(uri, create=True)
    s.append(pa.table({"ts": list(range(10))}))
    s.delete(keys=[3])
    s.delete(keys=[4])
    s.scores.write("loss", [1, 2], [0.5, 0.25])
    with s.transaction("note") as txn:
        txn.append("feats", pa.table({"key": pa.array([1, 2], pa.int64()), "f": [1.0, 2.0]}))
    with s.transaction("note") as txn:
        txn.append("feats", pa.table({"key": pa.array([5], pa.int64()), "f": [5.0]}))
    return uri


def _head_matches_tables(uri: str) -> None:
    recorded = _txn.recorded_tables(Store.open(uri))
    for name in ("samples", "tombstones", "scores/loss", "feats"):
        assert recorded[name] == lance.dataset(f"{uri}/{name}.lance").version, name


def test_an_extension_table_whose_only_manifest_after_a_purge_is_lost_is_damage_not_absent(tmp_path: Path) -> None:
    """A purge leaves each table one manifest; an extension table the log does not name read
    as absent (no rows, no error, verify clean) once that one was lost."""
    uri = _store(tmp_path)
    Store.open(uri).erase([1], reason="GDPR request")
    assert len(_manifests(uri, "feats")) == 1
    _lose_newest(uri, "feats")
    s = Store.open(uri)
    assert not s._tables.uncommitted("feats")  # (a writer would have dropped it as a killed create)
    with pytest.raises(CorruptionError, match="table 'feats' .* no readable manifest"):
        s.read_table("feats")
    with pytest.raises(CorruptionError, match="table 'feats'"), s.transaction("note") as txn:
        txn.append("feats", pa.table({"key": pa.array([6], pa.int64()), "f": [6.0]}))
    assert s.version == 7  # nothing written on top
    assert any("table 'feats'" in e and "no readable manifest" in e for e in _errors(uri))


def test_verify_reports_a_recorded_table_whose_folder_is_gone(tmp_path: Path) -> None:
    uri = _store(tmp_path)
    assert _errors(uri) == []
    shutil.rmtree(f"{uri}/feats.lance")
    assert _errors(uri) == ["table 'feats' is missing, but a committed write left it at Lance version 2"]


@pytest.mark.parametrize("op", ["compact", "index_keys", "erase", "vacuum"])
def test_maintenance_records_its_lance_versions_in_the_head(tmp_path: Path, op: str) -> None:
    uri = _store(tmp_path)
    s = Store.open(uri)
    head = _txn.read_head(s)
    {"compact": s.compact, "index_keys": s.index_keys, "erase": lambda: s.erase([2], reason="r"),
     "vacuum": lambda: s.vacuum(keep_versions=1, dry_run=False)}[op]()
    assert _txn.read_head(s) == (head if op in ("compact", "index_keys") else head + 1)  # no new version
    _head_matches_tables(uri)


@pytest.mark.parametrize("op", ["compact", "index_keys"])
def test_a_lost_manifest_of_compaction_or_the_key_index_is_damage(tmp_path: Path, op: str) -> None:
    """Both leave the tombstones a manifest older than theirs (before the key index was
    built): its rows are the same, but a lost manifest is damage to report, not to read around."""
    uri = _store(tmp_path)
    getattr(Store.open(uri), op)()
    assert len(_manifests(uri, "tombstones")) >= 2
    _lose_newest(uri, "tombstones")
    s = Store.open(uri)
    with pytest.raises(CorruptionError, match="table 'tombstones' .* latest manifests were lost"):
        s.as_of().contains([4])
    assert any("table 'tombstones'" in e for e in _errors(uri))


def _run(uri: str, code: str, exit_at_head: int) -> None:
    """Run ``code`` (with ``s``, the store at ``uri``) in a process killed at its
    ``exit_at_head``-th write of the head, before that write."""
    script = f"""
import os, pyarrow as pa
from modyn_store import Store
from modyn_store.core import _txn
seen = []
orig = _txn._write_json
def write(store, relative, body):
    if relative == _txn.HEAD:
        seen.append(1)
        if len(seen) == {exit_at_head}:
            os._exit(3)
    orig(store, relative, body)
_txn._write_json = write
s = Store.open({uri!r})
{code}
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr


def test_a_write_killed_before_its_head_is_recorded_by_recovery(tmp_path: Path) -> None:
    """The delete committed (tombstones and log) but its writer died before the head: the
    recovery that finishes it records the tables, so a later loss of the delete's tombstones
    manifest is damage instead of key 6 live again in a point read."""
    uri = _store(tmp_path)
    _run(uri, "s.delete(keys=[6])", exit_at_head=1)
    s = Store.open(uri)  # recovers (local store, no writer)
    assert s.version == 7 and not s.as_of().contains([6]).any()
    assert _txn.read_head(s) == 7
    _lose_newest(uri, "tombstones")
    with pytest.raises(CorruptionError, match="table 'tombstones' .* latest manifests were lost"):
        Store.open(uri).as_of().contains([6])


@pytest.mark.parametrize("op", ["s.compact()", "s.index_keys()", "s.erase([2], reason='r')"])
def test_a_process_killed_before_it_records_maintenance_leaves_a_readable_store(tmp_path: Path, op: str) -> None:
    """The head is behind the tables (they committed, the head was not written): reads and
    writes go on, and the next maintenance or recovery records them."""
    uri = _store(tmp_path)
    expected = [0, 1, 5, 6, 7, 8, 9] if "erase" in op else [0, 1, 2, 5, 6, 7, 8, 9]
    _run(uri, op, exit_at_head=2 if "erase" in op else 1)  # (an erase's first is its commit's)
    s = Store.open(uri)
    assert s.as_of().keys().tolist() == expected
    assert _errors(uri) == []
    s.append(pa.table({"ts": [10]}))
    s.compact()
    _head_matches_tables(uri)
    assert sorted(k for k in s.as_of().keys().tolist()) == expected + [10]
    with open(f"{uri}/{_txn.HEAD}") as fh:
        assert json.load(fh)["version"] == s.version
