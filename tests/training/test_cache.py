"""The materialized cache: format, crash safety, several processes, bound, erasure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from modyn_store import Store
from modyn_store.core.trainset import TrainSet
from tests.training.conftest import reference_rows
from training.cache import Cache, cache_for
from training.errors import CacheError, ErasedKeysError
from training.loading import LoaderOptions, loader

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import os, sys, time
import numpy as np
from modyn_store import Store
from modyn_store.core.trainset import TrainSet
import training.entries as E
import training.loading as L

store_path, marker, mode, out = sys.argv[1:5]
original = E.materialize

def slow(*args, **kwargs):
    with open(marker, "a") as fh:
        fh.write(f"{os.getpid()}\n")
    result = original(*args, **kwargs)
    if mode == "slow":
        time.sleep(2.0)  # hold the build lock long enough for the other builder to arrive
    if mode == "hang":
        open(marker + ".filled", "w").close()
        time.sleep(120)
    return result

E.materialize = slow
store = Store.open(store_path)
keys = store.as_of(None).keys()[::3]
ts = TrainSet.uniform(keys, version=store.version)
dl = L.loader(store, ts, columns=["x", "text"], batch_size=100, shuffle=False)
got = np.concatenate([b["x"].numpy() for b in dl])
np.save(out, got, allow_pickle=False)
"""


def _child(store: Store, tmp_path: Path, mode: str, i: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, store.uri, str(tmp_path / "marker"), mode, str(tmp_path / f"out{i}.npy")],
        env=env,
        cwd=str(REPO),
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, f"child exited early with {proc.returncode}"
        assert time.monotonic() - t0 < timeout, "child did not reach the build"
        time.sleep(0.05)


def _every_third(store: Store) -> TrainSet:
    return TrainSet.uniform(store.as_of(None).keys()[::3], version=store.version)


def test_entry_format_holds_sorted_keys(store) -> None:
    ts = TrainSet.uniform(np.array([1500, 3, 77, 999]), version=store.version)
    loader(store, ts, columns=["x", "img"], batch_size=2).wait_materialized()
    root = Path(store.path("_cache"))
    (entry,) = [p for p in root.iterdir() if not p.name.startswith(".")]
    held = np.load(entry / "keys.npy", allow_pickle=False)
    assert held.dtype == np.int64 and held.tolist() == sorted(ts.keys.tolist())
    assert not any(p.name.startswith(".tmp-") for p in root.iterdir())


def test_cache_survives_sigkill_mid_build(store, tmp_path: Path) -> None:
    proc = _child(store, tmp_path, "hang", 0)
    try:
        _wait_for(tmp_path / "marker.filled", proc)
        root = Path(store.path("_cache"))
        tmp = [p for p in root.iterdir() if p.name.startswith(".tmp-")]
        assert tmp and (tmp[0] / "keys.npy").exists()  # killed with a half-published build
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    ts = _every_third(store)
    dl = loader(store, ts, columns=["x", "text"], batch_size=100, shuffle=False)
    got_x = np.concatenate([b["x"].numpy() for b in dl])
    got_text = sum((b["text"] for b in dl), [])
    ref = reference_rows(store, ts.keys, ["x", "text"])
    np.testing.assert_array_equal(got_x, np.array(ref["x"], np.float32))
    assert got_text == ref["text"]
    names = os.listdir(store.path("_cache"))
    assert not any(n.startswith(".tmp-") for n in names)
    assert len([n for n in names if not n.startswith(".")]) == 1


