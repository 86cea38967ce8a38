"""DDP training (gloo on CPU): same weights as one process over the same global batches."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from modyn_store import InvalidArgumentError, Store, TrainSet
from modyn_store.core.trainings import Catalog
from training.distributed import load_train_set, save_train_set, spawn_training
from training.reproduction import reproduce
from training.trainer import TrainConfig, state_equal, train

REPO = Path(__file__).resolve().parents[2]


def _store(path: Path, n: int = 90) -> Store:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    store = Store.open(str(path), create=True)
    store.append(pa.table({"ts": np.arange(n), "label": y, "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 4)}))
    store.delete(keys=[3, 4])
    return store


def _train_set(store: Store, n: int) -> TrainSet:
    keys = store.as_of().keys()[:n]
    weights = np.linspace(0.5, 2.0, keys.size)
    return TrainSet(keys, weights, store.version)


CFG = TrainConfig(
    model="mlp",
    model_params={"in_features": 4, "hidden": [8], "n_classes": 2},
    epochs=3,
    batch_size=8,
    lr=0.1,
    momentum=0.9,
    seed=11,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, TrainSet, str]:
    store = _store(tmp_path_factory.mktemp("ddp") / "store")
    # 81 rows, global batch 8: the last step has one row, so rank 1 runs out and joins
    ts = _train_set(store, 81)
    rec = spawn_training(store, ts, CFG, world_size=2, training_id="ddp2")
    assert not isinstance(rec, dict)
    return store, ts, rec.training_id


def test_two_ranks_match_one_process(trained: tuple[Store, TrainSet, str]) -> None:
    store, ts, tid = trained
    single = train(store, ts, CFG, record=False)
    ddp_state = Catalog(store).load_checkpoint(tid)
    assert set(ddp_state) == set(single.model.state_dict())
    moved = False
    init = train(store, ts, TrainConfig(**{**CFG.to_json(), "epochs": 1, "lr": 1e-12}), record=False).model.state_dict()
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp_state[name], value, rtol=1e-5, atol=1e-6)
        moved |= not torch.allclose(value, init[name], atol=1e-3)
    assert moved, "the weights must have moved for the comparison to mean anything"
    rec = Catalog(store).get(tid)
    assert rec.metrics["world_size"] == 2 and rec.cost.samples == 3 * 81
    np.testing.assert_allclose(rec.metrics["epoch_losses"], single.epoch_losses, rtol=1e-5)


def test_checkpoint_and_record_written_once(trained: tuple[Store, TrainSet, str]) -> None:
    store, ts, tid = trained
    ops = [r for r in store.log() if r.op not in ("append", "delete")]
    assert len(ops) == 1, ops
    models = [p for p in store.fs.ls(store.path("models"), detail=False) if tid in str(p)]
    assert len(models) == 1
    assert Catalog(store).train_set(tid) == ts


def test_distributed_training_reproduces_exactly(trained: tuple[Store, TrainSet, str]) -> None:
    store, _, tid = trained
    rep = reproduce(store, tid)
    assert rep.identical, rep.mismatched


def test_global_batch_must_split_evenly(tmp_path: Path) -> None:
    store = _store(tmp_path / "store", n=20)
    bad = TrainConfig(**{**CFG.to_json(), "batch_size": 7})
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        spawn_training(store, _train_set(store, 10), bad, world_size=2, record=False)
    with pytest.raises(InvalidArgumentError, match="world_size"):
        spawn_training(store, _train_set(store, 10), CFG, world_size=0)


@pytest.mark.slow
def test_torchrun_launcher(trained: tuple[Store, TrainSet, str], tmp_path: Path) -> None:
    store, ts, tid = trained
    uri = store._location.root
    save_train_set(ts, str(tmp_path / "set.npz"))
    assert load_train_set(str(tmp_path / "set.npz")) == ts
    (tmp_path / "cfg.json").write_text(json.dumps(CFG.to_json()))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "training.distributed", "--store", uri, "--train-set", str(tmp_path / "set.npz"),
         "--config", str(tmp_path / "cfg.json"), "--training-id", "via-torchrun"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    catalog = Catalog(Store.open(uri))
    assert catalog.get("via-torchrun").metrics["world_size"] == 2
    # the same world size and global batches give the same weights bit for bit
    assert state_equal(catalog.load_checkpoint("via-torchrun"), catalog.load_checkpoint(tid)) == []


@pytest.mark.parametrize("change", ["version", "keys swapped", "weights", "plan dropped"])
def test_a_train_set_file_changed_after_it_was_written_is_refused(tmp_path: Path, change: str) -> None:
    """A torchrun rank reads its train set from a file: one that no longer holds what was written
    (another version, keys in another order, other weights, an epoch plan missing between
    others) is refused instead of training on another set."""
    from modyn_store.core.errors import CorruptionError

    ts = TrainSet(keys=np.array([5, 3, 9, 7]), weights=np.array([1.0, 2.0, 3.0, 4.0]), version=4,
                  per_epoch=(np.array([0, 1]), np.array([2, 3]), np.array([0, 3])))
    path = tmp_path / "set.npz"
    save_train_set(ts, str(path))
    assert load_train_set(str(path)) == ts
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if change == "version":
        arrays["version"] = np.array([3])
    elif change == "keys swapped":
        arrays["keys"] = arrays["keys"][[1, 0, 2, 3]]
    elif change == "weights":
        arrays["weights"] = arrays["weights"] * 2
    else:
        del arrays["epoch1"]
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(CorruptionError):
        load_train_set(str(path))


def _directory_record(data: bytearray, name: bytes) -> int:
    """Where the zip central directory record of member ``name`` starts in ``data``."""
    at = 0
    while True:
        at = data.index(b"PK\x01\x02", at)
        (n,) = struct.unpack_from("<H", data, at + 28)
        if data[at + 46 : at + 46 + n] == name:
            return at
        at += 4


def _damage_directory(data: bytearray, damage: str) -> None:
    """One byte field of the archive's directory changed (as a disk or a copy may do)."""
    if damage == "unknown zip version":
        struct.pack_into("<H", data, _directory_record(data, b"keys.npy") + 6, 166)
    elif damage == "encryption flag":
        at = _directory_record(data, b"keys.npy") + 8
        struct.pack_into("<H", data, at, struct.unpack_from("<H", data, at)[0] | 1)
    elif damage == "member offsets before the file":
        end = data.rindex(b"PK\x05\x06")
        struct.pack_into("<I", data, end + 16, struct.unpack_from("<I", data, end + 16)[0] + 4096)
    else:  # the version's record's comment length swallows the records after it: digest, plans
        end = data.rindex(b"PK\x05\x06")
        size, start = struct.unpack_from("<II", data, end + 12)
        at = _directory_record(data, b"version.npy")
        n, extra = struct.unpack_from("<HH", data, at + 28)
        struct.pack_into("<H", data, at + 32, start + size - (at + 46 + n + extra))


