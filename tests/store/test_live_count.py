"""``Snapshot.count()``: the size of ``keys()``, in bounded memory, checked against the log."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pytest

from modyn_store import CorruptionError, Store


def _store(root: Path, keys: np.ndarray) -> Store:
    store = Store.open(str(root), create=True)
    for part in np.array_split(keys, 4):
        store.append(pa.table({"key": part, "ts": np.arange(part.size)}))
    return store


@pytest.mark.parametrize("order", ["sorted", "shuffled"])
def test_count_is_the_number_of_keys_at_every_version(tmp_path: Path, order: str) -> None:
    keys = np.arange(0, 40_000, dtype=np.int64)
    if order == "shuffled":
        keys = np.random.default_rng(3).permutation(keys)
    store = _store(tmp_path / "s", keys)
    store.delete(keys=keys[::7])
    store.erase(keys[1::11], reason="r")
    store.delete(keys=keys[2::13], missing="ignore")  # (some were deleted or erased already)
    store.vacuum(keep_versions=1, dry_run=False)  # purged rows still count, as keys() lists them
    assert store.as_of(4).unavailable().size > 0
    for v in range(1, store.version + 1):
        want = Store.open(store.uri).as_of(v).keys().size
        assert Store.open(store.uri).as_of(v).count() == want, v


def test_count_holds_no_array_of_every_key(tmp_path: Path) -> None:
    """keys() of these 2 x 10^6 rows is a 16 MB array; the count streams them."""
    keys = np.arange(2_000_000, dtype=np.int64)
    store = _store(tmp_path / "s", keys)
    store.delete(keys=keys[::100])
    snap = Store.open(store.uri).as_of()
    tracemalloc.start()
    try:
        n = snap.count()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 1_980_000
    assert peak < 4 * 2**20, peak
    assert snap.keys().size == n and snap.count() == n  # (then from the keys in memory)


def test_a_count_the_files_disagree_with_is_corruption(tmp_path: Path) -> None:
    store = _store(tmp_path / "s", np.arange(1000, dtype=np.int64))
    lance.dataset(store._tables.uri("samples")).delete("key = 5")  # damage: one row gone
    with pytest.raises(CorruptionError, match=r"has 999 live keys, but the version log records \(1000\)"):
        Store.open(store.uri).as_of().count()