def test_concurrent_builders_build_once(store, tmp_path: Path) -> None:
    procs = [_child(store, tmp_path, "slow", i) for i in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0
    builds = (tmp_path / "marker").read_text().split()
    assert len(builds) == 1  # the others waited for the lock and opened the published entry
    ref = np.array(reference_rows(store, _every_third(store).keys, ["x"])["x"], np.float32)
    for i in range(2):
        np.testing.assert_array_equal(np.load(tmp_path / f"out{i}.npy"), ref)


def test_erasure_reaches_the_cache(store) -> None:
    ts = _every_third(store)
    dl = loader(store, ts, columns=["x"], batch_size=64)
    list(dl)
    dl.wait_materialized()
    root = Path(store.path("_cache"))
    assert len([p for p in root.iterdir() if not p.name.startswith(".")]) == 1
    victim = int(ts.keys[10])
    other = TrainSet.uniform(np.array([k for k in store.as_of(None).keys()[:50] if k != victim]), version=store.version)
    keep = loader(store, other, columns=["x"], batch_size=64)
    store.erase([victim], reason="user request")
    left = [p for p in root.iterdir() if not p.name.startswith(".")]
    assert len(left) == 1  # only the entry without the erased key remains
    assert victim not in np.load(left[0] / "keys.npy", allow_pickle=False)
    with pytest.raises(ErasedKeysError) as info:
        list(dl)  # the running loader notices on its next epoch
    assert info.value.keys.tolist() == [victim]
    with pytest.raises(ErasedKeysError) as info:
        loader(store, ts, columns=["x"], batch_size=64)
    assert info.value.keys.tolist() == [victim]
    assert sorted(np.concatenate([b["key"].numpy() for b in keep]).tolist()) == sorted(other.keys.tolist())


def test_deleted_keys_are_refused_but_old_versions_still_load(store) -> None:
    keys = store.as_of(None).keys()[:40]
    old = TrainSet.uniform(keys, version=store.version)
    store.delete(keys=[int(keys[3])])
    assert len(list(loader(store, old, columns=["label"], batch_size=8))) == 5
    new = TrainSet.uniform(keys, version=store.version)
    with pytest.raises(ErasedKeysError) as info:
        loader(store, new, columns=["label"], batch_size=8)
    assert info.value.keys.tolist() == [int(keys[3])]


def test_size_bound_evicts_least_recently_used(store) -> None:
    keys = store.as_of(None).keys()
    sets = [TrainSet.uniform(keys[i * 500 : (i + 1) * 500], version=store.version) for i in range(3)]
    one = 500 * (8 + 8 + 8 * 4) + 4096  # rows + sorted keys + x, with room for headers
    opts = LoaderOptions(max_cache_bytes=int(one * 1.6))
    for ts in sets:
        dl = loader(store, ts, columns=["x"], batch_size=100, options=opts)
        assert sorted(np.concatenate([b["key"].numpy() for b in dl]).tolist()) == ts.keys.tolist()
        dl.wait_materialized()
    cache = cache_for(store, max_bytes=opts.max_cache_bytes)
    assert cache.total_bytes() <= opts.max_cache_bytes
    assert len(cache.entries()) == 1
    held = np.load(Path(store.path("_cache")) / cache.entries()[0] / "keys.npy", allow_pickle=False)
    assert held.tolist() == sets[2].keys.tolist()


def test_in_memory_cache_without_a_folder() -> None:
    cache = Cache(None, max_bytes=1 << 20)
    from training.columns import ColumnSpec

    spec = {"v": ColumnSpec("v", "fixed", "<i8", (2,))}
    calls = []

    def fill(alloc):
        calls.append(1)
        alloc(spec["v"], 3)[:] = np.arange(6).reshape(3, 2)
        return np.array([6, 4, 5]), {}

    a = cache.get_or_build("e1", np.array([4, 5, 6]), spec, fill)
    b = cache.get_or_build("e1", np.array([4, 5, 6]), spec, fill)
    assert a is b and len(calls) == 1 and a.fixed["v"].tolist() == [[0, 1], [2, 3], [4, 5]]
    assert a.keys.tolist() == [6, 4, 5]

    def wrong(alloc):
        alloc(spec["v"], 3)[:] = 0
        return np.array([4, 5, 7]), {}

    with pytest.raises(CacheError):
        cache.get_or_build("e2", np.array([4, 5, 6]), spec, wrong)


def test_erasure_reaches_entries_held_in_memory(store) -> None:
    """An entry above the size bound lives in process memory; a running loader still refuses."""
    ts = _every_third(store)
    dl = loader(store, ts, columns=["x"], batch_size=64, options=LoaderOptions(max_cache_bytes=1024))
    assert dl._entry.path is None
    assert sorted(np.concatenate([b["key"].numpy() for b in dl]).tolist()) == sorted(ts.keys.tolist())
    victim = int(ts.keys[3])
    store.erase([victim], reason="user request")
    with pytest.raises(ErasedKeysError) as info:
        list(dl)
    assert info.value.keys.tolist() == [victim]
    assert cache_for(store, max_bytes=1024).open(dl._entry.name) is None


@pytest.mark.parametrize("damage", ["column truncated", "rows truncated", "column not an array", "meta not json"])
def test_a_damaged_entry_is_built_again(store, damage: str) -> None:
    """Entries are published whole, so damage never heals: a later loader removes the entry
    and builds it again (it raised a raw NumPy error on every later loader before)."""
    ts = _every_third(store)
    want = reference_rows(store, np.sort(ts.keys), ["x"])["x"]

    def rows() -> list:
        got = {}
        dl = loader(store, ts, columns=["x"], batch_size=128, shuffle=False)
        for b in dl:
            got.update(zip(b["key"].tolist(), b["x"].tolist()))
        dl.wait_materialized()  # the entry is published
        return [got[k] for k in sorted(got)]

    assert rows() == want
    root = Path(store.path("_cache"))
    (entry,) = [p for p in root.iterdir() if not p.name.startswith(".")]
    target = {"column truncated": "c0.npy", "rows truncated": "rows.npy", "column not an array": "c0.npy",
              "meta not json": "meta.json"}[damage]
    path = entry / target
    if "truncated" in damage:
        os.truncate(path, path.stat().st_size - 100)
    else:
        path.write_bytes(b"{not an array" if target.endswith(".npy") else b"{")
    from training import cache as cache_module

    cache_module._CACHES.clear()  # a fresh process's view: nothing opened yet
    assert rows() == want
    (again,) = [p for p in root.iterdir() if not p.name.startswith(".")]
    assert (again / target).stat().st_size > 2 and Cache(str(root)).open(again.name) is not None


def test_a_batch_changed_in_place_never_changes_the_cache(store) -> None:
    """Unshuffled batches of consecutive rows were views of the cache: a transform that
    normalised a batch in place rewrote the entry (its file too, when it was being built), and
    every later epoch, loader and process read the changed values."""
    ts = TrainSet.uniform(store.as_of(None).keys()[:256], version=store.version)
    want = np.array(reference_rows(store, ts.keys, ["x"])["x"], dtype=np.float32)

    def doubled(b: dict) -> dict:
        for name in ("key", "weight", "x"):
            b[name].mul_(2)
        return b

    dl = loader(store, ts, columns=["x"], batch_size=64, shuffle=False, transform=doubled)
    for _ in range(2):  # the epoch that builds the entry, then one from the published entry
        got = [b for b in dl]
        assert np.array_equal(torch.cat([b["x"] for b in got]).numpy(), 2 * want)
        assert torch.cat([b["key"] for b in got]).tolist() == [2 * int(k) for k in ts.keys]
    dl.wait_materialized()
    from training import cache as cache_module

    cache_module._CACHES.clear()  # a fresh process's view: read from the files
    again = torch.cat([b["x"] for b in loader(store, ts, columns=["x"], batch_size=256, shuffle=False)])
    assert np.array_equal(again.numpy(), want)


def test_an_entry_held_in_memory_is_not_served_for_a_store_created_again_at_its_path(tmp_path) -> None:
    """A store deleted and created again at the same path, with the same version, keys and
    columns: an entry kept in process memory (above the size bound) held the old store's rows."""
    import shutil

    import pyarrow as pa

    path = str(tmp_path / "again")
    opts = LoaderOptions(max_cache_bytes=16)

    def rows(scale: int) -> list[int]:
        s = Store.open(path, create=True)
        s.append(pa.table({"ts": np.arange(8), "x": np.arange(8, dtype=np.int64) * scale}))
        dl = loader(s, TrainSet.uniform(np.arange(8), version=s.version), columns=["x"], batch_size=8,
                    shuffle=False, options=opts)
        assert dl._entry.path is None
        return next(iter(dl))["x"].tolist()

    assert rows(1) == list(range(8))
    shutil.rmtree(path)
    assert rows(100) == [k * 100 for k in range(8)]
