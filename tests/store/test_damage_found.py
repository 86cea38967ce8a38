"""Damage to derived files and lost manifests is an error or a verify finding, never an answer."""

from __future__ import annotations

import glob
import json
import os
import shutil
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from modyn_store import CorruptionError, Store
from modyn_store.core import keyindex
from modyn_store.core.verify import verify


def _indexed(tmp_path: Path, n: int = 2000) -> tuple[Store, str]:
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    store.append(pa.table({"ts": list(range(n)), "x": [float(i) for i in range(n)]}))
    store.index_keys()
    with open(f"{uri}/{keyindex.RUNS_POINTER}") as fh:
        folder = f"{uri}/{keyindex.RUNS_DIR}/{json.load(fh)['dir']}"
    return store, folder


def _errors(uri: str, deep: bool = True) -> list[str]:
    return [f.what for f in verify(uri, deep=deep).errors]


@pytest.mark.parametrize("at", [500, 511, 512, 1999])
def test_a_changed_key_index_entry_never_flips_an_answer(tmp_path: Path, at: int) -> None:
    store, folder = _indexed(tmp_path)
    k = np.fromfile(f"{folder}/keys.i64", dtype="<i8")
    k[at] = at ^ (1 << 20)
    k.tofile(f"{folder}/keys.i64")
    reader = Store.open(store.uri)
    for probe in (at, at + 1 if at < 1999 else at - 1):
        with pytest.raises(CorruptionError, match=r"key index .*keyindex/.* is damaged: entries .* keys\.i64"):
            reader.as_of().contains([probe])
        with pytest.raises(CorruptionError, match="key index"):
            reader.as_of().take([probe])
    assert reader.as_of().contains([1500 if at < 1000 else 100]).tolist() == [True]  # another block: fine
    for deep in (False, True):
        errs = _errors(store.uri, deep)
        assert len(errs) == 1 and errs[0].startswith("key index: the key index") and "is damaged" in errs[0]


def test_a_changed_row_id_in_the_key_index_is_found(tmp_path: Path) -> None:
    store, folder = _indexed(tmp_path)
    r = np.fromfile(f"{folder}/rowids.u64", dtype="<u8")
    r[700], r[701] = r[701], r[700]
    r.tofile(f"{folder}/rowids.u64")
    with pytest.raises(CorruptionError, match="is damaged"):
        Store.open(store.uri).as_of().contains([700])
    assert len(_errors(store.uri, False)) == 1


@pytest.mark.parametrize("leaf", ["keys.i64", "rowids.u64", "blocks.u64", "sparse.i64"])
def test_a_truncated_key_index_file_is_a_corruption_error_naming_it(tmp_path: Path, leaf: str) -> None:
    store, folder = _indexed(tmp_path)
    with open(f"{folder}/{leaf}", "r+b") as fh:
        fh.truncate(8)
    reader = Store.open(store.uri)
    for read in (lambda: reader.as_of().take([3]), lambda: reader.as_of().contains([3])):
        with pytest.raises(CorruptionError, match=rf"key index file .*{leaf.replace('.', '[.]')}"):
            read()
    errs = _errors(store.uri)
    assert len(errs) == 1 and leaf in errs[0]


def test_a_key_index_without_checksums_is_not_used_and_is_rebuilt(tmp_path: Path) -> None:
    store, folder = _indexed(tmp_path)
    pointer = f"{store.uri}/{keyindex.RUNS_POINTER}"
    with open(pointer) as fh:
        body = json.load(fh)
    del body["check"]  # as written before the runs had checksums
    with open(pointer, "w") as fh:
        json.dump(body, fh)
    k = np.fromfile(f"{folder}/keys.i64", dtype="<i8")
    k[500] = -1
    k.tofile(f"{folder}/keys.i64")
    assert Store.open(store.uri).as_of().contains([500, 2000]).tolist() == [True, False]  # scanned flat
    assert verify(store.uri, deep=True).ok
    store.index_keys()
    assert keyindex.read_pointer(store) is not None
    assert Store.open(store.uri).as_of().contains([500]).tolist() == [True]


