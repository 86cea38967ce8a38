"""Erasure is physical: the erased rows' bytes occur in no file under the store folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store, UnknownKeyError


def _all_bytes(root: Path) -> list[bytes]:
    out = []
    for dirpath, _, files in os.walk(root):
        for f in files:
            out.append((Path(dirpath) / f).read_bytes())
    return out


def _occurs(needle: bytes, blobs: list[bytes]) -> bool:
    return any(needle in b for b in blobs)


def _payload(rng: np.random.Generator, n: int) -> tuple[list[bytes], list[str]]:
    blobs = [rng.bytes(48) for _ in range(n)]
    texts = ["secret-" + rng.bytes(24).hex() for _ in range(n)]
    return blobs, texts


def test_erase_removes_bytes_from_every_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    root = tmp_path / "store"
    store = Store.open(str(root), create=True)
    blobs, texts = [], []
    for chunk in range(3):  # several versions and fragments
        b, t = _payload(rng, 200)
        blobs += b
        texts += t
        store.append(
            pa.table(
                {
                    "ts": np.arange(200) + 200 * chunk,
                    "blob": pa.array(b, pa.binary()),
                    "text": t,
                    "x": rng.normal(size=200),
                }
            )
        )
    keys = store.as_of().keys()
    store.scores.write("emb", keys, rng.normal(size=(keys.size, 4)))
    store.delete(keys=keys[10:20])  # soft-deleted rows are erased too
    erase = np.array([3, 15, 250, 599])
    # materialisation caches, registered in the store's cache index; one holds erased rows
    cache = root / "_cache" / "entry1"
    store.caches.register("entry1", [1, 3, 5], folders=["entry1"])
    cache.mkdir(parents=True)
    (cache / "rows.bin").write_bytes(blobs[3])
    other = root / "_cache" / "entry2"
    store.caches.register("entry2", [1, 2], folders=["entry2"])
    other.mkdir()

    before = _all_bytes(root)
    for k in erase:
        assert _occurs(blobs[k], before) or _occurs(texts[k].encode(), before)

    report = store.erase(erase, reason="user request")
    assert report.keys.tolist() == erase.tolist()
    assert report.caches_removed == 1
    assert not cache.exists() and other.exists()

    after = _all_bytes(root)
    for k in erase:
        assert not _occurs(blobs[k], after), f"blob of erased key {k} still on disk"
        assert not _occurs(texts[k].encode(), after), f"text of erased key {k} still on disk"
    # the check can fail: rows that were not erased are still found the same way
    for k in (0, 4, 300, 598):
        assert _occurs(blobs[k], after)

    # no version returns the erased keys, the audit log keeps key and reason only
    for v in range(store.version + 1):
        assert not np.isin(erase, store.as_of(v).keys()).any()
    audit = store.read_table("erasures")
    assert sorted(audit.column("key").to_pylist()) == erase.tolist()
    assert set(audit.column("reason").to_pylist()) == {"user request"}
    assert not np.isin(erase, store.scores.as_of(None, "emb").column("key").to_numpy()).any()


def test_erase_unknown_and_repeated_keys(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": [1, 2, 3]}))
    store.erase([1], reason="r")
    version = store.version
    with pytest.raises(UnknownKeyError, match="already erased"):
        store.erase([1], reason="r")
    with pytest.raises(UnknownKeyError, match="never stored"):
        store.erase([99], reason="r")
    assert store.version == version
    report = store.erase([1, 2, 99], reason="r", missing="ignore")
    assert report.keys.tolist() == [2]
    assert store.as_of().keys().tolist() == [0]


def test_erase_with_every_key_skipped_writes_no_version(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": [1, 2, 3]}))
    store.erase([1], reason="r")
    log = [(r.version, r.op) for r in store.log()]
    erasures = store.read_table("erasures").num_rows
    # key 1 is already erased and key 99 was never stored: nothing is left to erase
    report = store.erase([1, 99], reason="again", missing="ignore")
    assert report.version is None and report.keys.tolist() == [] and report.trainings == ()
    assert [(r.version, r.op) for r in store.log()] == log
    assert Store.open(str(tmp_path / "s")).version == 2
    assert store.read_table("erasures").num_rows == erasures
    # the store is writable as before: the next erase takes the next version
    assert store.erase([2], reason="r").version == 3


def test_erase_reports_trainings_that_used_the_keys(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(10)}))
    for tid, keys in (("train-a", [1, 2, 3]), ("train-b", [4, 5]), ("train-c", [2, 9])):
        with store.transaction("train") as txn:
            txn.append(
                "selections",
                pa.table({"training_id": [tid] * len(keys), "key": pa.array(keys, pa.int64()), "weight": [1.0] * len(keys)}),
            )
    report = store.erase([2, 7], reason="request")
    assert report.trainings == ("train-a", "train-c")
    assert store.log()[-1].details["trainings"] == ["train-a", "train-c"]
    # selections keep the identifiers (not content), so lineage stays answerable afterwards
    sel = store.read_table("selections")
    assert 2 in sel.column("key").to_pylist()


def test_erase_reports_the_trainings_fine_tuned_from_those_that_used_the_keys(tmp_path: Path) -> None:
    from modyn_store import TrainSet
    from modyn_store.core.trainings import Catalog

    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(10)}))
    catalog = Catalog(store)
    # (id, parent, keys): c and g descend from p through its checkpoint, g2 through c2 (which used key 2 itself)
    for tid, parent, keys in (("p", None, [1, 2]), ("c", "p", [4]), ("g", "c", [5]), ("c2", "p", [2, 6]),
                              ("g2", "c2", [6]), ("u", None, [7]), ("x", "u", [8])):
        catalog.record_training(tid, TrainSet(keys=np.array(keys), weights=np.ones(len(keys)), version=1),
                                parent_id=parent)
    report = store.erase([2], reason="request")
    assert report.trainings == ("c2", "p") and report.descendants == ("c", "g", "g2")
    assert store.log()[-1].details["descendants"] == ["c", "g", "g2"]
    assert store.erase([9], reason="request").descendants == ()


def test_erase_returns_when_caches_remove_their_folders_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Caches evict and discard their own folders: one that vanishes between erase's listing of
    ``_cache`` and its removal is gone, not an error. Before, erase raised FileNotFoundError
    after committing, and the folders it had not reached yet kept the erased rows."""
    import shutil

    from modyn_store.core.caches import CacheIndex

    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"key": np.arange(10), "ts": np.arange(10), "y": np.arange(10)}))
    root = Path(store.path("_cache"))
    for name, keys in (("e0", [3]), ("e1", [3, 4])):
        store.caches.register(name, np.array(keys), folders=[name])
        (root / name).mkdir(parents=True)
        (root / name / "rows.npy").write_bytes(b"rows of keys 3 and 4")
    (root / "unregistered" / "sub").mkdir(parents=True)
    real = CacheIndex.entries

    def entries(self: CacheIndex) -> list[str]:
        # another process evicts e0 and removes the unregistered folder after erase listed them
        shutil.rmtree(root / "e0", ignore_errors=True)
        shutil.rmtree(root / "unregistered", ignore_errors=True)
        return real(self)

    monkeypatch.setattr(CacheIndex, "entries", entries)
    report = store.erase([3], reason="test")
    monkeypatch.undo()
    assert report.version == store.version == 2
    assert not any((root / n).exists() for n in ("e0", "e1", "unregistered"))
    assert store.caches.entries() == []


