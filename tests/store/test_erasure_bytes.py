"""Erasure at the byte level: no file under the store folder holds an erased row of the
samples, of a score table (scalar or vector) or of an extension table with an int64 ``key``."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import DuplicateKeyError, Store, UnknownKeyError
from modyn_store.core import maintenance


def _files(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _, names in os.walk(root):
        for f in names:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def _where(needle: bytes, files: dict[str, bytes]) -> list[str]:
    return sorted(path for path, data in files.items() if needle in data)


def _filled_store(root: Path, *, compact: bool) -> tuple[Store, dict[int, list[bytes]]]:
    """Samples in two appends, a scalar and a vector score, an extension table with an int64
    ``key`` and the lineage table ``selections``; ``markers[key]`` lists the random byte strings
    (no compression can hide them) that only ``key``'s rows hold."""
    store = Store.open(str(root), create=True)
    markers: dict[int, list[bytes]] = {}
    for chunk in range(2):
        texts = ["SECRET-" + secrets.token_hex(24) for _ in range(40)]
        blobs = [secrets.token_bytes(40) for _ in range(40)]
        store.append(pa.table({"ts": np.arange(40) + 40 * chunk, "text": texts, "blob": pa.array(blobs, pa.binary())}))
        for i in range(40):
            markers[40 * chunk + i] = [texts[i].encode(), blobs[i]]
    keys = store.as_of().keys()
    rng = np.random.default_rng(3)
    loss = rng.random(keys.size) + 1.5
    emb = (rng.random((keys.size, 16)) + 2.0).astype(np.float32)
    store.scores.write("loss", keys, loss)
    store.scores.write("emb", keys, emb)
    payload = ["NOTE-" + secrets.token_hex(24) for _ in keys]
    with store.transaction("annotate") as txn:
        txn.append("notes", pa.table({"key": pa.array(keys, pa.int64()), "payload": payload}))
        txn.append("selections", pa.table({"training_id": ["t1"] * keys.size, "key": pa.array(keys, pa.int64())}))
    for i, k in enumerate(keys.tolist()):
        markers[k] += [loss[i].tobytes(), emb[i].tobytes(), payload[i].encode()]
    store.tag("before")
    if compact:
        store.compact()
    return store, markers


@pytest.mark.parametrize("compact", [False, True])
def test_erased_rows_leave_every_file_extension_tables_included(tmp_path: Path, compact: bool) -> None:
    root = tmp_path / "store"
    store, markers = _filled_store(root, compact=compact)
    erase = [3, 17, 41, 79]
    before = _files(root)
    assert all(_where(m, before) for k in erase for m in markers[k])

    store.erase(erase, reason="user request")

    after = _files(root)
    leaks = {k: _where(m, after) for k in erase for m in markers[k] if _where(m, after)}
    assert not leaks, f"erased bytes still on disk: {leaks}"
    # the check can fail: the rows kept are found the same way
    assert all(_where(m, after) for k in (0, 4, 40, 78) for m in markers[k])
    for v in range(store.version + 1):
        notes = store.read_table("notes", v)
        assert notes is None or not np.isin(erase, notes.column("key").to_numpy()).any()
    # lineage keeps naming the keys (no content): erasure reports read it
    assert set(erase) <= set(store.read_table("selections").column("key").to_pylist())
    assert store.read_table("notes").num_rows == 76


def test_an_erase_interrupted_after_its_commit_purges_extension_tables_on_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "store"
    store, markers = _filled_store(root, compact=False)

    def crash(*args: object, **kwargs: object) -> int:
        raise OSError("killed after the commit")

    monkeypatch.setattr(maintenance, "finish_purge", crash)
    with pytest.raises(OSError, match="killed"):
        store.erase([5], reason="r")
    monkeypatch.undo()
    assert any(_where(m, _files(root)) for m in markers[5])  # committed, not purged yet
    # reads hide the erased key's rows from the commit on, as the samples'
    assert 5 not in store.read_table("notes").column("key").to_pylist()
    assert 5 not in store.read_table("notes", filter="key >= 0").column("key").to_pylist()
    assert 5 in store.read_table("selections").column("key").to_pylist()  # lineage
    assert any(_where(m, _files(root)) for m in markers[5])  # (still not purged: reads only)

    Store.open(str(root)).compact()  # the next writer finishes the erase
    after = _files(root)
    assert not any(_where(m, after) for m in markers[5])
    assert 5 not in store.read_table("notes").column("key").to_pylist()


