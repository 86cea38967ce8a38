"""Cache entries replaced by other processes while a loader uses them: never served mixed."""

from __future__ import annotations

import os
import shutil
from typing import Any

import numpy as np
import pytest

from modyn_store.core.trainset import TrainSet
from training.epochs import Loader
from training.errors import CacheError
from training.loading import loader


def unchanged(batch: dict) -> dict:
    """A transform that changes nothing (run in worker processes)."""
    return batch


def _rebuilt_in_another_order(path: str) -> None:
    """What another process does to ``path``: evict the entry and build it again with its rows
    in another storage order (e.g. after a compaction moved fragments), published by a rename."""
    tmp = os.path.join(os.path.dirname(path), ".tmp-rebuilt")
    shutil.copytree(path, tmp)
    rows = np.load(os.path.join(tmp, "rows.npy"))
    perm = np.random.default_rng(0).permutation(rows.size)
    np.save(os.path.join(tmp, "rows.npy"), rows[perm])
    c0 = np.load(os.path.join(tmp, "c0.npy"))
    np.save(os.path.join(tmp, "c0.npy"), c0[perm])
    shutil.rmtree(path)
    os.rename(tmp, path)


def test_workers_never_serve_an_entry_built_again_since_the_loader_checked_it(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = np.sort(store.as_of(None).keys()[:300:3])
    ts = TrainSet(keys, (keys + 1).astype(np.float64), version=store.version)
    dl = loader(store, ts, columns=["label"], batch_size=25, shuffle=False, transform=unchanged, num_workers=1)
    dl.wait_materialized()
    path = dl._entry.path
    assert path is not None
    real = Loader._ensure_alive

    def then_rebuilt(self: Loader) -> None:
        real(self)  # the entry is checked, then replaced before the workers open it
        _rebuilt_in_another_order(path)

    monkeypatch.setattr(Loader, "_ensure_alive", then_rebuilt)
    # rows of the other build under the loader's positions and weights: refused, not served
    with pytest.raises(CacheError, match="built again"):
        list(dl)
    monkeypatch.undo()
    got = {k: (w, lab) for b in dl for k, w, lab in zip(b["key"].tolist(), b["weight"].tolist(),
                                                        b["label"].tolist())}
    assert sorted(got) == keys.tolist()
    assert all(w == k + 1 and lab == k % 3 for k, (w, lab) in got.items())


@pytest.mark.skipif(not hasattr(os, "posix_fallocate"), reason="no posix_fallocate on this platform")
def test_mapped_column_files_are_allocated_before_rows_are_written(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build that writes into mapped files (an entry over the host memory budget) reserves
    their blocks first: on a full disk that raises OSError (ENOSPC), where writing to the
    unbacked pages of a sparse file killed the process with SIGBUS (checked on a 12 MiB tmpfs)."""
    from training.building import Building

    seen: list[tuple[int, int]] = []
    real = Building.reading

    def reading(self: Building) -> None:
        root = store.path("_cache")
        for tmp in (n for n in os.listdir(root) if n.startswith(".tmp-")):
            for f in os.listdir(os.path.join(root, tmp)):
                if f.startswith("c"):
                    st = os.stat(os.path.join(root, tmp, f))
                    seen.append((st.st_blocks * 512, st.st_size))
        real(self)

    monkeypatch.setattr(Building, "reading", reading)
    from training.entries import LoaderOptions

    keys = np.sort(store.as_of(None).keys())
    dl = loader(store, TrainSet.uniform(keys, version=store.version), columns=["x"], batch_size=500,
                options=LoaderOptions(host_memory_budget=0))
    assert sum(len(b["key"]) for b in dl) == keys.size
    assert seen and all(size > 8 * 4096 for _, size in seen)
    assert all(allocated >= size for allocated, size in seen), seen


def test_the_workers_of_an_entry_built_again_are_stopped_when_the_loader_replaces_them(store: Any) -> None:
    """An entry removed (evicted) between epochs is built again; the next epoch starts workers
    for it and stops those of the old entry there, not when the garbage collector gets to them."""
    keys = np.sort(store.as_of(None).keys()[:300:3])
    ts = TrainSet(keys, np.ones(keys.size), version=store.version)
    dl = loader(store, ts, columns=["label"], batch_size=25, shuffle=False, transform=unchanged, num_workers=1)
    first = [b["key"].tolist() for b in dl]
    old = dl._pool
    workers = list(old.dataloader._iterator._workers)
    assert workers and all(w.is_alive() for w in workers)
    path = dl._entry.path
    assert path is not None
    shutil.rmtree(path)  # evicted by another process
    assert [b["key"].tolist() for b in dl] == first
    assert dl._pool is not old
    assert not any(w.is_alive() for w in workers)
    assert old.closed
    dl._pool.close()
    assert dl._pool.closed


def test_a_pool_closed_during_an_epoch_stops_its_workers_when_the_epoch_ends(store: Any) -> None:
    keys = np.sort(store.as_of(None).keys()[:300:3])
    ts = TrainSet(keys, np.ones(keys.size), version=store.version)
    dl = loader(store, ts, columns=["label"], batch_size=25, shuffle=False, transform=unchanged, num_workers=1)
    it = iter(dl)
    next(it)
    pool = dl._pool
    pool.close()  # an epoch is still being served: its workers stay until it ends
    assert not pool.closed
    assert len([next(it)] + list(it)) == 3
    assert pool.closed
