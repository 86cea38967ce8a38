"""The key index's sorted runs, written in bounded memory: equal to a stable sort of the scan."""

from __future__ import annotations

from pathlib import Path

import fsspec
import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core import _keyruns, snapshot
from modyn_store.core._keyruns import write_sorted


def _read(fs: fsspec.AbstractFileSystem, folder: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.frombuffer(fs.cat_file(f"{folder}/keys.i64"), "<i8"),
            np.frombuffer(fs.cat_file(f"{folder}/rowids.u64"), "<u8"),
            np.frombuffer(fs.cat_file(f"{folder}/sparse.i64"), "<i8"))


def _batches(rng: np.random.Generator, keys: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    cuts = np.sort(rng.integers(0, keys.size + 1, int(rng.integers(0, 12))))
    rowids = np.arange(keys.size, dtype=np.uint64) * 3 + 1
    return list(zip(np.split(keys, cuts), np.split(rowids, cuts)))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("where", ["memory", "local"])
def test_runs_equal_a_stable_sort_of_the_scan(seed: int, where: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 3000))
    kind = seed % 4
    if kind == 0:  # keys that grow with the appends: written through
        keys = np.sort(rng.integers(0, 10**6, n))
    elif kind == 1:  # a sorted prefix, then disorder
        keys = np.concatenate([np.arange(n // 2), rng.integers(-50, n, n - n // 2)])
    else:  # any order, with ties (a key stored twice keeps its scan order)
        keys = rng.integers(-100, 100 if kind == 2 else 10**9, n)
    keys = keys.astype(np.int64)
    stride = int(rng.choice([1, 2, 7, 512]))
    run_rows = int(rng.choice([1, 5, 64, 1 << 20]))
    fs = fsspec.filesystem("memory" if where == "memory" else "file")
    folder = f"/runs-{seed}-{where}" if where == "memory" else str(tmp_path / "runs")
    fs.makedirs(folder, exist_ok=True)
    batches = _batches(rng, keys)
    assert write_sorted(fs, folder, iter(batches), stride=stride, run_rows=run_rows) == n
    got_k, got_r, sparse = _read(fs, folder)
    order = np.argsort(keys, kind="stable")
    rowids = np.arange(n, dtype=np.uint64) * 3 + 1
    assert got_k.tolist() == keys[order].tolist()
    assert got_r.tolist() == rowids[order].tolist()
    assert sparse.tolist() == keys[order][::stride].tolist()
    assert sorted(Path(p).name for p in fs.ls(folder, detail=False)) == ["keys.i64", "rowids.u64", "sparse.i64"]


def test_a_store_with_keys_in_any_order_is_indexed_through_spill_runs(store_uri: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_keyruns, "RUN_ROWS", 37)  # many spill runs, merged
    monkeypatch.setattr(snapshot, "POINT_SHARE", 1.0)  # answer by point lookups
    store = Store.open(store_uri, create=True)
    rng = np.random.default_rng(3)
    keys = rng.permutation(10_000)[:600].astype(np.int64)
    for part in np.array_split(keys, 4):
        store.append(pa.table({"key": part, "ts": part * 10, "x": part * 1.5}))
    report = store.index_keys()
    assert report.tables["samples"].indexed_rows == 600 and report.tables["samples"].unindexed_rows == 0
    assert report.tables["samples"].bytes == 600 * 16 + 2 * 8  # keys, row ids and every 512th key
    pick = rng.permutation(keys)[:50]
    t = store.as_of().take(pick, ["key", "x"])
    assert t.column("key").to_numpy().tolist() == pick.tolist()
    assert np.array_equal(t.column("x").to_numpy(), pick * 1.5)
    assert store.as_of().contains(np.array([keys[0], 10_001])).tolist() == [True, False]