@pytest.mark.parametrize("damage", ["truncated", "not a zip", "weights missing", "unknown zip version",
                                    "encryption flag", "member offsets before the file",
                                    "a directory record swallowing the others"])
def test_a_train_set_file_that_cannot_be_read_is_a_typed_error(tmp_path: Path, damage: str) -> None:
    """Before, zipfile's NotImplementedError, RuntimeError and OSError came out as they were,
    and a record swallowing the digest's and the plans' read as a set without epoch plans."""
    from modyn_store.core.errors import CorruptionError

    path = tmp_path / "set.npz"
    save_train_set(TrainSet(np.arange(100), np.ones(100), version=2, per_epoch=(np.arange(10), np.arange(5))),
                   str(path))
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "not a zip":
        path.write_bytes(b"\x00" * 64)
    elif damage != "weights missing":
        changed = bytearray(data)
        _damage_directory(changed, damage)
        path.write_bytes(bytes(changed))
    else:
        _rewrite_without(path, "weights")
    with pytest.raises(CorruptionError, match="set.npz"):
        load_train_set(str(path))


def _rewrite_without(path: Path, name: str) -> None:
    """Write the train-set file ``path`` again without its array ``name``."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != name}
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def test_a_train_set_file_without_a_digest_is_refused_with_how_to_write_it_again(tmp_path: Path) -> None:
    from modyn_store.core.errors import CorruptionError

    path = tmp_path / "set.npz"
    save_train_set(TrainSet(keys=np.array([5, 3, 9]), weights=np.array([1.0, 2.0, 3.0]), version=4), str(path))
    _rewrite_without(path, "digest")
    with pytest.raises(CorruptionError, match="no digest.*save_train_set"):
        load_train_set(str(path))