def _lost(tmp_path: Path) -> str:
    uri = str(tmp_path / "s")
    s = Store.open(uri, create=True)
    s.append(pa.table({"ts": list(range(10)), "x": [float(i) for i in range(10)]}))
    s.tag("release", 1)  # v2
    s.erase([7], reason="GDPR request")  # v3
    s.scores.write("loss", [1, 2], [0.5, 0.25])  # v4
    s.delete(keys=[3])  # v5
    return uri


@pytest.mark.parametrize(
    ("table", "version"), [("tags", 2), ("erasures", 3), ("scores/loss", 4), ("tombstones", 5)]
)
def test_a_table_the_log_wrote_without_a_manifest_is_corruption(tmp_path: Path, table: str, version: int) -> None:
    uri = _lost(tmp_path)
    for p in glob.glob(f"{uri}/{table}.lance/_versions/*.manifest"):
        os.remove(p)
    s = Store.open(uri)
    msg = rf"table '{table}' of .* has no readable manifest, but version {version} of the log wrote it"
    reads = {
        "tags": [s.tags, lambda: s.as_of("release")],
        "erasures": [lambda: s.append(pa.table({"key": [7], "ts": [99], "x": [7.0]})), lambda: s.as_of().contains([7])],
        "scores/loss": [lambda: s.scores.as_of(None, "loss")],
        "tombstones": [lambda: s.as_of().contains([3]), lambda: s.as_of().keys()],
    }[table]
    for read in reads:
        with pytest.raises(CorruptionError, match=msg):
            read()
    assert s.version == 5  # nothing was written on top
    errs = _errors(uri)
    assert errs and any(f"table '{table}'" in e and f"version {version} of the log wrote it" in e for e in errs)


def _two_of_each(tmp_path: Path) -> str:
    """A store whose samples, tombstones, tags, erasures and score table each have two commits."""
    uri = str(tmp_path / "s")
    s = Store.open(uri, create=True)
    s.append(pa.table({"ts": list(range(10)), "x": [float(i) for i in range(10)]}))  # v1
    s.erase([7], reason="GDPR request")  # v2 (its purge removes the samples' older manifests)
    s.erase([8], reason="GDPR request")  # v3
    s.tag("a", 1)  # v4
    s.tag("b", 2)  # v5
    s.append(pa.table({"ts": list(range(10, 20)), "x": [float(i) for i in range(10, 20)]}))  # v6
    s.scores.write("loss", [1, 2], [0.5, 0.25])  # v7
    s.scores.write("loss", [5], [0.125])  # v8
    s.delete(keys=[3])  # v9
    s.delete(keys=[4])  # v10
    return uri


@pytest.mark.parametrize("table", ["samples", "tombstones", "tags", "erasures", "scores/loss"])
def test_a_table_that_lost_only_its_newest_manifest_is_corruption_not_an_older_answer(
    tmp_path: Path, table: str
) -> None:
    """Lance opens the newest manifest left: without the head's record of each table's Lance
    version, reads answered from the older state (a version's rows missing, a deleted key or
    a tag's absence back, a score gone) with no error."""
    uri = _two_of_each(tmp_path)
    manifests = glob.glob(f"{uri}/{table}.lance/_versions/*.manifest")
    assert len(manifests) >= 2
    os.remove(min(manifests, key=lambda p: int(Path(p).stem)))  # Lance names them 2^64 - 1 - version
    s = Store.open(uri)
    reads = {
        "samples": [lambda: s.as_of().to_table(), lambda: list(s.as_of().to_batches()),
                    lambda: s.as_of().contains([15])],
        "tombstones": [lambda: s.as_of().to_table(), lambda: s.as_of().contains([4])],
        "tags": [s.tags, lambda: s.as_of("b")],
        "erasures": [lambda: s.as_of(2).to_table(), lambda: s.as_of(2).contains([8])],
        "scores/loss": [lambda: s.scores.as_of(None, "loss")],
    }[table]
    for read in reads:
        with pytest.raises(CorruptionError, match=rf"table '{table}' .* latest manifests were lost"):
            read()
    errs = _errors(uri, deep=False)
    assert any(f"table '{table}'" in e and "latest manifests were lost" in e for e in errs), errs


