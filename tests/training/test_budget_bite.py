"""``LoaderOptions.host_memory_budget`` where a loader builds its cache entry (docs/training.md, the
loader, step 2): "When the fixed columns fit ``host_memory_budget``, they are filled in process
memory, written to the entry's files in one sequential write each, and the loader serves later
epochs from that memory; otherwise they are written straight into the entry's memory-mapped files."

The buffers a build fills are the ones its first epoch is served from while it runs
(``Loader._building.fixed``); the existing loader tests only check loaders that open an entry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from modyn_store import Store
from modyn_store.core.trainset import TrainSet
from training import loader
from training.entries import LoaderOptions


def _selection(store: Store, n: int, seed: int) -> TrainSet:
    rng = np.random.default_rng(seed)
    keys = rng.choice(store.as_of(None).keys(), n, replace=False)
    return TrainSet(keys=keys, weights=np.ones(n), version=store.version)


def _build(store: Store, ts: TrainSet, budget: int):  # type: ignore[no-untyped-def]
    dl = loader(store, ts, columns=["x"], batch_size=50, seed=1,
                options=LoaderOptions(prefetch=0, host_memory_budget=budget))
    building = dl._building
    assert building is not None  # a new key set: this loader builds the entry
    first = list(dl)  # epoch 0, served while the entry is built
    dl.wait_materialized()
    return dl, building.fixed["x"], first


def test_budget_zero_fills_the_entry_files_memory_mapped(store: Store) -> None:
    ts = _selection(store, 300, seed=5)
    dl, filled, first = _build(store, ts, 0)
    assert isinstance(filled, np.memmap)  # written straight into the entry's file
    assert filled.filename is not None
    path = Path(filled.filename)
    assert path.name == "c0.npy" and path.parent.name.startswith(".tmp-")  # the folder published by rename
    assert path.parent.parent == Path(store.uri) / "_cache"
    cache = dl._entry.fixed["x"]
    np.testing.assert_array_equal(np.asarray(filled), cache)
    second = list(dl)
    assert np.shares_memory(dl._host["x"].numpy(), cache)  # budget 0: served from the mapping
    assert sum(b["x"].shape[0] for b in first) == sum(b["x"].shape[0] for b in second) == 300


def test_budget_that_fits_fills_process_memory_and_serves_from_it(store: Store) -> None:
    ts = _selection(store, 300, seed=6)
    dl, filled, first = _build(store, ts, 1 << 30)
    assert type(filled) is np.ndarray  # anonymous process memory, not a mapping
    cache = dl._entry.fixed["x"]
    np.testing.assert_array_equal(filled, cache)  # the file written from it holds the same rows
    list(dl)
    assert np.shares_memory(dl._host["x"].numpy(), filled)
    assert not np.shares_memory(dl._host["x"].numpy(), cache)
    # both budgets serve the same batches
    other = loader(store, ts, columns=["x"], batch_size=50, seed=1,
                   options=LoaderOptions(prefetch=0, host_memory_budget=0))
    dl.set_epoch(0)
    for a, b in zip(list(dl), list(other), strict=True):
        assert torch.equal(a["key"], b["key"]) and torch.equal(a["x"], b["x"])
    assert len(first) == 6