def test_a_training_fine_tuned_after_an_erasure_is_a_descendant_in_later_reports(tmp_path: Path) -> None:
    """Fine-tuning from a training an erasure named is allowed (a Finetune pipeline goes on from
    its last model); a later erasure of its ancestor's keys names it, at any depth."""
    from modyn_store import TrainSet
    from modyn_store.core.trainings import Catalog

    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(10)}))
    catalog = Catalog(store)

    def record(tid: str, parent: str | None, keys: list[int]) -> None:
        catalog.record_training(tid, TrainSet(keys=np.array(keys), weights=np.ones(len(keys)),
                                              version=store.version), parent_id=parent)

    record("p", None, [1, 2])
    record("c", "p", [4])
    first = store.erase([2], reason="request")
    assert (first.trainings, first.descendants) == (("p",), ("c",))
    record("d", "p", [5])  # after the erasure that named its parent
    record("g", "d", [6])
    assert [s.training_id for s in catalog.lineage("g")] == ["g", "d", "p"]
    assert store.erase([8], reason="request").descendants == ()  # keys no training of the lineage used
    later = store.erase([1], reason="request")
    assert (later.trainings, later.descendants) == (("p",), ("c", "d", "g"))
    assert store.log()[-1].details["descendants"] == ["c", "d", "g"]