def test_a_table_folder_the_log_wrote_removed_whole_is_reported(tmp_path: Path) -> None:
    uri = _lost(tmp_path)
    shutil.rmtree(f"{uri}/scores/loss.lance")
    s = Store.open(uri)
    with pytest.raises(CorruptionError, match="table 'scores/loss'"):
        s.scores.as_of(None, "loss")
    assert _errors(uri, False) == ["table 'scores/loss' is missing, but version 4 of the log wrote it"]


def test_a_table_an_uncommitted_write_created_is_still_absent(tmp_path: Path) -> None:
    uri = _lost(tmp_path)
    os.makedirs(f"{uri}/scores/other.lance/_versions")  # a create killed before Lance committed
    s = Store.open(uri)
    assert s._tables.uncommitted("scores/other") and s._tables.open("scores/other") is None
    assert verify(uri, deep=True).ok
    s.scores.write("other", [1], [0.5])
    assert s.scores.as_of(None, "other").column("value").to_pylist() == [0.5]


def test_verify_reports_a_missing_lance_index_file(tmp_path: Path) -> None:
    uri = str(tmp_path / "s")
    s = Store.open(uri, create=True)
    s.append(pa.table({"ts": list(range(10))}))
    s.delete(keys=[1])
    s.index_keys()
    assert verify(uri, deep=True).ok
    os.remove(glob.glob(f"{uri}/tombstones.lance/_indices/*/page_lookup.lance")[0])
    for deep in (False, True):
        errs = _errors(uri, deep)
        assert len(errs) == 1 and errs[0].startswith("table 'tombstones': index 'key_idx'"), errs


def _tombstone_index_page(tmp_path: Path, every: int) -> tuple[str, str]:
    """A store of 5000 rows with every ``every``-th key deleted and the tombstones' key index
    built: its uri and the index's page file."""
    uri = str(tmp_path / "s")
    s = Store.open(uri, create=True)
    s.append(pa.table({"ts": list(range(5000))}))
    s.delete(keys=list(range(0, 5000, every)))
    s.index_keys()
    return uri, glob.glob(f"{uri}/tombstones.lance/_indices/*/page_data.lance")[0]


