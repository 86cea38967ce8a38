"""Damaged, forged or mismatched checkpoints raise typed errors naming the file or the training."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import zstandard

from modyn_store.core._validate import check_name
from modyn_store.core.errors import CorruptionError, InvalidArgumentError, InvalidNameError
from modyn_store.core.trainings import Catalog, CheckpointRef
from modyn_store.core.trainset import TrainSet


def _plant(store, name: str, raw: bytes) -> CheckpointRef:
    """A file ``models/<name>.pt.zst`` holding ``raw`` zstd-compressed, with its true sha256."""
    blob = zstandard.ZstdCompressor().compress(raw)
    store.fs.makedirs(store.path("models"), exist_ok=True)
    with store.fs.open(store.path(f"models/{name}.pt.zst"), "wb") as fh:
        fh.write(blob)
    return CheckpointRef(f"models/{name}.pt.zst", hashlib.sha256(blob).hexdigest())


def test_damaged_checkpoint_raises_corruption_naming_the_file(store) -> None:
    cat = Catalog(store)
    ref = cat.save_checkpoint("m1", {"w": torch.randn(64)})
    other = cat.save_checkpoint("m2", {"w": torch.randn(64)})
    path = store.path(ref.uri)
    good = Path(path).read_bytes()
    for damaged in (good[: len(good) // 2], bytes([good[0] ^ 1]) + good[1:], Path(store.path(other.uri)).read_bytes()):
        Path(path).write_bytes(damaged)
        with pytest.raises(CorruptionError, match=ref.uri):
            cat.load_checkpoint(ref)


def test_forged_checkpoint_never_executes_and_raises_corruption(store, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    buf = io.BytesIO()
    torch.save({"x": Evil()}, buf)
    assert not marker.exists()
    cat = Catalog(store)
    zipped = io.BytesIO()
    torch.save({"w": torch.zeros(100)}, zipped)
    forged = {"evil": buf.getvalue(), "notzip": b"not a checkpoint", "cut": zipped.getvalue()[:-30]}
    for name, raw in forged.items():
        with pytest.raises(CorruptionError, match=f"models/{name}.pt.zst"):
            cat.load_checkpoint(_plant(store, name, raw))
    buf = io.BytesIO()
    torch.save(torch.zeros(3), buf)  # a tensor, not a state dict
    with pytest.raises(CorruptionError, match="models/tensor.pt.zst"):
        cat.load_checkpoint(_plant(store, "tensor", buf.getvalue()))
    store.fs.makedirs(store.path("models"), exist_ok=True)
    with store.fs.open(store.path("models/raw.pt.zst"), "wb") as fh:
        fh.write(b"garbage")  # not zstd at all
    with pytest.raises(CorruptionError, match="models/raw.pt.zst"):
        cat.load_checkpoint(CheckpointRef("models/raw.pt.zst", hashlib.sha256(b"garbage").hexdigest()))
    assert not marker.exists(), "the payload ran"
    with pytest.raises(InvalidArgumentError, match="ref"):
        cat.load_checkpoint(123)  # type: ignore[arg-type]


def test_names_with_a_final_newline_are_refused(store) -> None:
    for bad in ("t1\n", "release-1\n"):
        with pytest.raises(InvalidNameError):
            check_name("training_id", bad)
    with pytest.raises(InvalidNameError):
        Catalog(store).save_checkpoint("t1\n", {"w": torch.zeros(1)})
    with pytest.raises(InvalidNameError):
        Catalog(store).record_training("t1\n", TrainSet.uniform(np.array([1]), version=store.version))


def test_checkpoint_of_another_architecture_names_the_training(store) -> None:
    from training.recorded import load_model
    from training.trainer import TrainConfig, train

    cat = Catalog(store)
    cfg = TrainConfig(model="logreg", model_params={"in_features": 8, "n_classes": 3}, batch_size=64, seed=1)
    ref = cat.save_checkpoint("wide", {"weight": torch.zeros(7, 7)})
    ts = TrainSet.uniform(store.as_of(None).keys()[:64], version=store.version)
    cat.record_training("wide", ts, checkpoint=ref, config=cfg.to_json())
    with pytest.raises(InvalidArgumentError, match="models='wide'"):
        load_model(store, "wide", name="models")  # as evaluate() loads the models it names
    from dataclasses import replace

    with pytest.raises(InvalidArgumentError, match="parent_id='wide'"):
        train(store, ts, replace(cfg, mode="finetune"), training_id="ft", parent_id="wide")


def test_checkpoints_stream_without_whole_copies_in_memory(store) -> None:
    import tracemalloc

    cat = Catalog(store)
    state = {"w": torch.randn(8_000_000)}  # 32 MB of incompressible floats
    mb = 32 * 2**20
    cat.save_checkpoint("warm", {"w": torch.zeros(2)})
    tracemalloc.start()
    try:
        ref = cat.save_checkpoint("big", state)
        saved = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        back = cat.load_checkpoint(ref)
        loaded = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert torch.equal(back["w"], state["w"])
    assert saved < mb // 8, f"save held {saved / 2**20:.0f} MB of serialized bytes"
    assert loaded < mb * 1.3, f"load held {loaded / 2**20:.0f} MB (the compressed file and its contents)"
    with pytest.raises(Exception):
        cat.save_checkpoint("bad", {"x": lambda: 1})  # not picklable: no file stays behind
    assert not [f for f in store.fs.ls(store.path("models")) if f.endswith(".tmp") or "/bad." in f]
