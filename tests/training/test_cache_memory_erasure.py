"""Entries held in process memory (a store not on a local disk, or an entry above the size
bound) lose an erased key's rows: the next use of the store's cache drops every such entry
holding a key erased since, instead of keeping the erased rows for the life of the process."""

from __future__ import annotations

import numpy as np
import pytest

from modyn_store import Store
from modyn_store.core.trainset import TrainSet
from tests.training.conftest import sample_table
from training.cache import cache_for
from training.errors import ErasedKeysError
from training.loading import LoaderOptions, loader


def _served(dl) -> list[int]:  # type: ignore[no-untyped-def]
    return sorted(np.concatenate([b["key"].numpy() for b in dl]).tolist())


@pytest.mark.parametrize("where", ["object store", "above the bound"])
def test_entries_in_memory_holding_an_erased_key_are_dropped(request, tmp_path, where: str) -> None:  # type: ignore[no-untyped-def]
    if where == "object store":  # (moto's local S3 server): every entry is held in memory
        uri, options = request.getfixturevalue("s3_store")
        store = Store.open(uri, create=True, storage_options=options)
        opts = LoaderOptions()
    else:
        store = Store.open(str(tmp_path / "s"), create=True)
        opts = LoaderOptions(max_cache_bytes=1024)
    store.append(sample_table(300))
    keys = store.as_of(None).keys()
    erased_set = TrainSet.uniform(keys[:100], version=store.version)
    other_set = TrainSet.uniform(keys[200:], version=store.version)
    dls = [loader(store, ts, columns=["x", "text"], batch_size=32, options=opts) for ts in (erased_set, other_set)]
    assert [_served(dl) for dl in dls] == [erased_set.keys.tolist(), other_set.keys.tolist()]
    cache = cache_for(store, max_bytes=opts.max_cache_bytes)
    names = [dl._entry.name for dl in dls]
    assert all(dl._entry.path is None for dl in dls) and set(names) <= set(cache._open)

    store.erase([int(keys[7])], reason="user request")

    cache = cache_for(store, max_bytes=opts.max_cache_bytes)  # the next use of the cache
    assert names[0] not in cache._open, "an entry holding the erased row is still held in memory"
    assert cache.open(names[0]) is None
    assert names[1] in cache._open  # the check can fail: an entry without erased keys is kept
    with pytest.raises(ErasedKeysError):
        loader(store, erased_set, columns=["x", "text"], batch_size=32, options=opts)
