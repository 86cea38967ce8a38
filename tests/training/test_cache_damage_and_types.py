"""A damaged cache entry is built again, never served or looped on; temporal and unsigned
columns the store accepts load in every epoch; loader flags are checked, not coerced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from training import loader

N = 200


def _store(tmp_path: Path) -> tuple[Store, str]:
    store = Store.open(str(tmp_path / "s"), create=True)
    keys = np.arange(N, dtype=np.int64)
    store.append(pa.table({"key": keys, "ts": keys, "y": keys * 2, "s": [f"str{k}" for k in keys]}))
    dl = loader(store, TrainSet.uniform(keys, version=store.version), columns=["y", "s"], batch_size=50)
    dl.wait_materialized()
    root = str(tmp_path / "s" / "_cache")
    entry = next(e for e in os.listdir(root) if not e.startswith("."))
    return store, os.path.join(root, entry)


def _meta(path: str, change: Callable[[dict], object]) -> None:
    with open(os.path.join(path, "meta.json")) as fh:
        meta = json.load(fh)
    with open(os.path.join(path, "meta.json"), "w") as fh:
        json.dump(change(meta), fh)


def _rows(path: str, change: Callable[[np.ndarray], object]) -> None:
    rows = np.load(os.path.join(path, "rows.npy"))
    change(rows)
    np.save(os.path.join(path, "rows.npy"), rows)


DAMAGE: dict[str, Callable[[str], None]] = {
    "rows.npy missing": lambda p: os.remove(os.path.join(p, "rows.npy")),
    "keys.npy missing": lambda p: os.remove(os.path.join(p, "keys.npy")),
    "a column file missing": lambda p: os.remove(os.path.join(p, "c0.npy")),
    # e.g. an eviction or erasure killed half-way through removing the folder: before, every
    # build failed to publish (OSError, directory not empty) and no loader of the set started
    "meta.json missing": lambda p: os.remove(os.path.join(p, "meta.json")),
    "meta without rows": lambda p: _meta(p, lambda m: {k: v for k, v in m.items() if k != "rows"}),
    "meta a list": lambda p: _meta(p, lambda m: [m]),
    "meta one column less": lambda p: _meta(p, lambda m: {**m, "columns": m["columns"][:1]}),
    "meta shape not a list": lambda p: _meta(p, lambda m: {**m, "columns": [{**m["columns"][0], "shape": 3},
                                                                             *m["columns"][1:]]}),
    "string data as int64": lambda p: np.save(
        os.path.join(p, "c1.data.npy"), np.zeros(np.load(os.path.join(p, "c1.data.npy")).size, dtype=np.int64)),
    "string offsets as float64": lambda p: np.save(
        os.path.join(p, "c1.offsets.npy"), np.load(os.path.join(p, "c1.offsets.npy")).astype(np.float64)),
    # rows.npy keeps its size and shape: before, every open raised ErasedKeysError for a live key
    "rows.npy holds a key of no train set": lambda p: _rows(p, lambda r: r.__setitem__(0, 10 * N)),
    "rows.npy holds a key twice": lambda p: _rows(p, lambda r: r.__setitem__(5, r[4])),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_entry_is_built_again_in_a_new_process(tmp_path: Path, damage: str) -> None:
    """Before: a lost file recursed until RecursionError, damaged metadata raised KeyError,
    AttributeError or AssertionError, and string data of another dtype served garbage."""
    store, path = _store(tmp_path)
    DAMAGE[damage](path)
    code = (
        "import numpy as np\nfrom modyn_store import Store\nfrom modyn_store.core.trainset import TrainSet\n"
        "from training import loader\n"
        f"store = Store.open({store.uri!r})\n"
        f"dl = loader(store, TrainSet.uniform(np.arange({N}), version=store.version), columns=['y', 's'], "
        "batch_size=50, shuffle=False)\n"
        "ys, ss = [], []\n"
        "for b in dl:\n    ys += b['y'].tolist(); ss += list(b['s'])\n"
        "print(ys == [2 * k for k in range(200)], ss == [f'str{k}' for k in range(200)])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True"]


def test_temporal_and_unsigned_columns_load_in_shuffled_epochs(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "t"), create=True)
    n = 100
    keys = np.arange(n, dtype=np.int64)
    store.append(pa.table({
        "key": keys, "ts": keys,
        "d32": pa.array(keys.astype(np.int32), pa.date32()),
        "t32": pa.array(keys.astype(np.int32), pa.time32("s")),
        "u16": pa.array(keys + 40_000, pa.uint16()), "u32": pa.array(keys + 2**31, pa.uint32()),
        "u64": pa.array(keys.astype(np.uint64) + np.uint64(2**62), pa.uint64()),
    }))
    cols = ["d32", "t32", "u16", "u32", "u64"]
    dl = loader(store, TrainSet.uniform(keys, version=store.version), columns=cols, batch_size=32, shuffle=True)
    for epoch in range(2):
        dl.set_epoch(epoch)
        got = {c: [] for c in ["key", *cols]}
        for b in dl:
            for c in got:
                got[c] += b[c].tolist()
        k = np.array(got["key"])
        assert sorted(k.tolist()) == keys.tolist() and k.tolist() != keys.tolist()  # shuffled, each once
        assert got["d32"] == k.tolist() and got["t32"] == k.tolist()  # days, seconds as int64
        assert got["u16"] == (k + 40_000).tolist() and got["u32"] == (k + 2**31).tolist()
        assert got["u64"] == (k + 2**62).tolist()
    assert str(b["u16"].dtype) == "torch.int32" and str(b["u64"].dtype) == "torch.int64"


def test_uint64_values_beyond_int64_are_refused(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "u"), create=True)
    store.append(pa.table({"key": [0, 1], "ts": [0, 1], "u": pa.array([1, 2**64 - 1], pa.uint64())}))
    with pytest.raises(InvalidArgumentError, match="2\\*\\*63 - 1") as err:
        list(loader(store, TrainSet.uniform(np.arange(2), version=store.version), columns=["u"], batch_size=2))
    assert err.value.name == "columns['u']"


@pytest.mark.parametrize(("arg", "value"), [("shuffle", "False"), ("drop_last", "no"), ("columns", None)])
def test_loader_flags_are_checked_not_coerced(tmp_path: Path, arg: str, value: object) -> None:
    """``shuffle="False"`` shuffled and ``drop_last="no"`` dropped the last batch (``bool()``)."""
    store, _ = _store(tmp_path)
    kwargs = {"columns": ["y"], "batch_size": 64, arg: value}
    with pytest.raises(InvalidArgumentError) as err:
        loader(store, TrainSet.uniform(np.arange(N), version=store.version), **kwargs)
    assert err.value.name == arg