def test_verify_reports_a_truncated_lance_index_file(tmp_path: Path) -> None:
    uri, page = _tombstone_index_page(tmp_path, 2)
    with open(page, "r+b") as fh:
        fh.truncate(os.path.getsize(page) // 2)
    errs = _errors(uri, False)
    assert len(errs) == 1 and "index 'key_idx'" in errs[0] and "bytes, the manifest records" in errs[0]


def test_a_changed_key_index_entry_is_found_on_an_object_store(tmp_path: Path) -> None:
    """An object store reads the blocks its keys fall in (no mapping): they are checked too."""
    import dataclasses

    store, folder = _indexed(tmp_path)
    k = np.fromfile(f"{folder}/keys.i64", dtype="<i8")
    k[1500] = 1500 ^ (1 << 20)
    k.tofile(f"{folder}/keys.i64")
    reader = Store.open(store.uri)
    reader._location = dataclasses.replace(reader._location, is_local=False)  # the ranged reads
    with pytest.raises(CorruptionError, match=r"is damaged: entries 1472\.\.1535 of keys"):
        reader.as_of().contains([1500])
    assert reader.as_of().contains([10, 2000]).tolist() == [True, False]


def test_a_changed_digit_in_the_fragment_journal_is_read_around(tmp_path: Path) -> None:
    """A line of ``_meta/samples.fragments.jsonl`` whose digits changed still parses; it must
    not make a scan take version 3's fragment as one of version 2 (its rows without the
    version filter): the line's digest no longer matches, so the fragment's column is read."""
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    for v in range(3):
        store.append(pa.table({"key": np.arange(10 * v, 10 * v + 10), "ts": np.arange(10)}))
    journal = store.path("_meta/samples.fragments.jsonl")
    with open(journal, "rb") as fh:
        body = fh.read()
    assert body.count(b"[3, 3, 10, 20, 29]") == 1
    with open(journal, "wb") as fh:
        fh.write(body.replace(b"[3, 3, 10, 20, 29]", b"[2, 2, 10, 20, 29]"))
    fresh = Store.open(uri)
    snap = fresh.as_of(2)
    assert snap.to_table().num_rows == 20
    assert sum(a.size for a in snap.iter_keys()) == 20
    assert fresh.delta(0, 2).inserted.num_rows == 20
    assert snap.count() == 20


def test_a_changed_version_in_the_key_index_pointer_never_hides_a_live_key(tmp_path: Path) -> None:
    """The pointer ``_meta/keyindex.json`` names the version its runs cover; rows appended
    after it are scanned flat. A changed digit there (still valid JSON) must not make a point
    read skip those rows and call a live key absent: the pointer's own digest no longer
    matches, so the runs are not used."""
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    store.append(pa.table({"key": np.arange(0, 100), "ts": np.arange(100)}))  # version 1
    store.index_keys()
    store.append(pa.table({"key": np.arange(100, 110), "ts": np.arange(10)}))  # version 2
    pointer = store.path("_meta/keyindex.json")
    with open(pointer) as fh:
        body = json.load(fh)
    assert body["version"] == 1
    body["version"] = 7
    with open(pointer, "w") as fh:
        json.dump(body, fh)
    fresh = Store.open(uri)
    snap = fresh.as_of()
    assert snap.contains([5, 105]).tolist() == [True, True]
    assert snap.take([105]).column("key").to_pylist() == [105]


def _damaged(tmp_path: Path, at: float) -> str:
    """The tombstones' key index with 16 bytes zeroed at ``at`` of its page file."""
    uri, page = _tombstone_index_page(tmp_path, 3)
    size = os.path.getsize(page)
    with open(page, "r+b") as fh:  # 16 zero bytes inside, the size unchanged
        fh.seek(int(size * at))
        fh.write(bytes(16))
    assert os.path.getsize(page) == size
    return uri


def test_a_clean_key_index_has_no_findings(tmp_path: Path) -> None:
    uri, _ = _tombstone_index_page(tmp_path, 3)
    assert verify(uri, deep=False).ok and verify(uri, deep=True).ok


def test_a_damaged_page_that_answers_the_smallest_key_with_other_rows_is_found(tmp_path: Path) -> None:
    uri = _damaged(tmp_path, 0.3)
    got = lance.dataset(f"{uri}/tombstones.lance").to_table(columns=["key"], filter=pc.field("key").isin([0]))
    assert sorted(set(got.column("key").to_pylist())) != [0]  # the wrong answer verify must report
    for deep in (False, True):
        errs = _errors(uri, deep)
        assert len(errs) == 1 and "index 'key_idx' answers a lookup of key 0 with rows of other keys" in errs[0], errs


@pytest.mark.parametrize("at", [0.7, 0.8])
def test_a_damaged_page_of_other_keys_is_found_by_a_deep_verify(tmp_path: Path, at: float) -> None:
    uri = _damaged(tmp_path, at)
    ds = lance.dataset(f"{uri}/tombstones.lance")
    every = ds.to_table(columns=["key"], use_scalar_index=False).column("key")
    looked_up = ds.to_table(columns=["key"], filter=pc.field("key").isin(every)).column("key")
    assert not np.array_equal(np.sort(looked_up.to_numpy()), np.sort(every.to_numpy()))
    errs = _errors(uri, True)
    assert len(errs) == 1 and "index 'key_idx' answers lookups of 1667 keys" in errs[0], errs