@pytest.mark.parametrize("step", ["rewrite", "cleanup"])
def test_an_erase_interrupted_inside_an_extension_table_purge_is_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    root = tmp_path / "store"
    store, markers = _filled_store(root, compact=False)
    tables = type(store._tables)
    real = getattr(tables, step)

    def stop(self: object, name: str) -> None:
        if name == "notes":
            raise OSError(f"killed before the {step}")
        real(self, name)

    monkeypatch.setattr(tables, step, stop)
    with pytest.raises(OSError, match="killed"):
        store.erase([6], reason="r")
    monkeypatch.undo()
    assert _where(markers[6][-1], _files(root))

    Store.open(str(root)).tag("after")  # the next write finishes the erase
    assert not any(_where(m, _files(root)) for m in markers[6])
    assert 6 not in store.read_table("notes").column("key").to_pylist()


def _annotated(tmp_path: Path, table: str, keys: list[int], key_type: pa.DataType) -> tuple[Store, int]:
    """A store of four samples and an extension ``table`` of notes on ``keys`` (a ``key`` column
    of ``key_type``); returns the store and the table's Lance version."""
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(4)}))
    with store.transaction("annotate") as txn:
        txn.append(table, pa.table({"key": pa.array(keys, key_type), "note": ["a", "b"]}))
    return store, store._tables.open(table).version


def test_a_key_column_of_another_type_is_not_read_as_store_keys(tmp_path: Path) -> None:
    store, version = _annotated(tmp_path, "narrow", [1, 2], pa.int32())
    store.erase([1], reason="r")
    assert store.read_table("narrow").column("key").to_pylist() == [1, 2]
    assert store._tables.open("narrow").version == version
    assert "narrow" not in maintenance.keyed_extensions(store)


def test_an_extension_table_without_erased_keys_is_not_rewritten(tmp_path: Path) -> None:
    store, version = _annotated(tmp_path, "notes", [0, 2], pa.int64())
    store.erase([1], reason="r")
    assert store._tables.open("notes").version == version
    store.erase([2], reason="r")
    assert store.read_table("notes").column("key").to_pylist() == [0]


def test_rows_naming_an_erased_key_are_refused_except_lineage(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(4)}))
    with store.transaction("annotate") as txn:
        txn.append("notes", pa.table({"key": pa.array([0], pa.int64()), "note": ["a"]}))
    store.erase([1], reason="r")
    version = store.version
    for table in ("notes", "fresh"):
        with pytest.raises(UnknownKeyError, match="erased keys, e.g. \\[1\\]"):
            with store.transaction("annotate") as txn:
                txn.append(table, pa.table({"key": pa.array([2, 1], pa.int64()), "note": ["b", "c"]}))
    with pytest.raises(UnknownKeyError, match="erased"):
        rows = pa.table({"key": pa.array([1], pa.int64()), "note": ["c"]})
        store.append(pa.table({"ts": [9]}), tables={"notes": rows})
    assert store.version == version
    assert "fresh" not in store._tables.names()
    with store.transaction("train") as txn:
        txn.append("selections", pa.table({"training_id": ["t"], "key": pa.array([1], pa.int64())}))
        txn.append("notes", pa.table({"key": pa.array([2, None], pa.int64()), "note": ["b", "c"]}))
    assert store.read_table("notes").column("key").to_pylist() == [0, 2, None]


