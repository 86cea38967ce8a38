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


def test_a_count_whose_files_vanish_after_keys_out_of_order_reads_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream of keys read out of order beyond what it keeps to resume from cannot resume when
    a concurrent compact, erase or vacuum removes its files; a count needs no resume: it starts
    over, as ``keys()`` does, instead of raising ConflictError."""
    from modyn_store.core import _keyscan
    from modyn_store.core.snapshot import Snapshot

    keys = np.random.default_rng(5).permutation(3000).astype(np.int64)
    store = _store(tmp_path / "s", keys)
    store.delete(keys=keys[::50])
    monkeypatch.setattr(_keyscan, "SEEN_CAP", 200)
    real = Snapshot._readers
    calls = [0]

    def vanishing(self: Snapshot, *args: object, **kwargs: object) -> list[object]:
        readers = real(self, *args, **kwargs)
        calls[0] += 1
        if calls[0] > 1:
            return readers

        def broken() -> object:
            for n, b in enumerate(b for r in readers for b in r):
                if n == 2:  # 1,500 keys read out of order: past the cap
                    raise OSError("file vanished")
                yield b

        return [broken()]

    monkeypatch.setattr(Snapshot, "_readers", vanishing)
    snap = Store.open(store.uri).as_of()
    assert snap.count() == 3000 - 60
    assert calls[0] >= 2 and snap.keys().size == 3000 - 60
