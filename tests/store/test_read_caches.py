"""Reads that reuse what the process already read (Lance's shared session, the snapshot's log
records, dead-key sets) must answer exactly as a fresh process would: after another process
commits, after maintenance rewrites files, and after a store is removed and made again at the
same path."""

from __future__ import annotations

import multiprocessing as mp
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core import _tables


def _rows(keys: np.ndarray | list[int], shift: float = 0.0) -> pa.Table:
    k = np.asarray(keys, dtype=np.int64)
    return pa.table({"key": k, "ts": k * 10, "x": k.astype(np.float64) + shift})


def _all(store: Store, version: int | None = None) -> dict[str, list[int]]:
    """Every read of a version, from this Store object."""
    snap = store.as_of(version)
    return {
        "keys": snap.keys().tolist(),
        "iter_keys": sorted(int(k) for a in snap.iter_keys() for k in a),
        "to_batches": sorted(int(k) for b in snap.to_batches(["key"]) for k in b.column(0).to_pylist()),
    }


def _fresh(uri: str, version: int | None = None) -> dict[str, list[int]]:
    return _all(Store.open(uri), version)


def _other_process(uri: str, op: str, keys: list[int]) -> None:
    store = Store.open(uri)
    if op == "append+delete":
        store.append(_rows(np.arange(100, 150)))
        store.delete(keys=[101, 3])
    elif op == "erase":
        store.erase(keys, reason="test")
    elif op == "compact":
        store.compact()
    elif op == "vacuum":
        store.vacuum(keep_versions=1, dry_run=False)


def _run(uri: str, op: str, keys: list[int] | None = None) -> None:
    p = mp.get_context("spawn").Process(target=_other_process, args=(uri, op, keys or []))
    p.start()
    p.join(120)
    assert p.exitcode == 0


def test_the_process_shares_one_lance_session() -> None:
    assert _tables.session() is _tables.session()


def test_fresh_opens_see_every_commit_of_another_process(tmp_path: Path) -> None:
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    for i in range(4):
        store.append(_rows(np.arange(i * 25, (i + 1) * 25)))
    store.delete(keys=[0, 30])
    want = sorted(set(range(100)) - {0, 30})
    assert _fresh(uri) == {k: want for k in ("keys", "iter_keys", "to_batches")}  # read: now cached

    _run(uri, "append+delete")
    want = sorted((set(range(100)) | set(range(100, 150))) - {0, 30, 101, 3})
    assert _fresh(uri) == {k: want for k in ("keys", "iter_keys", "to_batches")}
    assert _fresh(uri, 5) == {k: sorted(set(range(100)) - {0, 30}) for k in ("keys", "iter_keys", "to_batches")}
    assert _fresh(uri, 4)["keys"] == list(range(100))  # before any delete: no tombstone applies

    _run(uri, "erase", [4, 120])
    want = sorted(set(want) - {4, 120})
    assert _fresh(uri) == {k: want for k in ("keys", "iter_keys", "to_batches")}
    assert 4 not in _fresh(uri, 4)["keys"]  # erasure applies to every version

    _run(uri, "compact")  # rewrites the data files the session has cached metadata of
    assert _fresh(uri) == {k: want for k in ("keys", "iter_keys", "to_batches")}
    assert _fresh(uri, 4)["keys"] == sorted(set(range(100)) - {4})

    _run(uri, "vacuum")  # purges the deleted rows: old versions list them as unavailable
    snap = Store.open(uri).as_of(4)
    assert snap.keys().tolist() == sorted(set(range(100)) - {4})
    assert snap.unavailable().tolist() == [0, 3, 30]
    assert Store.open(uri).as_of().keys().tolist() == want


def test_a_snapshot_held_across_another_process_erasing(tmp_path: Path) -> None:
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    store.append(_rows(np.arange(10)))
    store.delete(keys=[1])
    store.append(_rows(np.arange(10, 20)))
    snap = store.as_of(2)
    assert snap.keys().tolist() == [0, *range(2, 10)]
    _run(uri, "erase", [4])
    assert snap.keys().tolist() == [0, 2, 3, *range(5, 10)]
    assert [int(k) for a in snap.iter_keys() for k in a] == [0, 2, 3, *range(5, 10)]


@pytest.mark.parametrize("same_shape", [True, False])
def test_a_store_made_again_at_the_same_path_is_read_afresh(tmp_path: Path, same_shape: bool) -> None:
    """Same version numbers, same table versions, same row counts, other keys and data: nothing
    read from the first store may be served for the second."""
    uri = str(tmp_path / "s")
    first = Store.open(uri, create=True)
    first.append(_rows(np.arange(0, 50)))
    first.delete(keys=[7])
    assert _fresh(uri)["keys"] == sorted(set(range(50)) - {7})
    assert Store.open(uri).as_of().to_table().column("x").to_pylist()[:2] == [0.0, 1.0]
    shutil.rmtree(uri)

    second = Store.open(uri, create=True)
    base = 1000 if same_shape else 5000
    second.append(_rows(np.arange(base, base + (50 if same_shape else 70)), shift=0.5))
    second.delete(keys=[base + 9])
    want = sorted(set(range(base, base + (50 if same_shape else 70))) - {base + 9})
    assert _fresh(uri) == {k: want for k in ("keys", "iter_keys", "to_batches")}
    assert _fresh(uri, 1)["keys"] == list(range(base, base + (50 if same_shape else 70)))
    assert Store.open(uri).as_of().to_table().column("x").to_pylist()[:2] == [base + 0.5, base + 1.5]
