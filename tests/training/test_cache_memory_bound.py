"""What the cache keeps in process memory is bounded. A cache with a folder (a store on a local
disk) held every entry it opened or built for the life of the process: the rows of each entry
above the size bound (a pipeline training on a new set above it every trigger grew by a whole
train set each time) and the device copies loaders made of each entry. It now holds them while a
loader serves them. A cache without a folder (a store not on a local disk) evicts the entry used
least recently, not the one built first."""

from __future__ import annotations

import gc
import weakref

import numpy as np

from modyn_store import Store
from modyn_store.core.trainset import TrainSet
from training.cache import Cache, cache_for
from training.columns import ColumnSpec
from training.entries import selection_digest
from training.loading import LoaderOptions, loader


def _keys_served(dl) -> list[int]:  # type: ignore[no-untyped-def]
    return np.concatenate([b["key"].numpy() for b in dl]).tolist()


def test_entries_above_the_bound_do_not_pile_up_in_memory(store: Store) -> None:
    keys = store.as_of(None).keys()
    opts = LoaderOptions(max_cache_bytes=1024)  # every entry is above it: held in memory only
    sets = [TrainSet.uniform(keys[i * 500 : (i + 1) * 500], version=store.version) for i in range(3)]
    names = [selection_digest(store.version, ts.keys, ["x"]) for ts in sets]
    loaders = []
    for ts in sets:
        dl = loader(store, ts, columns=["x"], batch_size=100, shuffle=False, options=opts)
        assert _keys_served(dl) == ts.keys.tolist()
        assert dl._entry.path is None
        loaders.append(dl)
    cache = cache_for(store, max_bytes=opts.max_cache_bytes)
    assert cache.entries() == []  # nothing on disk
    # held while their loaders serve them: a second loader of a set shares its rows
    again = loader(store, sets[0], columns=["x"], batch_size=100, shuffle=False, options=opts)
    assert again._entry is loaders[0]._entry
    x = store.as_of(None).take(sets[0].keys, columns=["x"]).column("x").combine_chunks()
    want = x.flatten().to_numpy().reshape(len(x), -1)
    assert np.array_equal(np.concatenate([b["x"].numpy() for b in again]), want)
    del loaders, again, dl
    gc.collect()
    assert [cache.open(n) for n in names] == [None, None, None]  # released with their loaders


def test_entries_on_disk_are_released_with_their_loaders(store: Store) -> None:
    """(their device copies with them: a loader on CUDA copies an entry's columns to the device
    and keeps them on the entry, for the loaders of the same entry to share)"""
    ts = TrainSet.uniform(store.as_of(None).keys()[:300], version=store.version)
    dl = loader(store, ts, columns=["x"], batch_size=100)
    dl.wait_materialized()
    cache = cache_for(store)
    name = dl._entry.name
    assert dl._entry.path is not None and cache.open(name) is dl._entry
    held = weakref.ref(dl._entry)
    del dl
    gc.collect()
    assert held() is None  # nothing of the entry outlives its loaders
    again = cache.open(name)  # opened from its files again
    assert again is not None and again.device_copies == {}
    assert sorted(again.keys.tolist()) == ts.keys.tolist()




def test_the_memory_bound_evicts_the_least_recently_used() -> None:
    """A cache without a folder (a store not on a local disk) evicts the entry used least
    recently, not the one built first."""
    cache = Cache(None, max_bytes=2 * 48 + 24)  # room for two entries of 3 rows (48 bytes each)
    spec = {"v": ColumnSpec("v", "fixed", "<i8", ())}

    def fill(alloc):  # type: ignore[no-untyped-def]
        alloc(spec["v"], 3)[:] = [1, 2, 3]
        return np.array([4, 5, 6]), {}

    for name in ("a", "b"):
        cache.get_or_build(name, np.array([4, 5, 6]), spec, fill)
    assert cache.open("a") is not None  # used last: "b" goes for "c"
    cache.get_or_build("c", np.array([4, 5, 6]), spec, fill)
    assert [cache.open(n) is not None for n in ("a", "b", "c")] == [True, False, True]
