"""A store folder with symbolic links where the store keeps its own files is refused on open:
erasure, compaction and cache eviction would otherwise delete or write files outside it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.errors import CorruptionError


def _store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    s = Store.open(str(path), create=True)
    s.append(pa.table({"key": pa.array([1, 2, 3], pa.int64()), "ts": pa.array([1, 2, 3], pa.int64()),
                       "x": [1.0, 2.0, 3.0]}))
    return path


def _outside(tmp_path: Path) -> Path:
    victim = tmp_path / "outside" / "victim"
    victim.mkdir(parents=True)
    (victim / "canary").write_text("keep me")
    return victim.parent


@pytest.mark.parametrize("link", ["_cache", "_meta/keyindex", "scores/s.lance"])
def test_store_with_a_linked_folder_is_refused_and_nothing_outside_is_touched(tmp_path: Path, link: str) -> None:
    path = _store(tmp_path)
    outside = _outside(tmp_path)
    (path / link).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, path / link)
    with pytest.raises(CorruptionError, match=link.replace(".", r"\.")):
        s = Store.open(str(path))
        # without the check, erase removes every folder of the linked _cache nobody registered
        s.erase([1], reason="test")
        s.compact()
    assert (outside / "victim" / "canary").read_text() == "keep me"


def test_store_with_a_linked_cache_entry_is_refused(tmp_path: Path) -> None:
    path = _store(tmp_path)
    outside = _outside(tmp_path)
    (path / "_cache").mkdir()
    os.symlink(outside / "victim", path / "_cache" / "e1")
    with pytest.raises(CorruptionError, match="_cache/e1"):
        Store.open(str(path))
    assert (outside / "victim" / "canary").exists()


def test_store_without_links_opens_and_erases(tmp_path: Path) -> None:
    path = _store(tmp_path)
    s = Store.open(str(path))
    s.caches.register("e1", np.array([1]), folders=["e1"])
    (path / "_cache" / "e1").mkdir(parents=True)
    assert s.erase([1], reason="test").caches_removed == 1
    assert not (path / "_cache" / "e1").exists()


@pytest.mark.parametrize("folder", ["../../../elsewhere", "..", "."])
def test_key_index_pointer_naming_a_folder_outside_its_own_is_not_used(tmp_path: Path, folder: str) -> None:
    import json
    import shutil

    from modyn_store.core import keyindex

    path = _store(tmp_path)
    s = Store.open(str(path))
    s.index_keys()
    pointer = path / "_meta" / "keyindex.json"
    body = json.loads(pointer.read_text())
    assert keyindex.read_pointer(s) is not None
    shutil.move(str(path / "_meta" / "keyindex" / body["dir"]), str(tmp_path / "elsewhere"))
    body["dir"] = folder
    fields = {"dir": folder, "version": body["version"], "rows": body["rows"], "check": body["check"]}
    body["check"]["pointer"] = keyindex._pointer_digest(fields)
    pointer.write_text(json.dumps(body))
    s = Store.open(str(path))
    assert keyindex.read_pointer(s) is None  # the runs are not used: every fragment is scanned
    assert s.as_of().take([2, 3], columns=["x"]).column("x").to_pylist() == [2.0, 3.0]


@pytest.mark.parametrize("link", ["_pipelines/p.lock", "_meta/head.json", "_txn/intent.json",
                                  "_meta/caches/e1.json.tmp"])
def test_store_with_a_linked_file_is_refused_and_the_target_is_not_overwritten(tmp_path: Path, link: str) -> None:
    path = _store(tmp_path)
    target = tmp_path / "precious.txt"
    before = (path / link).read_text() if (path / link).exists() else "keep me"  # the head: a valid one
    target.write_text(before)
    (path / link).parent.mkdir(parents=True, exist_ok=True)
    (path / link).unlink(missing_ok=True)
    os.symlink(target, path / link)
    with pytest.raises(CorruptionError, match=link.replace(".", r"\.")):
        s = Store.open(str(path))
        s.append(pa.table({"key": pa.array([9], pa.int64()), "ts": pa.array([9], pa.int64()), "x": [9.0]}))
    assert target.read_text() == before


def test_a_linked_free_log_record_is_never_rewritten(tmp_path: Path) -> None:
    from modyn_store.core._log import CHECKPOINT_EVERY, FREE

    path = _store(tmp_path)
    target = tmp_path / "precious.txt"
    target.write_text("keep me " * 200)
    (path / FREE).mkdir(parents=True, exist_ok=True)
    os.symlink(target, path / FREE / f"{0:012d}")  # sorts first: the first free file a write takes
    s = Store.open(str(path))
    for i in range(2 * CHECKPOINT_EVERY + 4):
        s.append(pa.table({"key": pa.array([100 + i], pa.int64()), "ts": pa.array([1], pa.int64()),
                           "x": [0.0]}))
    assert target.read_text() == "keep me " * 200
    assert not (path / FREE / f"{0:012d}").is_symlink()
    assert Store.open(str(path)).version == 2 * CHECKPOINT_EVERY + 5


#: folders deep inside a table's folder, below what opening a store looks at
DEEP_LINKS = ["samples.lance/_indices/0e1f2a3b-1111-2222-3333-444455556666", "samples.lance/data/elsewhere",
              "samples.lance/_deletions/elsewhere", "samples.lance/_transactions/elsewhere"]


@pytest.mark.parametrize("op", ["erase", "compact", "vacuum"])
@pytest.mark.parametrize("link", DEEP_LINKS)
def test_a_linked_folder_deep_in_a_table_deletes_nothing_outside(tmp_path: Path, link: str, op: str) -> None:
    """The cleanup of old files after an erase, compaction or vacuum lists a table's folder
    following links, and deleted every file of a linked folder's target as a file no version
    uses (an index folder: all of them; the data folder: its ``*.lance`` files)."""
    path = _store(tmp_path)
    victim = tmp_path / "outside"
    victim.mkdir()
    names = ["notes.txt", "a.lance", "b.arrow", "c.bin", "d.txn", "e.manifest"]
    for name in names:
        (victim / name).write_text("keep me")
    s = Store.open(str(path))
    s.delete(keys=[1])
    version = s.version
    (path / link).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(victim, path / link)
    with pytest.raises(CorruptionError, match=link.replace(".", r"\.")):
        if op == "erase":
            s.erase([2], reason="test")
        elif op == "compact":
            s.compact()
        else:
            s.vacuum(keep_versions=1, dry_run=False)
    assert sorted(p.name for p in victim.iterdir()) == sorted(names)
    assert all((victim / name).read_text() == "keep me" for name in names)
    os.unlink(path / link)
    assert Store.open(str(path)).version == version  # refused before anything was written
    assert Store.open(str(path)).as_of().keys().tolist() == [2, 3]


def test_a_rolled_back_write_beside_a_deep_link_deletes_nothing_outside(tmp_path: Path) -> None:
    """A write that fails drops its rows' files with the same cleanup: refused, and the write's
    own error is kept as the context of the refusal."""
    path = _store(tmp_path)
    victim = tmp_path / "outside"
    victim.mkdir()
    (victim / "a.lance").write_text("keep me")
    link = path / DEEP_LINKS[0]
    link.parent.mkdir(parents=True)
    os.symlink(victim, link)
    s = Store.open(str(path))
    with pytest.raises(CorruptionError, match="symbolic links") as info:
        with s.transaction("append", "fails") as txn:
            txn._write("samples", pa.table({"key": pa.array([9], pa.int64()), "ts": pa.array([9], pa.int64()),
                                            "x": [9.0]}))
            raise RuntimeError("the write fails")
    assert isinstance(info.value.__context__, RuntimeError)
    assert (victim / "a.lance").read_text() == "keep me"