def test_an_erased_rows_value_leaves_an_extension_tables_dictionary(tmp_path: Path) -> None:
    """Extension tables keep dictionary-encoded columns as written. Compaction copies a file's
    dictionary whole, so the rewritten file (and every read of the column) kept the value only
    the erased row had."""
    import lance

    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(40)}))
    notes = [f"NOTE-{secrets.token_hex(8)}" for _ in range(20)]
    with store.transaction("annotate") as txn:
        txn.append("notes", pa.table({"key": pa.array(np.arange(20), pa.int64()),
                                      "note": pa.DictionaryArray.from_arrays(pa.array(np.arange(20), pa.int8()), notes)}))
    with store.transaction("annotate") as txn:
        txn.append("notes", pa.table({"key": pa.array(np.arange(20, 40), pa.int64()),
                                      "note": pa.DictionaryArray.from_arrays(pa.array(np.zeros(20), pa.int8()), ["plain"])}))

    store.erase([7], reason="user request")

    def values(column: pa.ChunkedArray) -> set[str]:
        return {v for chunk in column.chunks for v in chunk.dictionary.to_pylist()}

    for version in range(1, store.version + 1):
        t = store.read_table("notes", version)
        assert t is None or notes[7] not in values(t.column("note")), version
    for fragment in lance.dataset(str(tmp_path / "s" / "notes.lance")).get_fragments():  # every data file
        assert notes[7] not in values(fragment.to_table(columns=["note"]).column("note"))
    t = store.read_table("notes")
    assert t is not None and t.num_rows == 39
    kept = dict(zip(t.column("key").to_pylist(), t.column("note").cast(pa.string()).to_pylist()))
    assert kept == {**{k: notes[k] for k in range(20) if k != 7}, **{k: "plain" for k in range(20, 40)}}


def test_rows_only_an_extension_table_holds_for_a_key_are_erased(tmp_path: Path) -> None:
    """Rows of an extension table may name a key no sample has (yet). Erasing that key was
    refused as never stored, so no call could remove those rows' bytes."""
    root = tmp_path / "s"
    store = Store.open(str(root), create=True)
    store.append(pa.table({"ts": np.arange(4)}))
    notes = ["NOTE-" + secrets.token_hex(24) for _ in range(3)]
    with store.transaction("annotate") as txn:
        txn.append("notes", pa.table({"key": pa.array([2, 500, -4], pa.int64()), "note": notes}))
    with pytest.raises(UnknownKeyError, match="never stored"):
        store.erase([501], reason="r")
    report = store.erase([-4, 500], reason="user request")
    assert report.keys.tolist() == [-4, 500]
    files = _files(root)
    assert _where(notes[1].encode(), files) == [] and _where(notes[2].encode(), files) == []
    assert _where(notes[0].encode(), files) != []  # (the check finds what is there)
    assert store.read_table("notes").column("key").to_pylist() == [2]
    # the erased key is taken for all time: keys assigned later start above it
    after = store.append(pa.table({"ts": [9]}))
    assert store.delta(after.version - 1, after.version).inserted.column("key").to_pylist() == [501]
    with pytest.raises(DuplicateKeyError):
        store.append(pa.table({"key": pa.array([500], pa.int64()), "ts": [9]}))


def test_reads_of_an_extension_table_with_null_keys_hide_exactly_the_erased_keys(tmp_path: Path) -> None:
    """A ``key`` column with nulls came to NumPy as float64: a key beyond 2^53 was rounded onto
    an erased neighbour and hidden with it (and NaN keys passed the sortedness check)."""
    big = 2**53
    store, _ = _annotated(tmp_path, "notes", [3, big + 1], pa.int64())
    with store.transaction("annotate") as txn:
        txn.append("notes", pa.table({"key": pa.array([None, big], pa.int64()), "note": ["c", "d"]}))
    store.erase([big], reason="r")
    assert store.read_table("notes").column("key").to_pylist() == [3, big + 1, None]
